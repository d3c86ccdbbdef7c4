//! What a BIOS would do for QEMU's `microvm` board, done directly: load the kernel and
//! initrd, write the boot structures (zero page or PVH start_info, e820, MP table or ACPI
//! tables, GDT, page tables) and describe the CPU state at the kernel's entry point.
//!
//! The board calls [`load`] once guest RAM exists; it returns a [`BootInfo`] whose
//! [`EntryState`] the vCPU backend copies into the boot processor's registers.

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
pub mod transport;
pub mod zero_page;

pub use boot::{load, BootConfig, BootInfo, FirmwareError, KernelFormat};
pub use entry::{EntryMode, EntryState};
pub use transport::VirtioMmioTransport;
