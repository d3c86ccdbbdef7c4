//! BT/BTS/BTR/BTC, CMPXCHG (without LOCK), INC/DEC of memory,
//! CBW..CQO, PUSHFQ and LOOP/LOOPE/LOOPNE/JRCXZ in compiled code, with
//! the block engine's semantics (`exec_fast`): memory is read, then
//! written, and only then do registers and flags change, so a faulting
//! access leaves the state before the instruction.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value};

use super::super::super::fastop::{Rm, NONE};
use super::super::super::state::flags::{ARITH, CF, RF, ZF};
use super::super::alu_ir as ir;
use super::{exits, Tx};

impl Tx<'_, '_> {
    /// A read-modify-write destination's value: a register, or memory at
    /// `la` (its store target's linear address, computed once).
    fn dst_value(&mut self, dst: &Rm, la: Option<Value>, size: u8, k: usize) -> Value {
        match (dst, la) {
            (Rm::Mem(_), Some(la)) => self.read(la, size, k),
            _ => self.rm_value(dst, size, k),
        }
    }

    /// BT (`op` 0), BTS, BTR, BTC (3) of `dst` with the bit number in
    /// `bit_reg` (register destinations only) or the immediate `bit`; `la`
    /// is a memory destination's linear address.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn bit_test(
        &mut self,
        op: u8,
        size: u8,
        dst: &Rm,
        bit_reg: u8,
        bit: u8,
        la: Option<Value>,
        k: usize,
    ) {
        let bits = u32::from(size) * 8;
        let n = if bit_reg == NONE {
            self.iconst(u64::from(bit))
        } else {
            let r = self.reg(bit_reg);
            self.b.ins().band_imm(r, i64::from(bits - 1))
        };
        let v = self.dst_value(dst, la, size, k);
        let shifted = self.b.ins().ushr(v, n);
        let cf = self.b.ins().band_imm(shifted, 1);
        if op != 0 {
            let one = self.iconst(1);
            let b = self.b.ins().ishl(one, n);
            let nv = match op {
                1 => self.b.ins().bor(v, b),
                2 => {
                    let nb = self.b.ins().bnot(b);
                    self.b.ins().band(v, nb)
                }
                _ => self.b.ins().bxor(v, b),
            };
            match (dst, la) {
                (Rm::Mem(_), Some(la)) => self.write(la, nv, size, k),
                (Rm::Reg(r), _) => self.write_reg(*r, nv, size),
                (Rm::Mem(_), None) => {}
            }
        }
        let f = self.flags();
        let nf = ir::merge_flags(&mut self.b, f, cf, CF);
        self.set_flags(nf);
        if la.is_some() {
            self.generation_check(k);
        }
    }

    /// CMPXCHG `dst`, `src` without LOCK: memory is written either way
    /// (its own value back when unequal), before anything else changes.
    pub(super) fn cmpxchg(&mut self, size: u8, dst: &Rm, src: u8, la: Option<Value>, k: usize) {
        let bits = u32::from(size) * 8;
        let acc = self.reg(0);
        let acc = ir::read_sized(&mut self.b, acc, size);
        let new = self.reg(src);
        let new = ir::read_sized(&mut self.b, new, size);
        let d = self.dst_value(dst, la, size, k);
        let (_, f) = ir::add_sub(&mut self.b, true, acc, d, None, bits, true);
        let equal = self.b.ins().icmp(IntCC::Equal, acc, d);
        match (dst, la) {
            (Rm::Mem(_), Some(la)) => {
                let v = self.b.ins().select(equal, new, d);
                self.write(la, v, size, k);
            }
            (Rm::Reg(r), _) => {
                // Unequal: the destination is not written at all (a
                // 32-bit one keeps its upper half).
                let old = self.reg(*r);
                let written = ir::write_sized(&mut self.b, old, new, size);
                let v = self.b.ins().select(equal, written, old);
                self.set_reg(*r, v);
            }
            (Rm::Mem(_), None) => {}
        }
        let rax = self.reg(0);
        let loaded = ir::write_sized(&mut self.b, rax, d, size);
        let v = self.b.ins().select(equal, rax, loaded);
        self.set_reg(0, v);
        let old = self.flags();
        let nf = ir::merge_flags(&mut self.b, old, f, ARITH);
        self.set_flags(nf);
        if la.is_some() {
            self.generation_check(k);
        }
    }

    /// INC/DEC of memory at `la` (CF kept).
    pub(super) fn inc_dec_mem(&mut self, dec: bool, size: u8, la: Value, k: usize) {
        let a = self.read(la, size, k);
        let one = self.iconst(1);
        let (r, f) = ir::add_sub(&mut self.b, dec, a, one, None, u32::from(size) * 8, false);
        self.write(la, r, size, k);
        let old = self.flags();
        let nf = ir::merge_flags(&mut self.b, old, f, ARITH & !CF);
        self.set_flags(nf);
        self.generation_check(k);
    }

    /// CBW/CWDE/CDQE (`op` 0..2) and CWD/CDQ/CQO (3..5).
    pub(super) fn convert(&mut self, op: u8) {
        let a = self.reg(0);
        match op {
            0..=2 => {
                let from = 8u32 << op;
                let v = ir::sign_extend(&mut self.b, a, from);
                self.write_reg(0, v, (from / 4) as u8);
            }
            _ => {
                let size = 1u8 << (op - 2);
                let bits = i64::from(size) * 8;
                // The sign bit of rAX, spread over every bit.
                let up = self.b.ins().ishl_imm(a, 64 - bits);
                let v = self.b.ins().sshr_imm(up, 63);
                self.write_reg(2, v, size);
            }
        }
    }

    /// PUSHFQ (RF and VM read as zero).
    pub(super) fn pushf(&mut self, k: usize) {
        let f = self.flags();
        let v = self.b.ins().band_imm(f, !(RF | (1 << 17)) as i64);
        self.push(v, k);
    }

    /// LOOP (`op` 0), LOOPE, LOOPNE, JRCXZ (3) to `target` (`next`: the
    /// instruction after): the exit it takes.
    pub(super) fn loop_branch(&mut self, op: u8, target: u64, next: u64) -> exits::End {
        let c = self.reg(1);
        let take = if op == 3 {
            self.b.ins().icmp_imm(IntCC::Equal, c, 0)
        } else {
            let c = self.b.ins().iadd_imm(c, -1);
            self.set_reg(1, c);
            let nz = self.b.ins().icmp_imm(IntCC::NotEqual, c, 0);
            if op == 0 {
                nz
            } else {
                let f = self.flags();
                let z = self.b.ins().band_imm(f, ZF as i64);
                let cc = if op == 1 {
                    IntCC::NotEqual
                } else {
                    IntCC::Equal
                };
                let zf = self.b.ins().icmp_imm(cc, z, 0);
                self.b.ins().band(nz, zf)
            }
        };
        exits::End::Cond(take, target, next)
    }
}
