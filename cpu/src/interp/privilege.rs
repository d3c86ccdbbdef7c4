//! Privilege and protection checks of the software CPU, as the Intel SDM
//! vol. 3 defines them: which instructions need CPL 0 (and which raise #UD
//! first), IOPL for CLI/STI, the TSS I/O permission bitmap for port I/O,
//! UMIP, CR4.TSD/PCE, STAC/CLAC, and the SMEP/SMAP rule the page walk and
//! the software TLB apply to supervisor accesses of user pages.
//!
//! Every check either passes or returns the guest exception the
//! architecture defines; none changes architectural state.

use iced_x86::{Instruction, Mnemonic, Register};

use super::cpu::Cpu;
use super::mem::{Access, Exception};
use super::state::{CpuState, EFER_LMA};

/// CR4.TSD: RDTSC/RDTSCP need CPL 0.
pub const CR4_TSD: u64 = 1 << 2;
/// CR4.DE: DR4/DR5 are undefined (not aliases of DR6/DR7).
pub const CR4_DE: u64 = 1 << 3;
/// CR4.PCE: RDPMC allowed at any CPL.
pub const CR4_PCE: u64 = 1 << 8;
/// CR4.UMIP: SGDT/SIDT/SLDT/SMSW/STR need CPL 0.
pub const CR4_UMIP: u64 = 1 << 11;
/// CR4.OSXSAVE: XSETBV/XGETBV are defined.
pub const CR4_OSXSAVE: u64 = 1 << 18;
/// CR4.SMEP: no supervisor instruction fetches from user pages.
pub const CR4_SMEP: u64 = 1 << 20;
/// CR4.SMAP: no supervisor data accesses to user pages unless RFLAGS.AC.
pub const CR4_SMAP: u64 = 1 << 21;
/// RFLAGS.AC (alignment check; with SMAP, "user access allowed").
pub const AC: u64 = 1 << 18;
/// RFLAGS.VM (virtual-8086 mode: CPL 3, I/O always checks the bitmap).
const VM: u64 = 1 << 17;
/// Offset of the I/O map base address in a 32- or 64-bit TSS.
const TSS_IOMAP_BASE: u64 = 0x66;
/// The smallest limit of a TSS holding the I/O map base (104 bytes).
const TSS_MIN_LIMIT: u32 = 0x67;

type R<T> = Result<T, Exception>;

impl CpuState {
    /// RFLAGS.IOPL.
    pub fn iopl(&self) -> u8 {
        ((self.rflags >> 12) & 3) as u8
    }

    /// Whether a supervisor-mode access of kind `access` may use a page
    /// that user mode can access: SMEP forbids fetches; SMAP forbids data
    /// accesses unless they are explicit and RFLAGS.AC is set (implicit
    /// accesses — descriptor tables, the IDT, the TSS — never may).
    #[inline]
    pub fn supervisor_may_use_user_page(&self, access: Access) -> bool {
        match access {
            Access::Exec => self.cr4 & CR4_SMEP == 0,
            Access::Read | Access::Write => {
                self.cr4 & CR4_SMAP == 0 || (!self.sys_access && self.rflags & AC != 0)
            }
        }
    }
}

impl Cpu {
    /// #GP(0) unless the CPU runs at CPL 0 (real mode is CPL 0).
    pub(super) fn require_cpl0(&self) -> R<()> {
        if self.st.cpl() != 0 {
            return Err(Exception::gp(0));
        }
        Ok(())
    }

    /// The privilege checks of the system instructions `exec::system` runs
    /// (and a few it leaves to other modules, such as XSETBV), in the
    /// SDM's order: #UD conditions first where the SDM gives them
    /// priority, then #GP(0).
    pub(super) fn check_system(&self, i: &Instruction) -> R<()> {
        use Mnemonic as M;
        let cpl = self.st.cpl();
        match i.mnemonic() {
            M::Lgdt
            | M::Lidt
            | M::Wrmsr
            | M::Rdmsr
            | M::Invlpg
            | M::Clts
            | M::Lmsw
            | M::Hlt
            | M::Wbinvd
            | M::Wbnoinvd
            | M::Invd => self.require_cpl0(),
            // Not recognised in real and virtual-8086 mode.
            M::Ltr | M::Lldt => {
                self.require_protected()?;
                self.require_cpl0()
            }
            M::Str | M::Sldt => {
                self.require_protected()?;
                self.check_umip()
            }
            M::Sgdt | M::Sidt | M::Smsw => self.check_umip(),
            M::Lar | M::Lsl | M::Verr | M::Verw => self.require_protected(),
            M::Swapgs => {
                if !self.st.long64() {
                    return Err(Exception::UD);
                }
                self.require_cpl0()
            }
            // #UD at CPL > 0 (and without SMAP, which is advertised).
            M::Stac | M::Clac if cpl != 0 => Err(Exception::UD),
            // MONITOR/MWAIT at CPL > 0 are #UD, not #GP.
            M::Monitor | M::Mwait if cpl != 0 => Err(Exception::UD),
            M::Xsetbv => {
                if self.st.cr4 & CR4_OSXSAVE == 0 {
                    return Err(Exception::UD);
                }
                self.require_cpl0()
            }
            M::Invpcid => {
                if self.cpuid(7, 0).1 & (1 << 10) == 0 {
                    return Err(Exception::UD);
                }
                self.require_cpl0()
            }
            M::Rdpmc if self.st.cr4 & CR4_PCE == 0 => self.require_cpl0(),
            M::Rdtsc | M::Rdtscp if self.st.cr4 & CR4_TSD != 0 => self.require_cpl0(),
            _ => Ok(()),
        }
    }

    /// #UD in real mode and virtual-8086 mode.
    fn require_protected(&self) -> R<()> {
        if !self.st.protected() || self.st.rflags & VM != 0 {
            return Err(Exception::UD);
        }
        Ok(())
    }

    /// UMIP: SGDT/SIDT/SLDT/SMSW/STR at CPL > 0 are #GP(0).
    fn check_umip(&self) -> R<()> {
        if self.st.cr4 & CR4_UMIP != 0 && self.st.cpl() != 0 {
            return Err(Exception::gp(0));
        }
        Ok(())
    }

    /// MOV to or from control register `cr`: #UD for a register that does
    /// not exist (a decode-time fault, before the CPL check), then #GP(0)
    /// at CPL > 0.
    pub(super) fn check_mov_cr(&self, cr: Register) -> R<()> {
        if !matches!(
            cr,
            Register::CR0 | Register::CR2 | Register::CR3 | Register::CR4 | Register::CR8
        ) {
            return Err(Exception::UD);
        }
        self.require_cpl0()
    }

    /// MOV to or from debug register `dr`: #UD for DR8-DR15, #GP(0) at
    /// CPL > 0, then #UD for DR4/DR5 when CR4.DE is set (the order the
    /// host CPU shows: DR4 at CPL 3 is #GP even with CR4.DE).
    pub(super) fn check_mov_dr(&self, dr: Register) -> R<()> {
        if !(Register::DR0..=Register::DR7).contains(&dr) {
            return Err(Exception::UD);
        }
        self.require_cpl0()?;
        if matches!(dr, Register::DR4 | Register::DR5) && self.st.cr4 & CR4_DE != 0 {
            return Err(Exception::UD);
        }
        Ok(())
    }

    /// CLI/STI: in protected mode they need CPL <= IOPL (no VME/PVI).
    pub(super) fn check_cli_sti(&self) -> R<()> {
        let v86 = self.st.rflags & VM != 0;
        if self.st.protected() && (v86 || self.st.cpl() > self.st.iopl()) {
            return Err(Exception::gp(0));
        }
        Ok(())
    }

    /// The RFLAGS bits POPF may change besides the arithmetic and control
    /// flags: IF only at CPL <= IOPL, IOPL only at CPL 0.
    pub(super) fn popf_protected_bits(&self) -> u64 {
        use super::state::flags::IF;
        let cpl = self.st.cpl();
        let mut bits = 0;
        if cpl == 0 {
            bits |= 3 << 12;
        }
        if cpl <= self.st.iopl() {
            bits |= IF;
        }
        bits
    }

    /// Port I/O of `size` bytes at `port` (IN, OUT, INS, OUTS): allowed in
    /// real mode and at CPL <= IOPL; otherwise every bit of
    /// `port..port+size` in the TSS I/O permission bitmap must be clear
    /// and inside the TSS limit, else #GP(0). TR must hold a 32- or 64-bit
    /// TSS. The TSS is read as an implicit supervisor access.
    pub(super) fn check_io(&mut self, port: u16, size: usize) -> R<()> {
        if !self.st.protected() {
            return Ok(());
        }
        if self.st.rflags & VM == 0 && self.st.cpl() <= self.st.iopl() {
            return Ok(());
        }
        let tr = self.st.tr;
        // Type 9/11: an available/busy 32-bit TSS (64-bit in long mode).
        if tr.unusable || !tr.present || !matches!(tr.type_, 9 | 11) {
            return Err(Exception::gp(0));
        }
        if tr.limit < TSS_MIN_LIMIT {
            return Err(Exception::gp(0));
        }
        let long = self.st.efer & EFER_LMA != 0;
        let linear = move |off: u64| {
            let la = tr.base.wrapping_add(off);
            if long {
                la
            } else {
                la & 0xffff_ffff
            }
        };
        let saved = self.st.sys_access;
        self.st.sys_access = true;
        let r = (|| {
            let map = self.read_la(linear(TSS_IOMAP_BASE), 2)?;
            // Two bytes are always read, so both must be inside the limit.
            let off = map + u64::from(port >> 3);
            if off + 1 > u64::from(tr.limit) {
                return Err(Exception::gp(0));
            }
            let bits = self.read_la(linear(off), 2)?;
            let want = ((1u64 << size) - 1) << (port & 7);
            if bits & want != 0 {
                return Err(Exception::gp(0));
            }
            Ok(())
        })();
        self.st.sys_access = saved;
        r
    }
}
