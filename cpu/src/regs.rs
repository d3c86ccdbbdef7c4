//! Architectural register state in a backend-neutral shape.

/// General-purpose registers, RIP and RFLAGS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Regs {
    /// RAX.
    pub rax: u64,
    /// RBX.
    pub rbx: u64,
    /// RCX.
    pub rcx: u64,
    /// RDX.
    pub rdx: u64,
    /// RSI.
    pub rsi: u64,
    /// RDI.
    pub rdi: u64,
    /// RSP.
    pub rsp: u64,
    /// RBP.
    pub rbp: u64,
    /// R8.
    pub r8: u64,
    /// R9.
    pub r9: u64,
    /// R10.
    pub r10: u64,
    /// R11.
    pub r11: u64,
    /// R12.
    pub r12: u64,
    /// R13.
    pub r13: u64,
    /// R14.
    pub r14: u64,
    /// R15.
    pub r15: u64,
    /// RIP.
    pub rip: u64,
    /// RFLAGS (bit 1 always set).
    pub rflags: u64,
}

/// A segment register with its hidden descriptor cache (KVM's `kvm_segment` shape).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Segment {
    /// Base address.
    pub base: u64,
    /// Limit in bytes (already scaled by G).
    pub limit: u32,
    /// Selector.
    pub selector: u16,
    /// Type field (4 bits).
    pub type_: u8,
    /// Present.
    pub present: bool,
    /// Descriptor privilege level.
    pub dpl: u8,
    /// Default operation size (D/B).
    pub db: bool,
    /// Code/data (true) or system (false) descriptor.
    pub s: bool,
    /// 64-bit code segment.
    pub l: bool,
    /// Granularity.
    pub g: bool,
    /// Available bit.
    pub avl: bool,
    /// Null/unusable segment.
    pub unusable: bool,
}

impl Segment {
    /// A flat 4 GiB segment of `type_` with the given selector, 32- or 64-bit.
    pub fn flat(selector: u16, type_: u8, long: bool) -> Self {
        Segment {
            base: 0,
            limit: 0xffff_ffff,
            selector,
            type_,
            present: true,
            dpl: 0,
            db: !long,
            s: true,
            l: long,
            g: true,
            avl: false,
            unusable: false,
        }
    }

    /// A real-mode segment for `selector` (base = selector * 16, 64 KiB limit).
    pub fn real_mode(selector: u16, code: bool) -> Self {
        Segment {
            base: u64::from(selector) << 4,
            limit: 0xffff,
            selector,
            type_: if code { 0xb } else { 0x3 },
            present: true,
            dpl: 0,
            db: false,
            s: true,
            l: false,
            g: false,
            avl: false,
            unusable: false,
        }
    }
}

/// GDTR or IDTR.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DescriptorTable {
    /// Linear base address.
    pub base: u64,
    /// Limit in bytes minus one.
    pub limit: u16,
}

/// Segment, control and descriptor-table registers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sregs {
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
    /// LDT register.
    pub ldt: Segment,
    /// GDTR.
    pub gdt: DescriptorTable,
    /// IDTR.
    pub idt: DescriptorTable,
    /// CR0.
    pub cr0: u64,
    /// CR2 (page-fault address).
    pub cr2: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// CR8 (task priority).
    pub cr8: u64,
    /// IA32_EFER.
    pub efer: u64,
    /// IA32_APIC_BASE.
    pub apic_base: u64,
}

impl Sregs {
    /// The x86 power-on state: real mode at F000:FFF0 (CS base 0xFFFF0000).
    pub fn reset_state() -> Self {
        let data = Segment::real_mode(0, false);
        let mut cs = Segment::real_mode(0xf000, true);
        cs.base = 0xffff_0000;
        let mut tr = Segment::real_mode(0, false);
        tr.type_ = 0xb;
        tr.s = false;
        let mut ldt = Segment::real_mode(0, false);
        ldt.type_ = 0x2;
        ldt.s = false;
        Sregs {
            cs,
            ds: data,
            es: data,
            fs: data,
            gs: data,
            ss: data,
            tr,
            ldt,
            gdt: DescriptorTable {
                base: 0,
                limit: 0xffff,
            },
            idt: DescriptorTable {
                base: 0,
                limit: 0xffff,
            },
            cr0: 0x6000_0010,
            apic_base: 0xfee0_0900,
            ..Default::default()
        }
    }
}
