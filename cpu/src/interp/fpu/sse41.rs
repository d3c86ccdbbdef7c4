//! SSE4.1 and SSE4.2 integer and data-movement semantics on plain
//! 128-bit values: blends, inserts and extracts, sign/zero extension,
//! min/max, multiplies, MPSADBW, PHMINPOSUW, PTEST and the 64-bit
//! compares. The float-lane instructions of SSE4.1 (ROUND*, DPPS/DPPD) are
//! in `sse41fp`.

use super::simd::{elem, lanes, mask, sx};

/// BLENDPS/BLENDPD/PBLENDW: element `i` (of `size` bytes) comes from `b`
/// where bit `i` of `sel` is set, else from `a`.
pub(super) fn blend_imm(a: u128, b: u128, size: usize, sel: u8) -> u128 {
    let n = 16 / size;
    (0..n).fold(0u128, |r, i| {
        let from = if sel >> i & 1 != 0 { b } else { a };
        r | u128::from(elem(from, i, size)) << (i * size * 8)
    })
}

/// BLENDVPS/BLENDVPD/PBLENDVB: element `i` comes from `b` where the sign
/// bit of element `i` of `sel` (XMM0) is set, else from `a`.
pub(super) fn blend_var(a: u128, b: u128, size: usize, sel: u128) -> u128 {
    let bits = size * 8;
    (0..16 / size).fold(0u128, |r, i| {
        let from = if elem(sel, i, size) >> (bits - 1) != 0 {
            b
        } else {
            a
        };
        r | u128::from(elem(from, i, size)) << (i * bits)
    })
}

/// PINSRB/PINSRD/PINSRQ: `a` with element `imm` (modulo the count) replaced
/// by the low `size` bytes of `v`.
pub(super) fn insert(a: u128, v: u64, size: usize, imm: u8) -> u128 {
    let i = usize::from(imm) % (16 / size);
    let m = u128::from(mask(size * 8)) << (i * size * 8);
    (a & !m) | (u128::from(v & mask(size * 8)) << (i * size * 8))
}

/// PEXTRB/PEXTRW/PEXTRD/PEXTRQ/EXTRACTPS: element `imm` (modulo the count).
pub(super) fn extract(a: u128, size: usize, imm: u8) -> u64 {
    elem(a, usize::from(imm) % (16 / size), size)
}

/// INSERTPS: `s` (the selected source dword) goes into dword `imm[5:4]` of
/// `a`, then dwords whose bit in `imm[3:0]` is set are zeroed.
pub(super) fn insertps(a: u128, s: u32, imm: u8) -> u128 {
    let r = insert(a, u64::from(s), 4, (imm >> 4) & 3);
    (0..4).fold(r, |r, i| {
        if imm >> i & 1 != 0 {
            r & !(u128::from(u32::MAX) << (32 * i))
        } else {
            r
        }
    })
}

/// PMOVSX*/PMOVZX*: the low elements of `b` (of `from` bytes) extended to
/// `to` bytes each, as many as fit in 16 bytes.
pub(super) fn extend(b: u128, from: usize, to: usize, signed: bool) -> u128 {
    let n = 16 / to;
    (0..n).fold(0u128, |r, i| {
        let x = elem(b, i, from);
        let v = if signed {
            (sx(x, from * 8) as u64) & mask(to * 8)
        } else {
            x
        };
        r | u128::from(v) << (i * to * 8)
    })
}

/// Min/max flavours of [`minmax`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pick {
    /// Signed minimum.
    MinS,
    /// Signed maximum.
    MaxS,
    /// Unsigned minimum.
    MinU,
    /// Unsigned maximum.
    MaxU,
}

/// PMINSB/PMINSD/PMINUW/PMINUD/PMAXSB/PMAXSD/PMAXUW/PMAXUD per lane.
pub(super) fn minmax(a: u128, b: u128, size: usize, pick: Pick) -> u128 {
    let bits = size * 8;
    lanes(a, b, 16, size, |x, y| match pick {
        Pick::MinS => sx(x, bits).min(sx(y, bits)) as u64,
        Pick::MaxS => sx(x, bits).max(sx(y, bits)) as u64,
        Pick::MinU => x.min(y),
        Pick::MaxU => x.max(y),
    })
}

/// PMULLD: low 32 bits of each dword product.
pub(super) fn pmulld(a: u128, b: u128) -> u128 {
    lanes(a, b, 16, 4, |x, y| x.wrapping_mul(y))
}

/// PMULDQ: signed products of the even dwords, as quadwords.
pub(super) fn pmuldq(a: u128, b: u128) -> u128 {
    lanes(a, b, 16, 8, |x, y| {
        (sx(x & 0xffff_ffff, 32).wrapping_mul(sx(y & 0xffff_ffff, 32))) as u64
    })
}

/// PCMPEQQ: all-ones where the quadwords are equal.
pub(super) fn pcmpeqq(a: u128, b: u128) -> u128 {
    lanes(a, b, 16, 8, |x, y| if x == y { u64::MAX } else { 0 })
}

/// PCMPGTQ: all-ones where `a` is greater (signed).
pub(super) fn pcmpgtq(a: u128, b: u128) -> u128 {
    lanes(a, b, 16, 8, |x, y| {
        if (x as i64) > (y as i64) {
            u64::MAX
        } else {
            0
        }
    })
}

/// MPSADBW: eight sums of absolute differences between 4-byte windows of
/// `a` (starting at byte `4*imm[2]` + i) and the dword `imm[1:0]` of `b`.
pub(super) fn mpsadbw(a: u128, b: u128, imm: u8) -> u128 {
    let ao = 4 * usize::from(imm >> 2 & 1);
    let bo = 4 * usize::from(imm & 3);
    (0..8).fold(0u128, |r, i| {
        let s: u64 = (0..4)
            .map(|j| elem(a, ao + i + j, 1).abs_diff(elem(b, bo + j, 1)))
            .sum();
        r | u128::from(s) << (16 * i)
    })
}

/// PHMINPOSUW: the smallest unsigned word of `b` in bits 15:0 and its
/// (lowest) index in bits 18:16; the rest is zero.
pub(super) fn phminposuw(b: u128) -> u128 {
    let (idx, min) = (0..8)
        .map(|i| (i, elem(b, i, 2)))
        .fold(
            (0, u64::MAX),
            |best, (i, v)| if v < best.1 { (i, v) } else { best },
        );
    u128::from(min) | (idx as u128) << 16
}

/// PTEST: RFLAGS value (ZF if `a & b` is zero, CF if `!a & b` is zero; the
/// other arithmetic flags clear).
pub(super) fn ptest(a: u128, b: u128) -> u64 {
    let zf = if a & b == 0 { 0x40 } else { 0 };
    let cf = u64::from(!a & b == 0);
    zf | cf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blends_inserts_and_extends() {
        let a = u128::MAX;
        assert_eq!(
            blend_imm(a, 0, 4, 0b0101),
            0xffff_ffff_0000_0000_ffff_ffff_0000_0000
        );
        assert_eq!(blend_var(0, a, 8, 1u128 << 127), u128::from(u64::MAX) << 64);
        assert_eq!(
            insertps(a, 0x1234, 0x30 | 0b0001),
            0x1234_ffff_ffff_ffff_ffff_0000_0000
        );
        assert_eq!(extend(0x80_7f, 1, 2, true), 0xff80_007f);
        assert_eq!(extend(0x80_7f, 1, 8, false), 0x80_0000_0000_0000_007f);
    }

    #[test]
    fn horizontal_minimum_prefers_lowest_index() {
        let b: u128 = (u128::MAX << 64) | 0x0005_0003_0007_0004;
        assert_eq!(phminposuw(b), 0x2_0003);
        assert_eq!(phminposuw(u128::MAX), 0xffff);
        assert_eq!(
            mpsadbw(0x04_03_02_01, 0x01_01_01_01, 0) & 0xffff_ffff,
            0x0007_0006
        );
    }
}
