//! The compiled tier's host-page table: for each slot of the software TLB,
//! the physical page last accessed through it and that page's host address
//! when it is RAM. Compiled code checks the TLB entry itself (tag and
//! permissions, so it never needs invalidating on TLB flushes) and then
//! this table (the TLB entry's physical page must be the cached one), and
//! loads or stores guest RAM directly; anything else takes the helper,
//! which refills the slot.

use super::super::cpu::Cpu;
use super::super::mem::Access;

/// Slots (as the software TLB's).
pub const SLOTS: usize = 512;

/// One slot.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct HostPage {
    /// Physical page number (`u64::MAX`: empty).
    pub ppn: u64,
    /// Host address of the page.
    pub host: u64,
}

/// Offset of `HostPage::ppn`.
pub const PPN: i32 = std::mem::offset_of!(HostPage, ppn) as i32;
/// Offset of `HostPage::host`.
pub const HOST: i32 = std::mem::offset_of!(HostPage, host) as i32;

/// The table.
#[derive(Debug)]
pub struct HostPages(pub Box<[HostPage; SLOTS]>);

impl Default for HostPages {
    fn default() -> Self {
        HostPages(Box::new(
            [HostPage {
                ppn: u64::MAX,
                host: 0,
            }; SLOTS],
        ))
    }
}

impl Cpu {
    /// After an access at `la` went through the slow path: remember the
    /// host address of its page if the TLB now maps it to RAM.
    pub(super) fn fill_host_page(&mut self, la: u64) {
        let Some(pa) = self.st.tlb_hit(la, Access::Read) else {
            return;
        };
        let page = pa & !0xfff;
        if let Some(h) = self.ram.host(page, 0x1000) {
            let slot = ((la >> 12) as usize) % SLOTS;
            self.blocks.jit.host_pages.0[slot] = HostPage {
                ppn: page >> 12,
                host: h as u64,
            };
        }
    }
}
