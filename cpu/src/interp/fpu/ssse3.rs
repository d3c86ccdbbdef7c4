//! SSSE3 integer semantics on plain values: absolute values, byte shuffle,
//! alignment shift, horizontal add/subtract, multiply-add, rounded high
//! multiply and sign transfer.
//!
//! Every function works on the low `w` bytes of its operands (8 for the
//! MMX forms, 16 for XMM; a VEX form may call the 16-byte version per
//! 128-bit lane) and returns the result zero-extended beyond `w`.

use super::simd::{elem, lanes, mask, sat_s, sx};

/// PABSB/PABSW/PABSD (`size` 1, 2, 4): absolute value of each lane of
/// `b`; the most negative value stays itself.
pub(super) fn pabs(b: u128, w: usize, size: usize) -> u128 {
    let bits = size * 8;
    lanes(b, 0, w, size, |x, _| sx(x, bits).unsigned_abs())
}

/// PSIGNB/PSIGNW/PSIGND: each lane of `a` negated, zeroed or kept as the
/// corresponding lane of `b` is negative, zero or positive.
pub(super) fn psign(a: u128, b: u128, w: usize, size: usize) -> u128 {
    let bits = size * 8;
    lanes(a, b, w, size, |x, y| match sx(y, bits) {
        s if s < 0 => x.wrapping_neg(),
        0 => 0,
        _ => x,
    })
}

/// PSHUFB: byte `i` is `a[b[i] & (w-1)]`, or zero if `b[i]` has bit 7 set.
pub(super) fn pshufb(a: u128, b: u128, w: usize) -> u128 {
    let (x, sel) = (a.to_le_bytes(), b.to_le_bytes());
    let mut out = [0u8; 16];
    for (o, &k) in out.iter_mut().zip(&sel).take(w) {
        if k & 0x80 == 0 {
            *o = x[usize::from(k) & (w - 1)];
        }
    }
    u128::from_le_bytes(out)
}

/// PALIGNR: the `2w`-byte concatenation `a:b` (`a` high) shifted right by
/// `imm` bytes, low `w` bytes kept.
pub(super) fn palignr(a: u128, b: u128, w: usize, imm: u8) -> u128 {
    let n = u32::from(imm) * 8;
    if w == 8 {
        let cat = (a & u128::from(u64::MAX)) << 64 | (b & u128::from(u64::MAX));
        return if n >= 128 {
            0
        } else {
            (cat >> n) & u128::from(u64::MAX)
        };
    }
    match n {
        0 => b,
        1..=127 => (b >> n) | (a << (128 - n)),
        128..=255 => a >> (n - 128),
        _ => 0,
    }
}

/// Which horizontal operation [`horizontal`] applies to each adjacent pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HOp {
    /// Wrapping sum.
    Add,
    /// Signed-saturating sum (words only).
    AddSat,
    /// Wrapping difference (even minus odd).
    Sub,
    /// Signed-saturating difference (words only).
    SubSat,
}

/// PHADDW/PHADDD/PHADDSW/PHSUBW/PHSUBD/PHSUBSW: the pairs of `a` fill the
/// low half of the result, those of `b` the high half.
pub(super) fn horizontal(a: u128, b: u128, w: usize, size: usize, op: HOp) -> u128 {
    let bits = size * 8;
    let n = w / size;
    let pair = |v: u128, k: usize| -> u64 {
        let (x, y) = (
            sx(elem(v, 2 * k, size), bits),
            sx(elem(v, 2 * k + 1, size), bits),
        );
        match op {
            HOp::Add => (x.wrapping_add(y) as u64) & mask(bits),
            HOp::Sub => (x.wrapping_sub(y) as u64) & mask(bits),
            HOp::AddSat => sat_s(x + y, bits),
            HOp::SubSat => sat_s(x - y, bits),
        }
    };
    let half = n / 2;
    (0..n).fold(0u128, |r, i| {
        let v = if i < half {
            pair(a, i)
        } else {
            pair(b, i - half)
        };
        r | u128::from(v) << (i * bits)
    })
}

/// PMADDUBSW: unsigned bytes of `a` times signed bytes of `b`, adjacent
/// products summed with signed word saturation.
pub(super) fn pmaddubsw(a: u128, b: u128, w: usize) -> u128 {
    lanes(a, b, w, 2, |x, y| {
        let p = |k: u32| ((x >> (8 * k)) & 0xff) as i64 * sx((y >> (8 * k)) & 0xff, 8);
        sat_s(p(0) + p(1), 16)
    })
}

/// PMULHRSW: `((a * b >> 14) + 1) >> 1` per signed word.
pub(super) fn pmulhrsw(a: u128, b: u128, w: usize) -> u128 {
    lanes(a, b, w, 2, |x, y| {
        let p = sx(x, 16) * sx(y, 16);
        (((p >> 14) + 1) >> 1) as u64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_and_align() {
        let a: u128 = 0x0f0e_0d0c_0b0a_0908_0706_0504_0302_0100;
        assert_eq!(
            pshufb(a, 0x8000_0000_0000_0000_0000_0000_0000_0f01, 16),
            0x0f01
        );
        assert_eq!(palignr(0x1111, 0x2222, 16, 16), 0x1111);
        assert_eq!(palignr(0x11, 0x2200, 8, 1), 0x1100_0000_0000_0022);
        assert_eq!(palignr(1, 2, 16, 32), 0);
    }

    #[test]
    fn horizontal_and_saturation() {
        let a: u128 = 0x7fff_0001;
        assert_eq!(horizontal(a, 0, 16, 2, HOp::AddSat), 0x7fff);
        assert_eq!(horizontal(a, 0, 16, 2, HOp::Add), 0x8000);
        assert_eq!(pabs(0x80_ff, 8, 1), 0x80_01);
        assert_eq!(psign(0x05_05_05, 0x80_00_01, 16, 1), 0xfb_00_05);
        assert_eq!(pmaddubsw(0xffff, 0x7f7f, 16), 0x7fff);
        assert_eq!(pmulhrsw(0x4000, 0x4000, 16), 0x2000);
    }
}
