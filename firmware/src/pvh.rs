//! The PVH `hvm_start_info` block (Xen's HVM direct boot ABI), filled as qboot's
//! `boot_pvh_from_fw_cfg` does: magic, version 1, the command line, the initrd as module 0,
//! the e820-derived memory map, and (what qboot leaves 0) the RSDP when ACPI is on.
//! The structs come from linux-loader; the layout addresses from [`crate::layout`].

use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::e820::E820Entry;
use crate::layout::{
    PVH_MEMMAP_ADDR, PVH_MEMMAP_MAX_ENTRIES, PVH_MODLIST_ADDR, PVH_START_INFO_ADDR,
};

/// `hvm_start_info.magic`.
pub const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;
/// The start_info version we write (1 = has the memory map fields).
pub const START_INFO_VERSION: u32 = 1;

/// Errors writing the PVH structures.
#[derive(Debug, thiserror::Error)]
pub enum PvhError {
    /// The memory map does not fit its slot.
    #[error("{0} memory map entries do not fit the PVH memmap area")]
    TooManyEntries(usize),
    /// Guest memory refused a write.
    #[error("cannot write the PVH start info")]
    Write(#[source] vm_memory::GuestMemoryError),
}

/// Builds the start_info for the fixed layout addresses.
pub fn build_start_info(
    cmdline_addr: u64,
    initrd: Option<(u64, u64)>,
    e820_len: usize,
    rsdp: Option<u64>,
) -> hvm_start_info {
    hvm_start_info {
        magic: XEN_HVM_START_MAGIC_VALUE,
        version: START_INFO_VERSION,
        flags: 0,
        nr_modules: u32::from(initrd.is_some()),
        modlist_paddr: if initrd.is_some() {
            PVH_MODLIST_ADDR
        } else {
            0
        },
        cmdline_paddr: cmdline_addr,
        rsdp_paddr: rsdp.unwrap_or(0),
        memmap_paddr: PVH_MEMMAP_ADDR,
        memmap_entries: e820_len as u32,
        reserved: 0,
    }
}

/// Writes start_info, the module list and the memory map; returns the start_info address
/// (the kernel's EBX).
pub fn write_start_info(
    mem: &GuestMemoryMmap<()>,
    cmdline_addr: u64,
    initrd: Option<(u64, u64)>,
    e820: &[E820Entry],
    rsdp: Option<u64>,
) -> Result<u64, PvhError> {
    if e820.len() > PVH_MEMMAP_MAX_ENTRIES {
        return Err(PvhError::TooManyEntries(e820.len()));
    }
    for (i, e) in e820.iter().enumerate() {
        let entry = hvm_memmap_table_entry {
            addr: e.addr,
            size: e.size,
            type_: e.kind as u32,
            reserved: 0,
        };
        let at = PVH_MEMMAP_ADDR + (i * std::mem::size_of::<hvm_memmap_table_entry>()) as u64;
        mem.write_obj(entry, GuestAddress(at))
            .map_err(PvhError::Write)?;
    }
    if let Some((paddr, size)) = initrd {
        let module = hvm_modlist_entry {
            paddr,
            size,
            cmdline_paddr: 0,
            reserved: 0,
        };
        mem.write_obj(module, GuestAddress(PVH_MODLIST_ADDR))
            .map_err(PvhError::Write)?;
    }
    let info = build_start_info(cmdline_addr, initrd, e820.len(), rsdp);
    mem.write_obj(info, GuestAddress(PVH_START_INFO_ADDR))
        .map_err(PvhError::Write)?;
    Ok(PVH_START_INFO_ADDR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e820::build_e820;

    fn r32(m: &GuestMemoryMmap<()>, a: u64) -> u32 {
        m.read_obj(GuestAddress(a)).unwrap()
    }
    fn r64(m: &GuestMemoryMmap<()>, a: u64) -> u64 {
        m.read_obj(GuestAddress(a)).unwrap()
    }

    #[test]
    fn start_info_bytes_follow_the_abi_layout() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        let e820 = build_e820(256 << 20).unwrap();
        let at = write_start_info(
            &mem,
            0x20000,
            Some((0xfe1_a000, 1234)),
            &e820,
            Some(0xe0000),
        )
        .unwrap();
        assert_eq!(at, 0x6000);
        // xen/include/public/arch-x86/hvm/start_info.h offsets.
        assert_eq!(r32(&mem, at), 0x336e_c578, "magic");
        assert_eq!(r32(&mem, at + 4), 1, "version");
        assert_eq!(r32(&mem, at + 8), 0, "flags");
        assert_eq!(r32(&mem, at + 12), 1, "nr_modules");
        assert_eq!(r64(&mem, at + 16), PVH_MODLIST_ADDR, "modlist_paddr");
        assert_eq!(r64(&mem, at + 24), 0x20000, "cmdline_paddr");
        assert_eq!(r64(&mem, at + 32), 0xe0000, "rsdp_paddr");
        assert_eq!(r64(&mem, at + 40), PVH_MEMMAP_ADDR, "memmap_paddr");
        assert_eq!(r32(&mem, at + 48), 5, "memmap_entries");
        assert_eq!(r64(&mem, PVH_MODLIST_ADDR), 0xfe1_a000);
        assert_eq!(r64(&mem, PVH_MODLIST_ADDR + 8), 1234);
        for (i, e) in e820.iter().enumerate() {
            let a = PVH_MEMMAP_ADDR + 24 * i as u64;
            assert_eq!(
                (r64(&mem, a), r64(&mem, a + 8), r32(&mem, a + 16)),
                (e.addr, e.size, e.kind as u32)
            );
        }
    }

    #[test]
    fn no_initrd_no_acpi() {
        let info = build_start_info(0x20000, None, 5, None);
        assert_eq!({ info.nr_modules }, 0);
        assert_eq!({ info.modlist_paddr }, 0);
        assert_eq!({ info.rsdp_paddr }, 0);
    }
}
