//! VEX-encoded instructions (AVX and the AVX2 integer/permute set) on the
//! YMM register file.
//!
//! A VEX form of an SSE/SSE2 instruction is executed with the legacy
//! instruction's lane semantics (`sse` for floating point, `simd` for
//! integers), applied to each 128-bit half: the VEX.128 forms write
//! bits 127:0 of the destination and zero bits 255:128, the VEX.256 forms
//! compute both halves. The first source is the VEX.vvvv register, so the
//! forms are non-destructive. Instructions with no legacy counterpart
//! (VZEROUPPER, VBROADCAST*, VINSERT/VEXTRACT*128, VPERM*, VMASKMOV*,
//! VTESTPS/PD, variable shifts, VPBLENDD) are implemented here directly.
//! Only the aligned moves (VMOVAPS/VMOVAPD/VMOVDQA/VMOVNT*) check
//! alignment. FMA is in `fma`, F16C in `f16c`, gathers in `gather`, the
//! VEX forms of SSE3..SSE4.2, AES-NI and PCLMULQDQ in `vex_ext`.

use std::collections::HashMap;
use std::sync::OnceLock;

use iced_x86::{Instruction, Mnemonic, OpKind, Register};

use super::simd::{elem, int_op, shift};
use super::softfloat::{Format, F32, F64};
use super::sse::{arith_lanes, arith_op, comi, cvt_float, cvt_from_int, cvt_int, FOp};
use super::{FpuContext, FpuError, FpuState};

/// A 256-bit value as (bits 127:0, bits 255:128).
pub(super) type Y = [u128; 2];

/// The legacy SSE mnemonic a VEX mnemonic is named after (VADDPS ->
/// ADDPS), from iced's mnemonic names, built once.
pub(super) fn legacy(m: Mnemonic) -> Option<Mnemonic> {
    static TABLE: OnceLock<Vec<Option<Mnemonic>>> = OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let by_name: HashMap<String, Mnemonic> =
            Mnemonic::values().map(|m| (format!("{m:?}"), m)).collect();
        Mnemonic::values()
            .map(|m| {
                let name = format!("{m:?}");
                let rest = name.strip_prefix('V')?;
                let mut c = rest.chars();
                let first = c.next()?.to_ascii_uppercase();
                by_name.get(&format!("{first}{}", c.as_str())).copied()
            })
            .collect()
    });
    t.get(m as usize).copied().flatten()
}

/// Register number and whether it is a YMM register.
pub(super) fn vreg(r: Register) -> Option<(usize, bool)> {
    if r.is_xmm() {
        Some(((r as usize - Register::XMM0 as usize) & 15, false))
    } else if r.is_ymm() {
        Some(((r as usize - Register::YMM0 as usize) & 15, true))
    } else {
        None
    }
}

/// The low `bytes` bytes (1 to 16) set.
fn low_mask(bytes: usize) -> u128 {
    u128::MAX >> (128 - 8 * bytes.clamp(1, 16))
}

/// Element `i` of `size` bytes across both halves.
pub(super) fn yget(v: Y, i: usize, size: usize) -> u64 {
    let per = 16 / size;
    elem(v[i / per], i % per, size)
}

/// Set element `i` of `size` bytes across both halves.
pub(super) fn yput(v: &mut Y, i: usize, size: usize, x: u64) {
    let per = 16 / size;
    let sh = (i % per) * size * 8;
    let m = low_mask(size) << sh;
    let h = &mut v[i / per];
    *h = (*h & !m) | ((u128::from(x) << sh) & m);
}

/// Replicate the low `size` bytes of `v` over 128 bits.
fn splat(v: u128, size: usize) -> u128 {
    let e = v & low_mask(size);
    (0..16 / size).fold(0, |r, i| r | (e << (i * size * 8)))
}

fn gp0() -> FpuError {
    FpuError::Exception {
        vector: 13,
        error_code: Some(0),
    }
}

/// PSHUFD/PSHUFLW/PSHUFHW/SHUFPS/SHUFPD on one 128-bit lane.
fn shuffle(l: Mnemonic, a: u128, b: u128, imm: usize) -> Option<u128> {
    use Mnemonic as M;
    let sel = |i: usize| (imm >> (2 * i)) & 3;
    Some(match l {
        M::Pshufd => (0..4).fold(0, |r, i| r | u128::from(elem(b, sel(i), 4)) << (32 * i)),
        M::Pshuflw => (0..4).fold(b & (u128::MAX << 64), |r, i| {
            r | u128::from(elem(b, sel(i), 2)) << (16 * i)
        }),
        M::Pshufhw => (0..4).fold(b & u128::from(u64::MAX), |r, i| {
            r | u128::from(elem(b, 4 + sel(i), 2)) << (16 * (i + 4))
        }),
        M::Shufps => (0..4).fold(0, |r, i| {
            let from = if i < 2 { a } else { b };
            r | u128::from(elem(from, sel(i), 4)) << (32 * i)
        }),
        M::Shufpd => {
            u128::from(elem(a, imm & 1, 8)) | (u128::from(elem(b, (imm >> 1) & 1, 8)) << 64)
        }
        _ => return None,
    })
}

fn is_shift(l: Mnemonic) -> bool {
    use Mnemonic as M;
    matches!(
        l,
        M::Psllw | M::Pslld | M::Psllq | M::Psrlw | M::Psrld | M::Psrlq | M::Psraw | M::Psrad
    )
}

impl FpuState {
    fn get_y(&self, n: usize) -> Y {
        [self.xmm[n & 15], self.ymm_hi[n & 15]]
    }

    /// Write a VEX destination register: a YMM register takes both
    /// halves, an XMM register the low half with bits 255:128 zeroed.
    pub(super) fn put_v(&mut self, r: Register, v: Y) -> Result<(), FpuError> {
        let (n, wide) = vreg(r).ok_or(FpuError::NotFpu)?;
        self.xmm[n] = v[0];
        self.ymm_hi[n] = if wide { v[1] } else { 0 };
        Ok(())
    }

    /// Operand `n`: a vector register (both halves), a GPR, memory of the
    /// instruction's memory size (zero-extended), or the immediate.
    pub(super) fn vop(
        &self,
        instr: &Instruction,
        ctx: &mut dyn FpuContext,
        n: u32,
    ) -> Result<Y, FpuError> {
        match instr.op_kind(n) {
            OpKind::Register => {
                let r = instr.op_register(n);
                if let Some((i, _)) = vreg(r) {
                    Ok(self.get_y(i))
                } else if r.is_gpr() {
                    Ok([u128::from(ctx.read_gpr(r)), 0])
                } else {
                    Err(FpuError::NotFpu)
                }
            }
            OpKind::Memory => {
                let size = instr.memory_size().size().clamp(1, 32);
                let mut b = [0u8; 32];
                ctx.read_mem(0, &mut b[..size])?;
                let mut lo = [0u8; 16];
                let mut hi = [0u8; 16];
                lo.copy_from_slice(&b[..16]);
                hi.copy_from_slice(&b[16..]);
                Ok([u128::from_le_bytes(lo), u128::from_le_bytes(hi)])
            }
            OpKind::Immediate8 => Ok([u128::from(instr.immediate8()), 0]),
            _ => Err(FpuError::NotFpu),
        }
    }

    /// Store the low `bytes` bytes of `v` at the memory operand.
    pub(super) fn store(ctx: &mut dyn FpuContext, v: Y, bytes: usize) -> Result<(), FpuError> {
        let mut b = [0u8; 32];
        b[..16].copy_from_slice(&v[0].to_le_bytes());
        b[16..].copy_from_slice(&v[1].to_le_bytes());
        ctx.write_mem(0, &b[..bytes.min(32)])?;
        Ok(())
    }

    /// Execute one VEX-encoded vector instruction (the #UD/#NM checks are
    /// done).
    pub(super) fn execute_avx(
        &mut self,
        instr: &Instruction,
        ctx: &mut dyn FpuContext,
    ) -> Result<(), FpuError> {
        use Mnemonic as M;
        let m = instr.mnemonic();
        let has_mem = (0..instr.op_count()).any(|n| instr.op_kind(n) == OpKind::Memory);
        if has_mem
            && matches!(
                m,
                M::Vmovaps
                    | M::Vmovapd
                    | M::Vmovdqa
                    | M::Vmovntps
                    | M::Vmovntpd
                    | M::Vmovntdq
                    | M::Vmovntdqa
            )
        {
            let size = instr.memory_size().size().max(1) as u64;
            if ctx.mem_address() % size != 0 {
                return Err(gp0());
            }
        }
        if self.execute_fma(instr, ctx)?
            || self.execute_f16c(instr, ctx)?
            || self.execute_gather(instr, ctx)?
            || self.avx_move(instr, ctx)?
            || self.avx_convert(instr, ctx)?
            || self.avx2_permute(instr, ctx)?
            || self.avx_extension(instr, ctx)?
        {
            return Ok(());
        }
        if self.avx_lanes(instr, ctx)? {
            return Ok(());
        }
        Err(FpuError::NotFpu)
    }

    /// VEX forms of lane-wise SSE/SSE2 instructions, per 128-bit half.
    /// [`legacy`] already maps every VEX mnemonic to its legacy name
    /// (VPSHUFB -> PSHUFB, ...): a later instruction set's VEX forms need
    /// only its pure per-128-bit lane function called here.
    fn avx_lanes(
        &mut self,
        instr: &Instruction,
        ctx: &mut dyn FpuContext,
    ) -> Result<bool, FpuError> {
        use Mnemonic as M;
        let Some(l) = legacy(instr.mnemonic()) else {
            return Ok(false);
        };
        let dst = instr.op_register(0);
        let Some((_, wide)) = vreg(dst) else {
            return Ok(false);
        };
        if instr.op_kind(0) != OpKind::Register {
            return Ok(false);
        }
        let halves = if wide { 2 } else { 1 };
        let imm = instr.immediate8();
        let count = instr.op_count();
        let has_imm = instr.op_kind(count - 1) == OpKind::Immediate8;
        let sources = count - 1 - u32::from(has_imm);
        let (a, b) = match sources {
            2 => (self.vop(instr, ctx, 1)?, self.vop(instr, ctx, 2)?),
            1 => ([0; 2], self.vop(instr, ctx, 1)?),
            _ => return Ok(false),
        };
        let mut out = [0u128; 2];
        if let Some(mut spec) = arith_op(l, imm) {
            if let FOp::Cmp(_) = spec.0 {
                spec.0 = FOp::Cmp(imm & 31);
            }
            let mut flags = 0;
            for h in 0..halves {
                out[h] = arith_lanes(spec, a[h], b[h], self.mxcsr, &mut flags);
            }
            self.sse_flags(flags, ctx)?;
        } else if is_shift(l) {
            // By immediate: the source is the r/m operand; by register:
            // the count is the low quadword of the second source.
            let (v, n) = if has_imm {
                (b, u64::from(imm))
            } else {
                (a, b[0] as u64)
            };
            for h in 0..halves {
                out[h] = shift(l, v[h], n, 16);
            }
        } else if int_op(l, 0, 0, 16).is_some() {
            for h in 0..halves {
                out[h] = int_op(l, a[h], b[h], 16).unwrap_or(0);
            }
        } else {
            match l {
                M::Pslldq | M::Psrldq => {
                    let n = u32::from(imm);
                    for h in 0..halves {
                        out[h] = match (n > 15, l == M::Pslldq) {
                            (true, _) => 0,
                            (false, true) => b[h] << (n * 8),
                            (false, false) => b[h] >> (n * 8),
                        };
                    }
                }
                _ => {
                    for h in 0..halves {
                        // VSHUFPD takes two immediate bits per half.
                        let sh = if l == M::Shufpd { 2 * h } else { 0 };
                        match shuffle(l, a[h], b[h], usize::from(imm) >> sh) {
                            Some(r) => out[h] = r,
                            None => return Ok(false),
                        }
                    }
                }
            }
        }
        self.put_v(dst, out)?;
        Ok(true)
    }

    /// Moves, broadcasts, 128-bit inserts/extracts, masks and tests.
    fn avx_move(
        &mut self,
        instr: &Instruction,
        ctx: &mut dyn FpuContext,
    ) -> Result<bool, FpuError> {
        use Mnemonic as M;
        let m = instr.mnemonic();
        let op0_reg = instr.op_kind(0) == OpKind::Register;
        let regs = if ctx.long_mode() { 16 } else { 8 };
        let imm = usize::from(instr.immediate8());
        match m {
            M::Vzeroupper => self.ymm_hi[..regs].fill(0),
            M::Vldmxcsr => {
                let mut b = [0u8; 4];
                ctx.read_mem(0, &mut b)?;
                let v = u32::from_le_bytes(b);
                if v & !super::state::MXCSR_MASK != 0 {
                    return Err(gp0());
                }
                self.mxcsr = v;
            }
            M::Vstmxcsr => ctx.write_mem(0, &self.mxcsr.to_le_bytes())?,
            M::Vzeroall => {
                self.ymm_hi[..regs].fill(0);
                self.xmm[..regs].fill(0);
            }
            M::Vmovaps
            | M::Vmovapd
            | M::Vmovdqa
            | M::Vmovups
            | M::Vmovupd
            | M::Vmovdqu
            | M::Vmovntps
            | M::Vmovntpd
            | M::Vmovntdq
            | M::Vlddqu => {
                let v = self.vop(instr, ctx, 1)?;
                if op0_reg {
                    self.put_v(instr.op_register(0), v)?;
                } else {
                    Self::store(ctx, v, instr.memory_size().size())?;
                }
            }
            M::Vmovss | M::Vmovsd => {
                let lm = low_mask(if m == M::Vmovss { 4 } else { 8 });
                if !op0_reg {
                    let v = self.vop(instr, ctx, 1)?;
                    Self::store(ctx, v, instr.memory_size().size())?;
                } else if instr.op_count() == 3 {
                    let a = self.vop(instr, ctx, 1)?[0];
                    let b = self.vop(instr, ctx, 2)?[0];
                    self.put_v(instr.op_register(0), [(a & !lm) | (b & lm), 0])?;
                } else {
                    let b = self.vop(instr, ctx, 1)?[0];
                    self.put_v(instr.op_register(0), [b & lm, 0])?;
                }
            }
            M::Vmovd | M::Vmovq => {
                let lm = low_mask(if m == M::Vmovd { 4 } else { 8 });
                let v = self.vop(instr, ctx, 1)?[0] & lm;
                let dst = instr.op_register(0);
                if !op0_reg {
                    Self::store(ctx, [v, 0], instr.memory_size().size())?;
                } else if dst.is_gpr() {
                    ctx.write_gpr(dst, v as u64);
                } else {
                    self.put_v(dst, [v, 0])?;
                }
            }
            M::Vmovhps | M::Vmovhpd | M::Vmovlps | M::Vmovlpd => {
                let high = matches!(m, M::Vmovhps | M::Vmovhpd);
                let lo64 = u128::from(u64::MAX);
                if op0_reg {
                    let a = self.vop(instr, ctx, 1)?[0];
                    let v = self.vop(instr, ctx, 2)?[0] & lo64;
                    let r = if high {
                        (a & lo64) | (v << 64)
                    } else {
                        (a & !lo64) | v
                    };
                    self.put_v(instr.op_register(0), [r, 0])?;
                } else {
                    let s = self.vop(instr, ctx, 1)?[0];
                    let v = if high { s >> 64 } else { s & lo64 };
                    Self::store(ctx, [v, 0], 8)?;
                }
            }
            M::Vmovhlps | M::Vmovlhps => {
                let a = self.vop(instr, ctx, 1)?[0];
                let b = self.vop(instr, ctx, 2)?[0];
                let lo64 = u128::from(u64::MAX);
                let r = if m == M::Vmovhlps {
                    (b >> 64) | (a & !lo64)
                } else {
                    (a & lo64) | (b << 64)
                };
                self.put_v(instr.op_register(0), [r, 0])?;
            }
            M::Vmovmskps | M::Vmovmskpd | M::Vpmovmskb => {
                let size = match m {
                    M::Vmovmskps => 4,
                    M::Vmovmskpd => 8,
                    _ => 1,
                };
                let wide = instr.op_register(1).is_ymm();
                let v = self.vop(instr, ctx, 1)?;
                let n = if wide { 32 / size } else { 16 / size };
                let r = (0..n).fold(0u64, |acc, i| {
                    acc | ((yget(v, i, size) >> (size * 8 - 1)) << i)
                });
                ctx.write_gpr(instr.op_register(0), r);
            }
            M::Vpextrw => {
                let v = elem(self.vop(instr, ctx, 1)?[0], imm & 7, 2);
                if op0_reg {
                    ctx.write_gpr(instr.op_register(0), v);
                } else {
                    Self::store(ctx, [u128::from(v), 0], 2)?;
                }
            }
            M::Vpinsrw => {
                let a = self.vop(instr, ctx, 1)?[0];
                let v = self.vop(instr, ctx, 2)?[0] & 0xffff;
                let sh = 16 * (imm & 7);
                self.put_v(
                    instr.op_register(0),
                    [(a & !(0xffffu128 << sh)) | (v << sh), 0],
                )?;
            }
            M::Vbroadcastss
            | M::Vbroadcastsd
            | M::Vbroadcastf128
            | M::Vbroadcasti128
            | M::Vpbroadcastb
            | M::Vpbroadcastw
            | M::Vpbroadcastd
            | M::Vpbroadcastq => {
                let size = match m {
                    M::Vpbroadcastb => 1,
                    M::Vpbroadcastw => 2,
                    M::Vbroadcastss | M::Vpbroadcastd => 4,
                    M::Vbroadcastsd | M::Vpbroadcastq => 8,
                    _ => 16,
                };
                let v = splat(self.vop(instr, ctx, 1)?[0], size);
                self.put_v(instr.op_register(0), [v, v])?;
            }
            M::Vinsertf128 | M::Vinserti128 => {
                let mut a = self.vop(instr, ctx, 1)?;
                a[imm & 1] = self.vop(instr, ctx, 2)?[0];
                self.put_v(instr.op_register(0), a)?;
            }
            M::Vextractf128 | M::Vextracti128 => {
                let v = self.vop(instr, ctx, 1)?[imm & 1];
                if op0_reg {
                    self.put_v(instr.op_register(0), [v, 0])?;
                } else {
                    Self::store(ctx, [v, 0], 16)?;
                }
            }
            M::Vperm2f128 | M::Vperm2i128 => {
                let a = self.vop(instr, ctx, 1)?;
                let b = self.vop(instr, ctx, 2)?;
                let pick = |c: usize| {
                    if c & 8 != 0 {
                        0
                    } else {
                        [a[0], a[1], b[0], b[1]][c & 3]
                    }
                };
                self.put_v(instr.op_register(0), [pick(imm), pick(imm >> 4)])?;
            }
            M::Vpermilps | M::Vpermilpd => {
                let src = self.vop(instr, ctx, 1)?;
                let by_imm = instr.op_kind(2) == OpKind::Immediate8;
                let ctl = if by_imm {
                    [0; 2]
                } else {
                    self.vop(instr, ctx, 2)?
                };
                let mut out = [0u128; 2];
                for (h, o) in out.iter_mut().enumerate() {
                    *o = if m == M::Vpermilps {
                        (0..4).fold(0, |r, i| {
                            let s = if by_imm {
                                (imm >> (2 * i)) & 3
                            } else {
                                elem(ctl[h], i, 4) as usize & 3
                            };
                            r | u128::from(elem(src[h], s, 4)) << (32 * i)
                        })
                    } else {
                        (0..2).fold(0, |r, i| {
                            let s = if by_imm {
                                (imm >> (2 * h + i)) & 1
                            } else {
                                (elem(ctl[h], i, 8) as usize >> 1) & 1
                            };
                            r | u128::from(elem(src[h], s, 8)) << (64 * i)
                        })
                    };
                }
                self.put_v(instr.op_register(0), out)?;
            }
            M::Vmaskmovps | M::Vmaskmovpd | M::Vpmaskmovd | M::Vpmaskmovq => {
                self.mask_move(instr, ctx)?;
            }
            M::Vtestps | M::Vtestpd => {
                let size = if m == M::Vtestps { 4 } else { 8 };
                let a = self.vop(instr, ctx, 0)?;
                let b = self.vop(instr, ctx, 1)?;
                let n = if instr.op_register(0).is_ymm() {
                    32
                } else {
                    16
                } / size;
                let sign = |v: Y, i: usize| yget(v, i, size) >> (size * 8 - 1);
                let zf = (0..n).all(|i| sign(a, i) & sign(b, i) == 0);
                let cf = (0..n).all(|i| (sign(a, i) ^ 1) & sign(b, i) == 0);
                ctx.set_flags(u64::from(zf) << 6 | u64::from(cf), 0x8d5);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// VMASKMOVPS/PD and VPMASKMOVD/Q: only the elements whose mask sign
    /// bit is set are read or written, so masked-off elements never fault.
    fn mask_move(&mut self, instr: &Instruction, ctx: &mut dyn FpuContext) -> Result<(), FpuError> {
        use Mnemonic as M;
        let size = match instr.mnemonic() {
            M::Vmaskmovps | M::Vpmaskmovd => 4,
            _ => 8,
        };
        let mask = self.vop(instr, ctx, 1)?;
        let wide = instr.op_register(1).is_ymm();
        let n = if wide { 32 } else { 16 } / size;
        let on = |i: usize| yget(mask, i, size) >> (size * 8 - 1) == 1;
        if instr.op_kind(0) == OpKind::Register {
            let mut out = [0u128; 2];
            for i in (0..n).filter(|&i| on(i)) {
                let mut b = [0u8; 8];
                ctx.read_mem((i * size) as u64, &mut b[..size])?;
                yput(&mut out, i, size, u64::from_le_bytes(b));
            }
            self.put_v(instr.op_register(0), out)?;
        } else {
            let v = self.vop(instr, ctx, 2)?;
            for i in (0..n).filter(|&i| on(i)) {
                let b = yget(v, i, size).to_le_bytes();
                ctx.write_mem((i * size) as u64, &b[..size])?;
            }
        }
        Ok(())
    }

    /// VEX conversions and (U)COMIS.
    fn avx_convert(
        &mut self,
        instr: &Instruction,
        ctx: &mut dyn FpuContext,
    ) -> Result<bool, FpuError> {
        use Mnemonic as M;
        let m = instr.mnemonic();
        let mx = self.mxcsr;
        let mut flags = 0u32;
        let dst = instr.op_register(0);
        // Source element count of the packed forms: a YMM or 256-bit
        // memory source, or a YMM destination for the widening forms.
        let src_wide = instr.op_kind(1) == OpKind::Register && instr.op_register(1).is_ymm()
            || instr.op_kind(1) == OpKind::Memory && instr.memory_size().size() == 32;
        let dst_wide = dst.is_ymm();
        let mut out = [0u128; 2];
        match m {
            M::Vcomiss | M::Vucomiss | M::Vcomisd | M::Vucomisd => {
                let fmt = if matches!(m, M::Vcomiss | M::Vucomiss) {
                    F32
                } else {
                    F64
                };
                let size = if fmt == F32 { 4 } else { 8 };
                let a = self.vop(instr, ctx, 0)?;
                let b = self.vop(instr, ctx, 1)?;
                let signaling = matches!(m, M::Vcomiss | M::Vcomisd);
                let v = comi(
                    yget(a, 0, size),
                    yget(b, 0, size),
                    fmt,
                    mx,
                    signaling,
                    &mut flags,
                );
                self.sse_flags(flags, ctx)?;
                ctx.set_flags(v, 0x8d5);
                return Ok(true);
            }
            M::Vcvtdq2ps | M::Vcvtps2dq | M::Vcvttps2dq => {
                let src = self.vop(instr, ctx, 1)?;
                let n = if dst_wide { 8 } else { 4 };
                for i in 0..n {
                    let x = yget(src, i, 4);
                    let r = match m {
                        M::Vcvtdq2ps => {
                            cvt_from_int(i64::from(x as u32 as i32), F32, mx, &mut flags)
                        }
                        _ => cvt_int(x, F32, 32, m == M::Vcvttps2dq, mx, &mut flags),
                    };
                    yput(&mut out, i, 4, r);
                }
            }
            M::Vcvtps2pd | M::Vcvtdq2pd => {
                let src = self.vop(instr, ctx, 1)?;
                let n = if dst_wide { 4 } else { 2 };
                for i in 0..n {
                    let x = yget(src, i, 4);
                    let r = if m == M::Vcvtps2pd {
                        cvt_float(x, F32, F64, mx, &mut flags)
                    } else {
                        cvt_from_int(i64::from(x as u32 as i32), F64, mx, &mut flags)
                    };
                    yput(&mut out, i, 8, r);
                }
            }
            M::Vcvtpd2ps | M::Vcvtpd2dq | M::Vcvttpd2dq => {
                let src = self.vop(instr, ctx, 1)?;
                let n = if src_wide { 4 } else { 2 };
                for i in 0..n {
                    let x = yget(src, i, 8);
                    let r = match m {
                        M::Vcvtpd2ps => cvt_float(x, F64, F32, mx, &mut flags),
                        _ => cvt_int(x, F64, 32, m == M::Vcvttpd2dq, mx, &mut flags),
                    };
                    yput(&mut out, i, 4, r);
                }
            }
            M::Vcvtss2sd | M::Vcvtsd2ss => {
                let (from, to): (Format, Format) = if m == M::Vcvtss2sd {
                    (F32, F64)
                } else {
                    (F64, F32)
                };
                let a = self.vop(instr, ctx, 1)?;
                let b = self.vop(instr, ctx, 2)?;
                let fsize = if from == F32 { 4 } else { 8 };
                let tsize = if to == F32 { 4 } else { 8 };
                out[0] = a[0];
                let r = cvt_float(yget(b, 0, fsize), from, to, mx, &mut flags);
                yput(&mut out, 0, tsize, r);
            }
            M::Vcvtsi2ss | M::Vcvtsi2sd => {
                let to = if m == M::Vcvtsi2ss { F32 } else { F64 };
                let a = self.vop(instr, ctx, 1)?;
                let b = self.vop(instr, ctx, 2)?[0] as u64;
                let wide = match instr.op_kind(2) {
                    OpKind::Register => instr.op_register(2).size() == 8,
                    _ => instr.memory_size().size() == 8,
                };
                let v = if wide {
                    b as i64
                } else {
                    i64::from(b as u32 as i32)
                };
                out[0] = a[0];
                let r = cvt_from_int(v, to, mx, &mut flags);
                yput(&mut out, 0, if to == F32 { 4 } else { 8 }, r);
            }
            M::Vcvtss2si | M::Vcvttss2si | M::Vcvtsd2si | M::Vcvttsd2si => {
                let (from, size) = if matches!(m, M::Vcvtss2si | M::Vcvttss2si) {
                    (F32, 4)
                } else {
                    (F64, 8)
                };
                let bits = if dst.size() == 8 { 64 } else { 32 };
                let trunc = matches!(m, M::Vcvttss2si | M::Vcvttsd2si);
                let src = self.vop(instr, ctx, 1)?;
                let v = cvt_int(yget(src, 0, size), from, bits, trunc, mx, &mut flags);
                self.sse_flags(flags, ctx)?;
                ctx.write_gpr(dst, v);
                return Ok(true);
            }
            _ => return Ok(false),
        }
        self.sse_flags(flags, ctx)?;
        self.put_v(dst, out)?;
        Ok(true)
    }

    /// AVX2 cross-lane permutes, variable shifts and VPBLENDD.
    fn avx2_permute(
        &mut self,
        instr: &Instruction,
        ctx: &mut dyn FpuContext,
    ) -> Result<bool, FpuError> {
        use Mnemonic as M;
        let m = instr.mnemonic();
        let dst = instr.op_register(0);
        let imm = usize::from(instr.immediate8());
        let n256 = |size: usize| if dst.is_ymm() { 32 / size } else { 16 / size };
        let mut out = [0u128; 2];
        match m {
            M::Vpermd | M::Vpermps => {
                let idx = self.vop(instr, ctx, 1)?;
                let src = self.vop(instr, ctx, 2)?;
                for i in 0..8 {
                    let s = yget(idx, i, 4) as usize & 7;
                    yput(&mut out, i, 4, yget(src, s, 4));
                }
            }
            M::Vpermq | M::Vpermpd => {
                let src = self.vop(instr, ctx, 1)?;
                for i in 0..4 {
                    yput(&mut out, i, 8, yget(src, (imm >> (2 * i)) & 3, 8));
                }
            }
            M::Vpsllvd | M::Vpsllvq | M::Vpsrlvd | M::Vpsrlvq | M::Vpsravd => {
                let size = if matches!(m, M::Vpsllvq | M::Vpsrlvq) {
                    8
                } else {
                    4
                };
                let bits = (size * 8) as u64;
                let a = self.vop(instr, ctx, 1)?;
                let b = self.vop(instr, ctx, 2)?;
                for i in 0..n256(size) {
                    let (x, c) = (yget(a, i, size), yget(b, i, size));
                    let r = match m {
                        M::Vpsllvd | M::Vpsllvq => {
                            if c >= bits {
                                0
                            } else {
                                x << c
                            }
                        }
                        M::Vpsrlvd | M::Vpsrlvq => {
                            if c >= bits {
                                0
                            } else {
                                x >> c
                            }
                        }
                        _ => ((x as u32 as i32) >> c.min(31)) as u32 as u64,
                    };
                    yput(&mut out, i, size, r);
                }
            }
            M::Vpblendd => {
                let a = self.vop(instr, ctx, 1)?;
                let b = self.vop(instr, ctx, 2)?;
                for i in 0..n256(4) {
                    let from = if imm >> i & 1 != 0 { b } else { a };
                    yput(&mut out, i, 4, yget(from, i, 4));
                }
            }
            _ => return Ok(false),
        }
        self.put_v(dst, out)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_names_map_vex_mnemonics() {
        assert_eq!(legacy(Mnemonic::Vaddps), Some(Mnemonic::Addps));
        assert_eq!(legacy(Mnemonic::Vpunpckhqdq), Some(Mnemonic::Punpckhqdq));
        assert_eq!(legacy(Mnemonic::Vzeroupper), None);
        assert_eq!(legacy(Mnemonic::Addps), None);
    }

    #[test]
    fn element_helpers_cross_halves() {
        let mut v: Y = [0, 0];
        yput(&mut v, 5, 4, 0xdead_beef);
        assert_eq!(v, [0, 0xdead_beef << 32]);
        assert_eq!(yget(v, 5, 4), 0xdead_beef);
        assert_eq!(splat(0x1234, 2), 0x1234_1234_1234_1234_1234_1234_1234_1234);
    }
}
