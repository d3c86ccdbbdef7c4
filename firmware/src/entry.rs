//! The CPU state at the kernel's entry point, as plain data a backend copies into registers.
//!
//! Two shapes, one struct: every field is meaningful in both modes, so a backend sets all of
//! them unconditionally. Registers not listed (RAX, RCX, RDX, RDI, RBP, R8-R15, CR2, CR8) are
//! zero; the APIC base MSR keeps its reset value.

use crate::gdt::{
    boot_gdtr, boot_segment, DescriptorTable, Segment, SELECTOR_CODE32, SELECTOR_CODE64,
    SELECTOR_DATA, SELECTOR_TSS,
};
use crate::layout::BOOT_STACK_POINTER;

/// CR0.PE: protected mode.
pub const CR0_PE: u64 = 1 << 0;
/// CR0.ET: extension type (always 1 on modern CPUs).
pub const CR0_ET: u64 = 1 << 4;
/// CR0.PG: paging.
pub const CR0_PG: u64 = 1 << 31;
/// CR4.PAE: physical address extension (required by long mode).
pub const CR4_PAE: u64 = 1 << 5;
/// EFER.LME: long mode enable.
pub const EFER_LME: u64 = 1 << 8;
/// EFER.LMA: long mode active.
pub const EFER_LMA: u64 = 1 << 10;
/// RFLAGS with only the reserved bit 1 set (interrupts off).
pub const RFLAGS_RESERVED: u64 = 0x2;

/// Which boot protocol the entry follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryMode {
    /// PVH: 32-bit protected mode, paging off, EBX = `hvm_start_info`.
    Protected32,
    /// Linux 64-bit boot protocol: long mode, identity paging, RSI = zero page.
    Long64,
}

/// Everything a backend needs to start the boot vCPU at the kernel entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryState {
    /// The protocol, for logging and sanity checks.
    pub mode: EntryMode,
    /// Instruction pointer.
    pub rip: u64,
    /// Stack pointer (a scratch stack in low memory; neither protocol requires one).
    pub rsp: u64,
    /// RSI: the zero page for `Long64`, 0 for `Protected32`.
    pub rsi: u64,
    /// RBX: `hvm_start_info` for `Protected32`, 0 for `Long64`.
    pub rbx: u64,
    /// RFLAGS.
    pub rflags: u64,
    /// CR0.
    pub cr0: u64,
    /// CR3 (the PML4 for `Long64`; 0 with paging off).
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// IA32_EFER.
    pub efer: u64,
    /// CS.
    pub cs: Segment,
    /// DS.
    pub ds: Segment,
    /// ES.
    pub es: Segment,
    /// FS.
    pub fs: Segment,
    /// GS.
    pub gs: Segment,
    /// SS.
    pub ss: Segment,
    /// Task register.
    pub tr: Segment,
    /// LDT register (unusable).
    pub ldt: Segment,
    /// GDTR (the boot GDT this crate wrote).
    pub gdt: DescriptorTable,
    /// IDTR: empty (base 0, limit 0); both kernels load their own before enabling interrupts.
    pub idt: DescriptorTable,
}

fn unusable_ldt() -> Segment {
    Segment {
        type_: 0x2,
        unusable: true,
        ..Default::default()
    }
}

impl EntryState {
    fn with_code(mode: EntryMode, rip: u64, code_selector: u16) -> Self {
        let data = boot_segment(SELECTOR_DATA);
        EntryState {
            mode,
            rip,
            rsp: BOOT_STACK_POINTER,
            rsi: 0,
            rbx: 0,
            rflags: RFLAGS_RESERVED,
            cr0: CR0_PE | CR0_ET,
            cr3: 0,
            cr4: 0,
            efer: 0,
            cs: boot_segment(code_selector),
            ds: data,
            es: data,
            fs: data,
            gs: data,
            ss: data,
            tr: boot_segment(SELECTOR_TSS),
            ldt: unusable_ldt(),
            gdt: boot_gdtr(),
            idt: DescriptorTable::default(),
        }
    }

    /// PVH entry (Xen's HVM direct boot ABI): flat 4 GiB 32-bit code and data segments,
    /// CR0 = PE | ET, paging and long mode off, EBX = `start_info`.
    pub fn pvh(entry: u64, start_info: u64) -> Self {
        EntryState {
            rbx: start_info,
            ..Self::with_code(EntryMode::Protected32, entry, SELECTOR_CODE32)
        }
    }

    /// Linux 64-bit boot protocol entry: long mode with paging (CR3 = `pml4`), `__BOOT_CS` /
    /// `__BOOT_DS` segments, RSI = the zero page.
    pub fn long64(entry: u64, zero_page: u64, pml4: u64) -> Self {
        EntryState {
            rsi: zero_page,
            cr0: CR0_PE | CR0_ET | CR0_PG,
            cr3: pml4,
            cr4: CR4_PAE,
            efer: EFER_LME | EFER_LMA,
            ..Self::with_code(EntryMode::Long64, entry, SELECTOR_CODE64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pvh_state_is_flat_protected_mode() {
        let s = EntryState::pvh(0x100_04a0, 0x6000);
        assert_eq!(s.mode, EntryMode::Protected32);
        assert_eq!((s.rip, s.rbx, s.rsi), (0x100_04a0, 0x6000, 0));
        assert_eq!(s.cr0, 0x11);
        assert_eq!((s.cr3, s.cr4, s.efer), (0, 0, 0));
        assert_eq!(s.cs.selector, 0x08);
        assert!(s.cs.db && !s.cs.l && s.cs.limit == 0xffff_ffff && s.cs.base == 0);
        for seg in [s.ds, s.es, s.fs, s.gs, s.ss] {
            assert_eq!((seg.selector, seg.type_, seg.limit), (0x18, 3, 0xffff_ffff));
            assert!(seg.db && seg.present);
        }
        assert!(s.ldt.unusable);
        assert_eq!(s.rflags & (1 << 9), 0, "interrupts must be off");
    }

    #[test]
    fn long_mode_state() {
        let s = EntryState::long64(0x10_0200, 0x7000, 0x9000);
        assert_eq!(s.mode, EntryMode::Long64);
        assert_eq!((s.rip, s.rsi, s.rbx, s.cr3), (0x10_0200, 0x7000, 0, 0x9000));
        assert_eq!(s.cr0, 0x8000_0011);
        assert_eq!(s.cr4, 0x20);
        assert_eq!(s.efer, 0x500);
        assert_eq!(s.cs.selector, 0x10);
        assert!(s.cs.l && !s.cs.db);
        assert_eq!(s.ds.selector, 0x18);
        assert_eq!(s.gdt.base, crate::layout::GDT_ADDR);
    }
}
