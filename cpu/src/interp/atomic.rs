//! LOCK'd read-modify-writes that are atomic against every other access
//! to guest memory, plain stores of other vCPUs and devices included.
//!
//! A locked instruction runs against a private copy of its memory operand
//! (loaded from the host mapping on first use); its result is published
//! with one host compare-and-swap (1, 2, 4, 8 bytes, and 16 for
//! CMPXCHG16B with the host's `cmpxchg16b`). If another agent changed the
//! operand in between, the swap fails, the instruction's register effects
//! are rolled back and it runs again — the hardware's guarantee, built from
//! the host's. Locked instructions of different vCPUs run in parallel;
//! only those the host cannot swap (split operands, MMIO) take the bus
//! lock (`buslock`) and run alone, with plain accesses.

use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};

use iced_x86::{Instruction, Mnemonic};

use super::buslock::Hold;
use super::cpu::Cpu;
use super::exec::Outcome;
use super::mem::{Access, Exception};
use super::shared_ram;

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
        old: u128,
        cur: u128,
        wrote: bool,
    },
    /// Locked, but the host cannot swap this operand: plain accesses
    /// under the exclusive bus lock.
    Fallback,
}

/// Swap `old` for `new` if the location still holds `old`.
///
/// # Safety
/// `p` must address `len` (1, 2, 4, 8 or, where [`can_swap_16`], 16)
/// bytes of guest RAM, aligned to `len`.
unsafe fn atomic_swap(p: *mut u8, len: usize, old: u128, new: u128) -> bool {
    let (s, f) = (Ordering::SeqCst, Ordering::SeqCst);
    // SAFETY: the caller guarantees a valid, aligned location; guest RAM
    // is only ever accessed through raw pointers and atomics.
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
            8 => AtomicU64::from_ptr(p.cast())
                .compare_exchange(old as u64, new as u64, s, f)
                .is_ok(),
            _ => swap_16(p, old, new),
        }
    }
}

/// Whether the host has a 16-byte compare-and-swap.
fn can_swap_16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("cmpxchg16b")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// 16-byte compare-and-swap.
///
/// # Safety
/// `p` must address 16 bytes of guest RAM, 16-byte aligned, and the host
/// must have the instruction ([`can_swap_16`]).
#[cfg(target_arch = "x86_64")]
unsafe fn swap_16(p: *mut u8, old: u128, new: u128) -> bool {
    let (prev_lo, prev_hi): (u64, u64);
    // SAFETY: the caller's contract (and the feature was detected). RBX
    // is reserved by the compiler, so the new low half is swapped into it
    // around the instruction and RBX restored.
    unsafe {
        std::arch::asm!(
            "xchg {new_lo}, rbx",
            "lock cmpxchg16b xmmword ptr [{p}]",
            "xchg {new_lo}, rbx",
            p = in(reg) p,
            new_lo = inout(reg) new as u64 => _,
            inout("rax") old as u64 => prev_lo,
            inout("rdx") (old >> 64) as u64 => prev_hi,
            in("rcx") (new >> 64) as u64,
            options(nostack)
        );
    }
    (u128::from(prev_hi) << 64 | u128::from(prev_lo)) == old
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn swap_16(_p: *mut u8, _old: u128, _new: u128) -> bool {
    unreachable!("16-byte operands take the bus lock on this host")
}

fn mask(len: usize) -> u128 {
    if len >= 16 {
        u128::MAX
    } else {
        (1u128 << (len * 8)) - 1
    }
}

impl Cpu {
    /// Execute a LOCK'd instruction (or XCHG with memory) atomically.
    pub(super) fn execute_locked(&mut self, i: &Instruction) -> Result<Outcome, Exception> {
        let (gpr, rflags, rip) = (self.st.gpr, self.st.rflags, self.st.rip);
        loop {
            self.locked = LockedOperand::Armed;
            let r = self.run_locked(i);
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
                self.bus.release();
                return r;
            };
            let outcome = match r {
                Ok(o) => o,
                Err(e) => {
                    self.bus.release();
                    return Err(e);
                }
            };
            // SAFETY: `claim` checked that `host` is aligned RAM of `len`.
            let swapped = unsafe { atomic_swap(host, len, old, cur) };
            self.bus.release();
            if swapped {
                #[cfg(not(target_arch = "x86_64"))]
                shared_ram::full_fence();
                self.ram.stored(store);
                return Ok(outcome);
            }
            // Another agent stored to the operand meanwhile: undo and redo.
            (self.st.gpr, self.st.rflags, self.st.rip) = (gpr, rflags, rip);
        }
    }

    /// One attempt: claim the operand of CMPXCHG8B/16B up front (their
    /// halves are accessed separately), then execute.
    fn run_locked(&mut self, i: &Instruction) -> Result<Outcome, Exception> {
        let whole = match i.mnemonic() {
            Mnemonic::Cmpxchg8b => 8,
            Mnemonic::Cmpxchg16b => 16,
            _ => 0,
        };
        if whole != 0 {
            let la = self.mem_linear(i);
            self.claim(la, whole)?;
        }
        self.execute_unlocked(i)
    }

    /// Claim `len` bytes at `la` as the locked operand (write access is
    /// checked, A/D bits set) and mark it in flight; takes the whole bus
    /// when the host cannot swap them.
    fn claim(&mut self, la: u64, len: usize) -> Result<(), Exception> {
        let fits =
            (matches!(len, 1 | 2 | 4 | 8) || (len == 16 && can_swap_16())) && la % len as u64 == 0;
        if fits {
            let mmu = crate::interp_mmu!(self);
            let pa = mmu.translate(&mut self.st, la, Access::Write)?;
            if let Some((host, store)) = self.ram.host_for_store(pa, len) {
                self.bus = Hold::shared(self.id);
                // SAFETY: `host` is RAM of `len` bytes (la and pa agree
                // below the page size, and len divides it). A torn 16-byte
                // value only makes the final swap fail and the
                // instruction run again.
                let old = unsafe {
                    if len == 16 {
                        u128::from(shared_ram::load(host, 8))
                            | u128::from(shared_ram::load(host.add(8), 8)) << 64
                    } else {
                        u128::from(shared_ram::load(host, len))
                    }
                };
                self.locked = LockedOperand::Active {
                    la,
                    len,
                    host,
                    store,
                    old,
                    cur: old,
                    wrote: false,
                };
                return Ok(());
            }
        }
        // Nothing was written yet: take the whole bus for plain accesses.
        self.bus = Hold::exclusive();
        self.locked = LockedOperand::Fallback;
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
                return Ok(Some(((cur >> (off * 8)) & mask(bytes)) as u64));
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
                *cur = (*cur & !m) | ((u128::from(v) << (off * 8)) & m);
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

    #[test]
    fn the_16_byte_swap_is_atomic_across_threads() {
        if !super::can_swap_16() {
            eprintln!("skipping: the host has no 16-byte compare-and-swap");
            return;
        }
        #[repr(align(16))]
        struct Cell(std::cell::UnsafeCell<u128>);
        // SAFETY: only accessed through `swap_16` and `shared_ram::load`.
        unsafe impl Sync for Cell {}
        let cell = Arc::new(Cell(std::cell::UnsafeCell::new(0)));
        let step = (1u128 << 64) | 1;
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let cell = cell.clone();
                std::thread::spawn(move || {
                    let p = cell.0.get().cast::<u8>();
                    for _ in 0..20_000 {
                        loop {
                            // SAFETY: `p` is 16 aligned bytes; a torn read
                            // only makes the swap fail.
                            let old = unsafe {
                                u128::from(crate::interp::shared_ram::load(p, 8))
                                    | u128::from(crate::interp::shared_ram::load(p.add(8), 8)) << 64
                            };
                            // SAFETY: as above.
                            if unsafe { super::swap_16(p, old, old + step) } {
                                break;
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // SAFETY: every thread has finished.
        assert_eq!(unsafe { *cell.0.get() }, 80_000 * step);
    }
}
