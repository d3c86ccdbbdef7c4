//! The one entry point the board calls: load the kernel and initrd, write every boot
//! structure, and return the CPU entry state.

use vm_memory::GuestMemoryMmap;

use crate::acpi::{write_acpi_tables, AcpiConfig, AcpiError};
use crate::bzimage::{is_bzimage, load_bzimage, BzImageError};
use crate::cmdline::{build_cmdline, write_cmdline, CmdlineError};
use crate::e820::{build_e820, E820Entry, E820Error};
use crate::elf::{is_elf, load_elf, ElfError};
use crate::entry::EntryState;
use crate::gdt::{write_gdt, GdtError};
use crate::initrd::{place_initrd, write_initrd, InitrdError, InitrdLimit};
use crate::layout::{split_ram, CMDLINE_ADDR, CMDLINE_MAX_SIZE, MPTABLE_ADDR, ZERO_PAGE_ADDR};
use crate::mptable::{write_mptable, MpTableError};
use crate::paging::{write_identity_page_tables, PagingError};
use crate::pvh::{write_start_info, PvhError};
use crate::transport::VirtioMmioTransport;
use crate::zero_page::{write_zero_page, ZeroPageError, ZeroPageParams};

/// Command-line limit of boot protocols before 2.06, which have no `cmdline_size` field.
const OLD_PROTOCOL_CMDLINE_MAX: usize = 255;

/// Everything the firmware needs to know about the machine and what to boot.
#[derive(Debug, Clone, Copy)]
pub struct BootConfig<'a> {
    /// The kernel file's bytes (bzImage, or an ELF with a PVH note).
    pub kernel: &'a [u8],
    /// The initrd file's bytes, if any.
    pub initrd: Option<&'a [u8]>,
    /// The `-append` text.
    pub cmdline: &'a str,
    /// Guest RAM in bytes (`-m`); guest memory must already map [`crate::layout::ram_ranges`].
    pub ram_size: u64,
    /// Number of vCPUs (`-smp`).
    pub num_cpus: u32,
    /// ACPI on: write ACPI tables; off: write an MP table and announce the transports on the
    /// command line.
    pub acpi: bool,
    /// The second IOAPIC exists (QEMU: on with ACPI unless `ioapic2=off`); only the MADT uses it.
    pub ioapic2: bool,
    /// An RTC exists (listed in the DSDT).
    pub rtc: bool,
    /// The ISA serial port COM1 exists (listed in the DSDT).
    pub serial: bool,
    /// The board implements QEMU's fw_cfg at ports 0x510-0x51b (listed in the DSDT).
    pub fw_cfg: bool,
    /// Populated virtio-mmio transports: in the DSDT with ACPI, on the command line without
    /// (pass an empty slice for QEMU's `auto-kernel-cmdline=off`).
    pub transports: &'a [VirtioMmioTransport],
}

/// Which boot protocol the kernel is entered through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelFormat {
    /// bzImage, Linux 64-bit boot protocol.
    BzImage,
    /// ELF with a PVH note, Xen HVM direct boot ABI.
    PvhElf,
}

/// Where everything landed, and how to start the boot CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootInfo {
    /// The boot vCPU's register state at the kernel entry.
    pub entry: EntryState,
    /// The kernel's format.
    pub format: KernelFormat,
    /// Guest-physical `[start, end)` the kernel occupies (for a bzImage, including the area
    /// it decompresses into).
    pub kernel_range: (u64, u64),
    /// `(address, size)` of the initrd.
    pub initrd: Option<(u64, u64)>,
    /// Address of the NUL-terminated command line.
    pub cmdline_addr: u64,
    /// The command line as the kernel receives it.
    pub cmdline: String,
    /// The memory map handed to the kernel.
    pub e820: Vec<E820Entry>,
    /// The ACPI RSDP, with ACPI on.
    pub rsdp: Option<u64>,
    /// The MP floating pointer, with ACPI off.
    pub mptable: Option<u64>,
}

/// Why booting could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    /// QEMU's message for an empty kernel file.
    #[error("could not load kernel: the file is empty")]
    EmptyKernel,
    /// Neither a bzImage nor an ELF.
    #[error("not a Linux kernel: no boot protocol header (\"HdrS\" at 0x202) and no ELF header")]
    NotAKernel,
    /// Memory map.
    #[error(transparent)]
    E820(#[from] E820Error),
    /// bzImage loading.
    #[error(transparent)]
    BzImage(#[from] BzImageError),
    /// ELF loading.
    #[error(transparent)]
    Elf(#[from] ElfError),
    /// initrd placement.
    #[error(transparent)]
    Initrd(#[from] InitrdError),
    /// Command line.
    #[error(transparent)]
    Cmdline(#[from] CmdlineError),
    /// Zero page.
    #[error(transparent)]
    ZeroPage(#[from] ZeroPageError),
    /// PVH start info.
    #[error(transparent)]
    Pvh(#[from] PvhError),
    /// MP table.
    #[error(transparent)]
    MpTable(#[from] MpTableError),
    /// ACPI tables.
    #[error(transparent)]
    Acpi(#[from] AcpiError),
    /// GDT.
    #[error(transparent)]
    Gdt(#[from] GdtError),
    /// Page tables.
    #[error(transparent)]
    Paging(#[from] PagingError),
}

/// The loaded kernel, before boot parameters exist.
enum Loaded {
    BzImage(crate::bzimage::LoadedBzImage),
    Pvh(crate::elf::LoadedElf),
}

/// Loads the kernel and initrd into `mem` and writes all boot structures.
pub fn load(mem: &GuestMemoryMmap<()>, cfg: &BootConfig<'_>) -> Result<BootInfo, FirmwareError> {
    let e820 = build_e820(cfg.ram_size)?;
    let (below_4g, _) = split_ram(cfg.ram_size);

    if cfg.kernel.is_empty() {
        return Err(FirmwareError::EmptyKernel);
    }
    let loaded = if is_bzimage(cfg.kernel) {
        Loaded::BzImage(load_bzimage(mem, cfg.kernel, below_4g)?)
    } else if is_elf(cfg.kernel) {
        Loaded::Pvh(load_elf(mem, cfg.kernel, below_4g)?)
    } else {
        return Err(FirmwareError::NotAKernel);
    };
    let (format, kernel_range, initrd_limit, cmdline_max) = match &loaded {
        Loaded::BzImage(k) => {
            let h = k.header;
            let max = if h.version >= 0x206 {
                (h.cmdline_size as usize).min(CMDLINE_MAX_SIZE - 1)
            } else {
                OLD_PROTOCOL_CMDLINE_MAX
            };
            let limit = InitrdLimit::BzImage {
                protocol: h.version,
                initrd_addr_max: h.initrd_addr_max,
                xloadflags: h.xloadflags,
            };
            (KernelFormat::BzImage, (k.load_addr, k.end), limit, max)
        }
        Loaded::Pvh(k) => (
            KernelFormat::PvhElf,
            (k.start, k.end),
            InitrdLimit::Pvh,
            CMDLINE_MAX_SIZE - 1,
        ),
    };

    let initrd = match cfg.initrd {
        Some(data) => {
            let size = data.len() as u64;
            let addr = place_initrd(below_4g, initrd_limit, size, kernel_range.1)?;
            write_initrd(mem, addr, data)?;
            Some((addr, size))
        }
        None => None,
    };

    let announced: &[VirtioMmioTransport] = if cfg.acpi { &[] } else { cfg.transports };
    let cmdline = build_cmdline(cfg.cmdline, cmdline_max, announced)?;
    let cmdline_text = write_cmdline(mem, CMDLINE_ADDR, &cmdline)?;

    let (rsdp, mptable) = if cfg.acpi {
        let tables = write_acpi_tables(
            mem,
            &AcpiConfig {
                fw_cfg: cfg.fw_cfg,
                num_cpus: cfg.num_cpus,
                ioapic2: cfg.ioapic2,
                rtc: cfg.rtc,
                serial: cfg.serial,
                transports: cfg.transports,
            },
        )?;
        (Some(tables.rsdp), None)
    } else {
        write_mptable(mem, cfg.num_cpus)?;
        (None, Some(MPTABLE_ADDR))
    };

    write_gdt(mem)?;
    let entry = match &loaded {
        Loaded::BzImage(k) => {
            write_zero_page(
                mem,
                ZERO_PAGE_ADDR,
                &ZeroPageParams {
                    header: k.header,
                    cmdline_addr: CMDLINE_ADDR,
                    initrd,
                    e820: &e820,
                    rsdp,
                },
            )?;
            let cr3 = write_identity_page_tables(mem)?;
            EntryState::long64(k.entry64, ZERO_PAGE_ADDR, cr3)
        }
        Loaded::Pvh(k) => {
            let start_info = write_start_info(mem, CMDLINE_ADDR, initrd, &e820, rsdp)?;
            EntryState::pvh(k.pvh_entry, start_info)
        }
    };

    log::info!(
        "firmware: {format:?} kernel at [{:#x}, {:#x}), entry {:#x}, initrd {initrd:x?}, acpi {}",
        kernel_range.0,
        kernel_range.1,
        entry.rip,
        cfg.acpi
    );
    Ok(BootInfo {
        entry,
        format,
        kernel_range,
        initrd,
        cmdline_addr: CMDLINE_ADDR,
        cmdline: cmdline_text,
        e820,
        rsdp,
        mptable,
    })
}

#[cfg(test)]
mod tests;
