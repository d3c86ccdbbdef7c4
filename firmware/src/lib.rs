//! What a BIOS would do for QEMU's `microvm` board, done directly: load the kernel and
//! initrd, write the boot structures (zero page or PVH start_info, e820, MP table or ACPI
//! tables, GDT, page tables) and describe the CPU state at the kernel's entry point.
//!
//! The board calls [`load`] once guest RAM exists; it returns a [`BootInfo`] whose
//! [`EntryState`] the vCPU backend copies into the boot processor's registers.
//!
//! ```no_run
//! use firmware::{layout, load, BootConfig, VirtioMmioTransport};
//! use vm_memory::{GuestAddress, GuestMemoryMmap};
//!
//! let ram_size = 256 << 20;
//! let ranges: Vec<_> = layout::ram_ranges(ram_size)
//!     .into_iter()
//!     .map(|(start, len)| (GuestAddress(start), len as usize))
//!     .collect();
//! let mem = GuestMemoryMmap::<()>::from_ranges(&ranges).unwrap();
//! let kernel = std::fs::read("bzImage").unwrap();
//! let initrd = std::fs::read("initramfs.cpio").unwrap();
//! let info = load(
//!     &mem,
//!     &BootConfig {
//!         kernel: &kernel,
//!         initrd: Some(&initrd),
//!         cmdline: "console=ttyS0",
//!         ram_size,
//!         num_cpus: 1,
//!         acpi: false,
//!         ioapic2: false,
//!         rtc: true,
//!         serial: true,
//!         fw_cfg: false,
//!         // First -device lands on the highest slot; without ACPI, GSI = 5 + slot.
//!         transports: &[VirtioMmioTransport::slot(7, 12)],
//!     },
//! )
//! .unwrap();
//! assert_eq!(info.entry.rip, 0x10_0200);
//! ```
//!
//! Modules, in boot order: [`layout`] (addresses), [`e820`], [`bzimage`] / [`elf`] (kernel),
//! [`initrd`], [`cmdline`], [`acpi`] or [`mptable`], [`zero_page`] or [`pvh`], [`gdt`],
//! [`paging`], [`entry`]; [`boot`] runs them in that order. [`reset_rom`] is the BIOS area's
//! reset-vector code, which the board places itself (with or without a kernel).

#![forbid(unsafe_code)]

pub mod acpi;
pub mod boot;
pub mod bzimage;
pub mod cmdline;
pub mod e820;
pub mod elf;
pub mod entry;
pub mod gdt;
pub mod initrd;
pub mod layout;
pub mod mptable;
pub mod paging;
pub mod pvh;
pub mod reset_rom;
pub mod transport;
pub mod zero_page;

pub use boot::{load, BootConfig, BootInfo, FirmwareError, KernelFormat};
pub use entry::{EntryMode, EntryState};
pub use transport::VirtioMmioTransport;
