//! Arithmetic and logic with x86 flag semantics, for every operand size.

use super::state::flags::*;

/// Mask of an operand of `bits` bits.
#[inline]
pub fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// `v`'s low `bits` bits, sign-extended to 64 bits.
#[inline]
pub fn sign_extend(v: u64, bits: u32) -> u64 {
    let sh = 64 - bits;
    ((v << sh) as i64 >> sh) as u64
}

#[inline]
fn sign(v: u64, bits: u32) -> bool {
    v >> (bits - 1) & 1 != 0
}

#[inline]
fn parity(v: u64) -> bool {
    (v as u8).count_ones() % 2 == 0
}

/// ZF, SF and PF of a result.
#[inline]
pub fn szp(r: u64, bits: u32) -> u64 {
    let r = r & mask(bits);
    let mut f = 0;
    if r == 0 {
        f |= ZF;
    }
    if sign(r, bits) {
        f |= SF;
    }
    if parity(r) {
        f |= PF;
    }
    f
}

/// `a + b + carry`: result and flags.
#[inline]
pub fn add(a: u64, b: u64, carry: bool, bits: u32) -> (u64, u64) {
    let m = mask(bits);
    let (a, b) = (a & m, b & m);
    let wide = u128::from(a) + u128::from(b) + u128::from(carry);
    let r = (wide as u64) & m;
    let mut f = szp(r, bits);
    if wide > u128::from(m) {
        f |= CF;
    }
    if (a ^ b ^ r) & 0x10 != 0 {
        f |= AF;
    }
    if sign(!(a ^ b) & (a ^ r), bits) {
        f |= OF;
    }
    (r, f)
}

/// `a - b - borrow`: result and flags.
#[inline]
pub fn sub(a: u64, b: u64, borrow: bool, bits: u32) -> (u64, u64) {
    let m = mask(bits);
    let (a, b) = (a & m, b & m);
    let r = a.wrapping_sub(b).wrapping_sub(u64::from(borrow)) & m;
    let mut f = szp(r, bits);
    if u128::from(a) < u128::from(b) + u128::from(borrow) {
        f |= CF;
    }
    if (a ^ b ^ r) & 0x10 != 0 {
        f |= AF;
    }
    if sign((a ^ b) & (a ^ r), bits) {
        f |= OF;
    }
    (r, f)
}

/// AND/OR/XOR flags: CF = OF = 0, AF undefined (cleared).
#[inline]
pub fn logic(r: u64, bits: u32) -> u64 {
    szp(r, bits)
}

/// Shifts and rotates: (result, flags, which flags were written).
/// `count` is already masked to 5 or 6 bits; a zero count changes nothing.
#[inline]
pub fn shift(op: u8, a: u64, count: u32, bits: u32, old: u64) -> (u64, u64) {
    let m = mask(bits);
    let a = a & m;
    if count == 0 {
        return (a, old);
    }
    let cf_in = old & CF != 0;
    let mut f = old & !(CF | OF);
    let r;
    match op {
        // ROL
        0 => {
            let c = count % bits;
            r = if c == 0 {
                a
            } else {
                ((a << c) | (a >> (bits - c))) & m
            };
            if r & 1 != 0 {
                f |= CF;
            }
            if sign(r, bits) ^ (r & 1 != 0) {
                f |= OF;
            }
            return (r, f);
        }
        // ROR
        1 => {
            let c = count % bits;
            r = if c == 0 {
                a
            } else {
                ((a >> c) | (a << (bits - c))) & m
            };
            if sign(r, bits) {
                f |= CF;
            }
            if sign(r, bits) ^ sign(r << 1, bits) {
                f |= OF;
            }
            return (r, f);
        }
        // RCL
        2 => {
            let c = count % (bits + 1);
            let mut v = u128::from(a) | (u128::from(cf_in) << bits);
            let w = bits + 1;
            if c != 0 {
                v = ((v << c) | (v >> (w - c))) & ((1u128 << w) - 1);
            }
            r = (v as u64) & m;
            let cf = (v >> bits) & 1 != 0;
            if cf {
                f |= CF;
            }
            if sign(r, bits) ^ cf {
                f |= OF;
            }
            return (r, f);
        }
        // RCR
        3 => {
            let c = count % (bits + 1);
            let mut v = u128::from(a) | (u128::from(cf_in) << bits);
            let w = bits + 1;
            if c != 0 {
                v = ((v >> c) | (v << (w - c))) & ((1u128 << w) - 1);
            }
            r = (v as u64) & m;
            if (v >> bits) & 1 != 0 {
                f |= CF;
            }
            if sign(r, bits) ^ sign(r << 1, bits) {
                f |= OF;
            }
            return (r, f);
        }
        // SHL/SAL
        4 | 6 => {
            r = if count >= bits { 0 } else { (a << count) & m };
            let cf = count <= bits && (a >> (bits - count)) & 1 != 0;
            f = (f & !(ZF | SF | PF | AF)) | szp(r, bits);
            if cf {
                f |= CF;
            }
            if sign(r, bits) ^ cf {
                f |= OF;
            }
        }
        // SHR
        5 => {
            r = if count >= bits { 0 } else { a >> count };
            let cf = count <= bits && (a >> (count - 1)) & 1 != 0;
            f = (f & !(ZF | SF | PF | AF)) | szp(r, bits);
            if cf {
                f |= CF;
            }
            if sign(a, bits) {
                f |= OF;
            }
        }
        // SAR
        _ => {
            let sa = ((a << (64 - bits)) as i64) >> (64 - bits);
            let c = count.min(bits - 1);
            r = ((sa >> c) as u64) & m;
            let cf = ((sa >> (count.min(bits) - 1)) & 1) != 0;
            f = (f & !(ZF | SF | PF | AF)) | szp(r, bits);
            if cf {
                f |= CF;
            }
        }
    }
    (r, f)
}

/// One-operand MUL/IMUL of `a` by `b` (`bits` wide): the low and high
/// halves of the double-width product, and the flags (CF = OF = the high
/// half is significant; ZF, SF, PF of the low half, AF clear).
pub fn mul_wide(a: u64, b: u64, bits: u32, signed: bool) -> (u64, u64, u64) {
    let m = mask(bits);
    let (p, over) = if signed {
        let p = i128::from(sign_extend(a, bits) as i64) * i128::from(sign_extend(b, bits) as i64);
        let fits = i128::from(sign_extend(p as u64 & m, bits) as i64) == p;
        (p as u128, !fits)
    } else {
        let p = u128::from(a & m) * u128::from(b & m);
        (p, p >> bits != 0)
    };
    let f = if over { CF | OF } else { 0 } | szp(p as u64, bits);
    (p as u64 & m, (p >> bits) as u64 & m, f)
}

/// IMUL with a truncated result (`IMUL r, r/m` and `IMUL r, r/m, imm`):
/// the result and the flags (CF = OF = the product did not fit).
pub fn imul_trunc(a: u64, b: u64, bits: u32) -> (u64, u64) {
    let p = i128::from(sign_extend(a, bits) as i64) * i128::from(sign_extend(b, bits) as i64);
    let r = p as u64 & mask(bits);
    let fits = i128::from(sign_extend(r, bits) as i64) == p;
    (r, if fits { 0 } else { CF | OF } | szp(r, bits))
}

/// DIV/IDIV of the double-width `dividend` by `d` (`bits` wide): quotient
/// and remainder, or `None` for #DE (division by zero or a quotient that
/// does not fit). The flags are left as they were.
pub fn div_wide(dividend: u128, d: u64, bits: u32, signed: bool) -> Option<(u64, u64)> {
    let m = mask(bits);
    let d = d & m;
    if d == 0 {
        return None;
    }
    if !signed {
        let q = dividend / u128::from(d);
        if q >> bits != 0 {
            return None;
        }
        return Some((q as u64, (dividend % u128::from(d)) as u64));
    }
    let sx = |v: u128, b: u32| -> i128 { ((v << (128 - b)) as i128) >> (128 - b) };
    let n = sx(dividend, bits * 2);
    let dv = sx(u128::from(d), bits);
    let q = n.checked_div(dv)?;
    let lim = 1i128 << (bits - 1);
    if q >= lim || q < -lim {
        return None;
    }
    Some((q as u64 & m, (n % dv) as u64 & m))
}

/// SHLD (`left`) / SHRD of `a` with bits shifted in from `b`, by `count`
/// (already masked, non-zero): the result and all arithmetic flags (CF the
/// last bit out, OF the sign change, AF clear). `None` for a zero count
/// (nothing changes).
pub fn shift_double(left: bool, a: u64, b: u64, count: u32, bits: u32) -> Option<(u64, u64)> {
    if count == 0 {
        return None;
    }
    let (a, b) = (a & mask(bits), b & mask(bits));
    let (r, cf) = if left {
        let v = (u128::from(a) << bits) | u128::from(b);
        let r = ((v << count) >> bits) as u64 & mask(bits);
        (r, (v >> (2 * bits - count)) & 1 != 0)
    } else {
        let v = (u128::from(b) << bits) | u128::from(a);
        (
            (v >> count) as u64 & mask(bits),
            (v >> (count - 1)) & 1 != 0,
        )
    };
    let mut f = szp(r, bits);
    if cf {
        f |= CF;
    }
    if (r ^ a) >> (bits - 1) & 1 != 0 {
        f |= OF;
    }
    Some((r, f))
}

/// BT (`op` 0), BTS (1), BTR (2), BTC (3) of bit `bit` of `v`: the new
/// value and CF (the bit's old value).
pub fn bit_test(v: u64, bit: u32, op: u8) -> (u64, bool) {
    let b = 1u64 << bit;
    let nv = match op {
        1 => v | b,
        2 => v & !b,
        3 => v ^ b,
        _ => v,
    };
    (nv, v & b != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_sub_flags_at_boundaries() {
        let (r, f) = add(0x7f, 1, false, 8);
        assert_eq!(r, 0x80);
        assert_eq!(f & (OF | SF | CF | AF), OF | SF | AF);
        let (r, f) = add(0xff, 1, false, 8);
        assert_eq!(r, 0);
        assert_eq!(f & (CF | ZF), CF | ZF);
        let (r, f) = sub(0, 1, false, 32);
        assert_eq!(r, 0xffff_ffff);
        assert_eq!(f & (CF | SF), CF | SF);
        let (_, f) = sub(0x8000_0000_0000_0000, 1, false, 64);
        assert_ne!(f & OF, 0);
        let (r, f) = add(u64::MAX, 0, true, 64);
        assert_eq!((r, f & CF), (0, CF));
    }

    #[test]
    fn shifts_and_rotates() {
        assert_eq!(shift(4, 0x81, 1, 8, 0), (0x02, CF | OF));
        assert_eq!(shift(5, 0x81, 1, 8, 0).0, 0x40);
        assert_eq!(shift(7, 0x80, 7, 8, 0).0, 0xff);
        assert_eq!(shift(0, 0x81, 1, 8, 0).0, 0x03);
        assert_eq!(shift(1, 0x01, 1, 8, 0).0, 0x80);
        assert_eq!(shift(2, 0x80, 1, 8, 0).0, 0x00);
        assert_eq!(shift(2, 0x80, 1, 8, 0).1 & CF, CF);
        assert_eq!(shift(3, 0x01, 1, 8, CF).0, 0x80);
        assert_eq!(shift(4, 0x55, 0, 8, ZF), (0x55, ZF), "count 0 keeps flags");
    }

    #[test]
    fn multiply_divide_and_double_shifts_at_the_edges() {
        assert_eq!(mul_wide(u64::MAX, u64::MAX, 64, false).0, 1);
        assert_eq!(mul_wide(u64::MAX, u64::MAX, 64, false).1, u64::MAX - 1);
        let (lo, hi, f) = mul_wide(0xff, 0xff, 8, true); // -1 * -1
        assert_eq!((lo, hi, f & (CF | OF)), (1, 0, 0));
        assert_eq!(imul_trunc(0x4000_0000, 2, 32).1 & (CF | OF), CF | OF);
        assert_eq!(imul_trunc(u64::MAX, 5, 64).0, (-5i64) as u64);
        assert_eq!(div_wide(7, 0, 32, false), None, "#DE on zero");
        assert_eq!(div_wide(1 << 32, 1, 32, false), None, "#DE on overflow");
        assert_eq!(
            div_wide(0x8000, 0xff, 8, true),
            None,
            "-32768 / -1 overflows"
        );
        assert_eq!(
            div_wide((-7i128) as u128, 2, 64, true),
            Some(((-3i64) as u64, u64::MAX))
        );
        assert_eq!(
            shift_double(true, 0x8000_0001, 0xc000_0000, 1, 32).map(|r| r.0),
            Some(3)
        );
        assert_eq!(
            shift_double(false, 1, 1, 1, 16).map(|r| (r.0, r.1 & CF)),
            Some((0x8000, CF))
        );
        assert_eq!(shift_double(true, 1, 2, 0, 64), None);
        assert_eq!(bit_test(0b100, 2, 2), (0, true));
        assert_eq!(bit_test(0, 63, 1), (1 << 63, false));
    }
}
