//! SSE4.2 packed string compares (PCMPESTRI, PCMPESTRM, PCMPISTRI,
//! PCMPISTRM) on plain 128-bit values: element format, aggregation,
//! polarity and output selection as the SDM (vol. 2, 4.1) defines them.
//!
//! `imm[1:0]`: unsigned bytes, unsigned words, signed bytes, signed words;
//! `imm[3:2]`: equal any, ranges, equal each, equal ordered; `imm[5:4]`:
//! positive, negative, positive, masked negative; `imm[6]`: most
//! significant index / expanded mask.

use super::simd::{elem, sx};

/// Number of elements (16 bytes or 8 words) for `imm`.
pub(super) fn elements(imm: u8) -> usize {
    if imm & 1 != 0 {
        8
    } else {
        16
    }
}

fn value(v: u128, i: usize, imm: u8) -> i64 {
    let size = if imm & 1 != 0 { 2 } else { 1 };
    let x = elem(v, i, size);
    if imm & 2 != 0 {
        sx(x, size * 8)
    } else {
        x as i64
    }
}

/// Explicit length (PCMPESTR*): the absolute value of EAX/EDX (RAX/RDX with
/// REX.W), saturated to the element count.
pub(super) fn explicit_len(reg: i64, imm: u8) -> usize {
    let n = elements(imm);
    usize::try_from(reg.unsigned_abs()).map_or(n, |v| v.min(n))
}

/// Implicit length (PCMPISTR*): index of the first zero element, or the
/// element count.
pub(super) fn implicit_len(v: u128, imm: u8) -> usize {
    let n = elements(imm);
    (0..n).find(|&i| value(v, i, imm) == 0).unwrap_or(n)
}

/// What a string compare produces before output selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Compare {
    /// IntRes2: one bit per element, after polarity.
    pub res: u16,
    /// RFLAGS value: CF (res non-zero), ZF (`b` shorter than the element
    /// count), SF (`a` shorter), OF (res bit 0); AF and PF clear.
    pub rflags: u64,
}

/// Compares `a` (first operand, length `la`) with `b` (second operand,
/// length `lb`) as `imm` says.
pub(super) fn compare(a: u128, b: u128, la: usize, lb: usize, imm: u8) -> Compare {
    let n = elements(imm);
    let (va, vb) = (|i: usize| i < la, |j: usize| j < lb);
    let (mut xs, mut ys) = ([0i64; 16], [0i64; 16]);
    for i in 0..n {
        xs[i] = value(a, i, imm);
        ys[i] = value(b, i, imm);
    }
    let x = |i: usize| xs[i];
    let y = |j: usize| ys[j];
    let bit = |j: usize| -> bool {
        match (imm >> 2) & 3 {
            0 => vb(j) && (0..la).any(|i| x(i) == y(j)),
            1 => vb(j) && (0..la / 2).any(|k| x(2 * k) <= y(j) && y(j) <= x(2 * k + 1)),
            2 => match (va(j), vb(j)) {
                (true, true) => x(j) == y(j),
                (false, false) => true,
                _ => false,
            },
            _ => (0..n - j).all(|i| !va(i) || (vb(j + i) && x(i) == y(j + i))),
        }
    };
    let all = if n == 16 { 0xffff } else { 0xff };
    let res1 = (0..n).fold(0u16, |r, j| r | u16::from(bit(j)) << j);
    let res = match (imm >> 4) & 3 {
        1 => !res1 & all,
        3 => {
            let valid_b = if lb >= 16 { 0xffff } else { (1u16 << lb) - 1 };
            (res1 ^ valid_b) & all
        }
        _ => res1,
    };
    let mut rflags = 0;
    if res != 0 {
        rflags |= 1;
    }
    if lb < n {
        rflags |= 0x40;
    }
    if la < n {
        rflags |= 0x80;
    }
    if res & 1 != 0 {
        rflags |= 0x800;
    }
    Compare { res, rflags }
}

/// PCMPxSTRI's ECX: least (or, with `imm[6]`, most) significant set bit of
/// the result, or the element count if none.
pub(super) fn index(res: u16, imm: u8) -> u32 {
    if res == 0 {
        elements(imm) as u32
    } else if imm & 0x40 != 0 {
        15 - res.leading_zeros()
    } else {
        res.trailing_zeros()
    }
}

/// PCMPxSTRM's XMM0: the result bits zero-extended, or (with `imm[6]`) each
/// bit expanded to a whole element.
pub(super) fn mask(res: u16, imm: u8) -> u128 {
    if imm & 0x40 == 0 {
        return u128::from(res);
    }
    let size = if imm & 1 != 0 { 2 } else { 1 };
    (0..elements(imm)).fold(0u128, |r, i| {
        if res >> i & 1 != 0 {
            r | ((1u128 << (size * 8)) - 1) << (i * size * 8)
        } else {
            r
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &[u8]) -> u128 {
        text.iter()
            .enumerate()
            .fold(0, |r, (i, &c)| r | u128::from(c) << (8 * i))
    }

    #[test]
    fn equal_ordered_finds_substring() {
        let hay = s(b"hello world");
        let needle = s(b"wor");
        let c = compare(needle, hay, 3, 11, 0x0c);
        assert_eq!(index(c.res, 0x0c), 6);
        assert_eq!(c.rflags & 0xc1, 0xc1);
    }

    #[test]
    fn ranges_and_equal_any() {
        let set = s(b"az");
        let text = s(b"Hi9");
        let c = compare(set, text, 2, 3, 0x04);
        assert_eq!(c.res, 0b010);
        let c = compare(s(b"9"), text, 1, 3, 0x00);
        assert_eq!(c.res, 0b100);
        assert_eq!(mask(0b101, 0x41), 0xffff_0000_ffff);
        assert_eq!(explicit_len(i64::MIN, 0), 16);
        assert_eq!(implicit_len(s(b"ab"), 0), 2);
    }
}
