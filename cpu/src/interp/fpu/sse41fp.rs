//! SSE4.1 floating-point semantics on plain 128-bit values: ROUNDPS/PD/SS/
//! SD (immediate or MXCSR rounding, precision-exception suppression) and
//! the dot products DPPS/DPPD, which round after every multiply and every
//! add as the hardware does.

use super::softfloat::{self as sf, Format, Round, DE, F32, IE, PE, ZE};
use super::sse::{decode, lane, lane_get, lane_put, mx_env, FOp};

/// MXCSR underflow mask.
const UM: u32 = 1 << 11;

/// ROUND* of one lane: `imm[2]` set uses MXCSR.RC, else `imm[1:0]`;
/// `imm[3]` suppresses the precision exception. Only SNaN inputs raise IE;
/// denormal inputs raise nothing (DAZ still applies).
pub(super) fn round_lane(bits: u64, fmt: Format, imm: u8, mxcsr: u32, flags: &mut u32) -> u64 {
    let d = decode(bits, fmt, mxcsr);
    let mut env = mx_env(mxcsr, fmt);
    if imm & 4 == 0 {
        env.rc = Round::from_bits(u32::from(imm & 3));
    }
    let r = sf::round_to_integral(d.v, &mut env);
    let mut f = env.flags & (IE | PE);
    if imm & 8 != 0 {
        f &= !PE;
    }
    *flags |= f;
    sf::pack(r, fmt) as u64
}

/// ROUNDPS/ROUNDPD on every lane (`n` lanes) of `b`, or ROUNDSS/ROUNDSD
/// into lane 0 of `a` (`scalar`).
pub(super) fn round(
    a: u128,
    b: u128,
    fmt: Format,
    scalar: bool,
    imm: u8,
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
    let base = if scalar { a } else { 0 };
    (0..n).fold(base, |r, i| {
        let v = round_lane(lane_get(b, i, fmt), fmt, imm, mxcsr, flags);
        lane_put(r, i, fmt, v)
    })
}

/// The flags one step (all multiplies, or all adds) reports: like one SSE
/// operation, an unmasked pre-computation exception suppresses the
/// post-computation flags.
pub(super) fn step_flags(f: u32, mxcsr: u32) -> u32 {
    if f & (IE | DE | ZE) & !(mxcsr >> 7) != 0 {
        f & (IE | DE | ZE)
    } else {
        f
    }
}

/// DPPS (`fmt` F32, 4 lanes) and DPPD (F64, 2 lanes): the products selected
/// by `imm[7:4]` (unselected ones are +0.0 and raise nothing) summed
/// pairwise, the sum written to the lanes selected by `imm[3:0]`, +0.0
/// elsewhere.
///
/// The sums are formed per lane as a butterfly, which decides which NaN
/// reaches which lane when several are present (as the host does): lane
/// `i` adds `t[i^1] + t[i]` (DPPD: `t[i] + t[i^1]`), then (DPPS)
/// `s[i] + s[i^2]`. The multiplies
/// and the adds report exceptions as separate steps: an unmasked exception
/// of a multiply ends the instruction before the adds; with underflow
/// unmasked a tiny intermediate is kept with an unbounded exponent, so the
/// adds raise no denormal-operand exception. `flags` receives the flags as
/// the steps commit them (for [`FpuState::commit_sse_flags`]).
pub(super) fn dot(a: u128, b: u128, fmt: Format, imm: u8, mxcsr: u32, flags: &mut u32) -> u128 {
    let mut mul_flags = 0;
    let t = dot_products(a, b, fmt, imm, mxcsr, &mut mul_flags);
    let mul_flags = step_flags(mul_flags, mxcsr);
    *flags |= mul_flags;
    if mul_flags & !(mxcsr >> 7) & 0x3f != 0 {
        // An unmasked exception of the multiplies: the adds never run.
        return a;
    }
    let mut add_flags = 0;
    let r = dot_sums(t, fmt, imm, mxcsr, &mut add_flags);
    *flags |= step_flags(add_flags, mxcsr);
    r
}

/// The multiply step of [`dot`]: the selected products, their raw flags
/// added to `flags` (to be filtered by [`step_flags`]).
pub(super) fn dot_products(
    a: u128,
    b: u128,
    fmt: Format,
    imm: u8,
    mxcsr: u32,
    flags: &mut u32,
) -> [u64; 4] {
    let n = if fmt == F32 { 4 } else { 2 };
    let mut t = [0u64; 4];
    for (i, slot) in t.iter_mut().enumerate().take(n) {
        if imm >> (4 + i) & 1 != 0 {
            let (x, y) = (lane_get(a, i, fmt), lane_get(b, i, fmt));
            *slot = lane(FOp::Mul, x, y, fmt, mxcsr, flags);
        }
    }
    t
}

/// The add step of [`dot`] on the products `t`: the result lanes, the raw
/// flags of the adds added to `flags` (to be filtered by [`step_flags`]).
pub(super) fn dot_sums(t: [u64; 4], fmt: Format, imm: u8, mxcsr: u32, flags: &mut u32) -> u128 {
    let n = if fmt == F32 { 4 } else { 2 };
    // Every lane's sums raise the same flags (the adds commute and the
    // products are never signaling), so only the written lanes are
    // computed, or lane 0 for the flags alone.
    let wanted = match imm & ((1 << n) - 1) {
        0 => 1,
        w => w,
    };
    let mut add_flags = 0;
    let mut add = |x: u64, y: u64| lane(FOp::Add, x, y, fmt, mxcsr, &mut add_flags);
    let mut s = [0u64; 4];
    let mut sum = [0u64; 4];
    if n == 2 {
        for i in (0..2).filter(|&i| wanted >> i & 1 != 0) {
            sum[i] = add(t[i], t[i ^ 1]);
        }
    } else {
        let firsts = (wanted | wanted << 2 | wanted >> 2) & 0xf;
        for j in (0..4).filter(|&j| firsts >> j & 1 != 0) {
            s[j] = add(t[j ^ 1], t[j]);
        }
        for i in (0..4).filter(|&i| wanted >> i & 1 != 0) {
            sum[i] = add(s[i], s[i ^ 2]);
        }
    }
    if mxcsr & UM == 0 {
        add_flags &= !DE;
    }
    *flags |= add_flags;
    (0..n).fold(0, |r, i| {
        if imm >> i & 1 != 0 {
            lane_put(r, i, fmt, sum[i])
        } else {
            r
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::fpu::softfloat::F64;

    const MX: u32 = 0x1f80;

    #[test]
    fn rounding_modes_by_immediate() {
        let mut f = 0;
        let x = (-2.5f64).to_bits();
        let r = |imm| round_lane(x, F64, imm, MX, &mut 0);
        assert_eq!(r(0), (-2.0f64).to_bits());
        assert_eq!(r(1), (-3.0f64).to_bits());
        assert_eq!(r(2), (-2.0f64).to_bits());
        assert_eq!(r(3), (-2.0f64).to_bits());
        assert_eq!(
            round_lane((-0.25f32).to_bits().into(), F32, 0, MX, &mut f),
            0x8000_0000
        );
        assert_eq!(f, PE);
        let mut g = 0;
        round_lane(1.5f32.to_bits().into(), F32, 8, MX, &mut g);
        assert_eq!(g, 0);
    }

    #[test]
    fn dot_product_selects_lanes() {
        let ps =
            |v: [f32; 4]| (0..4).fold(0u128, |r, i| r | u128::from(v[i].to_bits()) << (32 * i));
        let a = ps([1.0, 2.0, 3.0, 4.0]);
        let b = ps([5.0, 6.0, 7.0, 8.0]);
        let mut f = 0;
        assert_eq!(dot(a, b, F32, 0xf1, MX, &mut f), ps([70.0, 0.0, 0.0, 0.0]));
        assert_eq!(dot(a, b, F32, 0x3c, MX, &mut f), ps([0.0, 0.0, 17.0, 17.0]));
        assert_eq!(f, 0);
    }
}
