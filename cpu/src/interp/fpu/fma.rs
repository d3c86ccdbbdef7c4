//! FMA3: VFMADD*, VFMSUB*, VFNMADD*, VFNMSUB*, VFMADDSUB*, VFMSUBADD* in
//! their 132/213/231 operand orders, packed (PS/PD, VEX.128 and VEX.256)
//! and scalar (SS/SD).
//!
//! Each lane is one fused multiply-add with a single rounding
//! ([`softfloat::fma`]) under MXCSR (rounding, DAZ, FTZ, flags, #XM). The
//! NaN result is the first NaN among the three sources in encoding order
//! (destination, VEX.vvvv, r/m), quieted, whatever the operand order.

use std::sync::OnceLock;

use iced_x86::{Instruction, Mnemonic, OpKind};

use super::softfloat::{self as sf, Format, NanRule, DE, F32, F64, IE};
use super::sse::{decode, mx_env, unbounded_precision};
use super::{FpuContext, FpuError, FpuState};

/// The sign changes of one form: `(-)(a * b) (+/-) c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// a*b + c
    Madd,
    /// a*b - c
    Msub,
    /// -(a*b) + c
    Nmadd,
    /// -(a*b) - c
    Nmsub,
    /// Even lanes a*b - c, odd lanes a*b + c.
    MaddSub,
    /// Even lanes a*b + c, odd lanes a*b - c.
    MsubAdd,
}

/// One FMA mnemonic decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spec {
    kind: Kind,
    /// 132, 213 or 231: which sources are the factors and the addend.
    order: u16,
    fmt: Format,
    scalar: bool,
}

/// Parse an iced FMA mnemonic name such as `Vfnmsub231ps`.
fn parse(name: &str) -> Option<Spec> {
    let rest = name.strip_prefix("Vf")?;
    let kinds = [
        ("maddsub", Kind::MaddSub),
        ("msubadd", Kind::MsubAdd),
        ("madd", Kind::Madd),
        ("msub", Kind::Msub),
        ("nmadd", Kind::Nmadd),
        ("nmsub", Kind::Nmsub),
    ];
    let (kind, rest) = kinds
        .iter()
        .find_map(|&(p, k)| rest.strip_prefix(p).map(|r| (k, r)))?;
    let order: u16 = rest.get(..3)?.parse().ok()?;
    if !matches!(order, 132 | 213 | 231) {
        return None;
    }
    let (fmt, scalar) = match rest.get(3..)? {
        "ps" => (F32, false),
        "pd" => (F64, false),
        "ss" => (F32, true),
        "sd" => (F64, true),
        _ => return None,
    };
    if scalar && matches!(kind, Kind::MaddSub | Kind::MsubAdd) {
        return None;
    }
    Some(Spec {
        kind,
        order,
        fmt,
        scalar,
    })
}

/// The FMA form of mnemonic `m`, from a table built once.
fn spec(m: Mnemonic) -> Option<Spec> {
    static TABLE: OnceLock<Vec<Option<Spec>>> = OnceLock::new();
    let t = TABLE.get_or_init(|| {
        Mnemonic::values()
            .map(|m| parse(&format!("{m:?}")))
            .collect()
    });
    t.get(m as usize).copied().flatten()
}

/// One lane: `srcs` in encoding order (destination, vvvv, r/m).
fn lane(spec: Spec, srcs: [u64; 3], sub_c: bool, neg_p: bool, mxcsr: u32, flags: &mut u32) -> u64 {
    let fmt = spec.fmt;
    let d = srcs.map(|v| decode(v, fmt, mxcsr));
    let (ia, ib, ic) = match spec.order {
        132 => (0, 2, 1),
        213 => (1, 0, 2),
        _ => (1, 2, 0),
    };
    let mut env = mx_env(mxcsr, fmt);
    if let Some(n) = [d[ia], d[ib], d[ic]].iter().find(|x| x.v.is_nan()) {
        let snan = d.iter().any(|x| x.v.is_snan());
        let (a, b) = (d[ia].v, d[ib].v);
        let zero_inf = matches!(
            (a.class, b.class),
            (sf::Class::Zero, sf::Class::Inf) | (sf::Class::Inf, sf::Class::Zero)
        );
        if snan || zero_inf {
            *flags |= IE;
        }
        return sf::pack(n.v.quieted(), fmt) as u64;
    }
    env.denormal_input = d.iter().any(|x| x.denormal);
    let a = if neg_p { d[ia].v.neg() } else { d[ia].v };
    let c = if sub_c { d[ic].v.neg() } else { d[ic].v };
    let b = d[ib].v;
    let r = sf::fma(a, b, c, NanRule::First, &mut env);
    unbounded_precision(&mut env, mxcsr, |e| {
        sf::fma(a, b, c, NanRule::First, e);
    });
    // An invalid lane (inf * 0, inf - inf) reports no denormal operand.
    if env.flags & IE != 0 {
        env.flags &= !DE;
    }
    *flags |= env.flags;
    sf::pack(r, fmt) as u64
}

impl FpuState {
    /// Execute an FMA instruction; `Ok(false)` if `instr` is not one.
    pub(super) fn execute_fma(
        &mut self,
        instr: &Instruction,
        ctx: &mut dyn FpuContext,
    ) -> Result<bool, FpuError> {
        let Some(spec) = spec(instr.mnemonic()) else {
            return Ok(false);
        };
        let dst = instr.op_register(0);
        let (n, wide) = super::avx::vreg(dst).ok_or(FpuError::NotFpu)?;
        let s2 = super::avx::vreg(instr.op_register(1))
            .ok_or(FpuError::NotFpu)?
            .0;
        let s1 = [self.xmm[n], self.ymm_hi[n]];
        let s2 = [self.xmm[s2], self.ymm_hi[s2]];
        let s3 = match instr.op_kind(2) {
            OpKind::Register => {
                let r = super::avx::vreg(instr.op_register(2))
                    .ok_or(FpuError::NotFpu)?
                    .0;
                [self.xmm[r], self.ymm_hi[r]]
            }
            OpKind::Memory => {
                let size = instr.memory_size().size().clamp(1, 32);
                let mut b = [0u8; 32];
                ctx.read_mem(0, &mut b[..size])?;
                let mut lo = [0u8; 16];
                let mut hi = [0u8; 16];
                lo.copy_from_slice(&b[..16]);
                hi.copy_from_slice(&b[16..]);
                [u128::from_le_bytes(lo), u128::from_le_bytes(hi)]
            }
            _ => return Err(FpuError::NotFpu),
        };
        let size = if spec.fmt == F32 { 4 } else { 8 };
        let count = if spec.scalar {
            1
        } else if wide {
            32 / size
        } else {
            16 / size
        };
        let get = |v: [u128; 2], i: usize| super::avx::yget(v, i, size);
        let mut out = [s1[0], 0];
        let mut flags = 0u32;
        for i in 0..count {
            let odd = i % 2 == 1;
            let (neg_p, sub_c) = match spec.kind {
                Kind::Madd => (false, false),
                Kind::Msub => (false, true),
                Kind::Nmadd => (true, false),
                Kind::Nmsub => (true, true),
                Kind::MaddSub => (false, !odd),
                Kind::MsubAdd => (false, odd),
            };
            let srcs = [get(s1, i), get(s2, i), get(s3, i)];
            let v = lane(spec, srcs, sub_c, neg_p, self.mxcsr, &mut flags);
            super::avx::yput(&mut out, i, size, v);
        }
        self.sse_flags(flags, ctx)?;
        self.xmm[n] = out[0];
        self.ymm_hi[n] = if wide && !spec.scalar { out[1] } else { 0 };
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        let s = parse("Vfnmsub231ps").expect("vfnmsub231ps");
        assert_eq!(
            (s.kind, s.order, s.fmt, s.scalar),
            (Kind::Nmsub, 231, F32, false)
        );
        let s = parse("Vfmaddsub132pd").expect("vfmaddsub132pd");
        assert_eq!((s.kind, s.order, s.fmt), (Kind::MaddSub, 132, F64));
        assert_eq!(parse("Vfmaddsub132sd"), None);
        assert_eq!(parse("Vfmadd132ph"), None);
        assert!(spec(Mnemonic::Vfmadd213sd).is_some());
        assert!(spec(Mnemonic::Vaddps).is_none());
    }

    #[test]
    fn one_rounding() {
        // (1 + 2^-52) * (1 - 2^-52) - 1 = -2^-104 exactly; a separate
        // multiply would round the product to 1 and give 0.
        let a = 0x3ff0_0000_0000_0001u64;
        let b = 0x3fef_ffff_ffff_fffeu64;
        let c = 0xbff0_0000_0000_0000u64;
        let spec = parse("Vfmadd231sd").expect("spec");
        let mut flags = 0;
        // 231: dest = vvvv * r/m + dest.
        let r = lane(spec, [c, a, b], false, false, 0x1f80, &mut flags);
        assert_eq!(r, 0xb970_0000_0000_0000);
        assert_eq!(flags, 0);
    }
}
