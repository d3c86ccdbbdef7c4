//! MUL/IMUL (one, two and three operands) and DIV/IDIV in compiled code,
//! with `alu::mul_wide`, `alu::imul_trunc` and `alu::div_wide` semantics:
//! 64×64→128 products through Cranelift's `umulhi`/`smulhi`, narrower
//! ones in one 64-bit multiply. A division runs inline when its dividend
//! fits the host's 64-bit divide and the quotient fits the operand;
//! anything else (a divide error, or a 128-bit dividend) runs the
//! instruction through the interpreter, which raises #DE from the state
//! before it.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::I64;
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

use super::super::super::alu::{mask, sign_extend};
use super::super::super::fastop::Rm;
use super::super::super::state::flags::{ARITH, CF, OF};
use super::super::alu_ir as ir;
use super::Tx;

/// The low and high halves of `a * x` on `bits` bits (both masked) and
/// whether the high half is significant (`i8`).
fn mul_wide(
    b: &mut FunctionBuilder,
    a: Value,
    x: Value,
    bits: u32,
    signed: bool,
) -> (Value, Value, Value) {
    if bits == 64 {
        let lo = b.ins().imul(a, x);
        let (hi, over) = if signed {
            let hi = b.ins().smulhi(a, x);
            let sign = b.ins().sshr_imm(lo, 63);
            (hi, b.ins().icmp(IntCC::NotEqual, hi, sign))
        } else {
            let hi = b.ins().umulhi(a, x);
            (hi, b.ins().icmp_imm(IntCC::NotEqual, hi, 0))
        };
        return (lo, hi, over);
    }
    let m = mask(bits) as i64;
    let (a, x) = if signed {
        (ir::sign_extend(b, a, bits), ir::sign_extend(b, x, bits))
    } else {
        (a, x)
    };
    // The whole product fits 64 bits.
    let p = b.ins().imul(a, x);
    let lo = b.ins().band_imm(p, m);
    let up = b.ins().ushr_imm(p, i64::from(bits));
    let hi = b.ins().band_imm(up, m);
    let over = if signed {
        let back = ir::sign_extend(b, lo, bits);
        b.ins().icmp(IntCC::NotEqual, back, p)
    } else {
        b.ins().icmp_imm(IntCC::NotEqual, hi, 0)
    };
    (lo, hi, over)
}

/// `a * x` truncated to `bits` (signed), and whether it did not fit.
fn imul_trunc(b: &mut FunctionBuilder, a: Value, x: Value, bits: u32) -> (Value, Value) {
    // The low half is the truncated product; it fits when the high half
    // is only its sign.
    let (r, _, over) = mul_wide(b, a, x, bits, true);
    (r, over)
}

/// RFLAGS after a multiply: ZF, SF, PF of `lo`, CF = OF = `over`, AF
/// clear.
fn mul_flags(b: &mut FunctionBuilder, rflags: Value, lo: Value, over: Value, bits: u32) -> Value {
    let z = ir::szp(b, lo, bits);
    let both = b.ins().iconst(I64, (CF | OF) as i64);
    let none = b.ins().iconst(I64, 0);
    let co = b.ins().select(over, both, none);
    let f = b.ins().bor(z, co);
    ir::merge_flags(b, rflags, f, ARITH)
}

impl Tx<'_, '_> {
    /// A register or memory operand's value (`size` bytes, zero-extended)
    /// for slot `k`.
    pub(super) fn rm_value(&mut self, rm: &Rm, size: u8, k: usize) -> Value {
        match *rm {
            Rm::Reg(r) => {
                let v = self.reg(r);
                ir::read_sized(&mut self.b, v, size)
            }
            Rm::Mem(ref m) => {
                let la = self.la(m);
                self.read(la, size, k)
            }
        }
    }

    /// One-operand MUL/IMUL: rDX:rAX (AX for bytes) = rAX * `src`.
    pub(super) fn mul1(&mut self, signed: bool, size: u8, src: &Rm, flags: bool, k: usize) {
        let x = self.rm_value(src, size, k);
        let a = self.reg(0);
        let a = ir::read_sized(&mut self.b, a, size);
        let bits = u32::from(size) * 8;
        let (lo, hi, over) = mul_wide(&mut self.b, a, x, bits, signed);
        if size == 1 {
            let h = self.b.ins().ishl_imm(hi, 8);
            let ax = self.b.ins().bor(h, lo);
            self.write_reg(0, ax, 2);
        } else {
            self.write_reg(0, lo, size);
            self.write_reg(2, hi, size);
        }
        if flags {
            let f = self.flags();
            let nf = mul_flags(&mut self.b, f, lo, over, bits);
            self.set_flags(nf);
        }
    }

    /// IMUL `dst`, `src` (`imm`: IMUL `dst`, `src`, `imm`), truncated.
    pub(super) fn imul(
        &mut self,
        size: u8,
        dst: u8,
        src: &Rm,
        imm: Option<u64>,
        flags: bool,
        k: usize,
    ) {
        let x = self.rm_value(src, size, k);
        let bits = u32::from(size) * 8;
        let a = match imm {
            Some(i) => self.iconst(sign_extend(i, bits) & mask(bits)),
            None => {
                let d = self.reg(dst);
                ir::read_sized(&mut self.b, d, size)
            }
        };
        let (r, over) = imul_trunc(&mut self.b, a, x, bits);
        self.write_reg(dst, r, size);
        if flags {
            let f = self.flags();
            let nf = mul_flags(&mut self.b, f, r, over, bits);
            self.set_flags(nf);
        }
    }

    /// DIV/IDIV: rAX, rDX = rDX:rAX / `src` (AL, AH = AX / `src` for
    /// bytes); the flags are unchanged.
    pub(super) fn div1(&mut self, signed: bool, size: u8, src: &Rm, k: usize) {
        let d = self.rm_value(src, size, k);
        let bits = u32::from(size) * 8;
        let m = mask(bits) as i64;
        let rax = self.reg(0);
        let rdx = self.reg(2);
        let b = &mut self.b;
        // The dividend and divisor as 64-bit host operands (sign-extended
        // for IDIV), and what makes the host's divide unusable.
        let (n, dv, mut bad) = if size == 8 {
            let zero_d = b.ins().icmp_imm(IntCC::Equal, d, 0);
            if signed {
                // Only a sign-extended rDX:rAX fits; MIN / -1 overflows.
                let sign = b.ins().sshr_imm(rax, 63);
                let wide = b.ins().icmp(IntCC::NotEqual, rdx, sign);
                let min = b.ins().icmp_imm(IntCC::Equal, rax, i64::MIN);
                let neg1 = b.ins().icmp_imm(IntCC::Equal, d, -1);
                let ovf = b.ins().band(min, neg1);
                let bad = b.ins().bor(zero_d, wide);
                (rax, d, b.ins().bor(bad, ovf))
            } else {
                let wide = b.ins().icmp_imm(IntCC::NotEqual, rdx, 0);
                (rax, d, b.ins().bor(zero_d, wide))
            }
        } else {
            let n = if size == 1 {
                b.ins().band_imm(rax, 0xffff)
            } else {
                let hi = b.ins().band_imm(rdx, m);
                let hi = b.ins().ishl_imm(hi, i64::from(bits));
                let lo = b.ins().band_imm(rax, m);
                b.ins().bor(hi, lo)
            };
            let zero_d = b.ins().icmp_imm(IntCC::Equal, d, 0);
            if signed {
                let n = ir::sign_extend(b, n, bits * 2);
                let dv = ir::sign_extend(b, d, bits);
                let bad = if size == 4 {
                    // i64::MIN / -1 would trap on the host.
                    let min = b.ins().icmp_imm(IntCC::Equal, n, i64::MIN);
                    let neg1 = b.ins().icmp_imm(IntCC::Equal, dv, -1);
                    let ovf = b.ins().band(min, neg1);
                    b.ins().bor(zero_d, ovf)
                } else {
                    zero_d
                };
                (n, dv, bad)
            } else {
                (n, d, zero_d)
            }
        };
        let dirty = self.dirty;
        let fast = self.b.create_block();
        let slow = self.b.create_block();
        let join = self.b.create_block();
        self.b.ins().brif(bad, slow, &[], fast, &[]);
        self.b.switch_to_block(fast);
        let (q, r) = if signed {
            (self.b.ins().sdiv(n, dv), self.b.ins().srem(n, dv))
        } else {
            (self.b.ins().udiv(n, dv), self.b.ins().urem(n, dv))
        };
        if size < 8 {
            // The quotient must fit the operand.
            bad = if signed {
                let back = ir::sign_extend(&mut self.b, q, bits);
                self.b.ins().icmp(IntCC::NotEqual, back, q)
            } else {
                self.b.ins().icmp_imm(IntCC::UnsignedGreaterThan, q, m)
            };
            let commit = self.b.create_block();
            self.b.ins().brif(bad, slow, &[], commit, &[]);
            self.b.switch_to_block(commit);
        }
        if size == 1 {
            let q = self.b.ins().band_imm(q, 0xff);
            let r = self.b.ins().band_imm(r, 0xff);
            let r = self.b.ins().ishl_imm(r, 8);
            let ax = self.b.ins().bor(r, q);
            self.write_reg(0, ax, 2);
        } else {
            self.write_reg(0, q, size);
            self.write_reg(2, r, size);
        }
        self.b.ins().jump(join, &[]);
        let after = self.dirty;
        // A divide error or a 128-bit dividend: the interpreter runs it
        // from the state before (and raises #DE, leaving the block).
        self.b.switch_to_block(slow);
        self.b.set_cold_block(slow);
        self.dirty = dirty;
        self.interpret(k);
        self.b.ins().jump(join, &[]);
        self.b.switch_to_block(join);
        self.dirty = after;
    }
}
