//! The `alu.rs` rules as Cranelift IR: results and RFLAGS of ADD/ADC/SUB/
//! SBB/CMP, the logic ops, INC/DEC and the immediate shifts and rotates,
//! partial-register writes, and condition codes. Operands are `i64`
//! values holding the zero-extended operand; an operand size is in bytes.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types::I64, InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;
use iced_x86::ConditionCode;

use super::super::alu::mask;
use super::super::fastop::AluOp;
use super::super::state::flags::*;

/// `v`'s low `size` bytes (zero-extended).
pub fn read_sized(b: &mut FunctionBuilder, v: Value, size: u8) -> Value {
    if size == 8 {
        v
    } else {
        b.ins().band_imm(v, mask(u32::from(size) * 8) as i64)
    }
}

/// The register value after writing `v` with `size` bytes into `old`:
/// 8/16-bit writes merge, 32-bit writes zero-extend.
pub fn write_sized(b: &mut FunctionBuilder, old: Value, v: Value, size: u8) -> Value {
    match size {
        8 => v,
        4 => b.ins().band_imm(v, 0xffff_ffff),
        _ => {
            let m = mask(u32::from(size) * 8) as i64;
            let keep = b.ins().band_imm(old, !m);
            let low = b.ins().band_imm(v, m);
            b.ins().bor(keep, low)
        }
    }
}

/// `v`'s low `bits` bits, sign-extended.
pub fn sign_extend(b: &mut FunctionBuilder, v: Value, bits: u32) -> Value {
    if bits >= 64 {
        return v;
    }
    let sh = i64::from(64 - bits);
    let up = b.ins().ishl_imm(v, sh);
    b.ins().sshr_imm(up, sh)
}

/// Bit `from` of `v` moved to bit `to` (other bits cleared).
pub fn bit_to(b: &mut FunctionBuilder, v: Value, from: u32, to: u32) -> Value {
    let moved = match from.cmp(&to) {
        std::cmp::Ordering::Greater => b.ins().ushr_imm(v, i64::from(from - to)),
        std::cmp::Ordering::Less => b.ins().ishl_imm(v, i64::from(to - from)),
        std::cmp::Ordering::Equal => v,
    };
    b.ins().band_imm(moved, 1i64 << to)
}

/// A boolean (`i8`) as 0/1 in `i64`, shifted to bit `to`.
fn flag_from_bool(b: &mut FunctionBuilder, c: Value, to: u32) -> Value {
    let w = b.ins().uextend(I64, c);
    if to == 0 {
        w
    } else {
        b.ins().ishl_imm(w, i64::from(to))
    }
}

/// ZF, SF and PF of a result `r` (already masked to `bits`).
pub fn szp(b: &mut FunctionBuilder, r: Value, bits: u32) -> Value {
    let z = b.ins().icmp_imm(IntCC::Equal, r, 0);
    let zf = flag_from_bool(b, z, 6);
    let sf = bit_to(b, r, bits - 1, 7);
    let low = b.ins().band_imm(r, 0xff);
    let pop = b.ins().popcnt(low);
    let odd = b.ins().band_imm(pop, 1);
    let even = b.ins().bxor_imm(odd, 1);
    let pf = b.ins().ishl_imm(even, 2);
    let t = b.ins().bor(zf, sf);
    b.ins().bor(t, pf)
}

/// `flags` with the bits of `which` replaced by `new`.
pub fn merge_flags(b: &mut FunctionBuilder, flags: Value, new: Value, which: u64) -> Value {
    let keep = b.ins().band_imm(flags, !which as i64);
    b.ins().bor(keep, new)
}

/// `a + b + carry` (`sub`: `a - b - carry`) on `bits` bits: the result and
/// its flags (CF only when `with_cf`). `carry` is an `i64` 0/1 or `None`.
pub fn add_sub(
    b: &mut FunctionBuilder,
    sub: bool,
    a: Value,
    x: Value,
    carry: Option<Value>,
    bits: u32,
    with_cf: bool,
) -> (Value, Value) {
    let m = mask(bits) as i64;
    let raw = if sub {
        let d = b.ins().isub(a, x);
        match carry {
            Some(c) => b.ins().isub(d, c),
            None => d,
        }
    } else {
        let s = b.ins().iadd(a, x);
        match carry {
            Some(c) => b.ins().iadd(s, c),
            None => s,
        }
    };
    let r = if bits < 64 {
        b.ins().band_imm(raw, m)
    } else {
        raw
    };
    let mut f = szp(b, r, bits);
    if with_cf {
        let cf = if bits < 64 {
            // The carry or borrow lands in bit `bits` of the wide result.
            let s = b.ins().ushr_imm(raw, i64::from(bits));
            b.ins().band_imm(s, 1)
        } else {
            // 64 bits: compare instead.
            let (lt, eq) = if sub {
                (
                    b.ins().icmp(IntCC::UnsignedLessThan, a, x),
                    b.ins().icmp(IntCC::Equal, a, x),
                )
            } else {
                (
                    b.ins().icmp(IntCC::UnsignedLessThan, r, a),
                    b.ins().icmp(IntCC::Equal, r, a),
                )
            };
            let lt = b.ins().uextend(I64, lt);
            match carry {
                Some(c) => {
                    let eq = b.ins().uextend(I64, eq);
                    let both = b.ins().band(eq, c);
                    b.ins().bor(lt, both)
                }
                None => lt,
            }
        };
        f = b.ins().bor(f, cf);
    }
    let ax = b.ins().bxor(a, x);
    let axr = b.ins().bxor(ax, r);
    let af = b.ins().band_imm(axr, AF as i64);
    f = b.ins().bor(f, af);
    let ar = b.ins().bxor(a, r);
    let t = if sub {
        b.ins().band(ax, ar)
    } else {
        let nax = b.ins().bnot(ax);
        b.ins().band(nax, ar)
    };
    let of = bit_to(b, t, bits - 1, 11);
    f = b.ins().bor(f, of);
    (r, f)
}

/// `a op x` on `size` bytes: the result (masked) and the new RFLAGS when
/// `flags` (else RFLAGS unchanged).
pub fn alu(
    b: &mut FunctionBuilder,
    op: AluOp,
    size: u8,
    a: Value,
    x: Value,
    rflags: Value,
    flags: bool,
) -> (Value, Value) {
    let bits = u32::from(size) * 8;
    let m = mask(bits) as i64;
    match op {
        AluOp::Add | AluOp::Adc | AluOp::Sub | AluOp::Sbb | AluOp::Cmp => {
            let sub = matches!(op, AluOp::Sub | AluOp::Sbb | AluOp::Cmp);
            let carry = matches!(op, AluOp::Adc | AluOp::Sbb).then(|| b.ins().band_imm(rflags, 1));
            if !flags {
                let raw = match (sub, carry) {
                    (false, c) => {
                        let s = b.ins().iadd(a, x);
                        c.map_or(s, |c| b.ins().iadd(s, c))
                    }
                    (true, c) => {
                        let d = b.ins().isub(a, x);
                        c.map_or(d, |c| b.ins().isub(d, c))
                    }
                };
                let r = if bits < 64 {
                    b.ins().band_imm(raw, m)
                } else {
                    raw
                };
                return (r, rflags);
            }
            let (r, f) = add_sub(b, sub, a, x, carry, bits, true);
            (r, merge_flags(b, rflags, f, ARITH))
        }
        AluOp::Or | AluOp::Xor | AluOp::And | AluOp::Test => {
            let r = match op {
                AluOp::Or => b.ins().bor(a, x),
                AluOp::Xor => b.ins().bxor(a, x),
                _ => b.ins().band(a, x),
            };
            if !flags {
                return (r, rflags);
            }
            let f = szp(b, r, bits);
            (r, merge_flags(b, rflags, f, ARITH))
        }
    }
}

/// SHL/SHR/SAR/ROL/ROR (`op` numbered as `alu::shift`) of `a` (masked to
/// `size` bytes) by the constant `count` (already masked): result and
/// RFLAGS. `None` for an op this does not implement.
pub fn shift(
    b: &mut FunctionBuilder,
    op: u8,
    a: Value,
    count: u32,
    size: u8,
    rflags: Value,
) -> Option<(Value, Value)> {
    let bits = u32::from(size) * 8;
    let m = mask(bits) as i64;
    if count == 0 {
        return Some((a, rflags));
    }
    if !matches!(op, 0 | 1 | 4 | 5 | 6 | 7) {
        return None;
    }
    let base = b.ins().band_imm(rflags, !(CF | OF) as i64);
    let (r, f) = match op {
        0 | 1 => {
            let c = count % bits;
            let r = if c == 0 {
                a
            } else {
                let (l, rr) = if op == 0 {
                    (c, bits - c)
                } else {
                    (bits - c, c)
                };
                let hi = b.ins().ishl_imm(a, i64::from(l));
                let lo = b.ins().ushr_imm(a, i64::from(rr));
                let or = b.ins().bor(hi, lo);
                if bits < 64 {
                    b.ins().band_imm(or, m)
                } else {
                    or
                }
            };
            let (cf, of) = if op == 0 {
                // CF = bit 0; OF = MSB ^ CF.
                let cf = b.ins().band_imm(r, 1);
                let cf_at_top = b.ins().ishl_imm(cf, i64::from(bits - 1));
                let x = b.ins().bxor(r, cf_at_top);
                (cf, bit_to(b, x, bits - 1, 11))
            } else {
                // CF = MSB; OF = MSB ^ the bit below it.
                let cf = bit_to(b, r, bits - 1, 0);
                let sh = b.ins().ishl_imm(r, 1);
                let x = b.ins().bxor(r, sh);
                (cf, bit_to(b, x, bits - 1, 11))
            };
            let t = b.ins().bor(cf, of);
            (r, b.ins().bor(base, t))
        }
        _ => {
            let (r, cf, of) = match op {
                4 | 6 => {
                    let r = if count >= bits {
                        b.ins().iconst(I64, 0)
                    } else {
                        let s = b.ins().ishl_imm(a, i64::from(count));
                        if bits < 64 {
                            b.ins().band_imm(s, m)
                        } else {
                            s
                        }
                    };
                    let cf = if count <= bits {
                        bit_to(b, a, bits - count, 0)
                    } else {
                        b.ins().iconst(I64, 0)
                    };
                    let cf_at_top = b.ins().ishl_imm(cf, i64::from(bits - 1));
                    let x = b.ins().bxor(r, cf_at_top);
                    let of = bit_to(b, x, bits - 1, 11);
                    (r, cf, of)
                }
                5 => {
                    let r = if count >= bits {
                        b.ins().iconst(I64, 0)
                    } else {
                        b.ins().ushr_imm(a, i64::from(count))
                    };
                    let cf = if count <= bits {
                        bit_to(b, a, count - 1, 0)
                    } else {
                        b.ins().iconst(I64, 0)
                    };
                    let of = bit_to(b, a, bits - 1, 11);
                    (r, cf, of)
                }
                _ => {
                    let sa = sign_extend(b, a, bits);
                    let c = count.min(bits - 1);
                    let s = b.ins().sshr_imm(sa, i64::from(c));
                    let r = if bits < 64 { b.ins().band_imm(s, m) } else { s };
                    let cf = bit_to(b, sa, count.min(bits) - 1, 0);
                    (r, cf, b.ins().iconst(I64, 0))
                }
            };
            let cleared = b.ins().band_imm(base, !(ZF | SF | PF | AF) as i64);
            let z = szp(b, r, bits);
            let t = b.ins().bor(z, cf);
            let t = b.ins().bor(t, of);
            (r, b.ins().bor(cleared, t))
        }
    };
    Some((r, f))
}

/// Condition `cc` of `rflags` as an `i64` 0/1.
pub fn cond(b: &mut FunctionBuilder, cc: ConditionCode, f: Value) -> Value {
    use ConditionCode as C;
    let bit = |b: &mut FunctionBuilder, at: u32| {
        let s = if at == 0 {
            f
        } else {
            b.ins().ushr_imm(f, i64::from(at))
        };
        b.ins().band_imm(s, 1)
    };
    let (v, negate) = match cc {
        C::None => return b.ins().iconst(I64, 1),
        C::o | C::no => (bit(b, 11), cc == C::no),
        C::b | C::ae => (bit(b, 0), cc == C::ae),
        C::e | C::ne => (bit(b, 6), cc == C::ne),
        C::s | C::ns => (bit(b, 7), cc == C::ns),
        C::p | C::np => (bit(b, 2), cc == C::np),
        C::be | C::a => {
            let t = b.ins().band_imm(f, (CF | ZF) as i64);
            let c = b.ins().icmp_imm(IntCC::NotEqual, t, 0);
            (b.ins().uextend(I64, c), cc == C::a)
        }
        C::l | C::ge => {
            let s = b.ins().ushr_imm(f, 4);
            let x = b.ins().bxor(f, s);
            (bit_at(b, x, 7), cc == C::ge)
        }
        C::le | C::g => {
            let s = b.ins().ushr_imm(f, 4);
            let x = b.ins().bxor(f, s);
            let lt = bit_at(b, x, 7);
            let z = bit(b, 6);
            (b.ins().bor(lt, z), cc == C::g)
        }
    };
    if negate {
        b.ins().bxor_imm(v, 1)
    } else {
        v
    }
}

/// Bit `at` of `v` as 0/1.
fn bit_at(b: &mut FunctionBuilder, v: Value, at: u32) -> Value {
    let s = b.ins().ushr_imm(v, i64::from(at));
    b.ins().band_imm(s, 1)
}
