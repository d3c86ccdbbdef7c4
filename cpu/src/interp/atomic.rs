//! LOCK'd read-modify-writes that are atomic against every other access
//! to guest memory, plain stores of other vCPUs and devices included.
//!
//! A locked instruction runs against a private copy of its memory operand
//! (loaded atomically from the host mapping on first use); its result is
//! published with one host compare-and-swap. If another agent changed the
//! operand in between, the swap fails, the instruction's register effects
//! are rolled back and it runs again — the hardware's guarantee, built from
//! the host's. Locked instructions also exclude each other through one
//! process-wide lock, which alone covers the cases the host cannot swap
//! (split or 16-byte operands, MMIO).

use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};

use iced_x86::{Instruction, Mnemonic};

use super::cpu::Cpu;
use super::exec::Outcome;
use super::mem::{Access, Exception};

/// The operand of the locked instruction being executed.
#[derive(Debug, Clone, Copy)]
pub(super) enum LockedOperand {
    /// Not executing a locked instruction.
    Off,
    /// Locked, operand not touched yet: the first read claims it.
    Armed,
    /// Locked, operand claimed: accesses inside it use `cur`.
    Active {
        la: u64,
        len: usize,
        host: *mut u8,
        /// The operand's range, reported to the code-page tracker.
        store: super::ram::Store,
        old: u64,
        cur: u64,
        wrote: bool,
    },
    /// Locked, but the host cannot swap this operand: plain accesses
    /// under the process-wide lock.
    Fallback,
}

/// Load `len` bytes atomically.
///
/// # Safety
/// `p` must address `len` bytes of guest RAM, aligned to `len`.
unsafe fn atomic_load(p: *mut u8, len: usize) -> u64 {
    // SAFETY: the caller guarantees a valid, aligned location; guest RAM
    // is only ever accessed through raw pointers and atomics.
    unsafe {
        match len {
            1 => u64::from(AtomicU8::from_ptr(p).load(Ordering::SeqCst)),
            2 => u64::from(AtomicU16::from_ptr(p.cast()).load(Ordering::SeqCst)),
            4 => u64::from(AtomicU32::from_ptr(p.cast()).load(Ordering::SeqCst)),
            _ => AtomicU64::from_ptr(p.cast()).load(Ordering::SeqCst),
        }
    }
}

/// Swap `old` for `new` if the location still holds `old`.
///
/// # Safety
/// As for [`atomic_load`].
unsafe fn atomic_swap(p: *mut u8, len: usize, old: u64, new: u64) -> bool {
    let (s, f) = (Ordering::SeqCst, Ordering::SeqCst);
    // SAFETY: as in `atomic_load`.
    unsafe {
        match len {
            1 => AtomicU8::from_ptr(p)
                .compare_exchange(old as u8, new as u8, s, f)
                .is_ok(),
            2 => AtomicU16::from_ptr(p.cast())
                .compare_exchange(old as u16, new as u16, s, f)
                .is_ok(),
            4 => AtomicU32::from_ptr(p.cast())
                .compare_exchange(old as u32, new as u32, s, f)
                .is_ok(),
            _ => AtomicU64::from_ptr(p.cast())
                .compare_exchange(old, new, s, f)
                .is_ok(),
        }
    }
}

fn mask(len: usize) -> u64 {
    if len >= 8 {
        u64::MAX
    } else {
        (1u64 << (len * 8)) - 1
    }
}

impl Cpu {
    /// Execute a LOCK'd instruction (or XCHG with memory) atomically.
    pub(super) fn execute_locked(&mut self, i: &Instruction) -> Result<Outcome, Exception> {
        static BUS_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _bus = BUS_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let (gpr, rflags, rip) = (self.st.gpr, self.st.rflags, self.st.rip);
        loop {
            self.locked = LockedOperand::Armed;
            if i.mnemonic() == Mnemonic::Cmpxchg8b {
                // Two 4-byte halves: claim all 8 bytes up front.
                let la = self.mem_linear(i);
                if let Err(e) = self.claim(la, 8) {
                    self.locked = LockedOperand::Off;
                    return Err(e);
                }
            } else if i.mnemonic() == Mnemonic::Cmpxchg16b {
                self.locked = LockedOperand::Fallback;
            }
            let r = self.execute_unlocked(i);
            let op = std::mem::replace(&mut self.locked, LockedOperand::Off);
            let LockedOperand::Active {
                len,
                host,
                store,
                old,
                cur,
                wrote: true,
                ..
            } = op
            else {
                return r;
            };
            let outcome = r?;
            // SAFETY: `claim` checked that `host` is aligned RAM of `len`.
            if unsafe { atomic_swap(host, len, old, cur) } {
                self.ram.stored(store);
                return Ok(outcome);
            }
            // Another agent stored to the operand meanwhile: undo and redo.
            (self.st.gpr, self.st.rflags, self.st.rip) = (gpr, rflags, rip);
        }
    }

    /// Claim `len` bytes at `la` as the locked operand (write access is
    /// checked, A/D bits set); falls back when the host cannot swap them.
    fn claim(&mut self, la: u64, len: usize) -> Result<(), Exception> {
        let fits = matches!(len, 1 | 2 | 4 | 8) && la % len as u64 == 0;
        if !fits {
            self.locked = LockedOperand::Fallback;
            return Ok(());
        }
        let mmu = crate::interp_mmu!(self);
        let pa = mmu.translate(&mut self.st, la, Access::Write)?;
        match self.ram.host_for_store(pa, len) {
            Some((host, store)) => {
                // SAFETY: `host` is RAM of `len` bytes, aligned (la and pa
                // agree below the page size, and len divides it).
                let old = unsafe { atomic_load(host, len) };
                self.locked = LockedOperand::Active {
                    la,
                    len,
                    host,
                    store,
                    old,
                    cur: old,
                    wrote: false,
                };
            }
            None => self.locked = LockedOperand::Fallback,
        }
        Ok(())
    }

    /// A locked instruction's read: `Some` when served from the operand.
    pub(super) fn locked_read(&mut self, la: u64, bytes: usize) -> Result<Option<u64>, Exception> {
        if let LockedOperand::Armed = self.locked {
            self.claim(la, bytes)?;
        }
        if let LockedOperand::Active {
            la: base, len, cur, ..
        } = self.locked
        {
            let off = la.wrapping_sub(base);
            if off < len as u64 && bytes as u64 <= len as u64 - off {
                return Ok(Some((cur >> (off * 8)) & mask(bytes)));
            }
        }
        Ok(None)
    }

    /// A locked instruction's write: true when it went to the operand.
    pub(super) fn locked_write(&mut self, la: u64, v: u64, bytes: usize) -> bool {
        if let LockedOperand::Active {
            la: base,
            len,
            ref mut cur,
            ref mut wrote,
            ..
        } = self.locked
        {
            let off = la.wrapping_sub(base);
            if off < len as u64 && bytes as u64 <= len as u64 - off {
                let m = mask(bytes) << (off * 8);
                *cur = (*cur & !m) | ((v << (off * 8)) & m);
                *wrote = true;
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use iced_x86::code_asm::*;
    use vm_memory::{Bytes, GuestAddress};

    use crate::interp::cpu::{Cpu, Stop};
    use crate::interp::state::Seg;
    use crate::{Clock, ClockMode, GuestMemory};

    const N: u32 = 200_000;
    const COUNTER: u64 = 0x2000;

    /// A real-mode CPU at 0:`at` running `code` (placed there in `mem`).
    fn cpu(mem: &Arc<GuestMemory>, id: u32, at: u64, code: &[u8]) -> Cpu {
        mem.write_slice(code, GuestAddress(at)).unwrap();
        let clock = Arc::new(Clock::new(ClockMode::Host, 1_000_000));
        let mut c = Cpu::new(id, mem.clone(), clock);
        c.st.seg[Seg::Cs as usize].base = 0;
        c.st.seg[Seg::Cs as usize].selector = 0;
        c.st.rip = at;
        c
    }

    fn run_to_halt(mut c: Cpu) {
        loop {
            if let Ok((Some(Stop::Halt), _)) = c.step() {
                return;
            }
        }
    }

    fn assemble(at: u64, f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
        let mut a = CodeAssembler::new(16).unwrap();
        f(&mut a).unwrap();
        a.assemble(at).unwrap()
    }

    #[test]
    fn locked_add_never_loses_a_neighbours_plain_stores() {
        let mem = Arc::new(GuestMemory::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap());
        // vCPU 0: LOCK ADD to the low three bytes' counter, N times.
        let locked = assemble(0x100, |a| {
            let mut l = a.create_label();
            a.mov(ecx, N)?;
            a.set_label(&mut l)?;
            a.lock().add(dword_ptr(COUNTER), 1)?;
            a.dec(ecx)?;
            a.jnz(l)?;
            a.hlt()
        });
        // vCPU 1: plain (unlocked) increments of the same dword's top byte.
        let plain = assemble(0x800, |a| {
            let mut l = a.create_label();
            a.mov(ecx, N)?;
            a.set_label(&mut l)?;
            a.inc(byte_ptr(COUNTER + 3))?;
            a.dec(ecx)?;
            a.jnz(l)?;
            a.hlt()
        });
        let c0 = cpu(&mem, 0, 0x100, &locked);
        let c1 = cpu(&mem, 1, 0x800, &plain);
        let t0 = std::thread::spawn(move || run_to_halt(c0));
        let t1 = std::thread::spawn(move || run_to_halt(c1));
        t0.join().unwrap();
        t1.join().unwrap();
        let v: u32 = mem.read_obj(GuestAddress(COUNTER)).unwrap();
        assert_eq!(
            v & 0xff_ffff,
            N & 0xff_ffff,
            "locked increments lost: {v:#x}"
        );
        assert_eq!(
            v >> 24,
            N & 0xff,
            "plain stores overwritten by a locked RMW: {v:#x}"
        );
    }

    #[test]
    fn locked_instructions_of_two_vcpus_are_atomic() {
        let mem = Arc::new(GuestMemory::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap());
        let prog = |at| {
            assemble(at, |a| {
                let mut l = a.create_label();
                a.mov(ecx, N)?;
                a.set_label(&mut l)?;
                a.mov(eax, 1)?;
                a.lock().xadd(dword_ptr(COUNTER), eax)?;
                a.mov(ebx, 1)?;
                a.lock().bts(dword_ptr(COUNTER + 8), ebx)?;
                a.dec(ecx)?;
                a.jnz(l)?;
                a.hlt()
            })
        };
        let c0 = cpu(&mem, 0, 0x100, &prog(0x100));
        let c1 = cpu(&mem, 1, 0x800, &prog(0x800));
        let t0 = std::thread::spawn(move || run_to_halt(c0));
        let t1 = std::thread::spawn(move || run_to_halt(c1));
        t0.join().unwrap();
        t1.join().unwrap();
        let v: u32 = mem.read_obj(GuestAddress(COUNTER)).unwrap();
        assert_eq!(v, 2 * N);
        let bits: u32 = mem.read_obj(GuestAddress(COUNTER + 8)).unwrap();
        assert_eq!(bits, 2);
    }
}
