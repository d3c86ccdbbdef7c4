//! Identity-mapped page tables for the 64-bit Linux entry.
//!
//! The 64-bit boot protocol needs the kernel, the zero page and the command line identity
//! mapped. We map the whole first 4 GiB with 2 MiB pages (1 GiB pages would need CPUID
//! `pdpe1gb`, which a backend may not advertise): one PML4 entry, four PDPT entries, four page
//! directories of 512 entries. No crate writes x86 page tables into guest memory for us.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::layout::{PDPT_ADDR, PD_ADDR, PML4_ADDR};

/// Present | writable.
const PTE_PRESENT_RW: u64 = 0x3;
/// Present | writable | page size (2 MiB leaf in a page directory).
const PDE_LARGE_PAGE: u64 = 0x83;
/// GiB mapped (one page directory each).
pub const IDENTITY_MAPPED_GIB: u64 = 4;

/// Errors writing page tables.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the boot page tables")]
pub struct PagingError(#[source] pub vm_memory::GuestMemoryError);

/// Writes the tables; returns the CR3 value (the PML4 address).
pub fn write_identity_page_tables(mem: &GuestMemoryMmap<()>) -> Result<u64, PagingError> {
    let mut pml4 = vec![0u8; 4096];
    pml4[..8].copy_from_slice(&(PDPT_ADDR | PTE_PRESENT_RW).to_le_bytes());
    mem.write_slice(&pml4, GuestAddress(PML4_ADDR))
        .map_err(PagingError)?;

    let mut pdpt = vec![0u8; 4096];
    for gib in 0..IDENTITY_MAPPED_GIB {
        let pd = PD_ADDR + gib * 0x1000;
        let at = (gib * 8) as usize;
        pdpt[at..at + 8].copy_from_slice(&(pd | PTE_PRESENT_RW).to_le_bytes());
    }
    mem.write_slice(&pdpt, GuestAddress(PDPT_ADDR))
        .map_err(PagingError)?;

    let mut pds = vec![0u8; (IDENTITY_MAPPED_GIB * 4096) as usize];
    for (i, entry) in pds.chunks_exact_mut(8).enumerate() {
        let phys = (i as u64) << 21;
        entry.copy_from_slice(&(phys | PDE_LARGE_PAGE).to_le_bytes());
    }
    mem.write_slice(&pds, GuestAddress(PD_ADDR))
        .map_err(PagingError)?;
    Ok(PML4_ADDR)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks the tables in guest memory like the MMU would for a 2 MiB mapping.
    fn translate(mem: &GuestMemoryMmap<()>, cr3: u64, va: u64) -> Option<u64> {
        let read = |a: u64| -> u64 { mem.read_obj(GuestAddress(a)).unwrap() };
        let pml4e = read(cr3 + ((va >> 39) & 0x1ff) * 8);
        if pml4e & 1 == 0 {
            return None;
        }
        let pdpte = read((pml4e & !0xfff) + ((va >> 30) & 0x1ff) * 8);
        if pdpte & 1 == 0 {
            return None;
        }
        let pde = read((pdpte & !0xfff) + ((va >> 21) & 0x1ff) * 8);
        if pde & 0x81 != 0x81 {
            return None;
        }
        Some((pde & !0x1f_ffff) | (va & 0x1f_ffff))
    }

    #[test]
    fn first_4g_is_identity_mapped() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        let cr3 = write_identity_page_tables(&mem).unwrap();
        assert_eq!(cr3, PML4_ADDR);
        for va in [
            0,
            0x7000,
            0x10_0200,
            0x100_0000,
            0xbfff_ffff,
            0xfee0_0000,
            0xffff_ffff,
        ] {
            assert_eq!(translate(&mem, cr3, va), Some(va), "{va:#x}");
        }
        assert_eq!(translate(&mem, cr3, 1 << 32), None);
    }
}
