//! Guest memory as the CPU sees it: paging (32-bit, PAE, 4-level; A/D
//! bits, NX, WP, U/S, SMEP/SMAP) and physical accesses split between RAM
//! and MMIO.
//!
//! Page tables are shared with other vCPUs, which may change an entry
//! (clear Present, move the frame) between our read and our A/D update: an
//! entry is read with one atomic load and A (and D) are set with a
//! compare-and-swap against exactly the bits read (32-bit entries for
//! legacy paging, 64-bit for PAE and long mode). A failed swap restarts
//! the walk, so an entry we did not just read is never written.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use vm_memory::{Bytes, GuestAddress};

use super::privilege::CR4_SMEP;
use super::ram::RamMap;
use super::shared_ram;
use super::state::{CpuState, CR0_PG, CR0_WP, CR4_PAE, CR4_PSE, EFER_LMA, EFER_NXE};
use crate::{GuestMemory, IoBus};

/// An exception raised while executing an instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exception {
    /// Vector.
    pub vector: u8,
    /// Error code, for vectors that push one.
    pub error_code: Option<u32>,
}

impl Exception {
    /// #UD.
    pub const UD: Exception = Exception {
        vector: 6,
        error_code: None,
    };
    /// #DE.
    pub const DE: Exception = Exception {
        vector: 0,
        error_code: None,
    };

    /// #GP(code).
    pub fn gp(code: u32) -> Exception {
        Exception {
            vector: 13,
            error_code: Some(code),
        }
    }
}

/// Kind of access, for paging permission checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Data read.
    Read,
    /// Data write.
    Write,
    /// Instruction fetch.
    Exec,
}

/// Memory context of one instruction.
#[allow(missing_debug_implementations)]
pub struct Mmu<'a> {
    /// Guest RAM.
    pub mem: &'a GuestMemory,
    /// Direct host access to RAM (the fast path).
    pub ram: &'a RamMap,
    /// Everything else.
    pub io: &'a dyn IoBus,
    /// The vCPU index (for MMIO routing).
    pub vcpu: u32,
}

const P: u64 = 1;
const RW: u64 = 2;
const US: u64 = 4;
const A: u64 = 1 << 5;
const D: u64 = 1 << 6;
const PS: u64 = 1 << 7;
const NX: u64 = 1 << 63;
const ADDR: u64 = 0x000f_ffff_ffff_f000;

impl Mmu<'_> {
    /// Read physical memory (RAM or MMIO).
    pub fn phys_read(&self, gpa: u64, buf: &mut [u8]) {
        if !self.ram.read(gpa, buf) && self.mem.read_slice(buf, GuestAddress(gpa)).is_err() {
            self.io.mmio_read(self.vcpu, gpa, buf);
        }
    }

    /// Write physical memory (RAM or MMIO).
    pub fn phys_write(&self, gpa: u64, buf: &[u8]) {
        if self.ram.write(gpa, buf) {
            return;
        }
        if self.ram.is_read_only(gpa, buf.len()) {
            // ROM: the store goes to the bus, where nothing claims it.
            self.io.mmio_write(self.vcpu, gpa, buf);
        } else if self.mem.write_slice(buf, GuestAddress(gpa)).is_ok() {
            self.ram.code().written(gpa, buf.len() as u64);
        } else {
            self.io.mmio_write(self.vcpu, gpa, buf);
        }
    }

    /// Read a paging entry with one atomic load (entries are naturally
    /// aligned); outside RAM it reads as not present.
    fn read_pte(&self, gpa: u64, wide: bool) -> u64 {
        let n = if wide { 8 } else { 4 };
        match self.ram.host(gpa, n) {
            // SAFETY: `host` found `n` bytes of RAM at `p`.
            Some(p) => unsafe { shared_ram::load(p, n) },
            None => 0,
        }
    }

    /// Set A/D bits in a paging entry: swap `seen` (the bits just read)
    /// for `new` with one host compare-and-swap; false if the entry
    /// changed meanwhile (the walk must be redone). The write is reported
    /// to the code-page tracker, so code decoded from a page table page
    /// is invalidated too.
    pub fn update_pte(&self, gpa: u64, seen: u64, new: u64, wide: bool) -> bool {
        let n = if wide { 8 } else { 4 };
        let Some((p, store)) = self.ram.host_for_store(gpa, n) else {
            // Not RAM: nothing to update (`read_pte` saw it not present).
            return true;
        };
        if p as usize % n != 0 {
            // Guest RAM mappings are page aligned and entries naturally
            // aligned, so this cannot happen; never write a torn entry.
            return true;
        }
        // SAFETY: `p` addresses `n` aligned bytes of guest RAM, which is
        // only ever accessed through atomics and raw host accesses.
        let swapped = unsafe {
            if wide {
                AtomicU64::from_ptr(p.cast())
                    .compare_exchange(seen, new, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            } else {
                AtomicU32::from_ptr(p.cast())
                    .compare_exchange(seen as u32, new as u32, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            }
        };
        if swapped {
            self.ram.stored(store);
        }
        swapped
    }

    /// Translate a linear address; sets A (and D on writes) bits.
    pub fn translate(&self, cpu: &mut CpuState, la: u64, access: Access) -> Result<u64, Exception> {
        loop {
            if let Some(r) = self.translate_once(cpu, la, access) {
                return r;
            }
        }
    }

    /// One page walk: `None` when an entry changed under our A/D update
    /// (walk again).
    fn translate_once(
        &self,
        cpu: &mut CpuState,
        la: u64,
        access: Access,
    ) -> Option<Result<u64, Exception>> {
        if cpu.cr0 & CR0_PG == 0 {
            return Some(Ok(la & 0xffff_ffff));
        }
        let user = cpu.cpl() == 3 && !cpu.sys_access;
        let vpn = la >> 12;
        let slot = (vpn & 511) as usize;
        let e = cpu.tlb.0[slot];
        if e.tag == vpn + 1
            && (e.user == user || (!user && cpu.supervisor_may_use_user_page(access)))
            && match access {
                Access::Read => true,
                Access::Write => e.write,
                Access::Exec => e.exec,
            }
        {
            return Some(Ok((e.ppn << 12) | (la & 0xfff)));
        }
        let long = cpu.efer & EFER_LMA != 0;
        if long && ((la as i64) << 16 >> 16) as u64 != la {
            // A non-canonical address (it never reaches the TLB).
            return Some(Err(Exception::gp(0)));
        }
        let pae = cpu.cr4 & CR4_PAE != 0;
        let nxe = cpu.efer & EFER_NXE != 0;
        let fault = |present: bool| {
            let mut code = u32::from(present);
            if access == Access::Write {
                code |= 2;
            }
            if user {
                code |= 4;
            }
            if access == Access::Exec && ((nxe && (pae || long)) || cpu.cr4 & CR4_SMEP != 0) {
                code |= 16;
            }
            code
        };
        // (table, shift, index bits, large pages allowed)
        let levels: &[(u32, u64, bool)] = if long {
            &[
                (39, 0x1ff, false),
                (30, 0x1ff, true),
                (21, 0x1ff, true),
                (12, 0x1ff, false),
            ]
        } else if pae {
            &[(30, 3, false), (21, 0x1ff, true), (12, 0x1ff, false)]
        } else {
            &[(22, 0x3ff, true), (12, 0x3ff, false)]
        };
        let wide = long || pae;
        let mut table = if long {
            cpu.cr3 & ADDR
        } else if pae {
            cpu.cr3 & 0xffff_ffe0
        } else {
            cpu.cr3 & 0xffff_f000
        };
        let mut writable = true;
        let mut usr = true;
        let mut exec = true;
        // (entry address, entry) of each level walked so far.
        let mut walked = [(0u64, 0u64); 4];
        for (i, &(shift, mask, large_ok)) in levels.iter().enumerate() {
            let entry_addr = table + ((la >> shift) & mask) * if wide { 8 } else { 4 };
            let e = self.read_pte(entry_addr, wide);
            if e & P == 0 {
                cpu.cr2 = la;
                return Some(Err(Exception {
                    vector: 14,
                    error_code: Some(fault(false)),
                }));
            }
            let pdpte_legacy = pae && !long && i == 0;
            if !pdpte_legacy {
                writable &= e & RW != 0;
                usr &= e & US != 0;
                if nxe && e & NX != 0 {
                    exec = false;
                }
            }
            walked[i] = (entry_addr, e);
            let is_large = large_ok && e & PS != 0 && (wide || cpu.cr4 & CR4_PSE != 0);
            let last = i + 1 == levels.len();
            if is_large || last {
                let size = 1u64 << shift;
                let base = if !wide && is_large {
                    // 4 MiB page: bits 13-20 are physical bits 32-39.
                    (e & 0xffc0_0000) | ((e >> 13) & 0xff) << 32
                } else {
                    e & ADDR & !(size - 1)
                };
                let denied = (user && !usr)
                    || (!user && usr && !cpu.supervisor_may_use_user_page(access))
                    || (access == Access::Write && !writable && (user || cpu.cr0 & CR0_WP != 0))
                    || (access == Access::Exec && !exec);
                if denied {
                    cpu.cr2 = la;
                    return Some(Err(Exception {
                        vector: 14,
                        error_code: Some(fault(true)),
                    }));
                }
                for (k, &(addr, e)) in walked[..=i].iter().enumerate() {
                    let mut ne = e | A;
                    if k == i && access == Access::Write {
                        ne |= D;
                    }
                    if ne != e && !(pae && !long && k == 0) && !self.update_pte(addr, e, ne, wide) {
                        return None;
                    }
                }
                let pa = base | (la & (size - 1));
                cpu.tlb.0[slot] = super::state::TlbEntry {
                    tag: vpn + 1,
                    ppn: pa >> 12,
                    // Only a page writable at every level: a supervisor
                    // write with CR0.WP clear must not let user writes hit.
                    write: access == Access::Write && writable,
                    user: usr,
                    exec,
                };
                return Some(Ok(pa));
            }
            table = e & if wide { ADDR } else { 0xffff_f000 };
        }
        unreachable!("the last paging level always returns")
    }

    /// Read linear memory (may cross pages).
    pub fn read(
        &self,
        cpu: &mut CpuState,
        la: u64,
        buf: &mut [u8],
        access: Access,
    ) -> Result<(), Exception> {
        let first = (0x1000 - (la & 0xfff)) as usize;
        if buf.len() <= first {
            let pa = self.translate(cpu, la, access)?;
            self.phys_read(pa, buf);
            return Ok(());
        }
        let pa1 = self.translate(cpu, la, access)?;
        let pa2 = self.translate(cpu, la.wrapping_add(first as u64), access)?;
        let (a, b) = buf.split_at_mut(first);
        self.phys_read(pa1, a);
        self.phys_read(pa2, b);
        Ok(())
    }

    /// Write linear memory (may cross pages; both pages are checked first).
    pub fn write(&self, cpu: &mut CpuState, la: u64, buf: &[u8]) -> Result<(), Exception> {
        let first = (0x1000 - (la & 0xfff)) as usize;
        if buf.len() <= first {
            let pa = self.translate(cpu, la, Access::Write)?;
            self.phys_write(pa, buf);
            return Ok(());
        }
        let pa1 = self.translate(cpu, la, Access::Write)?;
        let pa2 = self.translate(cpu, la.wrapping_add(first as u64), Access::Write)?;
        self.phys_write(pa1, &buf[..first]);
        self.phys_write(pa2, &buf[first..]);
        Ok(())
    }
}
