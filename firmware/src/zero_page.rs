//! The Linux zero page (`boot_params`) for the 64-bit boot protocol.
//!
//! The struct comes from linux-loader; the field values follow QEMU's `x86_load_linux`
//! header patching so the kernel sees what it would under QEMU:
//!
//! - `type_of_loader = 0xB0`: QEMU's loader id (high nibble B = QEMU), not 0xFF ("undefined"),
//!   because a guest may report or key on its boot loader (`/proc/sys/kernel/bootloader_type`)
//!   and we impersonate QEMU's direct kernel boot;
//! - `loadflags |= CAN_USE_HEAP`, `heap_end_ptr = 0xfe00` (QEMU: `cmdline_addr - real_addr -
//!   0x200` with the setup at 0x10000 and the command line at 0x20000);
//! - `cmd_line_ptr = 0x20000`; `ramdisk_image` / `ramdisk_size`;
//! - the e820 table, and `acpi_rsdp_addr` (protocol 2.14) when ACPI is on.

use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::e820::E820Entry;

/// QEMU's boot-loader id.
pub const TYPE_OF_LOADER_QEMU: u8 = 0xb0;
/// `loadflags` bit: `heap_end_ptr` is valid.
pub const CAN_USE_HEAP: u8 = 0x80;
/// QEMU's `heap_end_ptr`.
pub const HEAP_END_PTR: u16 = 0xfe00;
/// Entries the zero page's e820 table holds.
pub const E820_MAX_ENTRIES_ZEROPAGE: usize = 128;

/// What goes into the zero page besides the image's own header.
#[derive(Debug, Clone)]
pub struct ZeroPageParams<'a> {
    /// The bzImage setup header (from linux-loader, `code32_start` = load address).
    pub header: setup_header,
    /// Command line address.
    pub cmdline_addr: u64,
    /// initrd `(address, size)`.
    pub initrd: Option<(u64, u64)>,
    /// Memory map.
    pub e820: &'a [E820Entry],
    /// ACPI RSDP address, when ACPI is on.
    pub rsdp: Option<u64>,
}

/// Errors writing the zero page.
#[derive(Debug, thiserror::Error)]
pub enum ZeroPageError {
    /// More e820 entries than the zero page holds.
    #[error("{0} e820 entries do not fit the zero page (max 128)")]
    TooManyE820Entries(usize),
    /// An address does not fit the 32-bit header field.
    #[error("{what} at {addr:#x} is above 4 GiB, which the boot header cannot express")]
    AddressTooHigh {
        /// The field.
        what: &'static str,
        /// The address.
        addr: u64,
    },
    /// Guest memory refused the write.
    #[error("cannot write the zero page")]
    Write(#[source] vm_memory::GuestMemoryError),
}

fn u32_field(what: &'static str, addr: u64) -> Result<u32, ZeroPageError> {
    u32::try_from(addr).map_err(|_| ZeroPageError::AddressTooHigh { what, addr })
}

/// Fills a `boot_params` from `p`.
pub fn build_zero_page(p: &ZeroPageParams<'_>) -> Result<boot_params, ZeroPageError> {
    if p.e820.len() > E820_MAX_ENTRIES_ZEROPAGE {
        return Err(ZeroPageError::TooManyE820Entries(p.e820.len()));
    }
    let mut params = boot_params {
        hdr: p.header,
        ..Default::default()
    };
    params.hdr.type_of_loader = TYPE_OF_LOADER_QEMU;
    params.hdr.loadflags |= CAN_USE_HEAP;
    params.hdr.heap_end_ptr = HEAP_END_PTR;
    params.hdr.cmd_line_ptr = u32_field("command line", p.cmdline_addr)?;
    if let Some((addr, size)) = p.initrd {
        params.hdr.ramdisk_image = u32_field("initrd", addr)?;
        params.hdr.ramdisk_size = u32_field("initrd size", size)?;
    }
    for (slot, e) in params.e820_table.iter_mut().zip(p.e820) {
        *slot = boot_e820_entry {
            addr: e.addr,
            size: e.size,
            r#type: e.kind as u32,
        };
    }
    params.e820_entries = p.e820.len() as u8;
    params.acpi_rsdp_addr = p.rsdp.unwrap_or(0);
    Ok(params)
}

/// Builds and writes the zero page at `addr`.
pub fn write_zero_page(
    mem: &GuestMemoryMmap<()>,
    addr: u64,
    p: &ZeroPageParams<'_>,
) -> Result<boot_params, ZeroPageError> {
    let params = build_zero_page(p)?;
    mem.write_obj(params, GuestAddress(addr))
        .map_err(ZeroPageError::Write)?;
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e820::build_e820;

    fn header() -> setup_header {
        setup_header {
            setup_sects: 31,
            boot_flag: 0xaa55,
            header: 0x5372_6448,
            version: 0x20f,
            loadflags: 0x01,
            code32_start: 0x10_0000,
            cmdline_size: 2047,
            ..Default::default()
        }
    }

    fn read_u8(m: &GuestMemoryMmap<()>, a: u64) -> u8 {
        m.read_obj(GuestAddress(a)).unwrap()
    }
    fn read_u16(m: &GuestMemoryMmap<()>, a: u64) -> u16 {
        m.read_obj(GuestAddress(a)).unwrap()
    }
    fn read_u32(m: &GuestMemoryMmap<()>, a: u64) -> u32 {
        m.read_obj(GuestAddress(a)).unwrap()
    }
    fn read_u64(m: &GuestMemoryMmap<()>, a: u64) -> u64 {
        m.read_obj(GuestAddress(a)).unwrap()
    }

    #[test]
    fn fields_land_at_their_boot_protocol_offsets() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        let e820 = build_e820(256 << 20).unwrap();
        let p = ZeroPageParams {
            header: header(),
            cmdline_addr: 0x20000,
            initrd: Some((0xfe1_a000, 1_986_560)),
            e820: &e820,
            rsdp: Some(0xe0000),
        };
        write_zero_page(&mem, 0x7000, &p).unwrap();
        let zp = 0x7000;
        // Offsets from Documentation/arch/x86/boot.rst and zero-page.rst.
        assert_eq!(read_u64(&mem, zp + 0x070), 0xe0000, "acpi_rsdp_addr");
        assert_eq!(read_u8(&mem, zp + 0x1e8), 5, "e820_entries");
        assert_eq!(read_u8(&mem, zp + 0x1f1), 31, "setup_sects");
        assert_eq!(read_u16(&mem, zp + 0x1fe), 0xaa55, "boot_flag");
        assert_eq!(read_u32(&mem, zp + 0x202), 0x5372_6448, "HdrS");
        assert_eq!(read_u16(&mem, zp + 0x206), 0x20f, "version");
        assert_eq!(read_u8(&mem, zp + 0x210), 0xb0, "type_of_loader");
        assert_eq!(read_u8(&mem, zp + 0x211), 0x81, "loadflags");
        assert_eq!(read_u32(&mem, zp + 0x214), 0x10_0000, "code32_start");
        assert_eq!(read_u32(&mem, zp + 0x218), 0xfe1_a000, "ramdisk_image");
        assert_eq!(read_u32(&mem, zp + 0x21c), 1_986_560, "ramdisk_size");
        assert_eq!(read_u16(&mem, zp + 0x224), 0xfe00, "heap_end_ptr");
        assert_eq!(read_u32(&mem, zp + 0x228), 0x20000, "cmd_line_ptr");
        // e820_table at 0x2d0, 20 bytes per entry.
        for (i, e) in e820.iter().enumerate() {
            let at = zp + 0x2d0 + 20 * i as u64;
            assert_eq!(read_u64(&mem, at), e.addr);
            assert_eq!(read_u64(&mem, at + 8), e.size);
            assert_eq!(read_u32(&mem, at + 16), e.kind as u32);
        }
        assert_eq!(read_u64(&mem, zp + 0x2d0 + 20 * 5 + 8), 0);
    }

    #[test]
    fn no_acpi_and_no_initrd_leave_fields_zero() {
        let e820 = build_e820(64 << 20).unwrap();
        let params = build_zero_page(&ZeroPageParams {
            header: header(),
            cmdline_addr: 0x20000,
            initrd: None,
            e820: &e820,
            rsdp: None,
        })
        .unwrap();
        assert_eq!({ params.acpi_rsdp_addr }, 0);
        assert_eq!({ params.hdr.ramdisk_image }, 0);
        assert_eq!({ params.hdr.ramdisk_size }, 0);
    }

    #[test]
    fn high_addresses_and_huge_maps_are_refused() {
        let e820 = vec![e820_dummy(); 129];
        let err = build_zero_page(&ZeroPageParams {
            header: header(),
            cmdline_addr: 0x20000,
            initrd: None,
            e820: &e820,
            rsdp: None,
        })
        .unwrap_err();
        assert!(matches!(err, ZeroPageError::TooManyE820Entries(129)));
        let err = build_zero_page(&ZeroPageParams {
            header: header(),
            cmdline_addr: 0x20000,
            initrd: Some((1 << 32, 10)),
            e820: &e820[..1],
            rsdp: None,
        })
        .unwrap_err();
        assert!(matches!(err, ZeroPageError::AddressTooHigh { .. }));
    }

    fn e820_dummy() -> E820Entry {
        E820Entry {
            addr: 0,
            size: 1,
            kind: crate::e820::E820Type::Ram,
        }
    }
}
