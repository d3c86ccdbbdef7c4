//! Guest-physical memory map of QEMU's `microvm` board and where the firmware puts its
//! boot structures.
//!
//! The board half (RAM split, MMIO windows) follows QEMU `hw/i386/microvm.c` and
//! `include/hw/i386/microvm.h`; the firmware half (zero page, GDT, page tables, command line,
//! MP table, ACPI area) follows what qboot and QEMU's `x86_load_linux` use, so a guest sees
//! the same addresses it would see under QEMU wherever the kernel can observe them.
//!
//! Low-memory map written by this crate (all below 1 MiB, never overlapping):
//!
//! | range | what |
//! |---|---|
//! | `0x0500..0x0528` | GDT (5 descriptors) |
//! | `0x6000..0x6038` | PVH `hvm_start_info` |
//! | `0x6040..0x6060` | PVH module list (the initrd) |
//! | `0x6100..0x7000` | PVH memory map (up to 160 entries) |
//! | `0x7000..0x8000` | Linux zero page (`boot_params`) |
//! | `0x8000..0x8ff0` | boot stack (grows down from `0x8ff0`) |
//! | `0x9000..0xa000` | PML4 |
//! | `0xa000..0xb000` | PDPT |
//! | `0xb000..0xf000` | four page directories (2 MiB pages, first 4 GiB) |
//! | `0x20000..0x30000` | kernel command line |
//! | `0x9fc00..0xa0000` | MP floating pointer + configuration table (EBDA, reserved) |
//! | `0xe0000..0xf0000` | ACPI RSDP and tables (inside qboot's NVS range) |
//! | `0xf0000..0x100000` | the reset-vector ROM ([`crate::reset_rom`], placed by the board) |

/// RAM is mapped from 0 up to this size below 4 GiB; the rest goes above 4 GiB
/// (QEMU `microvm_memory_init`: `lowmem = 0xc0000000`).
pub const LOWMEM_LIMIT: u64 = 0xc000_0000;
/// Where RAM above `LOWMEM_LIMIT` is mapped.
pub const HIGHMEM_BASE: u64 = 0x1_0000_0000;
/// Start of "high" memory in the PC sense: kernels load at or above 1 MiB.
pub const HIMEM_START: u64 = 0x10_0000;

/// End of conventional memory that qboot reports as usable RAM (639 KiB).
pub const EBDA_START: u64 = 0x9_fc00;
/// End of the EBDA (start of the legacy VGA hole).
pub const EBDA_END: u64 = 0xa_0000;
/// qboot's ACPI-table area, reported as ACPI NVS.
pub const BIOS_NVS_START: u64 = 0xd_0000;
/// qboot's firmware area at the top of the first MiB, reported as reserved.
pub const BIOS_ROM_START: u64 = 0xf_0000;

/// GDT location.
pub const GDT_ADDR: u64 = 0x500;
/// PVH `hvm_start_info` location (as Firecracker and Cloud Hypervisor use).
pub const PVH_START_INFO_ADDR: u64 = 0x6000;
/// PVH module list location.
pub const PVH_MODLIST_ADDR: u64 = 0x6040;
/// PVH memory map location.
pub const PVH_MEMMAP_ADDR: u64 = 0x6100;
/// Most PVH memory-map entries that fit before the zero page.
pub const PVH_MEMMAP_MAX_ENTRIES: usize = ((ZERO_PAGE_ADDR - PVH_MEMMAP_ADDR) / 24) as usize;
/// Linux zero page (`boot_params`) location, as Firecracker uses.
pub const ZERO_PAGE_ADDR: u64 = 0x7000;
/// Initial stack pointer handed to the kernel.
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
/// Top-level page table (PML4) for the 64-bit entry.
pub const PML4_ADDR: u64 = 0x9000;
/// Page-directory-pointer table.
pub const PDPT_ADDR: u64 = 0xa000;
/// First of the four page directories (one per GiB identity-mapped).
pub const PD_ADDR: u64 = 0xb000;
/// Kernel command line, where QEMU puts it for boot protocol >= 2.02.
pub const CMDLINE_ADDR: u64 = 0x2_0000;
/// Room reserved for the command line (to the next 64 KiB boundary).
pub const CMDLINE_MAX_SIZE: usize = 0x1_0000;
/// MP floating pointer structure; Linux scans the last KiB of base memory.
pub const MPTABLE_ADDR: u64 = EBDA_START;
/// ACPI RSDP; Linux's BIOS-area scan covers `0xe0000..0x100000`.
pub const RSDP_ADDR: u64 = 0xe_0000;
/// End of the area that holds the ACPI tables.
pub const ACPI_AREA_END: u64 = BIOS_ROM_START;

/// virtio-mmio transport 0; transport n is at `VIRTIO_MMIO_BASE + n * VIRTIO_MMIO_SIZE`.
pub const VIRTIO_MMIO_BASE: u64 = 0xfeb0_0000;
/// Size of one virtio-mmio transport window.
pub const VIRTIO_MMIO_SIZE: u64 = 0x200;
/// Most transports QEMU creates (24 with the second IOAPIC).
pub const VIRTIO_MMIO_MAX_TRANSPORTS: u64 = 24;
/// ACPI Generic Event Device: event selector register (4 bytes).
pub const GED_MMIO_BASE: u64 = 0xfea0_0000;
/// GED hardware-reduced registers: +0 sleep control, +1 sleep status, +2 reset.
pub const GED_MMIO_BASE_REGS: u64 = GED_MMIO_BASE + 0x200;
/// GED sleep control register.
pub const GED_REG_SLEEP_CTL: u64 = GED_MMIO_BASE_REGS;
/// GED sleep status register.
pub const GED_REG_SLEEP_STS: u64 = GED_MMIO_BASE_REGS + 1;
/// GED reset register.
pub const GED_REG_RESET: u64 = GED_MMIO_BASE_REGS + 2;
/// Value the guest writes to the reset register to reset the machine.
pub const GED_RESET_VALUE: u8 = 0x42;
/// GED interrupt (GSI).
pub const GED_IRQ: u32 = 9;
/// First IOAPIC.
pub const IOAPIC_ADDR: u64 = 0xfec0_0000;
/// Second IOAPIC (ACPI only), GSIs 24..47.
pub const IOAPIC2_ADDR: u64 = 0xfec1_0000;
/// First GSI of the second IOAPIC.
pub const IOAPIC2_GSI_BASE: u32 = 24;
/// Local APIC.
pub const LAPIC_ADDR: u64 = 0xfee0_0000;
/// COM1 I/O port base.
pub const COM1_PORT: u16 = 0x3f8;
/// COM1 IRQ.
pub const COM1_IRQ: u8 = 4;
/// fw_cfg selector port (data at +1, DMA address at +4..+11).
pub const FW_CFG_PORT: u16 = 0x510;
/// I/O ports fw_cfg decodes with DMA enabled.
pub const FW_CFG_PORT_COUNT: u8 = 0x0c;
/// RTC I/O port base.
pub const RTC_PORT: u16 = 0x70;
/// RTC IRQ.
pub const RTC_IRQ: u8 = 8;

/// Splits a RAM size the way microvm does: `(below_4g, above_4g)`.
pub fn split_ram(ram_size: u64) -> (u64, u64) {
    if ram_size > LOWMEM_LIMIT {
        (LOWMEM_LIMIT, ram_size - LOWMEM_LIMIT)
    } else {
        (ram_size, 0)
    }
}

/// The guest-physical RAM ranges `(start, size)` for a RAM size, for building guest memory.
pub fn ram_ranges(ram_size: u64) -> Vec<(u64, u64)> {
    let (below, above) = split_ram(ram_size);
    let mut ranges = vec![(0, below)];
    if above > 0 {
        ranges.push((HIGHMEM_BASE, above));
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_ram_stays_below_4g() {
        assert_eq!(split_ram(256 << 20), (256 << 20, 0));
        assert_eq!(ram_ranges(256 << 20), vec![(0, 256 << 20)]);
    }

    #[test]
    fn large_ram_splits_at_3g() {
        let four_g = 4u64 << 30;
        assert_eq!(split_ram(four_g), (LOWMEM_LIMIT, 1 << 30));
        assert_eq!(
            ram_ranges(four_g),
            vec![(0, LOWMEM_LIMIT), (HIGHMEM_BASE, 1 << 30)]
        );
        // Exactly 3 GiB needs no high range.
        assert_eq!(ram_ranges(LOWMEM_LIMIT), vec![(0, LOWMEM_LIMIT)]);
    }

    #[test]
    fn low_structures_do_not_overlap() {
        let regions = [
            (GDT_ADDR, 0x28),
            (PVH_START_INFO_ADDR, 0x38),
            (PVH_MODLIST_ADDR, 0x20),
            (PVH_MEMMAP_ADDR, PVH_MEMMAP_MAX_ENTRIES as u64 * 24),
            (ZERO_PAGE_ADDR, 0x1000),
            (PML4_ADDR, 0x1000),
            (PDPT_ADDR, 0x1000),
            (PD_ADDR, 0x4000),
            (CMDLINE_ADDR, CMDLINE_MAX_SIZE as u64),
            (MPTABLE_ADDR, EBDA_END - MPTABLE_ADDR),
            (RSDP_ADDR, ACPI_AREA_END - RSDP_ADDR),
        ];
        for (i, a) in regions.iter().enumerate() {
            for b in regions.iter().skip(i + 1) {
                let disjoint = a.0 + a.1 <= b.0 || b.0 + b.1 <= a.0;
                assert!(disjoint, "{a:x?} overlaps {b:x?}");
            }
            assert!(a.0 + a.1 <= HIMEM_START);
        }
        const { assert!(BOOT_STACK_POINTER < PML4_ADDR && BOOT_STACK_POINTER > ZERO_PAGE_ADDR + 0x1000) };
    }
}
