//! The interpreter's architectural state.

use iced_x86::Register;

use super::fpu::FpuState;
use crate::{Regs, Segment, Sregs};

/// RFLAGS bits.
pub mod flags {
    /// Carry.
    pub const CF: u64 = 1 << 0;
    /// Parity.
    pub const PF: u64 = 1 << 2;
    /// Adjust.
    pub const AF: u64 = 1 << 4;
    /// Zero.
    pub const ZF: u64 = 1 << 6;
    /// Sign.
    pub const SF: u64 = 1 << 7;
    /// Trap.
    pub const TF: u64 = 1 << 8;
    /// Interrupt enable.
    pub const IF: u64 = 1 << 9;
    /// Direction.
    pub const DF: u64 = 1 << 10;
    /// Overflow.
    pub const OF: u64 = 1 << 11;
    /// Resume (set in the RFLAGS image of a fault's frame).
    pub const RF: u64 = 1 << 16;
    /// The six arithmetic flags.
    pub const ARITH: u64 = CF | PF | AF | ZF | SF | OF;
}

/// Segment register indices (x86 encoding order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg {
    /// ES.
    Es = 0,
    /// CS.
    Cs = 1,
    /// SS.
    Ss = 2,
    /// DS.
    Ds = 3,
    /// FS.
    Fs = 4,
    /// GS.
    Gs = 5,
}

impl Seg {
    /// From an iced segment register.
    pub fn from_reg(r: Register) -> Option<Seg> {
        Some(match r {
            Register::ES => Seg::Es,
            Register::CS => Seg::Cs,
            Register::SS => Seg::Ss,
            Register::DS => Seg::Ds,
            Register::FS => Seg::Fs,
            Register::GS => Seg::Gs,
            _ => return None,
        })
    }
}

/// Model-specific registers the CPU owns.
#[derive(Debug, Clone, Copy, Default)]
pub struct Msrs {
    /// IA32_STAR.
    pub star: u64,
    /// IA32_LSTAR.
    pub lstar: u64,
    /// IA32_CSTAR.
    pub cstar: u64,
    /// IA32_FMASK.
    pub fmask: u64,
    /// IA32_KERNEL_GS_BASE.
    pub kernel_gs_base: u64,
    /// IA32_TSC_AUX.
    pub tsc_aux: u64,
    /// SYSENTER_CS/ESP/EIP.
    pub sysenter: [u64; 3],
    /// IA32_PAT.
    pub pat: u64,
    /// IA32_MISC_ENABLE.
    pub misc_enable: u64,
    /// Offset added to the clock's TSC (writes to IA32_TSC).
    pub tsc_offset: i64,
}

/// Everything one vCPU holds.
#[derive(Debug, Clone)]
pub struct CpuState {
    /// RAX..R15 in encoding order.
    pub gpr: [u64; 16],
    /// RIP.
    pub rip: u64,
    /// RFLAGS.
    pub rflags: u64,
    /// ES, CS, SS, DS, FS, GS.
    pub seg: [Segment; 6],
    /// TR.
    pub tr: Segment,
    /// LDTR.
    pub ldtr: Segment,
    /// GDTR base/limit.
    pub gdtr: (u64, u16),
    /// IDTR base/limit.
    pub idtr: (u64, u16),
    /// CR0.
    pub cr0: u64,
    /// CR2.
    pub cr2: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// CR8.
    pub cr8: u64,
    /// EFER.
    pub efer: u64,
    /// Owned MSRs.
    pub msr: Msrs,
    /// x87/SSE/AVX state (boxed: `Cpu::fpu` moves it out of the CPU for
    /// each instruction, which must cost a pointer, not its ~800 bytes).
    pub fpu: Box<FpuState>,
    /// Software TLB (linear page → physical page).
    pub tlb: Box<Tlb>,
    /// Implicit supervisor accesses in progress (IDT, GDT, TSS reads during
    /// event delivery are made at CPL 0 whatever the current CPL).
    pub sys_access: bool,
    /// DR0–DR3, DR6, DR7.
    pub debug: super::debug::DebugRegs,
    /// The kvmclock MSRs.
    pub kvmclock: super::kvmclock::KvmClockMsrs,
}

/// One cached translation.
#[derive(Debug, Clone, Copy, Default)]
pub struct TlbEntry {
    /// Linear page number + 1 (0 = empty).
    pub tag: u64,
    /// Physical page number.
    pub ppn: u64,
    /// Writes allowed without another walk (D already set).
    pub write: bool,
    /// User access allowed.
    pub user: bool,
    /// Instruction fetch allowed.
    pub exec: bool,
}

/// A direct-mapped software TLB, plus the page instructions are being
/// fetched from.
#[derive(Debug, Clone)]
pub struct Tlb(pub [TlbEntry; 512], pub CodePage);

/// The translation of the page the CPU last fetched from (a hit skips the
/// TLB and the RAM lookup on every instruction of a straight run).
#[derive(Debug, Clone, Copy)]
pub struct CodePage {
    /// Linear page address, or `u64::MAX` when empty.
    pub la: u64,
    /// Physical page address.
    pub pa: u64,
    /// Host address of the page when it is RAM (0 otherwise).
    pub host: usize,
    /// The CPL the fetch permission was checked at.
    pub cpl: u8,
}

impl CodePage {
    const EMPTY: CodePage = CodePage {
        la: u64::MAX,
        pa: 0,
        host: 0,
        cpl: 0,
    };
}

impl Default for Tlb {
    fn default() -> Self {
        Tlb([TlbEntry::default(); 512], CodePage::EMPTY)
    }
}

impl Tlb {
    /// Forget every translation.
    pub fn flush(&mut self) {
        for e in self.0.iter_mut() {
            e.tag = 0;
        }
        self.1 = CodePage::EMPTY;
    }
}

impl Default for CpuState {
    fn default() -> Self {
        let s = Sregs::reset_state();
        let mut st = CpuState {
            gpr: [0; 16],
            rip: 0xfff0,
            rflags: 2,
            seg: [s.es, s.cs, s.ss, s.ds, s.fs, s.gs],
            tr: s.tr,
            ldtr: s.ldt,
            gdtr: (0, 0xffff),
            idtr: (0, 0xffff),
            cr0: s.cr0,
            cr2: 0,
            cr3: 0,
            cr4: 0,
            cr8: 0,
            efer: 0,
            msr: Msrs::default(),
            fpu: Box::new(FpuState::new()),
            tlb: Box::default(),
            sys_access: false,
            debug: Default::default(),
            kvmclock: Default::default(),
        };
        st.msr.pat = 0x0007_0406_0007_0406;
        st.msr.misc_enable = 1;
        st
    }
}

/// CR0 bits.
pub const CR0_PE: u64 = 1;
/// CR0.WP.
pub const CR0_WP: u64 = 1 << 16;
/// CR0.PG.
pub const CR0_PG: u64 = 1 << 31;
/// CR4.PSE.
pub const CR4_PSE: u64 = 1 << 4;
/// CR4.PAE.
pub const CR4_PAE: u64 = 1 << 5;
/// EFER.SCE.
pub const EFER_SCE: u64 = 1;
/// EFER.LME.
pub const EFER_LME: u64 = 1 << 8;
/// EFER.LMA.
pub const EFER_LMA: u64 = 1 << 10;
/// EFER.NXE.
pub const EFER_NXE: u64 = 1 << 11;

impl CpuState {
    /// 64-bit mode (long mode with a 64-bit code segment).
    pub fn long64(&self) -> bool {
        self.efer & EFER_LMA != 0 && self.seg[Seg::Cs as usize].l
    }

    /// Protected mode (CR0.PE).
    pub fn protected(&self) -> bool {
        self.cr0 & CR0_PE != 0
    }

    /// Decoder bitness for the current code segment.
    pub fn bitness(&self) -> u32 {
        if self.long64() {
            64
        } else if self.protected() && self.seg[Seg::Cs as usize].db {
            32
        } else {
            16
        }
    }

    /// The physical address of `la` if the TLB already holds a translation
    /// allowing `access` (or paging is off): the inline fast path of
    /// [`super::mem::Mmu::translate`].
    #[inline]
    pub fn tlb_hit(&self, la: u64, access: super::mem::Access) -> Option<u64> {
        use super::mem::Access;
        if self.cr0 & CR0_PG == 0 {
            return Some(la & 0xffff_ffff);
        }
        let vpn = la >> 12;
        let e = &self.tlb.0[(vpn & 511) as usize];
        let user = self.cpl() == 3 && !self.sys_access;
        let allowed = match access {
            Access::Read => true,
            Access::Write => e.write,
            Access::Exec => e.exec,
        };
        // A supervisor access to a user page hits only where SMEP/SMAP
        // allow it (checked live: AC and CPL are not part of the entry).
        (e.tag == vpn + 1
            && allowed
            && (e.user == user || (!user && self.supervisor_may_use_user_page(access))))
        .then_some((e.ppn << 12) | (la & 0xfff))
    }

    /// Current privilege level.
    pub fn cpl(&self) -> u8 {
        if !self.protected() {
            0
        } else {
            self.seg[Seg::Cs as usize].selector as u8 & 3
        }
    }

    /// Stack width in bytes.
    pub fn stack_size(&self) -> u32 {
        if self.long64() {
            8
        } else if self.protected() && self.seg[Seg::Ss as usize].db {
            4
        } else {
            2
        }
    }

    /// Backend-neutral general registers.
    pub fn regs(&self) -> Regs {
        let g = &self.gpr;
        Regs {
            rax: g[0],
            rcx: g[1],
            rdx: g[2],
            rbx: g[3],
            rsp: g[4],
            rbp: g[5],
            rsi: g[6],
            rdi: g[7],
            r8: g[8],
            r9: g[9],
            r10: g[10],
            r11: g[11],
            r12: g[12],
            r13: g[13],
            r14: g[14],
            r15: g[15],
            rip: self.rip,
            rflags: self.rflags,
        }
    }

    /// Load general registers.
    pub fn set_regs(&mut self, r: &Regs) {
        self.gpr = [
            r.rax, r.rcx, r.rdx, r.rbx, r.rsp, r.rbp, r.rsi, r.rdi, r.r8, r.r9, r.r10, r.r11,
            r.r12, r.r13, r.r14, r.r15,
        ];
        self.rip = r.rip;
        self.rflags = r.rflags | 2;
    }

    /// Backend-neutral system registers.
    pub fn sregs(&self) -> Sregs {
        Sregs {
            es: self.seg[0],
            cs: self.seg[1],
            ss: self.seg[2],
            ds: self.seg[3],
            fs: self.seg[4],
            gs: self.seg[5],
            tr: self.tr,
            ldt: self.ldtr,
            gdt: crate::DescriptorTable {
                base: self.gdtr.0,
                limit: self.gdtr.1,
            },
            idt: crate::DescriptorTable {
                base: self.idtr.0,
                limit: self.idtr.1,
            },
            cr0: self.cr0,
            cr2: self.cr2,
            cr3: self.cr3,
            cr4: self.cr4,
            cr8: self.cr8,
            efer: self.efer,
            apic_base: 0xfee0_0900,
        }
    }

    /// Load system registers.
    pub fn set_sregs(&mut self, s: &Sregs) {
        self.seg = [s.es, s.cs, s.ss, s.ds, s.fs, s.gs];
        self.tr = s.tr;
        self.ldtr = s.ldt;
        self.gdtr = (s.gdt.base, s.gdt.limit);
        self.idtr = (s.idt.base, s.idt.limit);
        self.cr0 = s.cr0;
        self.cr2 = s.cr2;
        self.cr3 = s.cr3;
        self.cr4 = s.cr4;
        self.cr8 = s.cr8;
        self.efer = s.efer;
    }
}
