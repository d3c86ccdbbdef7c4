//! The compiled tier's host-page table: for each slot of the software TLB,
//! the physical page last accessed through it, that page's host address
//! when it is RAM, and its word in the code-page tracker (`codemap`).
//! Compiled code checks the TLB entry itself (tag and permissions, so it
//! never needs invalidating on TLB flushes) and then this table (the TLB
//! entry's physical page must be the cached one), and loads or stores
//! guest RAM directly; anything else takes the helper, which refills the
//! slot.
//!
//! Stores and the code-page tracker (self-modifying code). A compiled
//! store must be seen by the tracker exactly as the interpreter's
//! `write_la` is, so two rules hold:
//!
//! 1. The fill installs a *writable* entry (`wppn`) only for a page with
//!    no code marks at that moment (QEMU's rule for code pages), and never
//!    for a read-only (ROM) page, whose stores the helper drops: stores to
//!    a page that holds code take the helper, whose `write_la` reports the
//!    store (bumping the generation when it hits a code chunk).
//! 2. A page may gain code after its writable entry was cached (a block
//!    built later, by this vCPU or another one). So the inline store path
//!    also reads the page's tracker word *after* writing the bytes (the
//!    order the interpreter reports in) and, when the written chunks are
//!    marked, calls the `code_stored` helper, which reports the store
//!    (bumps the generation). No entry therefore has to be flushed when a
//!    block is built: a stale writable entry costs one load per store and
//!    is never wrong.
//!
//! After a store slot, compiled code then compares the running block's
//! page generation with the block's stamp and ends the block when it
//! changed, as `exec_slot` does; a compiled self-loop re-checks it before
//! every run.

use super::super::cpu::Cpu;
use super::super::mem::Access;

/// Slots (as the software TLB's).
pub const SLOTS: usize = 512;

/// One slot.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct HostPage {
    /// Physical page number for loads (`u64::MAX`: empty).
    pub ppn: u64,
    /// Physical page number for stores (`u64::MAX`: none; the page held
    /// code when the slot was filled).
    pub wppn: u64,
    /// Host address of the page.
    pub host: u64,
    /// Address of the page's word in the code-page tracker.
    pub code: u64,
    /// The page's index in the code-page tracker.
    pub page: u64,
}

/// Offset of `HostPage::ppn`.
pub const PPN: i32 = std::mem::offset_of!(HostPage, ppn) as i32;
/// Offset of `HostPage::wppn`.
pub const WPPN: i32 = std::mem::offset_of!(HostPage, wppn) as i32;
/// Offset of `HostPage::host`.
pub const HOST: i32 = std::mem::offset_of!(HostPage, host) as i32;
/// Offset of `HostPage::code`.
pub const CODE: i32 = std::mem::offset_of!(HostPage, code) as i32;
/// Offset of `HostPage::page`.
pub const PAGE: i32 = std::mem::offset_of!(HostPage, page) as i32;

/// The table.
#[derive(Debug)]
pub struct HostPages(pub Box<[HostPage; SLOTS]>);

impl Default for HostPages {
    fn default() -> Self {
        HostPages(Box::new(
            [HostPage {
                ppn: u64::MAX,
                wppn: u64::MAX,
                host: 0,
                code: 0,
                page: 0,
            }; SLOTS],
        ))
    }
}

impl Cpu {
    /// After an access at `la` went through the slow path: remember the
    /// host address of its page if the TLB now maps it to RAM, writable
    /// only if the page holds no code (rule 1 of the module doc).
    pub(super) fn fill_host_page(&mut self, la: u64) {
        let Some(pa) = self.st.tlb_hit(la, Access::Read) else {
            return;
        };
        let page = pa & !0xfff;
        let (Some(h), Some(index)) = (self.ram.host(page, 0x1000), self.ram.code().page(page))
        else {
            return;
        };
        let code = self.ram.code();
        let wppn = if code.has_code(index) || self.ram.is_read_only(page, 0x1000) {
            u64::MAX
        } else {
            page >> 12
        };
        let slot = ((la >> 12) as usize) % SLOTS;
        self.blocks.jit.host_pages.0[slot] = HostPage {
            ppn: page >> 12,
            wppn,
            host: h as u64,
            code: code.word_addr(index) as u64,
            page: index as u64,
        };
    }
}
