//! Debug registers (DR0–DR7) and the single-step trap (RFLAGS.TF).
//!
//! DR0–DR3 and DR7 keep what the guest writes and read it back, with the
//! architecture's fixed bits; the breakpoints they describe are not armed
//! (no #DB on an address match). DR4/DR5 alias DR6/DR7 unless CR4.DE, then
//! they are #UD. An instruction that starts with TF set and completes is
//! followed by a #DB trap with DR6.BS set: after SYSCALL it lands on the
//! kernel's entry point, POPF/IRET that set TF trap only after the next
//! instruction, MOV SS/POP SS hold the trap back for one instruction, and
//! INT n/INT3/INTO/INT1 and faulting instructions raise none.

use iced_x86::{Instruction, Mnemonic, OpKind, Register};

use super::cpu::{Cpu, Stop};
use super::mem::Exception;

/// DR6 bits that always read as 1 (reserved ones).
const DR6_FIXED_1: u64 = 0xfffe_0ff0;
/// DR6 at reset: the fixed bits and RTM (active low: no transaction).
const DR6_INIT: u64 = 0xffff_0ff0;
/// DR6 bits the guest and the CPU may change: B0–B3, BLD, BD, BS, BT, RTM.
const DR6_VOLATILE: u64 = 0x0001_e80f;
/// DR6.BS: the #DB came from single-stepping.
const DR6_BS: u64 = 1 << 14;
/// DR7 bit 10 reads as 1.
const DR7_FIXED_1: u64 = 1 << 10;
/// DR7 bits the guest may write.
const DR7_VOLATILE: u64 = 0xffff_2bff;
/// CR4.DE: DR4/DR5 are reserved (#UD) instead of aliases.
const CR4_DE: u64 = 1 << 3;

/// The debug registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebugRegs {
    /// DR0–DR3: breakpoint addresses.
    pub dr: [u64; 4],
    /// DR6: debug status.
    pub dr6: u64,
    /// DR7: debug control.
    pub dr7: u64,
}

impl Default for DebugRegs {
    fn default() -> Self {
        DebugRegs {
            dr: [0; 4],
            dr6: DR6_INIT,
            dr7: DR7_FIXED_1,
        }
    }
}

/// The number (0–7) of debug register `r`.
pub fn dr_index(r: Register) -> u8 {
    (r as u32 - Register::DR0 as u32) as u8
}

impl Cpu {
    /// MOV from DRn (privilege is the caller's check).
    pub(super) fn read_dr(&self, n: u8) -> Result<u64, Exception> {
        let d = &self.st.debug;
        match n {
            0..=3 => Ok(d.dr[n as usize]),
            4 | 5 if self.st.cr4 & CR4_DE != 0 => Err(Exception::UD),
            4 | 6 => Ok(d.dr6),
            5 | 7 => Ok(d.dr7),
            _ => Err(Exception::UD),
        }
    }

    /// MOV to DRn: DR6/DR7 with bits 63:32 set are #GP(0).
    pub(super) fn write_dr(&mut self, n: u8, v: u64) -> Result<(), Exception> {
        let de = self.st.cr4 & CR4_DE != 0;
        let d = &mut self.st.debug;
        match n {
            0..=3 => d.dr[n as usize] = v,
            4 | 5 if de => return Err(Exception::UD),
            4..=7 if v >> 32 != 0 => return Err(Exception::gp(0)),
            4 | 6 => d.dr6 = (v & DR6_VOLATILE) | DR6_FIXED_1,
            5 | 7 => d.dr7 = (v & DR7_VOLATILE) | DR7_FIXED_1,
            _ => return Err(Exception::UD),
        }
        Ok(())
    }

    /// Deliver the single-step #DB after `i` completed, if it began with
    /// TF set (`tf`) and is not one of the instructions that raise none.
    pub(super) fn single_step_after(&mut self, i: &Instruction, tf: bool) -> Result<(), Stop> {
        if !tf || !traps_after(i) {
            return Ok(());
        }
        self.st.debug.dr6 |= DR6_BS;
        match self.deliver(1, None, false) {
            Ok(()) => Ok(()),
            Err(e) => self.raise(e),
        }
    }
}

/// Whether a completed instruction that began with TF set is followed by
/// the single-step trap.
fn traps_after(i: &Instruction) -> bool {
    let loads_ss =
        i.op_count() > 0 && i.op_kind(0) == OpKind::Register && i.op_register(0) == Register::SS;
    !loads_ss
        && !matches!(
            i.mnemonic(),
            Mnemonic::Int | Mnemonic::Int3 | Mnemonic::Into | Mnemonic::Int1
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_bits_and_volatile_masks() {
        let d = DebugRegs::default();
        assert_eq!(d.dr6, 0xffff_0ff0);
        assert_eq!(d.dr7, 0x400);
        assert_eq!(dr_index(Register::DR7), 7);
    }
}
