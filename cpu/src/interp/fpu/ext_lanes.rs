//! The lane-wise instructions of SSE3, SSSE3, SSE4.1, SSE4.2 (PCMPGTQ),
//! AES-NI, PCLMULQDQ and SHA as one table from the legacy mnemonic to the
//! semantic functions in `sse3`, `ssse3`, `sse41`, `sse41fp`, `aes`,
//! `clmul` and `sha`: the result of one 128-bit lane from its operands.
//! The legacy encoding (`legacy_ext`) calls it once, the VEX encoding
//! (`vex_ext`) once per 128-bit half, so both encodings share every rule.

use iced_x86::Mnemonic;

use super::simd::pack;
use super::softfloat::{F32, F64};
use super::sse41::Pick;
use super::ssse3::HOp;
use super::{aes, clmul, sha, sse3, sse41, sse41fp, ssse3};

/// The operands of one 128-bit lane.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lane {
    /// The first source (the legacy destination, or VEX.vvvv).
    pub a: u128,
    /// The second source (the r/m operand).
    pub b: u128,
    /// The variable-blend selector (XMM0, or the VEX is4 register) and
    /// SHA256RNDS2's implicit XMM0 operand.
    pub sel: u128,
    /// The immediate byte.
    pub imm: u8,
    /// Which 128-bit half of a VEX.256 operation this is (0 otherwise):
    /// the immediate-controlled blends and MPSADBW take other bits there.
    pub half: usize,
    /// The vector width in bytes: 16, or 8 for the MMX forms of SSSE3.
    pub w: usize,
}

/// The result of lane-wise instruction `m` (a legacy mnemonic) on `l`,
/// with MXCSR `mx` and the floating-point exceptions raised added to
/// `flags`; `None` if `m` is not one of them.
pub(super) fn lane_op(m: Mnemonic, l: &Lane, mx: u32, flags: &mut u32) -> Option<u128> {
    use Mnemonic as M;
    let (a, b, w, imm) = (l.a, l.b, l.w, l.imm);
    let fmt_ps = |single: bool| if single { F32 } else { F64 };
    Some(match m {
        // SSE3
        M::Addsubps | M::Addsubpd => sse3::addsub(a, b, fmt_ps(m == M::Addsubps), mx, flags),
        M::Haddps | M::Haddpd | M::Hsubps | M::Hsubpd => {
            let fmt = fmt_ps(matches!(m, M::Haddps | M::Hsubps));
            let sub = matches!(m, M::Hsubps | M::Hsubpd);
            sse3::horizontal(a, b, fmt, sub, mx, flags)
        }
        M::Movddup => sse3::movddup(b),
        M::Movshdup => sse3::movdup_dwords(b, true),
        M::Movsldup => sse3::movdup_dwords(b, false),
        // SSSE3
        M::Pabsb => ssse3::pabs(b, w, 1),
        M::Pabsw => ssse3::pabs(b, w, 2),
        M::Pabsd => ssse3::pabs(b, w, 4),
        M::Psignb => ssse3::psign(a, b, w, 1),
        M::Psignw => ssse3::psign(a, b, w, 2),
        M::Psignd => ssse3::psign(a, b, w, 4),
        M::Pshufb => ssse3::pshufb(a, b, w),
        M::Palignr => ssse3::palignr(a, b, w, imm),
        M::Phaddw => ssse3::horizontal(a, b, w, 2, HOp::Add),
        M::Phaddd => ssse3::horizontal(a, b, w, 4, HOp::Add),
        M::Phaddsw => ssse3::horizontal(a, b, w, 2, HOp::AddSat),
        M::Phsubw => ssse3::horizontal(a, b, w, 2, HOp::Sub),
        M::Phsubd => ssse3::horizontal(a, b, w, 4, HOp::Sub),
        M::Phsubsw => ssse3::horizontal(a, b, w, 2, HOp::SubSat),
        M::Pmaddubsw => ssse3::pmaddubsw(a, b, w),
        M::Pmulhrsw => ssse3::pmulhrsw(a, b, w),
        // SSE4.1 integer and data movement. VBLENDPS/PD.256 take the
        // upper half's selector bits from the immediate's upper bits.
        M::Blendps => sse41::blend_imm(a, b, 4, imm >> (4 * l.half)),
        M::Blendpd => sse41::blend_imm(a, b, 8, imm >> (2 * l.half)),
        M::Pblendw => sse41::blend_imm(a, b, 2, imm),
        M::Blendvps => sse41::blend_var(a, b, 4, l.sel),
        M::Blendvpd => sse41::blend_var(a, b, 8, l.sel),
        M::Pblendvb => sse41::blend_var(a, b, 1, l.sel),
        M::Pmovsxbw => sse41::extend(b, 1, 2, true),
        M::Pmovsxbd => sse41::extend(b, 1, 4, true),
        M::Pmovsxbq => sse41::extend(b, 1, 8, true),
        M::Pmovsxwd => sse41::extend(b, 2, 4, true),
        M::Pmovsxwq => sse41::extend(b, 2, 8, true),
        M::Pmovsxdq => sse41::extend(b, 4, 8, true),
        M::Pmovzxbw => sse41::extend(b, 1, 2, false),
        M::Pmovzxbd => sse41::extend(b, 1, 4, false),
        M::Pmovzxbq => sse41::extend(b, 1, 8, false),
        M::Pmovzxwd => sse41::extend(b, 2, 4, false),
        M::Pmovzxwq => sse41::extend(b, 2, 8, false),
        M::Pmovzxdq => sse41::extend(b, 4, 8, false),
        M::Pminsb => sse41::minmax(a, b, 1, Pick::MinS),
        M::Pminsd => sse41::minmax(a, b, 4, Pick::MinS),
        M::Pminuw => sse41::minmax(a, b, 2, Pick::MinU),
        M::Pminud => sse41::minmax(a, b, 4, Pick::MinU),
        M::Pmaxsb => sse41::minmax(a, b, 1, Pick::MaxS),
        M::Pmaxsd => sse41::minmax(a, b, 4, Pick::MaxS),
        M::Pmaxuw => sse41::minmax(a, b, 2, Pick::MaxU),
        M::Pmaxud => sse41::minmax(a, b, 4, Pick::MaxU),
        M::Pmulld => sse41::pmulld(a, b),
        M::Pmuldq => sse41::pmuldq(a, b),
        M::Packusdw => pack(a, b, 16, 4, true),
        M::Pcmpeqq => sse41::pcmpeqq(a, b),
        M::Pcmpgtq => sse41::pcmpgtq(a, b),
        // VMPSADBW.256: the upper half's offsets are imm[5:3].
        M::Mpsadbw => sse41::mpsadbw(a, b, imm >> (3 * l.half)),
        M::Phminposuw => sse41::phminposuw(b),
        // SSE4.1 floating point
        M::Roundps | M::Roundpd | M::Roundss | M::Roundsd => {
            let fmt = fmt_ps(matches!(m, M::Roundps | M::Roundss));
            let scalar = matches!(m, M::Roundss | M::Roundsd);
            sse41fp::round(a, b, fmt, scalar, imm, mx, flags)
        }
        // AES-NI, PCLMULQDQ
        M::Aesenc => aes::encrypt_round(a, b, false),
        M::Aesenclast => aes::encrypt_round(a, b, true),
        M::Aesdec => aes::decrypt_round(a, b, false),
        M::Aesdeclast => aes::decrypt_round(a, b, true),
        M::Aesimc => aes::inverse_mix_columns(b),
        M::Aeskeygenassist => aes::keygen_assist(b, imm),
        M::Pclmulqdq => clmul::pclmulqdq(a, b, imm),
        // SHA
        M::Sha1rnds4 => sha::sha1rnds4(a, b, imm),
        M::Sha1nexte => sha::sha1nexte(a, b),
        M::Sha1msg1 => sha::sha1msg1(a, b),
        M::Sha1msg2 => sha::sha1msg2(a, b),
        M::Sha256rnds2 => sha::sha256rnds2(a, b, l.sel),
        M::Sha256msg1 => sha::sha256msg1(a, b),
        M::Sha256msg2 => sha::sha256msg2(a, b),
        _ => return None,
    })
}

/// The element sizes (from, to) of a PMOVSX*/PMOVZX* widening move.
pub(super) fn widening(m: Mnemonic) -> Option<(usize, usize)> {
    use Mnemonic as M;
    Some(match m {
        M::Pmovsxbw | M::Pmovzxbw => (1, 2),
        M::Pmovsxbd | M::Pmovzxbd => (1, 4),
        M::Pmovsxbq | M::Pmovzxbq => (1, 8),
        M::Pmovsxwd | M::Pmovzxwd => (2, 4),
        M::Pmovsxwq | M::Pmovzxwq => (2, 8),
        M::Pmovsxdq | M::Pmovzxdq => (4, 8),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(a: u128, b: u128, imm: u8, half: usize) -> Lane {
        Lane {
            a,
            b,
            sel: 0,
            imm,
            half,
            w: 16,
        }
    }

    #[test]
    fn upper_half_takes_its_own_immediate_bits() {
        let mut f = 0;
        let all = u128::MAX;
        // imm = 0x30: the upper half of VBLENDPS picks its dwords 0 and 1.
        let r = lane_op(Mnemonic::Blendps, &lane(0, all, 0x30, 1), 0x1f80, &mut f);
        assert_eq!(r, Some(u128::from(u64::MAX)));
        let r = lane_op(Mnemonic::Blendps, &lane(0, all, 0x30, 0), 0x1f80, &mut f);
        assert_eq!(r, Some(0));
        // VBLENDPD imm = 0b1000: upper half, element 1.
        let r = lane_op(Mnemonic::Blendpd, &lane(0, all, 8, 1), 0x1f80, &mut f);
        assert_eq!(r, Some(u128::from(u64::MAX) << 64));
        assert_eq!(f, 0);
    }

    #[test]
    fn non_lane_instructions_are_not_claimed() {
        let mut f = 0;
        let l = lane(1, 2, 0, 0);
        assert_eq!(lane_op(Mnemonic::Addps, &l, 0x1f80, &mut f), None);
        assert_eq!(lane_op(Mnemonic::Ptest, &l, 0x1f80, &mut f), None);
        assert_eq!(widening(Mnemonic::Pmovzxbq), Some((1, 8)));
        assert_eq!(widening(Mnemonic::Pshufb), None);
    }
}
