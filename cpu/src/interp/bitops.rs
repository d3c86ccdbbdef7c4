//! The bit-manipulation extensions: POPCNT, LZCNT (ABM), BMI1 (ANDN,
//! BEXTR, BLSI, BLSMSK, BLSR, TZCNT), BMI2 (BZHI, MULX, PDEP, PEXT, RORX,
//! SARX, SHLX, SHRX) and ADX (ADCX, ADOX): pure functions with the Intel
//! SDM's results and flags, and their execution on a [`Cpu`].
//!
//! Flags the SDM leaves undefined are cleared. BMI2 instructions leave
//! RFLAGS alone. When the CPU model hides LZCNT (ABM) or BMI1, LZCNT and
//! TZCNT run as BSR and BSF, which is what their encodings (REP-prefixed
//! BSR/BSF) do on a processor without the feature; the other instructions
//! run whatever the model says (as in QEMU's TCG).

use iced_x86::{Instruction, Mnemonic};

use super::alu::{self, mask};
use super::cpu::Cpu;
use super::exec::Outcome;
use super::mem::Exception;
use super::state::flags::*;

type R<T> = Result<T, Exception>;

/// Whether [`Cpu::exec_bitops`] executes mnemonic `m`.
pub fn owns(m: Mnemonic) -> bool {
    use Mnemonic as M;
    matches!(
        m,
        M::Popcnt
            | M::Lzcnt
            | M::Tzcnt
            | M::Andn
            | M::Bextr
            | M::Blsi
            | M::Blsmsk
            | M::Blsr
            | M::Bzhi
            | M::Mulx
            | M::Pdep
            | M::Pext
            | M::Rorx
            | M::Sarx
            | M::Shlx
            | M::Shrx
            | M::Adcx
            | M::Adox
    )
}

/// A result and the arithmetic flags it sets.
pub type Flagged = (u64, u64);

/// ZF and SF of a result (CF, OF, AF and PF clear).
fn zs(r: u64, bits: u32) -> u64 {
    alu::szp(r, bits) & (ZF | SF)
}

/// POPCNT: the number of set bits; ZF iff the source is 0, all other
/// arithmetic flags clear.
pub fn popcnt(v: u64, bits: u32) -> Flagged {
    let v = v & mask(bits);
    (u64::from(v.count_ones()), if v == 0 { ZF } else { 0 })
}

/// LZCNT: leading zeros within `bits`; CF iff the source is 0 (result =
/// `bits`), ZF iff the result is 0.
pub fn lzcnt(v: u64, bits: u32) -> Flagged {
    let v = v & mask(bits);
    let r = u64::from(v.leading_zeros()) - (64 - u64::from(bits));
    count_flags(r, v)
}

/// TZCNT: trailing zeros within `bits`; flags as [`lzcnt`].
pub fn tzcnt(v: u64, bits: u32) -> Flagged {
    let v = v & mask(bits);
    let r = if v == 0 {
        u64::from(bits)
    } else {
        u64::from(v.trailing_zeros())
    };
    count_flags(r, v)
}

fn count_flags(r: u64, src: u64) -> Flagged {
    let mut f = 0;
    if src == 0 {
        f |= CF;
    }
    if r == 0 {
        f |= ZF;
    }
    (r, f)
}

/// ANDN: `!a & b`; ZF, SF by the result, CF and OF clear.
pub fn andn(a: u64, b: u64, bits: u32) -> Flagged {
    let r = !a & b & mask(bits);
    (r, zs(r, bits))
}

/// BEXTR: `len` bits of `src` from bit `start` (control bits 7:0 and
/// 15:8); ZF by the result, CF and OF clear.
pub fn bextr(src: u64, ctl: u64, bits: u32) -> Flagged {
    let start = (ctl & 0xff) as u32;
    let len = ((ctl >> 8) & 0xff) as u32;
    let src = src & mask(bits);
    let shifted = if start >= bits { 0 } else { src >> start };
    let r = if len >= bits {
        shifted
    } else {
        shifted & mask(len)
    };
    (r, if r == 0 { ZF } else { 0 })
}

/// BLSI: the lowest set bit; ZF, SF by the result, CF iff the source is
/// not 0.
pub fn blsi(v: u64, bits: u32) -> Flagged {
    let v = v & mask(bits);
    let r = v & v.wrapping_neg() & mask(bits);
    (r, zs(r, bits) | if v != 0 { CF } else { 0 })
}

/// BLSMSK: the mask up to and including the lowest set bit; SF by the
/// result, CF iff the source is 0, ZF clear.
pub fn blsmsk(v: u64, bits: u32) -> Flagged {
    let v = v & mask(bits);
    let r = (v ^ v.wrapping_sub(1)) & mask(bits);
    (r, (zs(r, bits) & SF) | if v == 0 { CF } else { 0 })
}

/// BLSR: the source with its lowest set bit cleared; ZF, SF by the
/// result, CF iff the source is 0.
pub fn blsr(v: u64, bits: u32) -> Flagged {
    let v = v & mask(bits);
    let r = v & v.wrapping_sub(1) & mask(bits);
    (r, zs(r, bits) | if v == 0 { CF } else { 0 })
}

/// BZHI: `src` with the bits from index `n` (bits 7:0 of `idx`) up
/// cleared; ZF, SF by the result, CF iff `n` is beyond the operand.
pub fn bzhi(src: u64, idx: u64, bits: u32) -> Flagged {
    let n = (idx & 0xff) as u32;
    let src = src & mask(bits);
    let r = if n < bits { src & mask(n) } else { src };
    (r, zs(r, bits) | if n > bits - 1 { CF } else { 0 })
}

/// MULX: the unsigned product of `a` and `b` as (high, low) halves.
pub fn mulx(a: u64, b: u64, bits: u32) -> (u64, u64) {
    let p = u128::from(a & mask(bits)) * u128::from(b & mask(bits));
    ((p >> bits) as u64 & mask(bits), p as u64 & mask(bits))
}

/// PDEP: the low bits of `src` deposited at the set bits of `m`.
pub fn pdep(src: u64, m: u64, bits: u32) -> u64 {
    let mut m = m & mask(bits);
    let mut r = 0;
    let mut k = 0;
    while m != 0 {
        let low = m & m.wrapping_neg();
        if (src >> k) & 1 != 0 {
            r |= low;
        }
        k += 1;
        m &= m - 1;
    }
    r
}

/// PEXT: the bits of `src` at the set bits of `m`, packed at the bottom.
pub fn pext(src: u64, m: u64, bits: u32) -> u64 {
    let mut m = m & mask(bits);
    let mut r = 0;
    let mut k = 0;
    while m != 0 {
        let low = m & m.wrapping_neg();
        if src & low != 0 {
            r |= 1 << k;
        }
        k += 1;
        m &= m - 1;
    }
    r
}

/// RORX: rotate right by `count` (mod the width).
pub fn rorx(v: u64, count: u64, bits: u32) -> u64 {
    let c = (count & u64::from(bits - 1)) as u32;
    let v = v & mask(bits);
    if c == 0 {
        v
    } else {
        ((v >> c) | (v << (bits - c))) & mask(bits)
    }
}

/// SHLX (`op` 0), SHRX (1), SARX (2): shift by `count` mod the width.
pub fn shiftx(op: u8, v: u64, count: u64, bits: u32) -> u64 {
    let c = (count & u64::from(bits - 1)) as u32;
    let v = v & mask(bits);
    match op {
        0 => (v << c) & mask(bits),
        1 => v >> c,
        _ => ((alu::sign_extend(v, bits) as i64) >> c) as u64 & mask(bits),
    }
}

impl Cpu {
    /// Execute one of the instructions [`owns`] accepts.
    pub(super) fn exec_bitops(&mut self, i: &Instruction) -> R<Outcome> {
        use Mnemonic as M;
        let m = i.mnemonic();
        let bits = self.op_bits(i, 0);
        match m {
            M::Popcnt | M::Lzcnt | M::Tzcnt => {
                let v = self.read_op(i, 1)? & mask(bits);
                let enabled = if m == M::Tzcnt {
                    self.cpuid_table.bmi1
                } else {
                    self.cpuid_table.lzcnt
                };
                if m != M::Popcnt && !enabled {
                    return self.bit_scan(i, m == M::Tzcnt, v);
                }
                let (r, f) = match m {
                    M::Popcnt => popcnt(v, bits),
                    M::Lzcnt => lzcnt(v, bits),
                    _ => tzcnt(v, bits),
                };
                self.write_op(i, 0, r)?;
                self.set_flags(f, ARITH);
            }
            M::Andn | M::Pdep | M::Pext => {
                let a = self.read_op(i, 1)?;
                let b = self.read_op(i, 2)?;
                match m {
                    M::Andn => {
                        let (r, f) = andn(a, b, bits);
                        self.write_op(i, 0, r)?;
                        self.set_flags(f, ARITH);
                    }
                    M::Pdep => self.write_op(i, 0, pdep(a, b, bits))?,
                    _ => self.write_op(i, 0, pext(a, b, bits))?,
                }
            }
            M::Bextr | M::Bzhi => {
                let src = self.read_op(i, 1)?;
                let ctl = self.read_op(i, 2)?;
                let (r, f) = if m == M::Bextr {
                    bextr(src, ctl, bits)
                } else {
                    bzhi(src, ctl, bits)
                };
                self.write_op(i, 0, r)?;
                self.set_flags(f, ARITH);
            }
            M::Blsi | M::Blsmsk | M::Blsr => {
                let v = self.read_op(i, 1)?;
                let (r, f) = match m {
                    M::Blsi => blsi(v, bits),
                    M::Blsmsk => blsmsk(v, bits),
                    _ => blsr(v, bits),
                };
                self.write_op(i, 0, r)?;
                self.set_flags(f, ARITH);
            }
            M::Mulx => {
                let a = self.st.gpr[2];
                let b = self.read_op(i, 2)?;
                let (hi, lo) = mulx(a, b, bits);
                // Low half first: with one register for both, the high half wins.
                self.write_op(i, 1, lo)?;
                self.write_op(i, 0, hi)?;
            }
            M::Rorx => {
                let v = self.read_op(i, 1)?;
                self.write_op(i, 0, rorx(v, i.immediate(2), bits))?;
            }
            M::Shlx | M::Shrx | M::Sarx => {
                let v = self.read_op(i, 1)?;
                let c = self.read_op(i, 2)?;
                let op = match m {
                    M::Shlx => 0,
                    M::Shrx => 1,
                    _ => 2,
                };
                self.write_op(i, 0, shiftx(op, v, c, bits))?;
            }
            _ => {
                // ADCX (carry in and out through CF) / ADOX (through OF).
                let flag = if m == M::Adcx { CF } else { OF };
                let a = self.read_op(i, 0)?;
                let b = self.read_op(i, 1)?;
                let (r, f) = alu::add(a, b, self.st.rflags & flag != 0, bits);
                self.write_op(i, 0, r)?;
                self.set_flags(if f & CF != 0 { flag } else { 0 }, flag);
            }
        }
        Ok(Outcome::Next)
    }

    /// LZCNT/TZCNT on a model without them: BSR/BSF (ZF iff the source is
    /// 0, destination then unchanged).
    fn bit_scan(&mut self, i: &Instruction, forward: bool, v: u64) -> R<Outcome> {
        if v == 0 {
            self.set_flags(ZF, ZF);
        } else {
            let r = if forward {
                v.trailing_zeros()
            } else {
                63 - v.leading_zeros()
            };
            self.write_op(i, 0, u64::from(r))?;
            self.set_flags(0, ZF);
        }
        Ok(Outcome::Next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_of_zero_give_the_width_and_cf() {
        assert_eq!(lzcnt(0, 16), (16, CF));
        assert_eq!(tzcnt(0, 64), (64, CF));
        assert_eq!(lzcnt(0x8000, 16), (0, ZF));
        assert_eq!(lzcnt(1, 32), (31, 0));
        assert_eq!(popcnt(0, 32), (0, ZF));
        assert_eq!(popcnt(u64::MAX, 16), (16, 0));
    }

    #[test]
    fn bextr_and_bzhi_beyond_the_width() {
        assert_eq!(bextr(0xf0, 0x0804, 32).0, 0xf);
        assert_eq!(bextr(0xf0, 0x0820, 32), (0, ZF));
        assert_eq!(bextr(u64::MAX, 0xff00, 64).0, u64::MAX);
        assert_eq!(bzhi(u64::MAX, 40, 32), (0xffff_ffff, SF | CF));
        assert_eq!(bzhi(u64::MAX, 0x104, 64).0, 0xf);
    }

    #[test]
    fn deposit_and_extract_are_inverse_on_the_mask() {
        let m = 0x0f0f_00ff_8001_0010;
        let packed = pext(0x1234_5678_9abc_def0, m, 64);
        assert_eq!(pext(pdep(packed, m, 64), m, 64), packed);
        assert_eq!(pdep(0b101, 0b1011_0000, 32), 0b1001_0000);
        assert_eq!(pext(0b1001_0000, 0b1011_0000, 32), 0b101);
    }

    #[test]
    fn lowest_bit_helpers() {
        assert_eq!(blsi(0b1100, 32), (0b100, CF));
        assert_eq!(blsmsk(0, 32), (0xffff_ffff, SF | CF));
        assert_eq!(blsr(0b1000, 64), (0, ZF));
        assert_eq!(mulx(u64::MAX, u64::MAX, 64), (u64::MAX - 1, 1));
        assert_eq!(shiftx(2, 0x8000_0000, 33, 32), 0xc000_0000);
        assert_eq!(rorx(1, 65, 64), 1 << 63);
    }
}
