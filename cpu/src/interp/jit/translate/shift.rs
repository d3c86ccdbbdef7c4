//! Shifts and rotates by CL and SHLD/SHRD in compiled code, with
//! `alu::shift` and `alu::shift_double` semantics: the count is masked to
//! 5 bits (6 for 64-bit operands), a zero count leaves the flags (and the
//! value) as they were, counts at or above the operand size follow the
//! interpreter's rules. Branch-free: the zero-count case is a `select`.
//! RCL/RCR by CL stay with the interpreter (rare, and their count works
//! modulo size + 1).

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{I16, I32, I64, I8};
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

use super::super::super::alu::mask;
use super::super::super::fastop::COUNT_CL;
use super::super::super::state::flags::{AF, ARITH, CF, OF, PF, SF, ZF};
use super::super::alu_ir as ir;
use super::Tx;

/// `v` rotated left (`left`) or right by `c` within `bits` bits.
fn rotate(b: &mut FunctionBuilder, v: Value, c: Value, bits: u32, left: bool) -> Value {
    let ty = match bits {
        8 => I8,
        16 => I16,
        32 => I32,
        _ => I64,
    };
    let n = if bits == 64 {
        v
    } else {
        b.ins().ireduce(ty, v)
    };
    // Cranelift rotates modulo the type's width, as x86 does for ROL/ROR.
    let r = if left {
        b.ins().rotl(n, c)
    } else {
        b.ins().rotr(n, c)
    };
    if bits == 64 {
        r
    } else {
        b.ins().uextend(I64, r)
    }
}

/// SHL/SHR/SAR/ROL/ROR (`op` numbered as `alu::shift`, not RCL/RCR) of
/// `a` (masked to `bits`) by the masked count `c` (an `i64` value):
/// the result and RFLAGS, both unchanged for a zero count.
pub fn shift_var(
    b: &mut FunctionBuilder,
    op: u8,
    a: Value,
    c: Value,
    bits: u32,
    rflags: Value,
) -> (Value, Value) {
    let m = mask(bits) as i64;
    let top = bits - 1;
    let (r, f) = match op {
        0 | 1 => {
            let r = rotate(b, a, c, bits, op == 0);
            let (cf, of) = if op == 0 {
                // CF = bit 0; OF = MSB ^ CF.
                let cf = b.ins().band_imm(r, 1);
                let msb = ir::bit_to(b, r, top, 0);
                let x = b.ins().bxor(msb, cf);
                (cf, b.ins().ishl_imm(x, 11))
            } else {
                // CF = MSB; OF = MSB ^ the bit below it.
                let cf = ir::bit_to(b, r, top, 0);
                let sh = b.ins().ishl_imm(r, 1);
                let x = b.ins().bxor(r, sh);
                (cf, ir::bit_to(b, x, top, 11))
            };
            let keep = b.ins().band_imm(rflags, !(CF | OF) as i64);
            let t = b.ins().bor(cf, of);
            (r, b.ins().bor(keep, t))
        }
        _ => {
            let (r, cf, of) = match op {
                4 | 6 => {
                    if bits == 64 {
                        let r = b.ins().ishl(a, c);
                        // The last bit out: bit 64 - c of `a`.
                        let sixty_four = b.ins().iconst(I64, 64);
                        let back = b.ins().isub(sixty_four, c);
                        let out = b.ins().ushr(a, back);
                        let cf = b.ins().band_imm(out, 1);
                        let msb = ir::bit_to(b, r, 63, 0);
                        let x = b.ins().bxor(msb, cf);
                        (r, cf, b.ins().ishl_imm(x, 11))
                    } else {
                        // The whole shifted value fits 64 bits (c < 32):
                        // the last bit out lands at bit `bits`.
                        let t = b.ins().ishl(a, c);
                        let r = b.ins().band_imm(t, m);
                        let cf = ir::bit_to(b, t, bits, 0);
                        let msb = ir::bit_to(b, r, top, 0);
                        let x = b.ins().bxor(msb, cf);
                        (r, cf, b.ins().ishl_imm(x, 11))
                    }
                }
                5 => {
                    let r = b.ins().ushr(a, c);
                    let c1 = b.ins().iadd_imm(c, -1);
                    let out = b.ins().ushr(a, c1);
                    let cf = b.ins().band_imm(out, 1);
                    (r, cf, ir::bit_to(b, a, top, 11))
                }
                _ => {
                    let sa = ir::sign_extend(b, a, bits);
                    let lim = b.ins().iconst(I64, i64::from(top));
                    let cc = b.ins().umin(c, lim);
                    let s = b.ins().sshr(sa, cc);
                    let r = if bits < 64 { b.ins().band_imm(s, m) } else { s };
                    let size = b.ins().iconst(I64, i64::from(bits));
                    let c2 = b.ins().umin(c, size);
                    let c2 = b.ins().iadd_imm(c2, -1);
                    let out = b.ins().sshr(sa, c2);
                    let cf = b.ins().band_imm(out, 1);
                    (r, cf, b.ins().iconst(I64, 0))
                }
            };
            let keep = b
                .ins()
                .band_imm(rflags, !(CF | OF | ZF | SF | PF | AF) as i64);
            let z = ir::szp(b, r, bits);
            let t = b.ins().bor(z, cf);
            let t = b.ins().bor(t, of);
            (r, b.ins().bor(keep, t))
        }
    };
    let zero = b.ins().icmp_imm(IntCC::Equal, c, 0);
    (b.ins().select(zero, a, r), b.ins().select(zero, rflags, f))
}

/// SHLD (`left`) / SHRD of `a` with bits from `x` (both masked to `bits`,
/// 16 to 64) by the masked count `c`: the result and RFLAGS (CF the last
/// bit out, OF the sign change, AF clear), unchanged for a zero count.
pub fn shift_double(
    b: &mut FunctionBuilder,
    left: bool,
    a: Value,
    x: Value,
    c: Value,
    bits: u32,
    rflags: Value,
) -> (Value, Value) {
    let m = mask(bits) as i64;
    let (r, out) = if bits == 64 {
        let sixty_four = b.ins().iconst(I64, 64);
        let back = b.ins().isub(sixty_four, c);
        let c1 = b.ins().iadd_imm(c, -1);
        if left {
            let hi = b.ins().ishl(a, c);
            let lo = b.ins().ushr(x, back);
            (b.ins().bor(hi, lo), b.ins().ushr(a, back))
        } else {
            let lo = b.ins().ushr(a, c);
            let hi = b.ins().ishl(x, back);
            (b.ins().bor(hi, lo), b.ins().ushr(a, c1))
        }
    } else {
        // Both operands side by side fit 64 bits.
        let (hi, lo) = if left { (a, x) } else { (x, a) };
        let hi = b.ins().ishl_imm(hi, i64::from(bits));
        let v = b.ins().bor(hi, lo);
        if left {
            let s = b.ins().ishl(v, c);
            let s = b.ins().ushr_imm(s, i64::from(bits));
            let double = b.ins().iconst(I64, i64::from(bits * 2));
            let back = b.ins().isub(double, c);
            (b.ins().band_imm(s, m), b.ins().ushr(v, back))
        } else {
            let s = b.ins().ushr(v, c);
            let c1 = b.ins().iadd_imm(c, -1);
            (b.ins().band_imm(s, m), b.ins().ushr(v, c1))
        }
    };
    let cf = b.ins().band_imm(out, 1);
    let z = ir::szp(b, r, bits);
    let changed = b.ins().bxor(r, a);
    let of = ir::bit_to(b, changed, bits - 1, 11);
    let t = b.ins().bor(z, cf);
    let t = b.ins().bor(t, of);
    let f = ir::merge_flags(b, rflags, t, ARITH);
    let zero = b.ins().icmp_imm(IntCC::Equal, c, 0);
    (b.ins().select(zero, a, r), b.ins().select(zero, rflags, f))
}

impl Tx<'_, '_> {
    /// CL, masked for an operand of `size` bytes.
    fn count_cl(&mut self, size: u8) -> Value {
        let c = self.reg(1);
        self.b
            .ins()
            .band_imm(c, if size == 8 { 0x3f } else { 0x1f })
    }

    /// Shift or rotate of `dst` by CL (RCL/RCR: the interpreter).
    pub(super) fn shift_cl(&mut self, op: u8, size: u8, dst: u8, flags: bool, k: usize) {
        if matches!(op, 2 | 3) {
            self.interpret(k);
            return;
        }
        let c = self.count_cl(size);
        let a = self.reg(dst);
        let a = ir::read_sized(&mut self.b, a, size);
        let f = self.flags();
        let (r, nf) = shift_var(&mut self.b, op, a, c, u32::from(size) * 8, f);
        self.write_reg(dst, r, size);
        if flags {
            self.set_flags(nf);
        }
    }

    /// SHLD/SHRD `dst`, `src` by an immediate or CL (`COUNT_CL`).
    pub(super) fn shift_double(&mut self, left: bool, size: u8, dst: u8, src: u8, count: u8) {
        let c = if count == COUNT_CL {
            self.count_cl(size)
        } else {
            self.iconst(u64::from(count))
        };
        let a = self.reg(dst);
        let a = ir::read_sized(&mut self.b, a, size);
        let x = self.reg(src);
        let x = ir::read_sized(&mut self.b, x, size);
        let f = self.flags();
        let (r, nf) = shift_double(&mut self.b, left, a, x, c, u32::from(size) * 8, f);
        self.write_reg(dst, r, size);
        self.set_flags(nf);
    }
}
