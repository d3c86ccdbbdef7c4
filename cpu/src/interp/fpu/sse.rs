//! SSE/SSE2 floating-point instructions (PS/PD/SS/SD) and MXCSR.
//!
//! Every lane is computed by [`super::softfloat`], so the four MXCSR
//! rounding modes, DAZ, FTZ and all six exception flags are exact. The
//! NaN rule is the SSE one: the first source operand's NaN wins (quieted),
//! else the second's; invalid operations produce the default QNaN.
//! Unmasked exceptions set their MXCSR flags, leave the destination
//! unchanged and raise #XM (CR4.OSXMMEXCPT) or #UD.

use core::cmp::Ordering;

use iced_x86::{Instruction, Mnemonic, OpKind};

use super::softfloat::{
    self as sf, Decoded, Env, Format, Fp, NanRule, Round, DE, F32, F64, IE, PE,
};
use super::{FpuContext, FpuError, FpuState};

/// MXCSR DAZ bit.
const DAZ: u32 = 1 << 6;
/// MXCSR FTZ bit.
const FTZ: u32 = 1 << 15;
/// MXCSR underflow mask.
const UM: u32 = 1 << 11;
/// CR4.OSXMMEXCPT.
const CR4_OSXMMEXCPT: u64 = 1 << 10;

/// One lane operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FOp {
    /// a + b
    Add,
    /// a - b
    Sub,
    /// a * b
    Mul,
    /// a / b
    Div,
    /// x86 MIN: a < b ? a : b
    Min,
    /// x86 MAX: a > b ? a : b
    Max,
    /// sqrt(b)
    Sqrt,
    /// CMPxx with predicate 0-7: all-ones or zero.
    Cmp(u8),
}

/// Soft-float environment for MXCSR and a lane format.
pub(super) fn mx_env(mxcsr: u32, fmt: Format) -> Env {
    let mut e = Env::new(fmt, Round::from_bits(mxcsr >> 13));
    e.ftz = mxcsr & FTZ != 0 && mxcsr & UM != 0;
    e.underflow_trap = mxcsr & UM == 0;
    e
}

/// Decode a lane, applying DAZ.
pub(super) fn decode(bits: u64, fmt: Format, mxcsr: u32) -> Decoded {
    let mut d = sf::unpack(u128::from(bits), fmt);
    if d.denormal && mxcsr & DAZ != 0 {
        d.v = Fp::zero(d.v.sign);
        d.denormal = false;
    }
    d
}

fn ones(fmt: Format) -> u64 {
    if fmt == F32 {
        u64::from(u32::MAX)
    } else {
        u64::MAX
    }
}

/// Compute one lane; flags accumulate in `flags`.
pub(super) fn lane(op: FOp, a: u64, b: u64, fmt: Format, mxcsr: u32, flags: &mut u32) -> u64 {
    let mut env = mx_env(mxcsr, fmt);
    let da = decode(a, fmt, mxcsr);
    let db = decode(b, fmt, mxcsr);
    env.denormal_input = da.denormal || db.denormal;
    let (x, y) = (da.v, db.v);
    let arith = |e: &mut Env| match op {
        FOp::Add => Some(sf::add(x, y, false, NanRule::First, e)),
        FOp::Sub => Some(sf::add(x, y, true, NanRule::First, e)),
        FOp::Mul => Some(sf::mul(x, y, NanRule::First, e)),
        FOp::Div => Some(sf::div(x, y, NanRule::First, e)),
        FOp::Sqrt => {
            e.denormal_input = db.denormal;
            Some(sf::sqrt(y, e))
        }
        _ => None,
    };
    if let Some(r) = arith(&mut env) {
        unbounded_precision(&mut env, mxcsr, |e| {
            arith(e);
        });
        *flags |= env.flags;
        return sf::pack(r, fmt) as u64;
    }
    match op {
        FOp::Min | FOp::Max => {
            let pick_a = if x.is_nan() || y.is_nan() {
                env.flags |= IE;
                false
            } else {
                if env.denormal_input {
                    env.flags |= DE;
                }
                let want = if op == FOp::Min {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
                sf::compare(x, y) == Some(want)
            };
            *flags |= env.flags;
            let chosen = if pick_a { da } else { db };
            if chosen.v.class == sf::Class::Zero {
                sf::pack(chosen.v, fmt) as u64
            } else if pick_a {
                a
            } else {
                b
            }
        }
        FOp::Cmp(p) => {
            // Predicates 0-31 (VEX); bit 4 swaps quiet and signaling.
            let signaling = matches!(p & 15, 1 | 2 | 5 | 6 | 9 | 10 | 13 | 14) ^ (p & 16 != 0);
            let ord = if x.is_nan() || y.is_nan() {
                if signaling || x.is_snan() || y.is_snan() {
                    env.flags |= IE;
                }
                None
            } else {
                if env.denormal_input {
                    env.flags |= DE;
                }
                sf::compare(x, y)
            };
            let (lt, eq, gt) = (
                ord == Some(Ordering::Less),
                ord == Some(Ordering::Equal),
                ord == Some(Ordering::Greater),
            );
            let un = ord.is_none();
            let t = match p & 15 {
                0 => eq,
                1 => lt,
                2 => lt || eq,
                3 => un,
                4 => !eq,
                5 => !lt,
                6 => !(lt || eq),
                7 => !un,
                8 => eq || un,
                9 => lt || un,
                10 => lt || eq || un,
                11 => false,
                12 => lt || gt,
                13 => gt || eq,
                14 => gt,
                _ => true,
            };
            *flags |= env.flags;
            if t {
                ones(fmt)
            } else {
                0
            }
        }
        // The arithmetic operations returned above.
        _ => 0,
    }
}

/// COMIS/UCOMIS: RFLAGS value (ZF, PF, CF) for `a` compared with `b`.
pub(super) fn comi(
    a: u64,
    b: u64,
    fmt: Format,
    mxcsr: u32,
    signaling: bool,
    flags: &mut u32,
) -> u64 {
    let da = decode(a, fmt, mxcsr);
    let db = decode(b, fmt, mxcsr);
    if da.v.is_nan() || db.v.is_nan() {
        if signaling || da.v.is_snan() || db.v.is_snan() {
            *flags |= IE;
        }
        return 0x45;
    }
    if da.denormal || db.denormal {
        *flags |= DE;
    }
    match sf::compare(da.v, db.v) {
        Some(Ordering::Less) => 1,
        Some(Ordering::Equal) => 0x40,
        _ => 0,
    }
}

/// Float-to-float conversion of one lane.
pub(super) fn cvt_float(a: u64, from: Format, to: Format, mxcsr: u32, flags: &mut u32) -> u64 {
    let d = decode(a, from, mxcsr);
    let mut env = mx_env(mxcsr, to);
    env.denormal_input = d.denormal;
    let r = sf::convert(d.v, &mut env);
    unbounded_precision(&mut env, mxcsr, |e| {
        sf::convert(d.v, e);
    });
    *flags |= env.flags;
    sf::pack(r, to) as u64
}

/// With overflow or underflow unmasked and raised, no result is delivered
/// and PE reflects rounding to the destination precision with an unbounded
/// exponent: recompute it that way.
pub(super) fn unbounded_precision(env: &mut Env, mxcsr: u32, rerun: impl FnOnce(&mut Env)) {
    let masks = mxcsr >> 7;
    if env.flags & !masks & (sf::OE | sf::UE) == 0 {
        return;
    }
    let mut wide = mx_env(mxcsr, env.fmt);
    wide.denormal_input = env.denormal_input;
    wide.ftz = false;
    wide.fmt.emin = -(1 << 20);
    wide.fmt.emax = 1 << 20;
    rerun(&mut wide);
    env.flags = (env.flags & !PE) | (wide.flags & PE);
}

/// Float-to-integer conversion (`bits` 32 or 64); `truncate` for CVTT*.
pub(super) fn cvt_int(
    a: u64,
    from: Format,
    bits: u32,
    truncate: bool,
    mxcsr: u32,
    flags: &mut u32,
) -> u64 {
    let d = decode(a, from, mxcsr);
    let mut env = mx_env(mxcsr, from);
    let rc = if truncate { Round::Zero } else { env.rc };
    match sf::to_int(d.v, bits, rc, &mut env) {
        Some(v) => {
            *flags |= env.flags;
            (v as u64)
                & if bits == 32 {
                    u64::from(u32::MAX)
                } else {
                    u64::MAX
                }
        }
        None => {
            *flags |= IE;
            1u64 << (bits - 1)
        }
    }
}

/// Integer-to-float conversion.
pub(super) fn cvt_from_int(v: i64, to: Format, mxcsr: u32, flags: &mut u32) -> u64 {
    let mut env = mx_env(mxcsr, to);
    let r = sf::round_value(Fp::from_i128(i128::from(v)), &mut env);
    *flags |= env.flags & PE;
    sf::pack(r, to) as u64
}

/// The lane-wise SSE/SSE2 arithmetic instructions: operation, lane
/// format and whether only the low lane is computed. `imm` is the
/// instruction's immediate (the CMPxx predicate).
pub(super) fn arith_op(m: Mnemonic, imm: u8) -> Option<(FOp, Format, bool)> {
    use Mnemonic as M;
    Some(match m {
        M::Addps => (FOp::Add, F32, false),
        M::Addss => (FOp::Add, F32, true),
        M::Addpd => (FOp::Add, F64, false),
        M::Addsd => (FOp::Add, F64, true),
        M::Subps => (FOp::Sub, F32, false),
        M::Subss => (FOp::Sub, F32, true),
        M::Subpd => (FOp::Sub, F64, false),
        M::Subsd => (FOp::Sub, F64, true),
        M::Mulps => (FOp::Mul, F32, false),
        M::Mulss => (FOp::Mul, F32, true),
        M::Mulpd => (FOp::Mul, F64, false),
        M::Mulsd => (FOp::Mul, F64, true),
        M::Divps => (FOp::Div, F32, false),
        M::Divss => (FOp::Div, F32, true),
        M::Divpd => (FOp::Div, F64, false),
        M::Divsd => (FOp::Div, F64, true),
        M::Minps => (FOp::Min, F32, false),
        M::Minss => (FOp::Min, F32, true),
        M::Minpd => (FOp::Min, F64, false),
        M::Minsd => (FOp::Min, F64, true),
        M::Maxps => (FOp::Max, F32, false),
        M::Maxss => (FOp::Max, F32, true),
        M::Maxpd => (FOp::Max, F64, false),
        M::Maxsd => (FOp::Max, F64, true),
        M::Sqrtps => (FOp::Sqrt, F32, false),
        M::Sqrtss => (FOp::Sqrt, F32, true),
        M::Sqrtpd => (FOp::Sqrt, F64, false),
        M::Sqrtsd => (FOp::Sqrt, F64, true),
        M::Cmpps => (FOp::Cmp(imm & 7), F32, false),
        M::Cmpss => (FOp::Cmp(imm & 7), F32, true),
        M::Cmppd => (FOp::Cmp(imm & 7), F64, false),
        M::Cmpsd => (FOp::Cmp(imm & 7), F64, true),
        _ => return None,
    })
}

/// Apply `op` lane by lane to `a` and `b` (only the low lane if
/// `scalar`; the other lanes come from `a`): on the host's SSE unit where
/// it gives the guest's answer (`host_sse`), else in software.
pub(super) fn arith_lanes(
    spec: (FOp, Format, bool),
    a: u128,
    b: u128,
    mxcsr: u32,
    flags: &mut u32,
) -> u128 {
    if let Some((r, f)) = super::host_sse::arith(spec, a, b, mxcsr) {
        *flags |= f;
        return r;
    }
    arith_lanes_soft(spec, a, b, mxcsr, flags)
}

/// [`arith_lanes`] in the software core, lane by lane.
pub(super) fn arith_lanes_soft(
    (op, fmt, scalar): (FOp, Format, bool),
    a: u128,
    b: u128,
    mxcsr: u32,
    flags: &mut u32,
) -> u128 {
    let n = if scalar {
        1
    } else if fmt == F32 {
        4
    } else {
        2
    };
    let mut r = a;
    for i in 0..n {
        let v = lane(
            op,
            lane_get(a, i, fmt),
            lane_get(b, i, fmt),
            fmt,
            mxcsr,
            flags,
        );
        r = lane_put(r, i, fmt, v);
    }
    r
}

/// Lane `i` of format `fmt` in `v`.
pub(super) fn lane_get(v: u128, i: usize, fmt: Format) -> u64 {
    if fmt == F32 {
        u64::from((v >> (32 * i)) as u32)
    } else {
        (v >> (64 * i)) as u64
    }
}

/// `v` with lane `i` of format `fmt` replaced by `x`.
pub(super) fn lane_put(v: u128, i: usize, fmt: Format, x: u64) -> u128 {
    if fmt == F32 {
        (v & !(u128::from(u32::MAX) << (32 * i))) | (u128::from(x as u32) << (32 * i))
    } else {
        (v & !(u128::from(u64::MAX) << (64 * i))) | (u128::from(x) << (64 * i))
    }
}

impl FpuState {
    /// Merge `flags` into MXCSR; an unmasked one raises #XM or #UD.
    pub(super) fn sse_flags(&mut self, flags: u32, ctx: &dyn FpuContext) -> Result<(), FpuError> {
        let masks = self.mxcsr >> 7;
        let pre = flags & (IE | DE | sf::ZE);
        // An unmasked pre-computation exception (any lane) stops the
        // post-computation checks (SDM vol. 1, 11.5.2).
        let flags = if pre & !masks != 0 { pre } else { flags & 0x3f };
        self.commit_sse_flags(flags, ctx)
    }

    /// Merge `flags`, already filtered as the instruction's steps report
    /// them, into MXCSR; an unmasked one raises #XM or #UD.
    pub(super) fn commit_sse_flags(
        &mut self,
        flags: u32,
        ctx: &dyn FpuContext,
    ) -> Result<(), FpuError> {
        let masks = self.mxcsr >> 7;
        self.mxcsr |= flags;
        if flags & !masks & 0x3f != 0 {
            let vector = if ctx.cr4() & CR4_OSXMMEXCPT != 0 {
                19
            } else {
                6
            };
            return Err(FpuError::Exception {
                vector,
                error_code: None,
            });
        }
        Ok(())
    }

    /// Execute an SSE/SSE2 floating-point instruction; `Ok(false)` if `m`
    /// is not one.
    pub(super) fn execute_sse_float(
        &mut self,
        instr: &Instruction,
        ctx: &mut dyn FpuContext,
        src: u128,
    ) -> Result<bool, FpuError> {
        use Mnemonic as M;
        let m = instr.mnemonic();
        let mx = self.mxcsr;
        let dst_reg = instr.op_register(0);
        let dx = super::xmm_index(dst_reg);
        let a = dx.map(|x| self.xmm(x)).unwrap_or(0);
        let mut flags = 0u32;
        if let Some(spec) = arith_op(m, instr.immediate8()) {
            let x = dx.ok_or(FpuError::NotFpu)?;
            let r = arith_lanes(spec, a, src, mx, &mut flags);
            self.sse_flags(flags, ctx)?;
            self.set_xmm(x, r);
            return Ok(true);
        }
        match m {
            M::Comiss | M::Ucomiss | M::Comisd | M::Ucomisd => {
                let fmt = if matches!(m, M::Comiss | M::Ucomiss) {
                    F32
                } else {
                    F64
                };
                let signaling = matches!(m, M::Comiss | M::Comisd);
                let v = comi(
                    lane_get(a, 0, fmt),
                    lane_get(src, 0, fmt),
                    fmt,
                    mx,
                    signaling,
                    &mut flags,
                );
                self.sse_flags(flags, ctx)?;
                ctx.set_flags(v, 0x8d5);
            }
            M::Cvtss2sd | M::Cvtsd2ss | M::Cvtps2pd | M::Cvtpd2ps => {
                let x = dx.ok_or(FpuError::NotFpu)?;
                let (from, to, n) = match m {
                    M::Cvtss2sd => (F32, F64, 1),
                    M::Cvtsd2ss => (F64, F32, 1),
                    M::Cvtps2pd => (F32, F64, 2),
                    _ => (F64, F32, 2),
                };
                let mut r = match m {
                    M::Cvtss2sd | M::Cvtsd2ss => a,
                    _ => 0,
                };
                for i in 0..n {
                    let v = cvt_float(lane_get(src, i, from), from, to, mx, &mut flags);
                    r = lane_put(r, i, to, v);
                }
                self.sse_flags(flags, ctx)?;
                self.set_xmm(x, r);
            }
            M::Cvtdq2ps | M::Cvtdq2pd => {
                let x = dx.ok_or(FpuError::NotFpu)?;
                let (to, n) = if m == M::Cvtdq2ps { (F32, 4) } else { (F64, 2) };
                let mut r = 0;
                for i in 0..n {
                    let v = i64::from((src >> (32 * i)) as u32 as i32);
                    r = lane_put(r, i, to, cvt_from_int(v, to, mx, &mut flags));
                }
                self.sse_flags(flags, ctx)?;
                self.set_xmm(x, r);
            }
            M::Cvtps2dq | M::Cvttps2dq | M::Cvtpd2dq | M::Cvttpd2dq => {
                let x = dx.ok_or(FpuError::NotFpu)?;
                let (from, n) = if matches!(m, M::Cvtps2dq | M::Cvttps2dq) {
                    (F32, 4)
                } else {
                    (F64, 2)
                };
                let trunc = matches!(m, M::Cvttps2dq | M::Cvttpd2dq);
                let mut r = 0u128;
                for i in 0..n {
                    let v = cvt_int(lane_get(src, i, from), from, 32, trunc, mx, &mut flags);
                    r |= u128::from(v as u32) << (32 * i);
                }
                self.sse_flags(flags, ctx)?;
                self.set_xmm(x, r);
            }
            M::Cvtpi2ps | M::Cvtpi2pd => {
                let x = dx.ok_or(FpuError::NotFpu)?;
                let (to, mut r) = if m == M::Cvtpi2ps {
                    (F32, a & (u128::MAX << 64))
                } else {
                    (F64, 0)
                };
                for i in 0..2 {
                    let v = i64::from((src >> (32 * i)) as u32 as i32);
                    r = lane_put(r, i, to, cvt_from_int(v, to, mx, &mut flags));
                }
                self.sse_flags(flags, ctx)?;
                self.set_xmm(x, r);
            }
            M::Cvtps2pi | M::Cvttps2pi | M::Cvtpd2pi | M::Cvttpd2pi => {
                if !dst_reg.is_mm() {
                    return Err(FpuError::NotFpu);
                }
                let from = if matches!(m, M::Cvtps2pi | M::Cvttps2pi) {
                    F32
                } else {
                    F64
                };
                let trunc = matches!(m, M::Cvttps2pi | M::Cvttpd2pi);
                let mut r = 0u64;
                for i in 0..2 {
                    let v = cvt_int(lane_get(src, i, from), from, 32, trunc, mx, &mut flags);
                    r |= (v & 0xffff_ffff) << (32 * i);
                }
                self.sse_flags(flags, ctx)?;
                let n = (dst_reg as usize - iced_x86::Register::MM0 as usize) & 7;
                self.regs[n] = super::state::F80 { se: 0xffff, sig: r };
            }
            M::Cvtsi2ss | M::Cvtsi2sd => {
                let x = dx.ok_or(FpuError::NotFpu)?;
                let to = if m == M::Cvtsi2ss { F32 } else { F64 };
                let wide = match instr.op_kind(1) {
                    OpKind::Register => instr.op_register(1).size() == 8,
                    _ => instr.memory_size().size() == 8,
                };
                let v = if wide {
                    src as u64 as i64
                } else {
                    i64::from(src as u32 as i32)
                };
                let r = lane_put(a, 0, to, cvt_from_int(v, to, mx, &mut flags));
                self.sse_flags(flags, ctx)?;
                self.set_xmm(x, r);
            }
            M::Cvtss2si | M::Cvttss2si | M::Cvtsd2si | M::Cvttsd2si => {
                let from = if matches!(m, M::Cvtss2si | M::Cvttss2si) {
                    F32
                } else {
                    F64
                };
                let bits = if dst_reg.size() == 8 { 64 } else { 32 };
                let trunc = matches!(m, M::Cvttss2si | M::Cvttsd2si);
                let v = cvt_int(lane_get(src, 0, from), from, bits, trunc, mx, &mut flags);
                self.sse_flags(flags, ctx)?;
                ctx.write_gpr(dst_reg, v);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}
