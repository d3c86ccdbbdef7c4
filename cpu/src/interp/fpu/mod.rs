//! x87, MMX, SSE and SSE2 execution for the interpreter.
//!
//! The integer core decodes an instruction with iced-x86, resolves nothing
//! itself for these instruction classes, and hands the instruction to
//! [`execute`] with an [`FpuContext`] that gives access to general
//! registers, the instruction's memory operand and the arithmetic flags.
//! This module owns all floating-point and vector state ([`FpuState`]).

use iced_x86::{Instruction, Register};

/// A memory access of the current instruction faulted. The core has already
/// recorded the fault (e.g. #PF with CR2) and will deliver it; the FPU
/// code must just stop and return [`FpuError::Memory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemFault;

/// Why [`execute`] did not complete the instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FpuError {
    /// Not an instruction this module implements: the core raises #UD.
    NotFpu,
    /// Raise exception `vector` (#UD 6, #NM 7, #GP 13, #MF 16, #XM 19)
    /// with an optional error code (#GP(0) for misaligned SSE operands).
    Exception {
        /// Exception vector.
        vector: u8,
        /// Error code pushed with it, if any.
        error_code: Option<u32>,
    },
    /// A memory access faulted; the core delivers the recorded fault.
    Memory(MemFault),
}

impl From<MemFault> for FpuError {
    fn from(m: MemFault) -> Self {
        FpuError::Memory(m)
    }
}

/// What the FPU code may touch outside its own state.
pub trait FpuContext {
    /// Value of a general-purpose register by iced name; 8/16/32-bit names
    /// read the low bits (AH etc. the high byte), zero-extended.
    fn read_gpr(&self, reg: Register) -> u64;
    /// Write a general-purpose register with x86 partial-write rules
    /// (32-bit writes zero-extend to 64; 8/16-bit writes merge).
    fn write_gpr(&mut self, reg: Register, value: u64);
    /// Read `buf.len()` bytes at the effective address of the instruction's
    /// memory operand plus `offset` (the core does segmentation, paging and
    /// MMIO).
    fn read_mem(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), MemFault>;
    /// Write `data` at the effective address of the memory operand plus `offset`.
    fn write_mem(&mut self, offset: u64, data: &[u8]) -> Result<(), MemFault>;
    /// The memory operand's effective (linear) address, for alignment checks.
    fn mem_address(&self) -> u64;
    /// Set RFLAGS bits in `mask` to the corresponding bits of `value`
    /// (COMISS/UCOMISD/FCOMI: ZF, PF, CF set; OF, SF, AF cleared).
    fn set_flags(&mut self, value: u64, mask: u64);
    /// CR0 (TS, EM, MP, NE decide #NM/#UD/#MF behaviour).
    fn cr0(&self) -> u64;
    /// CR4 (OSFXSR, OSXMMEXCPT decide #UD/#XM behaviour).
    fn cr4(&self) -> u64;
    /// True in 64-bit mode (FXSAVE64 layout, REX-extended registers).
    fn long_mode(&self) -> bool;
}

/// All x87, MMX and SSE state of one vCPU.
#[derive(Debug, Clone)]
pub struct FpuState {
    /// The FXSAVE image is the source of truth until the FPU helper
    /// replaces this with structured state.
    image: [u8; 512],
}

impl Default for FpuState {
    fn default() -> Self {
        Self::new()
    }
}

impl FpuState {
    /// The state after reset/FNINIT: FCW 0x37F, empty stack, MXCSR 0x1F80.
    pub fn new() -> Self {
        let mut image = [0u8; 512];
        image[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
        image[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        image[28..32].copy_from_slice(&0xffffu32.to_le_bytes());
        FpuState { image }
    }

    /// The FXSAVE (64-bit layout) image of this state.
    pub fn fxsave(&self, out: &mut [u8; 512]) {
        out.copy_from_slice(&self.image);
    }

    /// Load state from an FXSAVE image. #GP(0) if MXCSR has reserved bits set.
    pub fn fxrstor(&mut self, image: &[u8; 512]) -> Result<(), FpuError> {
        let mxcsr = u32::from_le_bytes([image[24], image[25], image[26], image[27]]);
        if mxcsr & !0xffff != 0 {
            return Err(FpuError::Exception {
                vector: 13,
                error_code: Some(0),
            });
        }
        self.image.copy_from_slice(image);
        Ok(())
    }
}

/// Execute one x87/MMX/SSE/SSE2 instruction (including FXSAVE, FXRSTOR,
/// LDMXCSR, STMXCSR, EMMS, FWAIT). The core has already advanced nothing:
/// on `Ok` it moves RIP past the instruction; on `Err` it raises the fault.
pub fn execute(
    state: &mut FpuState,
    instr: &Instruction,
    ctx: &mut dyn FpuContext,
) -> Result<(), FpuError> {
    let _ = (state, instr, ctx);
    Err(FpuError::NotFpu)
}
