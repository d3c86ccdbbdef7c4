//! PCLMULQDQ semantics: carry-less multiplication of two quadwords.

/// The 128-bit carry-less product of `a` and `b`.
pub(super) fn clmul64(a: u64, b: u64) -> u128 {
    (0..64).fold(0u128, |r, i| {
        if b >> i & 1 != 0 {
            r ^ u128::from(a) << i
        } else {
            r
        }
    })
}

/// PCLMULQDQ: quadword `imm[0]` of `a` times quadword `imm[4]` of `b`.
pub(super) fn pclmulqdq(a: u128, b: u128, imm: u8) -> u128 {
    let x = (a >> (64 * u32::from(imm & 1))) as u64;
    let y = (b >> (64 * u32::from(imm >> 4 & 1))) as u64;
    clmul64(x, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carry_less_products() {
        assert_eq!(clmul64(0b11, 0b11), 0b101);
        assert_eq!(clmul64(u64::MAX, 1 << 63), u128::from(u64::MAX) << 63);
        assert_eq!(pclmulqdq(3 << 64, 5, 0x01), 15);
        assert_eq!(pclmulqdq(3, 5 << 64, 0x10), 15);
    }
}
