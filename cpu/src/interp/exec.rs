//! Executing one decoded instruction.

use iced_x86::{ConditionCode, Instruction, Mnemonic, OpKind, Register};

use super::alu::{self, mask};
use super::atomic::LockedOperand;
use super::cpu::Cpu;
use super::desc;
use super::mem::{Access, Exception};
use super::shared_ram;
use super::state::flags::*;
use super::state::{Seg, CR0_PE, EFER_LMA, EFER_LME, EFER_SCE};

/// What an instruction did besides changing state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Go on.
    Next,
    /// HLT executed.
    Halt,
    /// STI/MOV SS: block interrupts for one instruction.
    Shadow,
}

type R<T> = Result<T, Exception>;

fn gpr(r: Register) -> Option<(usize, bool)> {
    let full = r.full_register();
    if (Register::RAX..=Register::R15).contains(&full) {
        let high = matches!(r, Register::AH | Register::CH | Register::DH | Register::BH);
        Some((full as usize - Register::RAX as usize, high))
    } else {
        None
    }
}

impl Cpu {
    /// Read a general register by iced name (zero-extended).
    pub fn reg(&self, r: Register) -> u64 {
        match gpr(r) {
            Some((i, true)) => (self.st.gpr[i] >> 8) & 0xff,
            Some((i, false)) => self.st.gpr[i] & mask(r.size() as u32 * 8),
            None => match r {
                Register::RIP => self.st.rip,
                Register::EIP => self.st.rip & 0xffff_ffff,
                _ => match Seg::from_reg(r) {
                    Some(s) => u64::from(self.st.seg[s as usize].selector),
                    None => 0,
                },
            },
        }
    }

    /// Write a general register with x86 partial-write rules.
    pub fn set_reg(&mut self, r: Register, v: u64) {
        if let Some((i, high)) = gpr(r) {
            let g = &mut self.st.gpr[i];
            match (r.size(), high) {
                (1, true) => *g = (*g & !0xff00) | ((v & 0xff) << 8),
                (1, false) => *g = (*g & !0xff) | (v & 0xff),
                (2, _) => *g = (*g & !0xffff) | (v & 0xffff),
                (4, _) => *g = v & 0xffff_ffff,
                _ => *g = v,
            }
        }
    }

    /// Base of segment `s` for address computation.
    pub fn seg_base(&self, s: Seg) -> u64 {
        if self.st.long64() && !matches!(s, Seg::Fs | Seg::Gs) {
            0
        } else {
            self.st.seg[s as usize].base
        }
    }

    pub(super) fn linear(&self, s: Seg, off: u64) -> u64 {
        let la = self.seg_base(s).wrapping_add(off);
        if self.st.long64() {
            la
        } else {
            la & 0xffff_ffff
        }
    }

    /// Effective (segment-relative) address of the memory operand.
    pub fn effective(&self, i: &Instruction) -> u64 {
        let mut a = i.memory_displacement64();
        let base = i.memory_base();
        if base != Register::None && base != Register::RIP && base != Register::EIP {
            a = a.wrapping_add(self.reg(base));
        }
        let index = i.memory_index();
        if index != Register::None {
            a = a.wrapping_add(
                self.reg(index)
                    .wrapping_mul(u64::from(i.memory_index_scale())),
            );
        }
        let size = if base != Register::None {
            base.size()
        } else if index != Register::None {
            index.size()
        } else {
            i.memory_displ_size() as usize
        };
        match size {
            2 => a & 0xffff,
            4 => a & 0xffff_ffff,
            _ => a,
        }
    }

    /// Linear address of the memory operand.
    pub fn mem_linear(&self, i: &Instruction) -> u64 {
        let s = Seg::from_reg(i.memory_segment()).unwrap_or(Seg::Ds);
        self.linear(s, self.effective(i))
    }

    /// The host address of `bytes` bytes at `la` when the TLB already
    /// allows `access` there, they stay in one page, and they are RAM.
    #[inline]
    fn ram_fast(&self, la: u64, bytes: usize, access: Access) -> Option<*mut u8> {
        if (la & 0xfff) as usize + bytes > 0x1000 {
            return None;
        }
        let pa = self.st.tlb_hit(la, access)?;
        self.ram.host(pa, bytes)
    }

    /// [`Cpu::ram_fast`] for a store: also the range to report to the
    /// code-page tracker once written.
    #[inline]
    fn ram_fast_store(&self, la: u64, bytes: usize) -> Option<(*mut u8, super::ram::Store)> {
        if (la & 0xfff) as usize + bytes > 0x1000 {
            return None;
        }
        let pa = self.st.tlb_hit(la, Access::Write)?;
        self.ram.host_for_store(pa, bytes)
    }

    /// Read `bytes` (1..=8) at a linear address.
    #[inline]
    pub fn read_la(&mut self, la: u64, bytes: usize) -> R<u64> {
        if matches!(self.locked, LockedOperand::Off) {
            if let Some(p) = self.ram_fast(la, bytes, Access::Read) {
                // SAFETY: `ram_fast` found `bytes` bytes of RAM at `p`.
                return Ok(unsafe { load(p, bytes) });
            }
        }
        self.read_la_slow(la, bytes)
    }

    /// [`Cpu::read_la`] off the TLB-hit path: locked operands, TLB
    /// misses, MMIO, page crossings.
    #[cold]
    #[inline(never)]
    fn read_la_slow(&mut self, la: u64, bytes: usize) -> R<u64> {
        if !matches!(self.locked, LockedOperand::Off) {
            if let Some(v) = self.locked_read(la, bytes)? {
                return Ok(v);
            }
        }
        if let Some(p) = self.ram_fast(la, bytes, Access::Read) {
            // SAFETY: `ram_fast` found `bytes` bytes of RAM at `p`.
            return Ok(unsafe { load(p, bytes) });
        }
        let mut b = [0u8; 8];
        let mmu = crate::interp_mmu!(self);
        mmu.read(&mut self.st, la, &mut b[..bytes], Access::Read)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Write `bytes` (1..=8) at a linear address.
    #[inline]
    pub fn write_la(&mut self, la: u64, v: u64, bytes: usize) -> R<()> {
        if matches!(self.locked, LockedOperand::Off) {
            if let Some((p, store)) = self.ram_fast_store(la, bytes) {
                // SAFETY: `ram_fast_store` found `bytes` bytes of RAM at `p`.
                unsafe { store_bytes(p, v, bytes) };
                self.ram.stored(store);
                return Ok(());
            }
        }
        self.write_la_slow(la, v, bytes)
    }

    /// [`Cpu::write_la`] off the TLB-hit path.
    #[cold]
    #[inline(never)]
    fn write_la_slow(&mut self, la: u64, v: u64, bytes: usize) -> R<()> {
        if !matches!(self.locked, LockedOperand::Off) && self.locked_write(la, v, bytes) {
            return Ok(());
        }
        if let Some((p, store)) = self.ram_fast_store(la, bytes) {
            // SAFETY: as in `read_la`, for stores.
            unsafe { store_bytes(p, v, bytes) };
            self.ram.stored(store);
            return Ok(());
        }
        let mmu = crate::interp_mmu!(self);
        mmu.write(&mut self.st, la, &v.to_le_bytes()[..bytes])
    }

    pub(super) fn op_bits(&self, i: &Instruction, n: u32) -> u32 {
        match i.op_kind(n) {
            OpKind::Register => i.op_register(n).size() as u32 * 8,
            OpKind::Memory => (i.memory_size().size() as u32 * 8).max(8),
            _ => 8,
        }
    }

    pub(super) fn read_op(&mut self, i: &Instruction, n: u32) -> R<u64> {
        Ok(match i.op_kind(n) {
            OpKind::Register => self.reg(i.op_register(n)),
            OpKind::Memory => {
                let bytes = i.memory_size().size().clamp(1, 8);
                let la = self.mem_linear(i);
                self.read_la(la, bytes)?
            }
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => {
                i.near_branch_target()
            }
            _ => i.immediate(n),
        })
    }

    pub(super) fn write_op(&mut self, i: &Instruction, n: u32, v: u64) -> R<()> {
        match i.op_kind(n) {
            OpKind::Register => {
                self.set_reg(i.op_register(n), v);
                Ok(())
            }
            OpKind::Memory => {
                let bytes = i.memory_size().size().clamp(1, 8);
                let la = self.mem_linear(i);
                self.write_la(la, v, bytes)
            }
            _ => Err(Exception::UD),
        }
    }

    pub(super) fn set_flags(&mut self, f: u64, which: u64) {
        self.st.rflags = (self.st.rflags & !which) | (f & which) | 2;
    }

    pub(super) fn cond(&self, c: ConditionCode) -> bool {
        let f = self.st.rflags;
        let (cf, zf, sf, of, pf) = (
            f & CF != 0,
            f & ZF != 0,
            f & SF != 0,
            f & OF != 0,
            f & PF != 0,
        );
        match c {
            ConditionCode::o => of,
            ConditionCode::no => !of,
            ConditionCode::b => cf,
            ConditionCode::ae => !cf,
            ConditionCode::e => zf,
            ConditionCode::ne => !zf,
            ConditionCode::be => cf || zf,
            ConditionCode::a => !cf && !zf,
            ConditionCode::s => sf,
            ConditionCode::ns => !sf,
            ConditionCode::p => pf,
            ConditionCode::np => !pf,
            ConditionCode::l => sf != of,
            ConditionCode::ge => sf == of,
            ConditionCode::le => zf || sf != of,
            ConditionCode::g => !zf && sf == of,
            ConditionCode::None => true,
        }
    }

    /// Push `v` of `bytes` on the stack.
    pub fn push(&mut self, v: u64, bytes: usize) -> R<()> {
        let ss = self.st.stack_size();
        let sp = self.st.gpr[4].wrapping_sub(bytes as u64) & mask(ss * 8);
        let la = self.linear(Seg::Ss, sp);
        self.write_la(la, v, bytes)?;
        let keep = !mask(ss * 8);
        self.st.gpr[4] = (self.st.gpr[4] & keep) | sp;
        Ok(())
    }

    /// Pop `bytes` from the stack.
    pub fn pop(&mut self, bytes: usize) -> R<u64> {
        let ss = self.st.stack_size();
        let sp = self.st.gpr[4] & mask(ss * 8);
        let la = self.linear(Seg::Ss, sp);
        let v = self.read_la(la, bytes)?;
        let keep = !mask(ss * 8);
        self.st.gpr[4] = (self.st.gpr[4] & keep) | (sp.wrapping_add(bytes as u64) & mask(ss * 8));
        Ok(v)
    }

    fn jump(&mut self, target: u64, i: &Instruction) {
        self.st.rip = match i.code_size() {
            iced_x86::CodeSize::Code16 => target & 0xffff,
            iced_x86::CodeSize::Code32 => target & 0xffff_ffff,
            _ => target,
        };
    }

    /// Load a segment register (real mode: base = selector * 16).
    pub fn load_seg(&mut self, s: Seg, sel: u16) -> R<()> {
        if !self.st.protected() || self.st.rflags & (1 << 17) != 0 {
            let seg = &mut self.st.seg[s as usize];
            seg.selector = sel;
            seg.base = u64::from(sel) << 4;
            return Ok(());
        }
        let cpl = self.st.cpl();
        if sel & !3 == 0 {
            // A null SS only in 64-bit mode, below CPL 3, with RPL = CPL.
            let null_ss_ok = self.st.long64() && cpl != 3 && (sel & 3) as u8 == cpl;
            if s == Seg::Cs || (s == Seg::Ss && !null_ss_ok) {
                return Err(Exception::gp(0));
            }
            let seg = &mut self.st.seg[s as usize];
            seg.selector = sel;
            seg.unusable = true;
            seg.present = false;
            return Ok(());
        }
        // Descriptor reads and the accessed-bit update are supervisor
        // accesses whatever the CPL (`desc` makes them so).
        let mmu = crate::interp_mmu!(self);
        let d = if s == Seg::Cs {
            desc::load(&mmu, &mut self.st, sel, false)
        } else {
            desc::read(&mmu, &mut self.st, sel, false)
                .and_then(|d| desc::check_data_load(&d, sel, s == Seg::Ss, cpl).map(|_| d))
        };
        if d.is_ok() {
            desc::mark_accessed(&mmu, &mut self.st, sel);
        }
        self.st.seg[s as usize] = d?;
        Ok(())
    }

    fn far_jump(&mut self, sel: u16, off: u64) -> R<()> {
        self.load_seg(Seg::Cs, sel)?;
        self.st.rip = off;
        if self.st.protected() && !self.st.long64() && !self.st.seg[Seg::Cs as usize].db {
            self.st.rip &= 0xffff;
        }
        Ok(())
    }

    /// Execute one instruction (RIP already points past it). LOCK'd
    /// read-modify-writes (and XCHG with memory, implicitly locked) are
    /// atomic across vCPUs and devices (see `atomic`).
    pub fn execute(&mut self, i: &Instruction) -> R<Outcome> {
        if shared_ram::serializes(i) {
            shared_ram::full_fence();
        }
        let locked = i.has_lock_prefix()
            || (i.mnemonic() == Mnemonic::Xchg
                && (i.op_kind(0) == OpKind::Memory || i.op_kind(1) == OpKind::Memory));
        if locked {
            return self.execute_locked(i);
        }
        self.execute_unlocked(i)
    }

    pub(super) fn execute_unlocked(&mut self, i: &Instruction) -> R<Outcome> {
        use Mnemonic as M;
        let m = i.mnemonic();
        match m {
            M::Mfence => shared_ram::full_fence(),
            M::Lfence | M::Sfence => shared_ram::weak_fence(),
            M::Nop
            | M::Pause
            | M::Clflush
            | M::Clflushopt
            | M::Prefetchnta
            | M::Prefetcht0
            | M::Prefetcht1
            | M::Prefetcht2
            | M::Prefetchw
            | M::Endbr64
            | M::Endbr32 => {}
            M::Mov => {
                if i.op_kind(0) == OpKind::Register {
                    let dst = i.op_register(0);
                    if let Some(s) = Seg::from_reg(dst) {
                        let v = self.read_op(i, 1)? as u16;
                        self.load_seg(s, v)?;
                        return Ok(if s == Seg::Ss {
                            Outcome::Shadow
                        } else {
                            Outcome::Next
                        });
                    }
                    if dst.is_cr() {
                        self.check_mov_cr(dst)?;
                        return self
                            .write_cr(dst, self.reg(i.op_register(1)))
                            .map(|_| Outcome::Next);
                    }
                    if dst.is_dr() {
                        self.check_mov_dr(dst)?;
                        let v = self.reg(i.op_register(1));
                        return self
                            .write_dr(super::debug::dr_index(dst), v)
                            .map(|_| Outcome::Next);
                    }
                }
                if i.op_kind(1) == OpKind::Register {
                    let src = i.op_register(1);
                    if src.is_cr() {
                        self.check_mov_cr(src)?;
                        let v = match src {
                            Register::CR0 => self.st.cr0,
                            Register::CR2 => self.st.cr2,
                            Register::CR3 => self.st.cr3,
                            Register::CR4 => self.st.cr4,
                            Register::CR8 => self.st.cr8,
                            _ => return Err(Exception::UD),
                        };
                        self.set_reg(i.op_register(0), v);
                        return Ok(Outcome::Next);
                    }
                    if src.is_dr() {
                        self.check_mov_dr(src)?;
                        let v = self.read_dr(super::debug::dr_index(src))?;
                        self.set_reg(i.op_register(0), v);
                        return Ok(Outcome::Next);
                    }
                    if Seg::from_reg(src).is_some() && i.op_kind(0) == OpKind::Memory {
                        let la = self.mem_linear(i);
                        return self.write_la(la, self.reg(src), 2).map(|_| Outcome::Next);
                    }
                }
                let v = self.read_op(i, 1)?;
                self.write_op(i, 0, v)?;
            }
            M::Movzx => {
                let v = self.read_op(i, 1)?;
                self.write_op(i, 0, v)?;
            }
            M::Movsx | M::Movsxd => {
                let bits = self.op_bits(i, 1);
                let v = self.read_op(i, 1)?;
                let sx = alu::sign_extend(v, bits);
                self.write_op(i, 0, sx)?;
            }
            M::Lea => {
                let v = self.effective(i);
                self.write_op(i, 0, v)?;
            }
            M::Xchg => {
                let a = self.read_op(i, 0)?;
                let b = self.read_op(i, 1)?;
                self.write_op(i, 0, b)?;
                self.write_op(i, 1, a)?;
            }
            M::Add | M::Adc | M::Sub | M::Sbb | M::Cmp => {
                let bits = self.op_bits(i, 0);
                let a = self.read_op(i, 0)?;
                let b = self.read_op(i, 1)? & mask(bits);
                let c = self.st.rflags & CF != 0;
                let (r, f) = match m {
                    M::Add => alu::add(a, b, false, bits),
                    M::Adc => alu::add(a, b, c, bits),
                    M::Sbb => alu::sub(a, b, c, bits),
                    _ => alu::sub(a, b, false, bits),
                };
                if m != M::Cmp {
                    self.write_op(i, 0, r)?;
                }
                self.set_flags(f, ARITH);
            }
            M::And | M::Or | M::Xor | M::Test => {
                let bits = self.op_bits(i, 0);
                let a = self.read_op(i, 0)?;
                let b = self.read_op(i, 1)?;
                let r = match m {
                    M::Or => a | b,
                    M::Xor => a ^ b,
                    _ => a & b,
                } & mask(bits);
                if m != M::Test {
                    self.write_op(i, 0, r)?;
                }
                self.set_flags(alu::logic(r, bits), ARITH);
            }
            M::Inc | M::Dec => {
                let bits = self.op_bits(i, 0);
                let a = self.read_op(i, 0)?;
                let (r, f) = if m == M::Inc {
                    alu::add(a, 1, false, bits)
                } else {
                    alu::sub(a, 1, false, bits)
                };
                self.write_op(i, 0, r)?;
                self.set_flags(f, ARITH & !CF);
            }
            M::Neg => {
                let bits = self.op_bits(i, 0);
                let a = self.read_op(i, 0)?;
                let (r, f) = alu::sub(0, a, false, bits);
                self.write_op(i, 0, r)?;
                self.set_flags(f, ARITH);
            }
            M::Not => {
                let bits = self.op_bits(i, 0);
                let a = self.read_op(i, 0)?;
                self.write_op(i, 0, !a & mask(bits))?;
            }
            M::Rol | M::Ror | M::Rcl | M::Rcr | M::Shl | M::Sal | M::Shr | M::Sar => {
                let bits = self.op_bits(i, 0);
                let a = self.read_op(i, 0)?;
                let cmask = if bits == 64 { 0x3f } else { 0x1f };
                let count = (self.read_op(i, 1)? & cmask) as u32;
                let op = match m {
                    M::Rol => 0,
                    M::Ror => 1,
                    M::Rcl => 2,
                    M::Rcr => 3,
                    M::Shl | M::Sal => 4,
                    M::Shr => 5,
                    _ => 7,
                };
                let (r, f) = alu::shift(op, a, count, bits, self.st.rflags);
                self.write_op(i, 0, r)?;
                self.st.rflags = f | 2;
            }
            M::Shld | M::Shrd => {
                let bits = self.op_bits(i, 0);
                let a = self.read_op(i, 0)?;
                let b = self.read_op(i, 1)?;
                let cmask = if bits == 64 { 0x3f } else { 0x1f };
                let count = (self.read_op(i, 2)? & cmask) as u32;
                match alu::shift_double(m == M::Shld, a, b, count, bits) {
                    Some((r, f)) => {
                        self.write_op(i, 0, r)?;
                        self.set_flags(f, ARITH);
                    }
                    // No change, but a 32-bit register destination is
                    // still written (zero-extended), as on hardware.
                    None => self.write_op(i, 0, a)?,
                }
            }
            M::Mul | M::Imul | M::Div | M::Idiv => return self.muldiv(i),
            M::Push => {
                let bytes = match i.op_kind(0) {
                    OpKind::Register => i.op_register(0).size(),
                    OpKind::Memory => i.memory_size().size(),
                    _ => i.stack_pointer_increment().unsigned_abs() as usize,
                };
                let v = self.read_op(i, 0)?;
                self.push(v, bytes)?;
            }
            M::Pop => {
                let bytes = i.stack_pointer_increment() as usize;
                let v = self.pop(bytes)?;
                if let Some(s) =
                    Seg::from_reg(i.op_register(0)).filter(|_| i.op_kind(0) == OpKind::Register)
                {
                    self.load_seg(s, v as u16)?;
                    return Ok(if s == Seg::Ss {
                        Outcome::Shadow
                    } else {
                        Outcome::Next
                    });
                }
                self.write_op(i, 0, v)?;
            }
            M::Pushf | M::Pushfd | M::Pushfq => {
                let bytes = i.stack_pointer_increment().unsigned_abs() as usize;
                self.push(self.st.rflags & !(1 << 16 | 1 << 17), bytes)?;
            }
            M::Popf | M::Popfd | M::Popfq => {
                let bytes = i.stack_pointer_increment() as usize;
                let v = self.pop(bytes)?;
                let keep =
                    2 | (1 << 17) | (1 << 16) | ((3 << 12 | IF) & !self.popf_protected_bits());
                let writable = !keep & mask(bytes as u32 * 8) & 0x3f_7fd5;
                self.st.rflags = (self.st.rflags & !writable) | (v & writable) | 2;
            }
            M::Pusha | M::Pushad => {
                let b = i.stack_pointer_increment().unsigned_abs() as usize / 8;
                let sp = self.st.gpr[4];
                for r in [0, 1, 2, 3] {
                    self.push(self.st.gpr[r], b)?;
                }
                self.push(sp, b)?;
                for r in [5, 6, 7] {
                    self.push(self.st.gpr[r], b)?;
                }
            }
            M::Popa | M::Popad => {
                let b = i.stack_pointer_increment() as usize / 8;
                for r in [7, 6, 5] {
                    let v = self.pop(b)?;
                    self.set_reg(sized(r, b), v);
                }
                self.pop(b)?;
                for r in [3, 2, 1, 0] {
                    let v = self.pop(b)?;
                    self.set_reg(sized(r, b), v);
                }
            }
            M::Jmp => match i.op_kind(0) {
                OpKind::FarBranch16 | OpKind::FarBranch32 => {
                    let off = if i.op_kind(0) == OpKind::FarBranch16 {
                        u64::from(i.far_branch16())
                    } else {
                        u64::from(i.far_branch32())
                    };
                    self.far_jump(i.far_branch_selector(), off)?;
                }
                OpKind::Memory
                    if matches!(
                        i.memory_size(),
                        iced_x86::MemorySize::SegPtr16
                            | iced_x86::MemorySize::SegPtr32
                            | iced_x86::MemorySize::SegPtr64
                    ) =>
                {
                    let la = self.mem_linear(i);
                    let osz = i.memory_size().size() - 2;
                    let off = self.read_la(la, osz)?;
                    let sel = self.read_la(la + osz as u64, 2)? as u16;
                    self.far_jump(sel, off)?;
                }
                _ => {
                    let t = self.read_op(i, 0)?;
                    self.jump(t, i);
                }
            },
            M::Call => {
                let ret = self.st.rip;
                match i.op_kind(0) {
                    OpKind::FarBranch16 | OpKind::FarBranch32 => {
                        let bytes = if i.op_kind(0) == OpKind::FarBranch16 {
                            2
                        } else {
                            4
                        };
                        let cs = self.reg(Register::CS);
                        self.push(cs, bytes)?;
                        self.push(ret, bytes)?;
                        let off = if bytes == 2 {
                            u64::from(i.far_branch16())
                        } else {
                            u64::from(i.far_branch32())
                        };
                        self.far_jump(i.far_branch_selector(), off)?;
                    }
                    _ => {
                        let t = self.read_op(i, 0)?;
                        let bytes = i.stack_pointer_increment().unsigned_abs() as usize;
                        self.push(ret, bytes)?;
                        self.jump(t, i);
                    }
                }
            }
            M::Ret => {
                let bytes = match i.code_size() {
                    iced_x86::CodeSize::Code64 => 8,
                    _ => {
                        (i.stack_pointer_increment() as usize).saturating_sub(if i.op_count() > 0 {
                            i.immediate(0) as usize
                        } else {
                            0
                        })
                    }
                };
                let t = self.pop(bytes)?;
                if i.op_count() > 0 {
                    let ss = self.st.stack_size();
                    self.st.gpr[4] = self.st.gpr[4].wrapping_add(i.immediate(0)) & mask(ss * 8)
                        | (self.st.gpr[4] & !mask(ss * 8));
                }
                self.jump(t, i);
            }
            M::Retf => {
                let bytes = (i.stack_pointer_increment() as usize
                    - if i.op_count() > 0 {
                        i.immediate(0) as usize
                    } else {
                        0
                    })
                    / 2;
                let off = self.pop(bytes)?;
                let sel = self.pop(bytes)? as u16;
                self.far_jump(sel, off)?;
            }
            M::Ja
            | M::Jae
            | M::Jb
            | M::Jbe
            | M::Je
            | M::Jne
            | M::Jg
            | M::Jge
            | M::Jl
            | M::Jle
            | M::Jo
            | M::Jno
            | M::Jp
            | M::Jnp
            | M::Js
            | M::Jns => {
                if self.cond(i.condition_code()) {
                    self.jump(i.near_branch_target(), i);
                }
            }
            M::Loop | M::Loope | M::Loopne | M::Jcxz | M::Jecxz | M::Jrcxz => {
                let creg = count_register(i);
                let take = if matches!(m, M::Jcxz | M::Jecxz | M::Jrcxz) {
                    self.reg(creg) == 0
                } else {
                    let c = self.reg(creg).wrapping_sub(1) & mask(creg.size() as u32 * 8);
                    self.set_reg(creg, c);
                    let zf = self.st.rflags & ZF != 0;
                    c != 0
                        && match m {
                            M::Loope => zf,
                            M::Loopne => !zf,
                            _ => true,
                        }
                };
                if take {
                    self.jump(i.near_branch_target(), i);
                }
            }
            M::Seta
            | M::Setae
            | M::Setb
            | M::Setbe
            | M::Sete
            | M::Setne
            | M::Setg
            | M::Setge
            | M::Setl
            | M::Setle
            | M::Seto
            | M::Setno
            | M::Setp
            | M::Setnp
            | M::Sets
            | M::Setns => {
                let v = u64::from(self.cond(i.condition_code()));
                self.write_op(i, 0, v)?;
            }
            M::Cmova
            | M::Cmovae
            | M::Cmovb
            | M::Cmovbe
            | M::Cmove
            | M::Cmovne
            | M::Cmovg
            | M::Cmovge
            | M::Cmovl
            | M::Cmovle
            | M::Cmovo
            | M::Cmovno
            | M::Cmovp
            | M::Cmovnp
            | M::Cmovs
            | M::Cmovns => {
                let v = self.read_op(i, 1)?;
                if self.cond(i.condition_code()) {
                    self.write_op(i, 0, v)?;
                } else if i.op_register(0).size() == 4 {
                    let cur = self.reg(i.op_register(0));
                    self.set_reg(i.op_register(0), cur);
                }
            }
            M::Cbw => self.set_reg(
                Register::AX,
                self.reg(Register::AL) as i8 as i16 as u16 as u64,
            ),
            M::Cwde => self.set_reg(
                Register::EAX,
                self.reg(Register::AX) as i16 as i32 as u32 as u64,
            ),
            M::Cdqe => self.set_reg(Register::RAX, self.reg(Register::EAX) as i32 as i64 as u64),
            M::Cwd => self.set_reg(
                Register::DX,
                if self.reg(Register::AX) & 0x8000 != 0 {
                    0xffff
                } else {
                    0
                },
            ),
            M::Cdq => self.set_reg(
                Register::EDX,
                if self.reg(Register::EAX) & 0x8000_0000 != 0 {
                    0xffff_ffff
                } else {
                    0
                },
            ),
            M::Cqo => self.set_reg(
                Register::RDX,
                if self.reg(Register::RAX) >> 63 != 0 {
                    u64::MAX
                } else {
                    0
                },
            ),
            M::Bt | M::Bts | M::Btr | M::Btc => {
                let bits = self.op_bits(i, 0);
                let off = self.read_op(i, 1)?;
                let (la, bit) =
                    if i.op_kind(0) == OpKind::Memory && i.op_kind(1) == OpKind::Register {
                        let so = (off << (64 - bits)) as i64 >> (64 - bits);
                        let byte = so.div_euclid(bits as i64) * (bits as i64 / 8);
                        (
                            Some(self.mem_linear(i).wrapping_add(byte as u64)),
                            (so.rem_euclid(bits as i64)) as u32,
                        )
                    } else {
                        (None, (off % u64::from(bits)) as u32)
                    };
                let v = match la {
                    Some(a) => self.read_la(a, bits as usize / 8)?,
                    None => self.read_op(i, 0)?,
                };
                let op = match m {
                    M::Bts => 1,
                    M::Btr => 2,
                    M::Btc => 3,
                    _ => 0,
                };
                let (nv, cf) = alu::bit_test(v, bit, op);
                self.set_flags(if cf { CF } else { 0 }, CF);
                if op == 0 {
                    return Ok(Outcome::Next);
                }
                match la {
                    Some(a) => self.write_la(a, nv, bits as usize / 8)?,
                    None => self.write_op(i, 0, nv)?,
                }
            }
            m if super::bitops::owns(m) => return self.exec_bitops(i),
            m if super::exec_ext::owns(m) => return self.exec_ext(i),
            M::Bsf | M::Bsr => {
                let bits = self.op_bits(i, 0);
                let v = self.read_op(i, 1)? & mask(bits);
                if v == 0 {
                    self.set_flags(ZF, ZF);
                } else {
                    let r = match m {
                        M::Bsf => v.trailing_zeros() as u64,
                        _ => 63 - v.leading_zeros() as u64,
                    };
                    self.write_op(i, 0, r)?;
                    self.set_flags(0, ZF);
                }
            }
            M::Bswap => {
                let r = i.op_register(0);
                let v = self.reg(r);
                let s = if r.size() == 8 {
                    v.swap_bytes()
                } else {
                    (v as u32).swap_bytes() as u64
                };
                self.set_reg(r, s);
            }
            M::Xadd => {
                let bits = self.op_bits(i, 0);
                let a = self.read_op(i, 0)?;
                let b = self.read_op(i, 1)?;
                let (r, f) = alu::add(a, b, false, bits);
                self.write_op(i, 1, a)?;
                self.write_op(i, 0, r)?;
                self.set_flags(f, ARITH);
            }
            M::Cmpxchg => {
                let bits = self.op_bits(i, 0);
                let acc = sized(0, bits as usize / 8);
                let d = self.read_op(i, 0)?;
                let a = self.reg(acc);
                let (_, f) = alu::sub(a, d, false, bits);
                self.set_flags(f, ARITH);
                if f & ZF != 0 {
                    let s = self.read_op(i, 1)?;
                    self.write_op(i, 0, s)?;
                } else {
                    // Memory sees its own value written back (the locked
                    // cycle); a register destination is left untouched,
                    // upper half included.
                    if i.op0_kind() == OpKind::Memory {
                        self.write_op(i, 0, d)?;
                    }
                    self.set_reg(acc, d);
                }
            }
            M::Cmpxchg8b | M::Cmpxchg16b => {
                let w = if m == M::Cmpxchg8b { 4 } else { 8 };
                let la = self.mem_linear(i);
                if w == 8 && la & 15 != 0 {
                    // CMPXCHG16B needs a 16-byte aligned operand.
                    return Err(Exception::gp(0));
                }
                let lo = self.read_la(la, w)?;
                let hi = self.read_la(la + w as u64, w)?;
                let m_ = mask(w as u32 * 8);
                if lo == self.st.gpr[0] & m_ && hi == self.st.gpr[2] & m_ {
                    self.write_la(la, self.st.gpr[3] & m_, w)?;
                    self.write_la(la + w as u64, self.st.gpr[1] & m_, w)?;
                    self.set_flags(ZF, ZF);
                } else {
                    self.write_la(la, lo, w)?;
                    self.write_la(la + w as u64, hi, w)?;
                    let (a, d) = if w == 4 {
                        (Register::EAX, Register::EDX)
                    } else {
                        (Register::RAX, Register::RDX)
                    };
                    self.set_reg(a, lo);
                    self.set_reg(d, hi);
                    self.set_flags(0, ZF);
                }
            }
            M::Clc => self.set_flags(0, CF),
            M::Stc => self.set_flags(CF, CF),
            M::Cmc => self.st.rflags ^= CF,
            M::Cld => self.set_flags(0, DF),
            M::Std => self.set_flags(DF, DF),
            M::Cli => {
                self.check_cli_sti()?;
                self.set_flags(0, IF);
            }
            M::Sti => {
                self.check_cli_sti()?;
                let was = self.st.rflags & IF != 0;
                self.set_flags(IF, IF);
                if !was {
                    return Ok(Outcome::Shadow);
                }
            }
            M::Lahf => {
                let v = self.st.rflags & 0xd7 | 2;
                self.set_reg(Register::AH, v);
            }
            M::Sahf => {
                let v = self.reg(Register::AH);
                self.set_flags(v, CF | PF | AF | ZF | SF);
            }
            M::Hlt => {
                self.require_cpl0()?;
                return Ok(Outcome::Halt);
            }
            M::Leave => {
                let bytes = match i.code() {
                    iced_x86::Code::Leavew => 2,
                    iced_x86::Code::Leaved => 4,
                    _ => 8,
                };
                let ss = self.st.stack_size();
                self.st.gpr[4] = (self.st.gpr[4] & !mask(ss * 8)) | (self.st.gpr[5] & mask(ss * 8));
                let bp = self.pop(bytes)?;
                self.set_reg(sized(5, bytes), bp);
            }
            M::Enter => {
                let bytes = if i.code_size() == iced_x86::CodeSize::Code64 {
                    8
                } else if format!("{:?}", i.code()).starts_with("Enterw") {
                    2
                } else {
                    4
                };
                self.push(self.st.gpr[5], bytes)?;
                let frame = self.st.gpr[4];
                self.set_reg(sized(5, bytes), frame);
                let sz = i.immediate(0);
                let ss = self.st.stack_size();
                self.st.gpr[4] = (self.st.gpr[4] & !mask(ss * 8))
                    | (self.st.gpr[4].wrapping_sub(sz) & mask(ss * 8));
            }
            M::Xlatb => {
                let s = Seg::from_reg(i.memory_segment()).unwrap_or(Seg::Ds);
                let bx = self.reg(i.memory_base());
                let off = bx.wrapping_add(self.reg(Register::AL))
                    & mask(i.memory_base().size() as u32 * 8);
                let v = self.read_la(self.linear(s, off), 1)?;
                self.set_reg(Register::AL, v);
            }
            M::In | M::Out => return self.port_io(i),
            M::Movsb
            | M::Movsw
            | M::Movsd
            | M::Movsq
            | M::Stosb
            | M::Stosw
            | M::Stosd
            | M::Stosq
            | M::Lodsb
            | M::Lodsw
            | M::Lodsd
            | M::Lodsq
            | M::Cmpsb
            | M::Cmpsw
            | M::Cmpsd
            | M::Cmpsq
            | M::Scasb
            | M::Scasw
            | M::Scasd
            | M::Scasq
            | M::Insb
            | M::Insw
            | M::Insd
            | M::Outsb
            | M::Outsw
            | M::Outsd
                if !is_sse_form(i) =>
            {
                return self.string_op(i)
            }
            _ => return self.system(i),
        }
        Ok(Outcome::Next)
    }

    fn muldiv(&mut self, i: &Instruction) -> R<Outcome> {
        use Mnemonic as M;
        let m = i.mnemonic();
        if m == M::Imul && i.op_count() > 1 {
            let bits = self.op_bits(i, 0);
            let (a, b) = if i.op_count() == 3 {
                (self.read_op(i, 1)?, self.read_op(i, 2)?)
            } else {
                (self.read_op(i, 0)?, self.read_op(i, 1)?)
            };
            let (r, f) = alu::imul_trunc(a, b, bits);
            self.write_op(i, 0, r)?;
            self.set_flags(f, ARITH);
            return Ok(Outcome::Next);
        }
        let bits = self.op_bits(i, 0);
        let src = self.read_op(i, 0)? & mask(bits);
        let (lo_r, hi_r) = match bits {
            8 => (Register::AL, Register::AH),
            16 => (Register::AX, Register::DX),
            32 => (Register::EAX, Register::EDX),
            _ => (Register::RAX, Register::RDX),
        };
        match m {
            M::Mul | M::Imul => {
                let a = self.reg(lo_r) & mask(bits);
                let (lo, hi, f) = alu::mul_wide(a, src, bits, m == M::Imul);
                if bits == 8 {
                    self.set_reg(Register::AX, hi << 8 | lo);
                } else {
                    self.set_reg(lo_r, lo);
                    self.set_reg(hi_r, hi);
                }
                self.set_flags(f, ARITH);
            }
            _ => {
                let acc = if bits == 8 {
                    u128::from(self.reg(Register::AX))
                } else {
                    (u128::from(self.reg(hi_r)) << bits) | u128::from(self.reg(lo_r))
                };
                let (q, r) = alu::div_wide(acc, src, bits, m == M::Idiv).ok_or(Exception::DE)?;
                if bits == 8 {
                    self.set_reg(Register::AL, q);
                    self.set_reg(Register::AH, r);
                } else {
                    self.set_reg(lo_r, q);
                    self.set_reg(hi_r, r);
                }
            }
        }
        Ok(Outcome::Next)
    }

    fn port_io(&mut self, i: &Instruction) -> R<Outcome> {
        let (port, reg) = if i.mnemonic() == Mnemonic::In {
            let p = if i.op_kind(1) == OpKind::Register {
                self.reg(Register::DX)
            } else {
                i.immediate(1)
            };
            (p as u16, i.op_register(0))
        } else {
            let p = if i.op_kind(0) == OpKind::Register {
                self.reg(Register::DX)
            } else {
                i.immediate(0)
            };
            (p as u16, i.op_register(1))
        };
        let n = reg.size();
        self.check_io(port, n)?;
        if i.mnemonic() == Mnemonic::In {
            let mut b = [0u8; 8];
            self.io_in(port, &mut b[..n]);
            self.set_reg(reg, u64::from_le_bytes(b));
        } else {
            let v = self.reg(reg).to_le_bytes();
            self.io_out(port, &v[..n]);
        }
        Ok(Outcome::Next)
    }

    fn string_op(&mut self, i: &Instruction) -> R<Outcome> {
        use Mnemonic as M;
        let m = i.mnemonic();
        let size = match m {
            M::Movsb | M::Stosb | M::Lodsb | M::Cmpsb | M::Scasb | M::Insb | M::Outsb => 1,
            M::Movsw | M::Stosw | M::Lodsw | M::Cmpsw | M::Scasw | M::Insw | M::Outsw => 2,
            M::Movsd | M::Stosd | M::Lodsd | M::Cmpsd | M::Scasd | M::Insd | M::Outsd => 4,
            _ => 8,
        };
        let amask = mask(string_addr_bits(i));
        let rep = i.has_rep_prefix() || i.has_repne_prefix();
        if matches!(
            m,
            M::Insb | M::Insw | M::Insd | M::Outsb | M::Outsw | M::Outsd
        ) {
            // The permission check comes first, even with a zero count.
            self.check_io(self.st.gpr[2] as u16, size)?;
        }
        let step = if self.st.rflags & DF != 0 {
            (size as u64).wrapping_neg()
        } else {
            size as u64
        };
        let src_seg = Seg::from_reg(i.memory_segment()).unwrap_or(Seg::Ds);
        let mut budget = 4096u32;
        let bulk = rep
            && matches!(
                m,
                M::Movsb
                    | M::Movsw
                    | M::Movsd
                    | M::Movsq
                    | M::Stosb
                    | M::Stosw
                    | M::Stosd
                    | M::Stosq
            );
        loop {
            if rep && self.st.gpr[1] & amask == 0 {
                break;
            }
            if bulk {
                let done = self.rep_string_bulk(i, size, string_addr_bits(i), budget)?;
                if done > 0 {
                    budget -= done;
                    if budget == 0 && self.st.gpr[1] & amask != 0 {
                        self.st.rip = self.st.rip.wrapping_sub(i.len() as u64);
                        break;
                    }
                    continue;
                }
            }
            let si = self.st.gpr[6] & amask;
            let di = self.st.gpr[7] & amask;
            let bits = size as u32 * 8;
            let mut zf_stop = None;
            match m {
                M::Movsb | M::Movsw | M::Movsd | M::Movsq => {
                    let v = self.read_la(self.linear(src_seg, si), size)?;
                    self.write_la(self.linear(Seg::Es, di), v, size)?;
                }
                M::Stosb | M::Stosw | M::Stosd | M::Stosq => {
                    let v = self.st.gpr[0];
                    self.write_la(self.linear(Seg::Es, di), v, size)?;
                }
                M::Lodsb | M::Lodsw | M::Lodsd | M::Lodsq => {
                    let v = self.read_la(self.linear(src_seg, si), size)?;
                    self.set_reg(sized(0, size), v);
                }
                M::Cmpsb | M::Cmpsw | M::Cmpsd | M::Cmpsq => {
                    let a = self.read_la(self.linear(src_seg, si), size)?;
                    let b = self.read_la(self.linear(Seg::Es, di), size)?;
                    let (_, f) = alu::sub(a, b, false, bits);
                    self.set_flags(f, ARITH);
                    zf_stop = Some(f & ZF != 0);
                }
                M::Scasb | M::Scasw | M::Scasd | M::Scasq => {
                    let b = self.read_la(self.linear(Seg::Es, di), size)?;
                    let (_, f) = alu::sub(self.st.gpr[0], b, false, bits);
                    self.set_flags(f, ARITH);
                    zf_stop = Some(f & ZF != 0);
                }
                M::Insb | M::Insw | M::Insd => {
                    let mut b = [0u8; 8];
                    self.io_in(self.st.gpr[2] as u16, &mut b[..size]);
                    self.write_la(self.linear(Seg::Es, di), u64::from_le_bytes(b), size)?;
                }
                _ => {
                    let v = self.read_la(self.linear(src_seg, si), size)?;
                    self.io_out(self.st.gpr[2] as u16, &v.to_le_bytes()[..size]);
                }
            }
            let uses_si = !matches!(
                m,
                M::Stosb
                    | M::Stosw
                    | M::Stosd
                    | M::Stosq
                    | M::Scasb
                    | M::Scasw
                    | M::Scasd
                    | M::Scasq
                    | M::Insb
                    | M::Insw
                    | M::Insd
            );
            let uses_di = !matches!(
                m,
                M::Lodsb | M::Lodsw | M::Lodsd | M::Lodsq | M::Outsb | M::Outsw | M::Outsd
            );
            if uses_si {
                self.st.gpr[6] = (self.st.gpr[6] & !amask) | (si.wrapping_add(step) & amask);
            }
            if uses_di {
                self.st.gpr[7] = (self.st.gpr[7] & !amask) | (di.wrapping_add(step) & amask);
            }
            if !rep {
                break;
            }
            let c = (self.st.gpr[1] & amask).wrapping_sub(1) & amask;
            self.st.gpr[1] = (self.st.gpr[1] & !amask) | c;
            if let Some(zf) = zf_stop {
                if (i.has_repe_prefix() && !zf) || (i.has_repne_prefix() && zf) {
                    break;
                }
            }
            budget -= 1;
            if budget == 0 && c != 0 {
                // Let interrupts in: re-execute the instruction later.
                self.st.rip = self.st.rip.wrapping_sub(i.len() as u64);
                break;
            }
        }
        Ok(Outcome::Next)
    }

    fn write_cr(&mut self, cr: Register, v: u64) -> R<()> {
        match cr {
            Register::CR0 => {
                let v = v | 0x10;
                if v & (1 << 31) != 0 && v & CR0_PE == 0 {
                    return Err(Exception::gp(0));
                }
                let paging_on = v & (1 << 31) != 0 && self.st.cr0 & (1 << 31) == 0;
                self.st.cr0 = v;
                if paging_on && self.st.efer & EFER_LME != 0 {
                    self.st.efer |= EFER_LMA;
                } else if v & (1 << 31) == 0 {
                    self.st.efer &= !EFER_LMA;
                }
            }
            Register::CR2 => self.st.cr2 = v,
            Register::CR3 => self.st.cr3 = v,
            Register::CR4 => self.st.cr4 = v,
            Register::CR8 => self.st.cr8 = v & 0xf,
            _ => return Err(Exception::UD),
        }
        self.flush_tlb();
        Ok(())
    }

    fn system(&mut self, i: &Instruction) -> R<Outcome> {
        use Mnemonic as M;
        let m = i.mnemonic();
        self.check_system(i)?;
        match m {
            M::Wbinvd | M::Wbnoinvd | M::Invd => {}
            M::Stac => self.st.rflags |= super::privilege::AC,
            M::Clac => self.st.rflags &= !super::privilege::AC,
            // No performance counters (CPUID leaf 0xA is empty): every
            // counter index is invalid.
            M::Rdpmc => return Err(Exception::gp(0)),
            M::Lgdt | M::Lidt => {
                let la = self.mem_linear(i);
                let limit = self.read_la(la, 2)? as u16;
                let base_bytes = if self.st.long64() { 8 } else { 4 };
                let base = self.read_la(la + 2, base_bytes)?;
                if m == M::Lgdt {
                    self.st.gdtr = (base, limit);
                } else {
                    self.st.idtr = (base, limit);
                }
            }
            M::Sgdt | M::Sidt => {
                let la = self.mem_linear(i);
                let (base, limit) = if m == M::Sgdt {
                    self.st.gdtr
                } else {
                    self.st.idtr
                };
                self.write_la(la, u64::from(limit), 2)?;
                self.write_la(la + 2, base, if self.st.long64() { 8 } else { 4 })?;
            }
            M::Ltr => {
                let sel = self.read_op(i, 0)? as u16;
                let mmu = crate::interp_mmu!(self);
                let wide = self.st.efer & EFER_LMA != 0;
                let d = desc::load(&mmu, &mut self.st, sel, wide)?;
                self.st.tr = d;
            }
            M::Lldt => {
                let sel = self.read_op(i, 0)? as u16;
                if sel & !3 == 0 {
                    self.st.ldtr.unusable = true;
                    self.st.ldtr.selector = sel;
                } else {
                    let mmu = crate::interp_mmu!(self);
                    let wide = self.st.efer & EFER_LMA != 0;
                    self.st.ldtr = desc::load(&mmu, &mut self.st, sel, wide)?;
                }
            }
            M::Str => self.write_op(i, 0, u64::from(self.st.tr.selector))?,
            M::Sldt => self.write_op(i, 0, u64::from(self.st.ldtr.selector))?,
            M::Smsw => self.write_op(i, 0, self.st.cr0 & 0xffff)?,
            M::Lmsw => {
                let v = self.read_op(i, 0)? & 0xf;
                let nv = (self.st.cr0 & !0xe) | v | (self.st.cr0 & 1);
                self.write_cr(Register::CR0, nv)?;
            }
            M::Clts => self.st.cr0 &= !8,
            M::Invlpg => self.flush_tlb(),
            M::Cpuid => {
                let (a, b, c, d) = self.cpuid(self.st.gpr[0] as u32, self.st.gpr[1] as u32);
                self.set_reg(Register::RAX, u64::from(a));
                self.set_reg(Register::RBX, u64::from(b));
                self.set_reg(Register::RCX, u64::from(c));
                self.set_reg(Register::RDX, u64::from(d));
            }
            M::Rdtsc | M::Rdtscp => {
                let t = self.tsc();
                self.set_reg(Register::EAX, t & 0xffff_ffff);
                self.set_reg(Register::EDX, t >> 32);
                if m == M::Rdtscp {
                    self.set_reg(Register::ECX, self.st.msr.tsc_aux & 0xffff_ffff);
                }
            }
            M::Rdmsr => {
                let v = self.rdmsr(self.st.gpr[1] as u32)?;
                self.set_reg(Register::EAX, v & 0xffff_ffff);
                self.set_reg(Register::EDX, v >> 32);
            }
            M::Wrmsr => {
                let v = (self.st.gpr[2] << 32) | (self.st.gpr[0] & 0xffff_ffff);
                self.wrmsr(self.st.gpr[1] as u32, v)?;
            }
            M::Swapgs => {
                std::mem::swap(
                    &mut self.st.seg[Seg::Gs as usize].base,
                    &mut self.st.msr.kernel_gs_base,
                );
            }
            M::Syscall => return self.syscall(),
            M::Sysret | M::Sysretq => return self.sysret(i),
            M::Int | M::Int3 | M::Into | M::Int1 => {
                let v = match m {
                    M::Int3 => 3,
                    M::Int1 => 1,
                    M::Into => {
                        if self.st.rflags & OF == 0 {
                            return Ok(Outcome::Next);
                        }
                        4
                    }
                    _ => i.immediate(0) as u8,
                };
                // INT1 (ICEBP) is delivered like a hardware #DB: the gate's
                // DPL is not checked against the CPL.
                self.deliver(v, None, m != M::Int1)?;
            }
            M::Iret | M::Iretd | M::Iretq => self.iret(i)?,
            M::Ud0 | M::Ud1 | M::Ud2 => return Err(Exception::UD),
            M::Lsl | M::Lar => {
                let sel = self.read_op(i, 1)? as u16;
                let mmu = crate::interp_mmu!(self);
                // `desc::read` reads the table as the CPU's own
                // (supervisor) access, whatever the CPL.
                let found = desc::read(&mmu, &mut self.st, sel, false);
                match found {
                    Ok(d)
                        if sel & !3 != 0
                            && desc::visible_to_lsl_lar(&d, m == M::Lar, self.st.cpl(), sel) =>
                    {
                        let v = if m == M::Lsl {
                            u64::from(d.limit)
                        } else {
                            (u64::from(d.type_) << 8)
                                | (u64::from(d.s) << 12)
                                | (u64::from(d.dpl) << 13)
                                | (u64::from(d.present) << 15)
                                | (u64::from(d.avl) << 20)
                                | (u64::from(d.l) << 21)
                                | (u64::from(d.db) << 22)
                                | (u64::from(d.g) << 23)
                        };
                        self.write_op(i, 0, v)?;
                        self.set_flags(ZF, ZF);
                    }
                    _ => self.set_flags(0, ZF),
                }
            }
            M::Verr | M::Verw => self.set_flags(ZF, ZF),
            M::Rdpid => {
                let v = self.st.msr.tsc_aux;
                self.write_op(i, 0, v)?;
            }
            M::Fninit | M::Wait | M::Emms => {
                return self.fpu(i);
            }
            _ => return self.fpu(i),
        }
        let _ = EFER_SCE;
        Ok(Outcome::Next)
    }
}

/// MOVSD/CMPSD with XMM operands are SSE2, not string instructions.
fn is_sse_form(i: &Instruction) -> bool {
    (i.mnemonic() == Mnemonic::Movsd || i.mnemonic() == Mnemonic::Cmpsd)
        && (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Register && i.op_register(n).is_xmm())
}

/// The count register of LOOP/JCXZ (by address size, which iced encodes
/// in the instruction's code name).
fn count_register(i: &Instruction) -> Register {
    let name = format!("{:?}", i.code());
    if name.ends_with("_RCX") {
        Register::RCX
    } else if name.ends_with("_ECX") {
        Register::ECX
    } else {
        Register::CX
    }
}

/// Address size of a string instruction, from its implicit memory operands.
fn string_addr_bits(i: &Instruction) -> u32 {
    for n in 0..i.op_count() {
        match i.op_kind(n) {
            OpKind::MemorySegSI | OpKind::MemoryESDI => return 16,
            OpKind::MemorySegESI | OpKind::MemoryESEDI => return 32,
            OpKind::MemorySegRSI | OpKind::MemoryESRDI => return 64,
            _ => {}
        }
    }
    match i.code_size() {
        iced_x86::CodeSize::Code16 => 16,
        iced_x86::CodeSize::Code32 => 32,
        _ => 64,
    }
}

/// The register of encoding `index` with `bytes` width.
pub fn sized(index: usize, bytes: usize) -> Register {
    let base = match bytes {
        1 => Register::AL,
        2 => Register::AX,
        4 => Register::EAX,
        _ => Register::RAX,
    };
    if bytes == 1 && (4..8).contains(&index) {
        // SPL..DIL (not AH..BH): only reached with REX; PUSHA never uses bytes.
        return Register::SPL;
    }
    // iced orders each width's registers in encoding order.
    let n = base as usize + index;
    iced_x86::Register::values().nth(n).unwrap_or(base)
}

/// Load `bytes` (1..=8) little-endian bytes of guest RAM.
///
/// # Safety
/// `p` must address `bytes` readable bytes of guest RAM.
#[inline(always)]
unsafe fn load(p: *const u8, bytes: usize) -> u64 {
    // SAFETY: the caller's contract; `shared_ram` makes it one host access.
    unsafe { shared_ram::load(p, bytes) }
}

/// Store the low `bytes` (1..=8) bytes of `v` to guest RAM, little-endian.
///
/// # Safety
/// `p` must address `bytes` writable bytes of guest RAM.
#[inline(always)]
unsafe fn store_bytes(p: *mut u8, v: u64, bytes: usize) {
    // SAFETY: as in `load`.
    unsafe { shared_ram::store(p, v, bytes) }
}
