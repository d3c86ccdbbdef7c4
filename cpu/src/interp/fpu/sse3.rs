//! SSE3 semantics on plain 128-bit values: alternating add/subtract,
//! horizontal add/subtract (float lanes through `sse::lane`, so MXCSR
//! rounding, DAZ/FTZ and flags are exact) and the duplicating moves.

use super::softfloat::{Format, F32};
use super::sse::{lane, lane_get, lane_put, FOp};

fn count(fmt: Format) -> usize {
    if fmt == F32 {
        4
    } else {
        2
    }
}

/// ADDSUBPS/ADDSUBPD: even lanes `a - b`, odd lanes `a + b`.
pub(super) fn addsub(a: u128, b: u128, fmt: Format, mxcsr: u32, flags: &mut u32) -> u128 {
    (0..count(fmt)).fold(0, |r, i| {
        let op = if i % 2 == 0 { FOp::Sub } else { FOp::Add };
        let v = lane(
            op,
            lane_get(a, i, fmt),
            lane_get(b, i, fmt),
            fmt,
            mxcsr,
            flags,
        );
        lane_put(r, i, fmt, v)
    })
}

/// HADDPS/HADDPD (`sub` false) and HSUBPS/HSUBPD: adjacent pairs of `a`
/// (even op odd) fill the low half, those of `b` the high half.
pub(super) fn horizontal(
    a: u128,
    b: u128,
    fmt: Format,
    sub: bool,
    mxcsr: u32,
    flags: &mut u32,
) -> u128 {
    let n = count(fmt);
    let op = if sub { FOp::Sub } else { FOp::Add };
    (0..n).fold(0, |r, i| {
        let (src, k) = if i < n / 2 { (a, i) } else { (b, i - n / 2) };
        let x = lane_get(src, 2 * k, fmt);
        let y = lane_get(src, 2 * k + 1, fmt);
        lane_put(r, i, fmt, lane(op, x, y, fmt, mxcsr, flags))
    })
}

/// MOVDDUP: the low quadword of `b` in both halves.
pub(super) fn movddup(b: u128) -> u128 {
    let lo = b & u128::from(u64::MAX);
    lo | lo << 64
}

/// MOVSHDUP (`high`) and MOVSLDUP: the odd (even) dwords of `b` duplicated
/// into each pair.
pub(super) fn movdup_dwords(b: u128, high: bool) -> u128 {
    let off = usize::from(high);
    (0..4).fold(0, |r, i| {
        let v = lane_get(b, (i & !1) + off, F32);
        lane_put(r, i, F32, v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::fpu::softfloat::F64;

    const MX: u32 = 0x1f80;

    fn ps(v: [f32; 4]) -> u128 {
        (0..4).fold(0, |r, i| r | u128::from(v[i].to_bits()) << (32 * i))
    }

    #[test]
    fn alternating_and_horizontal() {
        let mut f = 0;
        let a = ps([1.0, 2.0, 3.0, 4.0]);
        let b = ps([0.5, 0.25, 8.0, 16.0]);
        assert_eq!(addsub(a, b, F32, MX, &mut f), ps([0.5, 2.25, -5.0, 20.0]));
        assert_eq!(
            horizontal(a, b, F32, false, MX, &mut f),
            ps([3.0, 7.0, 0.75, 24.0])
        );
        assert_eq!(
            horizontal(a, b, F32, true, MX, &mut f),
            ps([-1.0, -1.0, 0.25, -8.0])
        );
        let pd = |x: f64, y: f64| u128::from(x.to_bits()) | u128::from(y.to_bits()) << 64;
        assert_eq!(
            horizontal(pd(1.0, 2.0), pd(5.0, 0.5), F64, true, MX, &mut f),
            pd(-1.0, 4.5)
        );
        assert_eq!(f, 0);
    }

    #[test]
    fn duplicating_moves() {
        let b: u128 = 0x4444_4444_3333_3333_2222_2222_1111_1111;
        assert_eq!(movddup(b), 0x2222_2222_1111_1111_2222_2222_1111_1111);
        assert_eq!(
            movdup_dwords(b, true),
            0x4444_4444_4444_4444_2222_2222_2222_2222
        );
        assert_eq!(
            movdup_dwords(b, false),
            0x3333_3333_3333_3333_1111_1111_1111_1111
        );
    }
}
