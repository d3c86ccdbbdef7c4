//! x87, MMX, SSE through SSE4.2, AES-NI, PCLMULQDQ, SHA, AVX, AVX2, FMA,
//! F16C and XSAVE execution for the interpreter.
//!
//! The integer core decodes an instruction with iced-x86, resolves nothing
//! itself for these instruction classes, and hands the instruction to
//! [`execute`] with an [`FpuContext`] that gives access to general
//! registers, the instruction's memory operand and the arithmetic flags.
//! This module owns all floating-point and vector state ([`FpuState`]).
//!
//! Layout:
//! - `softfloat`: one IEEE-754 core for f32, f64 and the x87 80-bit format
//!   (exact integer arithmetic, one rounding per operation, every rounding
//!   mode, precision control, flags, tininess after rounding);
//! - `x87`: the x87 instruction set on that core (stack, tags, condition
//!   codes, masked and unmasked exception responses, environments);
//! - `sse`: SSE/SSE2 floating point per lane (MXCSR RC/DAZ/FTZ, #XM);
//! - `simd`: SSE2 and MMX integer operations and data movement;
//! - `sse3`, `ssse3`, `sse41` (integer, data movement, PCMPGTQ), `sse41fp`
//!   (ROUND*, DPPS/DPPD), `pcmpstr` (SSE4.2 string compares), `aes`,
//!   `clmul` (PCLMULQDQ), `sha`: the later extensions as plain functions on
//!   `u128` values, shared by the legacy and VEX encodings;
//! - `ext_lanes`: those extensions' lane-wise instructions as one table
//!   shared by both encodings; `legacy_ext`: the legacy-SSE encoding glue
//!   for them; `vex_ext`: their VEX forms;
//! - `avx`: VEX-encoded instructions on YMM registers (the SSE/SSE2 lane
//!   semantics per 128-bit half, plus the AVX/AVX2 moves, broadcasts and
//!   permutes); `fma` (FMA3, one rounding), `f16c`, `gather` (AVX2
//!   gathers);
//! - `xsave`: XCR0, XGETBV/XSETBV, XSAVE/XSAVEOPT/XSAVEC/XRSTOR, XINUSE
//!   and CPUID leaf 0xD;
//! - `state`: the register file and its FXSAVE image.
//!
//! Every result, flag and condition code is checked bit for bit against
//! the test host's own x87/SSE unit (`host_tests`, `exec_tests`), except
//! the transcendentals (FSIN, FCOS, FSINCOS, FPTAN, FPATAN, F2XM1, FYL2X,
//! FYL2XP1), which are computed through f64 and may differ from the
//! hardware in the last bits. Not implemented (#UD): RCPPS/RCPSS/RSQRTPS/
//! RSQRTSS (their approximations differ between vendors), MASKMOVQ and
//! MASKMOVDQU. FOP is not tracked; FIP needs
//! [`FpuContext::instruction_address`], FCMOVcc needs [`FpuContext::rflags`].

use iced_x86::{Instruction, Mnemonic, OpKind, Register};

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
    /// RFLAGS, for FCMOVcc. Cores that do not provide it make FCMOVcc #UD.
    fn rflags(&self) -> Option<u64> {
        None
    }
    /// Linear address of the current instruction, recorded as the x87
    /// last-instruction pointer (FIP); `None` leaves FIP unchanged.
    fn instruction_address(&self) -> Option<u64> {
        None
    }
    /// Current privilege level (XSETBV is CPL 0 only). Cores that do not
    /// provide it are treated as user mode.
    fn cpl(&self) -> u8 {
        3
    }
}

mod aes;
mod avx;
mod clmul;
mod ext_lanes;
mod f16c;
mod fma;
mod gather;
mod host_sse;
mod legacy_ext;
mod pcmpstr;
mod sha;
mod simd;
mod softfloat;
mod sse;
mod sse3;
mod sse41;
mod sse41fp;
mod ssse3;
mod state;
mod vex_ext;
mod x87;
mod xsave;

#[cfg(all(test, target_arch = "x86_64"))]
mod exec_tests;
#[cfg(all(test, target_arch = "x86_64"))]
mod host_tests;
#[cfg(test)]
mod xsave_tests;

pub use state::FpuState;
pub use xsave::{cpuid_leaf_d, xcr0_valid, XCR0_AVX, XCR0_SSE, XCR0_SUPPORTED, XCR0_X87};

impl FpuState {
    fn xmm(&self, n: usize) -> u128 {
        self.xmm[n & 15]
    }

    fn set_xmm(&mut self, n: usize, v: u128) {
        self.xmm[n & 15] = v;
    }

    fn mxcsr(&self) -> u32 {
        self.mxcsr
    }
}

fn xmm_index(r: Register) -> Option<usize> {
    r.is_xmm().then(|| r as usize - Register::XMM0 as usize)
}

/// Which unit an instruction belongs to, for the #UD/#NM/#MF checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// x87 instruction that waits for pending exceptions.
    X87,
    /// x87 control instruction that does not wait (FN*).
    X87NoWait,
    /// WAIT/FWAIT.
    Wait,
    /// MMX (MM registers, EMMS).
    Mmx,
    /// FXSAVE/FXRSTOR.
    Fxsr,
    /// SSE/SSE2 on XMM registers or MXCSR.
    Sse,
    /// XSAVE*/XRSTOR* (#UD without CR4.OSXSAVE, #NM with CR0.TS).
    Xsave,
    /// XGETBV/XSETBV (#UD without CR4.OSXSAVE).
    Xcr,
    /// VEX-encoded vector instruction (#UD unless CR4.OSXSAVE and XCR0
    /// enables SSE and AVX; #NM with CR0.TS).
    Avx,
    /// Not an instruction of this module (#UD).
    Unknown,
}

fn classify(instr: &Instruction) -> Unit {
    use Mnemonic as M;
    let m = instr.mnemonic();
    match m {
        M::Wait => return Unit::Wait,
        M::Fninit
        | M::Fnclex
        | M::Fnstcw
        | M::Fnstsw
        | M::Fnstenv
        | M::Fnsave
        | M::Fneni
        | M::Fndisi
        | M::Fnsetpm => return Unit::X87NoWait,
        M::Fxsave | M::Fxsave64 | M::Fxrstor | M::Fxrstor64 => return Unit::Fxsr,
        M::Emms | M::Movdq2q | M::Movq2dq => return Unit::Mmx,
        M::Fisttp => return Unit::X87,
        M::Xsave
        | M::Xsave64
        | M::Xsaveopt
        | M::Xsaveopt64
        | M::Xsavec
        | M::Xsavec64
        | M::Xsaves
        | M::Xsaves64
        | M::Xrstor
        | M::Xrstor64
        | M::Xrstors
        | M::Xrstors64 => return Unit::Xsave,
        M::Xgetbv | M::Xsetbv => return Unit::Xcr,
        _ => {}
    }
    {
        use iced_x86::CpuidFeature as C;
        if instr
            .cpuid_features()
            .iter()
            .any(|f| matches!(f, C::FPU | C::FPU287 | C::FPU387))
        {
            return Unit::X87;
        }
    }
    if instr.encoding() == iced_x86::EncodingKind::VEX {
        use iced_x86::CpuidFeature as C;
        let avx = instr
            .cpuid_features()
            .iter()
            .any(|f| matches!(f, C::AVX | C::AVX2 | C::FMA | C::F16C));
        return if avx { Unit::Avx } else { Unit::Unknown };
    }
    if instr.encoding() != iced_x86::EncodingKind::Legacy {
        return Unit::Unknown;
    }
    let sse = {
        use iced_x86::CpuidFeature as C;
        instr
            .cpuid_features()
            .iter()
            .any(|f| {
                matches!(
                    f,
                    C::MMX
                        | C::SSE
                        | C::SSE2
                        | C::SSE3
                        | C::SSSE3
                        | C::SSE4_1
                        | C::SSE4_2
                        | C::AES
                        | C::PCLMULQDQ
                        | C::SHA
                )
            })
            // CRC32 (SSE4.2) is an integer instruction of the core.
            && m != M::Crc32
    };
    let mmx = (0..instr.op_count())
        .any(|n| instr.op_kind(n) == OpKind::Register && instr.op_register(n).is_mm());
    match (sse, mmx) {
        (false, _) => Unit::Unknown,
        (true, true) => Unit::Mmx,
        (true, false) => Unit::Sse,
    }
}

const CR0_EM: u64 = 1 << 2;
const CR0_TS: u64 = 1 << 3;
const CR0_MP: u64 = 1 << 1;
const CR0_NE: u64 = 1 << 5;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXSAVE: u64 = 1 << 18;

fn exception(vector: u8) -> FpuError {
    FpuError::Exception {
        vector,
        error_code: None,
    }
}

/// #UD / #NM / #MF checks before an instruction of `unit` executes.
fn check_unit(state: &FpuState, unit: Unit, ctx: &dyn FpuContext) -> Result<(), FpuError> {
    let cr0 = ctx.cr0();
    let pending = state.x87_pending() && cr0 & CR0_NE != 0;
    match unit {
        Unit::Unknown => return Err(FpuError::NotFpu),
        Unit::Wait => {
            if cr0 & (CR0_TS | CR0_MP) == CR0_TS | CR0_MP {
                return Err(exception(7));
            }
            if pending {
                return Err(exception(16));
            }
        }
        Unit::X87 | Unit::X87NoWait => {
            if cr0 & (CR0_EM | CR0_TS) != 0 {
                return Err(exception(7));
            }
            if unit == Unit::X87 && pending {
                return Err(exception(16));
            }
        }
        Unit::Fxsr => {
            if cr0 & (CR0_EM | CR0_TS) != 0 {
                return Err(exception(7));
            }
        }
        Unit::Mmx => {
            if cr0 & CR0_EM != 0 {
                return Err(exception(6));
            }
            if cr0 & CR0_TS != 0 {
                return Err(exception(7));
            }
            if pending {
                return Err(exception(16));
            }
        }
        Unit::Sse => {
            if cr0 & CR0_EM != 0 || ctx.cr4() & CR4_OSFXSR == 0 {
                return Err(exception(6));
            }
            if cr0 & CR0_TS != 0 {
                return Err(exception(7));
            }
        }
        Unit::Avx => {
            let enabled = xsave::XCR0_SSE | xsave::XCR0_AVX;
            if ctx.cr4() & CR4_OSXSAVE == 0 || state.xcr0() & enabled != enabled {
                return Err(exception(6));
            }
            if cr0 & CR0_TS != 0 {
                return Err(exception(7));
            }
        }
        Unit::Xsave | Unit::Xcr => {
            if ctx.cr4() & CR4_OSXSAVE == 0 {
                return Err(exception(6));
            }
            if unit == Unit::Xsave && cr0 & CR0_TS != 0 {
                return Err(exception(7));
            }
        }
    }
    Ok(())
}

/// Execute one x87/MMX/SSE/SSE2 instruction (including FXSAVE, FXRSTOR,
/// LDMXCSR, STMXCSR, EMMS, FWAIT). The core has already advanced nothing:
/// on `Ok` it moves RIP past the instruction; on `Err` it raises the fault.
pub fn execute(
    state: &mut FpuState,
    instr: &Instruction,
    ctx: &mut dyn FpuContext,
) -> Result<(), FpuError> {
    use Mnemonic as M;
    let m = instr.mnemonic();
    let unit = classify(instr);
    check_unit(state, unit, ctx)?;
    match unit {
        Unit::X87 | Unit::X87NoWait | Unit::Wait => return state.execute_x87(instr, ctx),
        Unit::Xsave | Unit::Xcr => return state.execute_xsave(instr, ctx),
        Unit::Avx => return state.execute_avx(instr, ctx),
        _ => {}
    }
    match m {
        M::Emms => {
            // All tags empty; TOP is reset too (as the host does).
            state.empty = 0xff;
            state.set_top(0);
        }
        M::Fxsave | M::Fxsave64 => {
            if ctx.mem_address() & 15 != 0 {
                return Err(FpuError::Exception {
                    vector: 13,
                    error_code: Some(0),
                });
            }
            let mut img = [0u8; 512];
            state.fxsave_layout(&mut img, m == M::Fxsave64);
            ctx.write_mem(0, &img)?;
        }
        M::Fxrstor | M::Fxrstor64 => {
            if ctx.mem_address() & 15 != 0 {
                return Err(FpuError::Exception {
                    vector: 13,
                    error_code: Some(0),
                });
            }
            let mut img = [0u8; 512];
            ctx.read_mem(0, &mut img)?;
            state.fxrstor_layout(&img, m == M::Fxrstor64)?;
        }
        M::Ldmxcsr => {
            let mut b = [0u8; 4];
            ctx.read_mem(0, &mut b)?;
            let v = u32::from_le_bytes(b);
            if v & !state::MXCSR_MASK != 0 {
                return Err(FpuError::Exception {
                    vector: 13,
                    error_code: Some(0),
                });
            }
            state.mxcsr = v;
        }
        M::Stmxcsr => {
            let v = state.mxcsr().to_le_bytes();
            ctx.write_mem(0, &v)?;
        }
        _ => state.execute_vector(instr, ctx, unit == Unit::Mmx)?,
    }
    Ok(())
}
