//! x87, MMX, SSE and SSE2 execution for the interpreter.
//!
//! The integer core decodes an instruction with iced-x86, resolves nothing
//! itself for these instruction classes, and hands the instruction to
//! [`execute`] with an [`FpuContext`] that gives access to general
//! registers, the instruction's memory operand and the arithmetic flags.
//! This module owns all floating-point and vector state ([`FpuState`]).

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
}

mod softfloat;
mod state;
mod x87;

#[cfg(all(test, target_arch = "x86_64"))]
mod host_tests;

pub use state::FpuState;

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

/// Read operand `n` as a 128-bit value (XMM register or memory of the
/// operand's size, zero-extended).
fn read128(
    state: &FpuState,
    instr: &Instruction,
    ctx: &mut dyn FpuContext,
    n: u32,
) -> Result<u128, FpuError> {
    match instr.op_kind(n) {
        OpKind::Register => {
            let r = instr.op_register(n);
            match xmm_index(r) {
                Some(x) => Ok(state.xmm(x)),
                None => Ok(u128::from(ctx.read_gpr(r))),
            }
        }
        OpKind::Memory => {
            let size = instr.memory_size().size().clamp(1, 16);
            let mut b = [0u8; 16];
            ctx.read_mem(0, &mut b[..size])?;
            Ok(u128::from_le_bytes(b))
        }
        _ => Err(FpuError::NotFpu),
    }
}

fn write_mem_sized(instr: &Instruction, ctx: &mut dyn FpuContext, v: u128) -> Result<(), FpuError> {
    let size = instr.memory_size().size().clamp(1, 16);
    ctx.write_mem(0, &v.to_le_bytes()[..size])?;
    Ok(())
}

fn aligned(instr: &Instruction, ctx: &dyn FpuContext) -> Result<(), FpuError> {
    if (instr.op_kind(0) == OpKind::Memory || instr.op_kind(1) == OpKind::Memory)
        && ctx.mem_address() & 15 != 0
    {
        {
            return Err(FpuError::Exception {
                vector: 13,
                error_code: Some(0),
            });
        }
    }
    Ok(())
}

/// Lane-wise SSE2 integer operations.
fn lanes(m: Mnemonic, a: u128, b: u128) -> u128 {
    use Mnemonic as M;
    let (ab, bb) = (a.to_le_bytes(), b.to_le_bytes());
    let mut r = [0u8; 16];
    let w = |v: &[u8; 16], i: usize| u16::from_le_bytes([v[2 * i], v[2 * i + 1]]);
    let d = |v: &[u8; 16], i: usize| {
        u32::from_le_bytes([v[4 * i], v[4 * i + 1], v[4 * i + 2], v[4 * i + 3]])
    };
    let q = |v: u128, i: u32| (v >> (64 * i)) as u64;
    let put16 =
        |r: &mut [u8; 16], i: usize, x: u16| r[2 * i..2 * i + 2].copy_from_slice(&x.to_le_bytes());
    let put32 =
        |r: &mut [u8; 16], i: usize, x: u32| r[4 * i..4 * i + 4].copy_from_slice(&x.to_le_bytes());
    match m {
        M::Paddb | M::Pcmpgtb | M::Pmaxub | M::Paddusb | M::Psubusb | M::Pavgb => {
            for i in 0..16 {
                r[i] = match m {
                    M::Paddb => ab[i].wrapping_add(bb[i]),
                    M::Pcmpgtb => {
                        if (ab[i] as i8) > (bb[i] as i8) {
                            0xff
                        } else {
                            0
                        }
                    }
                    M::Pmaxub => ab[i].max(bb[i]),
                    M::Paddusb => ab[i].saturating_add(bb[i]),
                    M::Psubusb => ab[i].saturating_sub(bb[i]),
                    _ => ((u16::from(ab[i]) + u16::from(bb[i]) + 1) >> 1) as u8,
                };
            }
        }
        M::Paddw | M::Psubw | M::Pcmpeqw | M::Pcmpgtw | M::Pminsw | M::Pmaxsw => {
            for i in 0..8 {
                let (x, y) = (w(&ab, i), w(&bb, i));
                let v = match m {
                    M::Paddw => x.wrapping_add(y),
                    M::Psubw => x.wrapping_sub(y),
                    M::Pcmpeqw => {
                        if x == y {
                            0xffff
                        } else {
                            0
                        }
                    }
                    M::Pcmpgtw => {
                        if (x as i16) > (y as i16) {
                            0xffff
                        } else {
                            0
                        }
                    }
                    M::Pminsw => (x as i16).min(y as i16) as u16,
                    _ => (x as i16).max(y as i16) as u16,
                };
                put16(&mut r, i, v);
            }
        }
        M::Paddd | M::Psubd | M::Pcmpgtd => {
            for i in 0..4 {
                let (x, y) = (d(&ab, i), d(&bb, i));
                let v = match m {
                    M::Paddd => x.wrapping_add(y),
                    M::Psubd => x.wrapping_sub(y),
                    _ => {
                        if (x as i32) > (y as i32) {
                            u32::MAX
                        } else {
                            0
                        }
                    }
                };
                put32(&mut r, i, v);
            }
        }
        M::Psubq => {
            return u128::from(q(a, 0).wrapping_sub(q(b, 0)))
                | (u128::from(q(a, 1).wrapping_sub(q(b, 1))) << 64);
        }
        M::Punpckhbw => {
            for i in 0..8 {
                r[2 * i] = ab[8 + i];
                r[2 * i + 1] = bb[8 + i];
            }
        }
        M::Punpcklwd | M::Punpckhwd => {
            let base = if m == M::Punpckhwd { 4 } else { 0 };
            for i in 0..4 {
                put16(&mut r, 2 * i, w(&ab, base + i));
                put16(&mut r, 2 * i + 1, w(&bb, base + i));
            }
        }
        M::Punpckldq | M::Punpckhdq | M::Unpcklps | M::Unpckhps => {
            let base = if matches!(m, M::Punpckhdq | M::Unpckhps) {
                2
            } else {
                0
            };
            for i in 0..2 {
                put32(&mut r, 2 * i, d(&ab, base + i));
                put32(&mut r, 2 * i + 1, d(&bb, base + i));
            }
        }
        M::Punpckhqdq | M::Unpckhpd => return u128::from(q(a, 1)) | (u128::from(q(b, 1)) << 64),
        _ => return u128::from(q(a, 0)) | (u128::from(q(b, 0)) << 64), // UNPCKLPD
    }
    u128::from_le_bytes(r)
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
}

fn classify(instr: &Instruction) -> Unit {
    use Mnemonic as M;
    let m = instr.mnemonic();
    match m {
        M::Wait => return Unit::Wait,
        M::Fninit | M::Fnclex | M::Fnstcw | M::Fnstsw | M::Fnstenv | M::Fnsave => {
            return Unit::X87NoWait
        }
        M::Fxsave | M::Fxsave64 | M::Fxrstor | M::Fxrstor64 => return Unit::Fxsr,
        M::Emms | M::Movdq2q | M::Movq2dq => return Unit::Mmx,
        M::Fisttp => return Unit::X87,
        _ => {}
    }
    if instr
        .cpuid_features()
        .contains(&iced_x86::CpuidFeature::FPU)
    {
        return Unit::X87;
    }
    let mmx = (0..instr.op_count())
        .any(|n| instr.op_kind(n) == OpKind::Register && instr.op_register(n).is_mm());
    if mmx {
        Unit::Mmx
    } else {
        Unit::Sse
    }
}

const CR0_EM: u64 = 1 << 2;
const CR0_TS: u64 = 1 << 3;
const CR0_MP: u64 = 1 << 1;
const CR0_NE: u64 = 1 << 5;
const CR4_OSFXSR: u64 = 1 << 9;

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
        _ => {}
    }
    match m {
        M::Emms => state.empty = 0xff,
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
        M::Movaps
        | M::Movapd
        | M::Movdqa
        | M::Movups
        | M::Movupd
        | M::Movdqu
        | M::Movntdq
        | M::Movntps
        | M::Movntpd
        | M::Lddqu => {
            if matches!(
                m,
                M::Movaps | M::Movapd | M::Movdqa | M::Movntdq | M::Movntps | M::Movntpd
            ) {
                aligned(instr, ctx)?;
            }
            let v = read128(state, instr, ctx, 1)?;
            match instr.op_kind(0) {
                OpKind::Register => {
                    state.set_xmm(xmm_index(instr.op_register(0)).ok_or(FpuError::NotFpu)?, v)
                }
                _ => write_mem_sized(instr, ctx, v)?,
            }
        }
        M::Movd | M::Movq => {
            let dst = instr.op_register(0);
            let bits = if m == M::Movd { 32 } else { 64 };
            let mask = (1u128 << bits) - 1;
            match (instr.op_kind(0), xmm_index(dst)) {
                (OpKind::Register, Some(x)) => {
                    let v = read128(state, instr, ctx, 1)? & mask;
                    state.set_xmm(x, v);
                }
                (OpKind::Register, None) => {
                    let v = read128(state, instr, ctx, 1)? & mask;
                    ctx.write_gpr(dst, v as u64);
                }
                _ => {
                    let v = read128(state, instr, ctx, 1)? & mask;
                    ctx.write_mem(0, &v.to_le_bytes()[..bits / 8])?;
                }
            }
        }
        M::Pxor
        | M::Por
        | M::Pand
        | M::Pandn
        | M::Xorps
        | M::Xorpd
        | M::Orps
        | M::Orpd
        | M::Andps
        | M::Andpd
        | M::Andnps
        | M::Andnpd
        | M::Pcmpeqb
        | M::Pcmpeqd
        | M::Paddq
        | M::Psubb
        | M::Pminub
        | M::Punpcklbw
        | M::Punpcklqdq => {
            let x = xmm_index(instr.op_register(0)).ok_or(FpuError::NotFpu)?;
            if instr.op_kind(1) == OpKind::Memory {
                aligned(instr, ctx)?;
            }
            let a = state.xmm(x);
            let b = read128(state, instr, ctx, 1)?;
            let bytes = |f: &dyn Fn(u8, u8) -> u8| -> u128 {
                let (ab, bb) = (a.to_le_bytes(), b.to_le_bytes());
                let mut r = [0u8; 16];
                for i in 0..16 {
                    r[i] = f(ab[i], bb[i]);
                }
                u128::from_le_bytes(r)
            };
            let r = match m {
                M::Pxor | M::Xorps | M::Xorpd => a ^ b,
                M::Por | M::Orps | M::Orpd => a | b,
                M::Pand | M::Andps | M::Andpd => a & b,
                M::Pandn | M::Andnps | M::Andnpd => !a & b,
                M::Pcmpeqb => bytes(&|x, y| if x == y { 0xff } else { 0 }),
                M::Psubb => bytes(&|x, y| x.wrapping_sub(y)),
                M::Pminub => bytes(&|x, y| x.min(y)),
                M::Pcmpeqd => {
                    let mut r = 0u128;
                    for i in 0..4 {
                        let s = i * 32;
                        if (a >> s) as u32 == (b >> s) as u32 {
                            r |= 0xffff_ffffu128 << s;
                        }
                    }
                    r
                }
                M::Paddq => {
                    let lo = (a as u64).wrapping_add(b as u64);
                    let hi = ((a >> 64) as u64).wrapping_add((b >> 64) as u64);
                    u128::from(lo) | (u128::from(hi) << 64)
                }
                M::Punpcklqdq => (a & u128::from(u64::MAX)) | (b << 64),
                _ => {
                    // PUNPCKLBW: interleave the low 8 bytes.
                    let (ab, bb) = (a.to_le_bytes(), b.to_le_bytes());
                    let mut r = [0u8; 16];
                    for i in 0..8 {
                        r[2 * i] = ab[i];
                        r[2 * i + 1] = bb[i];
                    }
                    u128::from_le_bytes(r)
                }
            };
            state.set_xmm(x, r);
        }
        M::Paddb
        | M::Paddw
        | M::Paddd
        | M::Psubw
        | M::Psubd
        | M::Psubq
        | M::Pcmpeqw
        | M::Pcmpgtb
        | M::Pcmpgtw
        | M::Pcmpgtd
        | M::Pmaxub
        | M::Pminsw
        | M::Pmaxsw
        | M::Punpckhbw
        | M::Punpcklwd
        | M::Punpckhwd
        | M::Punpckldq
        | M::Punpckhdq
        | M::Punpckhqdq
        | M::Unpcklps
        | M::Unpckhps
        | M::Unpcklpd
        | M::Unpckhpd
        | M::Paddusb
        | M::Psubusb
        | M::Pavgb => {
            let x = xmm_index(instr.op_register(0)).ok_or(FpuError::NotFpu)?;
            if instr.op_kind(1) == OpKind::Memory {
                aligned(instr, ctx)?;
            }
            let a = state.xmm(x);
            let b = read128(state, instr, ctx, 1)?;
            state.set_xmm(x, lanes(m, a, b));
        }
        M::Pslldq | M::Psrldq => {
            let x = xmm_index(instr.op_register(0)).ok_or(FpuError::NotFpu)?;
            let n = (instr.immediate(1) & 0xff) as u32;
            let v = state.xmm(x);
            let r = if n > 15 {
                0
            } else if m == M::Pslldq {
                v << (n * 8)
            } else {
                v >> (n * 8)
            };
            state.set_xmm(x, r);
        }
        M::Psllw | M::Pslld | M::Psllq | M::Psrlw | M::Psrld | M::Psrlq | M::Psraw | M::Psrad => {
            let x = xmm_index(instr.op_register(0)).ok_or(FpuError::NotFpu)?;
            let count = match instr.op_kind(1) {
                OpKind::Immediate8 => instr.immediate(1) & 0xff,
                _ => read128(state, instr, ctx, 1)? as u64,
            };
            let width = match m {
                M::Psllw | M::Psrlw | M::Psraw => 16,
                M::Pslld | M::Psrld | M::Psrad => 32,
                _ => 64,
            };
            let v = state.xmm(x);
            let mut r = 0u128;
            for lane in 0..(128 / width) {
                let sh = lane * width;
                let lm = if width == 64 {
                    u64::MAX
                } else {
                    (1u64 << width) - 1
                };
                let e = ((v >> sh) as u64) & lm;
                let out = match m {
                    M::Psllw | M::Pslld | M::Psllq => {
                        if count >= width as u64 {
                            0
                        } else {
                            (e << count) & lm
                        }
                    }
                    M::Psrlw | M::Psrld | M::Psrlq => {
                        if count >= width as u64 {
                            0
                        } else {
                            e >> count
                        }
                    }
                    _ => {
                        let sx = ((e << (64 - width)) as i64) >> (64 - width);
                        ((sx >> count.min(width as u64 - 1)) as u64) & lm
                    }
                };
                r |= u128::from(out) << sh;
            }
            state.set_xmm(x, r);
        }
        M::Pshufd | M::Pshuflw | M::Pshufhw | M::Shufps | M::Shufpd => {
            let x = xmm_index(instr.op_register(0)).ok_or(FpuError::NotFpu)?;
            if instr.op_kind(1) == OpKind::Memory {
                aligned(instr, ctx)?;
            }
            let src = read128(state, instr, ctx, 1)?;
            let imm = (instr.immediate(2) & 0xff) as u32;
            let dst = state.xmm(x);
            let d32 = |v: u128, i: u32| (v >> (i * 32)) as u32;
            let d16 = |v: u128, i: u32| (v >> (i * 16)) as u16;
            let r: u128 = match m {
                M::Pshufd => (0..4).fold(0, |r, i| {
                    r | u128::from(d32(src, (imm >> (2 * i)) & 3)) << (32 * i)
                }),
                M::Shufps => {
                    let lo = (0..2).fold(0u128, |r, i| {
                        r | u128::from(d32(dst, (imm >> (2 * i)) & 3)) << (32 * i)
                    });
                    (2..4).fold(lo, |r, i| {
                        r | u128::from(d32(src, (imm >> (2 * i)) & 3)) << (32 * i)
                    })
                }
                M::Shufpd => {
                    let lo = (dst >> (64 * (imm & 1))) as u64;
                    let hi = (src >> (64 * ((imm >> 1) & 1))) as u64;
                    u128::from(lo) | (u128::from(hi) << 64)
                }
                M::Pshuflw => {
                    let lo = (0..4).fold(0u128, |r, i| {
                        r | u128::from(d16(src, (imm >> (2 * i)) & 3)) << (16 * i)
                    });
                    lo | (src & (u128::MAX << 64))
                }
                _ => {
                    let hi = (0..4).fold(0u128, |r, i| {
                        r | u128::from(d16(src, 4 + ((imm >> (2 * i)) & 3))) << (16 * (i + 4))
                    });
                    hi | (src & u128::from(u64::MAX))
                }
            };
            state.set_xmm(x, r);
        }
        M::Movhps | M::Movhpd | M::Movlps | M::Movlpd => {
            let high = matches!(m, M::Movhps | M::Movhpd);
            match (instr.op_kind(0), instr.op_kind(1)) {
                (OpKind::Register, _) => {
                    let x = xmm_index(instr.op_register(0)).ok_or(FpuError::NotFpu)?;
                    let v = read128(state, instr, ctx, 1)? as u64;
                    let d = state.xmm(x);
                    let r = if high {
                        (d & u128::from(u64::MAX)) | (u128::from(v) << 64)
                    } else {
                        (d & (u128::MAX << 64)) | u128::from(v)
                    };
                    state.set_xmm(x, r);
                }
                _ => {
                    let x = xmm_index(instr.op_register(1)).ok_or(FpuError::NotFpu)?;
                    let d = state.xmm(x);
                    let v = if high { (d >> 64) as u64 } else { d as u64 };
                    ctx.write_mem(0, &v.to_le_bytes())?;
                }
            }
        }
        M::Movhlps | M::Movlhps => {
            let x = xmm_index(instr.op_register(0)).ok_or(FpuError::NotFpu)?;
            let y = xmm_index(instr.op_register(1)).ok_or(FpuError::NotFpu)?;
            let (d, s2) = (state.xmm(x), state.xmm(y));
            let r = if m == M::Movhlps {
                (d & (u128::MAX << 64)) | (s2 >> 64)
            } else {
                (d & u128::from(u64::MAX)) | (s2 << 64)
            };
            state.set_xmm(x, r);
        }
        M::Movss | M::Movsd => {
            let bytes = if m == M::Movss { 4 } else { 8 };
            let lm = if bytes == 4 {
                u128::from(u32::MAX)
            } else {
                u128::from(u64::MAX)
            };
            match (instr.op_kind(0), instr.op_kind(1)) {
                (OpKind::Register, OpKind::Register) => {
                    let x = xmm_index(instr.op_register(0)).ok_or(FpuError::NotFpu)?;
                    let y = xmm_index(instr.op_register(1)).ok_or(FpuError::NotFpu)?;
                    let r = (state.xmm(x) & !lm) | (state.xmm(y) & lm);
                    state.set_xmm(x, r);
                }
                (OpKind::Register, _) => {
                    let x = xmm_index(instr.op_register(0)).ok_or(FpuError::NotFpu)?;
                    let v = read128(state, instr, ctx, 1)? & lm;
                    state.set_xmm(x, v);
                }
                _ => {
                    let y = xmm_index(instr.op_register(1)).ok_or(FpuError::NotFpu)?;
                    let v = state.xmm(y).to_le_bytes();
                    ctx.write_mem(0, &v[..bytes])?;
                }
            }
        }
        M::Pmovmskb => {
            let x = xmm_index(instr.op_register(1)).ok_or(FpuError::NotFpu)?;
            let v = state.xmm(x).to_le_bytes();
            let mut mask = 0u64;
            for (i, b) in v.iter().enumerate() {
                mask |= u64::from(b >> 7) << i;
            }
            ctx.write_gpr(instr.op_register(0), mask);
        }
        _ => return Err(FpuError::NotFpu),
    }
    Ok(())
}
