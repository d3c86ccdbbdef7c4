//! Guest memory as the CPU sees it: paging (32-bit, PAE, 4-level; A/D
//! bits, NX, WP, U/S, SMEP/SMAP) and physical accesses split between RAM
//! and MMIO.

use vm_memory::{Bytes, GuestAddress};

use super::privilege::CR4_SMEP;
use super::ram::RamMap;
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
        if self.mem.write_slice(buf, GuestAddress(gpa)).is_ok() {
            self.ram.code().written(gpa, buf.len() as u64);
        } else {
            self.io.mmio_write(self.vcpu, gpa, buf);
        }
    }

    fn read_pte(&self, gpa: u64, wide: bool) -> u64 {
        let mut b = [0u8; 8];
        let n = if wide { 8 } else { 4 };
        if self.ram.read(gpa, &mut b[..n]) {
            return u64::from_le_bytes(b);
        }
        if wide {
            self.mem.read_obj::<u64>(GuestAddress(gpa)).unwrap_or(0)
        } else {
            u64::from(self.mem.read_obj::<u32>(GuestAddress(gpa)).unwrap_or(0))
        }
    }

    /// Write back a paging entry (A/D bits): through the RAM map, so
    /// code decoded from a page table page is invalidated too.
    fn write_pte(&self, gpa: u64, v: u64, wide: bool) {
        let n = if wide { 8 } else { 4 };
        if !self.ram.write(gpa, &v.to_le_bytes()[..n]) {
            let _ = self
                .mem
                .write_slice(&v.to_le_bytes()[..n], GuestAddress(gpa));
        }
    }

    /// Translate a linear address; sets A (and D on writes) bits.
    pub fn translate(&self, cpu: &mut CpuState, la: u64, access: Access) -> Result<u64, Exception> {
        if cpu.cr0 & CR0_PG == 0 {
            return Ok(la & 0xffff_ffff);
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
            return Ok((e.ppn << 12) | (la & 0xfff));
        }
        let long = cpu.efer & EFER_LMA != 0;
        if long && ((la as i64) << 16 >> 16) as u64 != la {
            // A non-canonical address (it never reaches the TLB).
            return Err(Exception::gp(0));
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
        let mut walked = Vec::with_capacity(4);
        for (i, &(shift, mask, large_ok)) in levels.iter().enumerate() {
            let entry_addr = table + ((la >> shift) & mask) * if wide { 8 } else { 4 };
            let e = self.read_pte(entry_addr, wide);
            if e & P == 0 {
                cpu.cr2 = la;
                return Err(Exception {
                    vector: 14,
                    error_code: Some(fault(false)),
                });
            }
            let pdpte_legacy = pae && !long && i == 0;
            if !pdpte_legacy {
                writable &= e & RW != 0;
                usr &= e & US != 0;
                if nxe && e & NX != 0 {
                    exec = false;
                }
            }
            walked.push((entry_addr, e));
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
                    return Err(Exception {
                        vector: 14,
                        error_code: Some(fault(true)),
                    });
                }
                let n = walked.len();
                for (k, (addr, e)) in walked.into_iter().enumerate() {
                    let mut ne = e | A;
                    if k + 1 == n && access == Access::Write {
                        ne |= D;
                    }
                    if ne != e && !(pae && !long && k == 0) {
                        self.write_pte(addr, ne, wide);
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
                return Ok(pa);
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
