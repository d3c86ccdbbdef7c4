//! SSE/SSE2 data movement and the integer vector set, on XMM registers and
//! (for the MMX forms) on MM registers, which alias the x87 significands.

use iced_x86::{Instruction, Mnemonic, OpKind, Register};

use super::state::F80;
use super::{FpuContext, FpuError, FpuState};

/// A vector or general register operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loc {
    Xmm(usize),
    Mm(usize),
    Gpr(Register),
    /// Anything else (never read or written).
    None,
}

fn loc(r: Register) -> Loc {
    if r.is_xmm() {
        Loc::Xmm(r as usize - Register::XMM0 as usize)
    } else if r.is_mm() {
        Loc::Mm(r as usize - Register::MM0 as usize)
    } else if r.is_gpr() {
        Loc::Gpr(r)
    } else {
        Loc::None
    }
}

/// The low `bits` bits set.
pub(super) fn mask(bits: usize) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// `x` sign-extended from `bits` bits.
pub(super) fn sx(x: u64, bits: usize) -> i64 {
    ((x << (64 - bits)) as i64) >> (64 - bits)
}

/// `v` saturated to a signed `bits`-bit value (as raw bits).
pub(super) fn sat_s(v: i64, bits: usize) -> u64 {
    let lo = -(1i64 << (bits - 1));
    let hi = (1i64 << (bits - 1)) - 1;
    (v.clamp(lo, hi) as u64) & mask(bits)
}

/// `v` saturated to an unsigned `bits`-bit value.
pub(super) fn sat_u(v: i64, bits: usize) -> u64 {
    v.clamp(0, mask(bits) as i64) as u64
}

/// Apply `f` to each `size`-byte lane of the low `w` bytes of `a` and `b`.
pub(super) fn lanes(a: u128, b: u128, w: usize, size: usize, f: impl Fn(u64, u64) -> u64) -> u128 {
    let bits = size * 8;
    let m = mask(bits);
    let mut r = 0u128;
    for i in 0..w / size {
        let x = (a >> (i * bits)) as u64 & m;
        let y = (b >> (i * bits)) as u64 & m;
        r |= u128::from(f(x, y) & m) << (i * bits);
    }
    r
}

/// Element `i` (of `size` bytes) of `v`.
pub(super) fn elem(v: u128, i: usize, size: usize) -> u64 {
    (v >> (i * size * 8)) as u64 & mask(size * 8)
}

/// PUNPCKL*/PUNPCKH*/UNPCK*: interleave the low or high halves.
fn interleave(a: u128, b: u128, w: usize, size: usize, high: bool) -> u128 {
    let n = w / size;
    let base = if high { n / 2 } else { 0 };
    let bits = size * 8;
    let mut r = 0u128;
    for i in 0..n / 2 {
        r |= u128::from(elem(a, base + i, size)) << (2 * i * bits);
        r |= u128::from(elem(b, base + i, size)) << ((2 * i + 1) * bits);
    }
    r
}

/// PACKSS*/PACKUS*: narrow `a` then `b` lanes of `size` bytes with saturation.
pub(super) fn pack(a: u128, b: u128, w: usize, size: usize, unsigned: bool) -> u128 {
    let n = w / size;
    let bits = size * 8;
    let out = bits / 2;
    let mut r = 0u128;
    for (k, src) in [a, b].into_iter().enumerate() {
        for i in 0..n {
            let v = sx(elem(src, i, size), bits);
            let s = if unsigned {
                sat_u(v, out)
            } else {
                sat_s(v, out)
            };
            r |= u128::from(s) << ((k * n + i) * out);
        }
    }
    r
}

pub(super) fn shift(m: Mnemonic, v: u128, count: u64, w: usize) -> u128 {
    use Mnemonic as M;
    let size = match m {
        M::Psllw | M::Psrlw | M::Psraw => 2,
        M::Pslld | M::Psrld | M::Psrad => 4,
        _ => 8,
    };
    let bits = size * 8;
    lanes(v, 0, w, size, |x, _| match m {
        M::Psllw | M::Pslld | M::Psllq => {
            if count >= bits as u64 {
                0
            } else {
                x << count
            }
        }
        M::Psrlw | M::Psrld | M::Psrlq => {
            if count >= bits as u64 {
                0
            } else {
                x >> count
            }
        }
        _ => (sx(x, bits) >> count.min(bits as u64 - 1)) as u64,
    })
}

/// The lane-wise integer operations: `None` if `m` is not one.
pub(super) fn int_op(m: Mnemonic, a: u128, b: u128, w: usize) -> Option<u128> {
    use Mnemonic as M;
    Some(match m {
        M::Paddb => lanes(a, b, w, 1, u64::wrapping_add),
        M::Paddw => lanes(a, b, w, 2, u64::wrapping_add),
        M::Paddd => lanes(a, b, w, 4, u64::wrapping_add),
        M::Paddq => lanes(a, b, w, 8, u64::wrapping_add),
        M::Psubb => lanes(a, b, w, 1, u64::wrapping_sub),
        M::Psubw => lanes(a, b, w, 2, u64::wrapping_sub),
        M::Psubd => lanes(a, b, w, 4, u64::wrapping_sub),
        M::Psubq => lanes(a, b, w, 8, u64::wrapping_sub),
        M::Paddsb => lanes(a, b, w, 1, |x, y| sat_s(sx(x, 8) + sx(y, 8), 8)),
        M::Paddsw => lanes(a, b, w, 2, |x, y| sat_s(sx(x, 16) + sx(y, 16), 16)),
        M::Psubsb => lanes(a, b, w, 1, |x, y| sat_s(sx(x, 8) - sx(y, 8), 8)),
        M::Psubsw => lanes(a, b, w, 2, |x, y| sat_s(sx(x, 16) - sx(y, 16), 16)),
        M::Paddusb => lanes(a, b, w, 1, |x, y| sat_u((x + y) as i64, 8)),
        M::Paddusw => lanes(a, b, w, 2, |x, y| sat_u((x + y) as i64, 16)),
        M::Psubusb => lanes(a, b, w, 1, |x, y| x.saturating_sub(y)),
        M::Psubusw => lanes(a, b, w, 2, |x, y| x.saturating_sub(y)),
        M::Pcmpeqb => lanes(a, b, w, 1, |x, y| if x == y { u64::MAX } else { 0 }),
        M::Pcmpeqw => lanes(a, b, w, 2, |x, y| if x == y { u64::MAX } else { 0 }),
        M::Pcmpeqd => lanes(a, b, w, 4, |x, y| if x == y { u64::MAX } else { 0 }),
        M::Pcmpgtb => lanes(
            a,
            b,
            w,
            1,
            |x, y| if sx(x, 8) > sx(y, 8) { u64::MAX } else { 0 },
        ),
        M::Pcmpgtw => lanes(
            a,
            b,
            w,
            2,
            |x, y| {
                if sx(x, 16) > sx(y, 16) {
                    u64::MAX
                } else {
                    0
                }
            },
        ),
        M::Pcmpgtd => lanes(
            a,
            b,
            w,
            4,
            |x, y| {
                if sx(x, 32) > sx(y, 32) {
                    u64::MAX
                } else {
                    0
                }
            },
        ),
        M::Pmullw => lanes(a, b, w, 2, |x, y| (sx(x, 16) * sx(y, 16)) as u64),
        M::Pmulhw => lanes(a, b, w, 2, |x, y| ((sx(x, 16) * sx(y, 16)) >> 16) as u64),
        M::Pmulhuw => lanes(a, b, w, 2, |x, y| (x * y) >> 16),
        M::Pmuludq => lanes(a, b, w, 8, |x, y| (x & 0xffff_ffff) * (y & 0xffff_ffff)),
        M::Pmaddwd => lanes(a, b, w, 4, |x, y| {
            let lo = sx(x & 0xffff, 16) * sx(y & 0xffff, 16);
            let hi = sx(x >> 16, 16) * sx(y >> 16, 16);
            (lo + hi) as u64
        }),
        M::Pavgb => lanes(a, b, w, 1, |x, y| (x + y + 1) >> 1),
        M::Pavgw => lanes(a, b, w, 2, |x, y| (x + y + 1) >> 1),
        M::Pminub => lanes(a, b, w, 1, u64::min),
        M::Pmaxub => lanes(a, b, w, 1, u64::max),
        M::Pminsw => lanes(a, b, w, 2, |x, y| if sx(x, 16) < sx(y, 16) { x } else { y }),
        M::Pmaxsw => lanes(a, b, w, 2, |x, y| if sx(x, 16) > sx(y, 16) { x } else { y }),
        M::Psadbw => lanes(a, b, w, 8, |x, y| {
            (0..8)
                .map(|i| ((x >> (8 * i)) & 0xff).abs_diff((y >> (8 * i)) & 0xff))
                .sum()
        }),
        M::Pand | M::Andps | M::Andpd => a & b,
        M::Pandn | M::Andnps | M::Andnpd => !a & b,
        M::Por | M::Orps | M::Orpd => a | b,
        M::Pxor | M::Xorps | M::Xorpd => a ^ b,
        M::Punpcklbw => interleave(a, b, w, 1, false),
        M::Punpcklwd => interleave(a, b, w, 2, false),
        M::Punpckldq | M::Unpcklps => interleave(a, b, w, 4, false),
        M::Punpcklqdq | M::Unpcklpd => interleave(a, b, w, 8, false),
        M::Punpckhbw => interleave(a, b, w, 1, true),
        M::Punpckhwd => interleave(a, b, w, 2, true),
        M::Punpckhdq | M::Unpckhps => interleave(a, b, w, 4, true),
        M::Punpckhqdq | M::Unpckhpd => interleave(a, b, w, 8, true),
        M::Packsswb => pack(a, b, w, 2, false),
        M::Packssdw => pack(a, b, w, 4, false),
        M::Packuswb => pack(a, b, w, 2, true),
        _ => return None,
    })
    .map(|r| if w == 8 { r & u128::from(u64::MAX) } else { r })
}

/// Legacy-SSE forms whose 16-byte memory operand need not be aligned.
fn unaligned_ok(m: Mnemonic) -> bool {
    use Mnemonic as M;
    matches!(
        m,
        M::Movups
            | M::Movupd
            | M::Movdqu
            | M::Lddqu
            | M::Maskmovdqu
            | M::Pcmpestri
            | M::Pcmpestri64
            | M::Pcmpestrm
            | M::Pcmpestrm64
            | M::Pcmpistri
            | M::Pcmpistrm
    )
}

impl FpuState {
    fn get(&self, l: Loc, ctx: &dyn FpuContext) -> u128 {
        match l {
            Loc::Xmm(x) => self.xmm(x),
            Loc::Mm(n) => u128::from(self.regs[n & 7].sig),
            Loc::Gpr(r) => u128::from(ctx.read_gpr(r)),
            Loc::None => 0,
        }
    }

    fn put(&mut self, l: Loc, v: u128, ctx: &mut dyn FpuContext) {
        match l {
            Loc::Xmm(x) => self.set_xmm(x, v),
            Loc::Mm(n) => {
                self.regs[n & 7] = F80 {
                    se: 0xffff,
                    sig: v as u64,
                }
            }
            Loc::Gpr(r) => ctx.write_gpr(r, v as u64),
            Loc::None => {}
        }
    }

    /// Read operand `n`: register, memory (its operand size,
    /// zero-extended) or immediate.
    fn operand(
        &self,
        instr: &Instruction,
        ctx: &mut dyn FpuContext,
        n: u32,
    ) -> Result<u128, FpuError> {
        match instr.op_kind(n) {
            OpKind::Register => match loc(instr.op_register(n)) {
                Loc::None => Err(FpuError::NotFpu),
                l => Ok(self.get(l, ctx)),
            },
            OpKind::Memory => {
                let size = instr.memory_size().size().clamp(1, 16);
                let mut b = [0u8; 16];
                ctx.read_mem(0, &mut b[..size])?;
                Ok(u128::from_le_bytes(b))
            }
            OpKind::Immediate8 => Ok(u128::from(instr.immediate8())),
            _ => Err(FpuError::NotFpu),
        }
    }

    /// Write operand 0 (register or memory of the operand size).
    pub(super) fn write_dest(
        &mut self,
        instr: &Instruction,
        ctx: &mut dyn FpuContext,
        v: u128,
    ) -> Result<(), FpuError> {
        match instr.op_kind(0) {
            OpKind::Register => match loc(instr.op_register(0)) {
                Loc::None => Err(FpuError::NotFpu),
                l => {
                    self.put(l, v, ctx);
                    Ok(())
                }
            },
            OpKind::Memory => {
                let size = instr.memory_size().size().clamp(1, 16);
                ctx.write_mem(0, &v.to_le_bytes()[..size])?;
                Ok(())
            }
            _ => Err(FpuError::NotFpu),
        }
    }

    /// Execute an SSE/SSE2 or MMX instruction (not x87, not FXSAVE).
    pub(super) fn execute_vector(
        &mut self,
        instr: &Instruction,
        ctx: &mut dyn FpuContext,
        mmx: bool,
    ) -> Result<(), FpuError> {
        use Mnemonic as M;
        let m = instr.mnemonic();
        let has_mem = (0..instr.op_count()).any(|n| instr.op_kind(n) == OpKind::Memory);
        if has_mem
            && instr.memory_size().size() == 16
            && !unaligned_ok(m)
            && ctx.mem_address() & 15 != 0
        {
            return Err(FpuError::Exception {
                vector: 13,
                error_code: Some(0),
            });
        }
        let w = if mmx && !matches!(m, M::Movq2dq) {
            8
        } else {
            16
        };
        let src = if instr.op_count() >= 2 {
            self.operand(instr, ctx, 1)?
        } else {
            0
        };
        if self.execute_sse_float(instr, ctx, src)? {
            return self.mmx_done(mmx);
        }
        let d = loc(instr.op_register(0));
        let dst_is_reg = instr.op_kind(0) == OpKind::Register;
        let a = if dst_is_reg { self.get(d, ctx) } else { 0 };
        if self.execute_extension(instr, ctx, a, src, w)? {
            return self.mmx_done(mmx);
        }
        if let Some(r) = int_op(m, a, src, w) {
            if !dst_is_reg {
                return Err(FpuError::NotFpu);
            }
            self.put(d, r, ctx);
            return self.mmx_done(mmx);
        }
        match m {
            M::Movaps
            | M::Movapd
            | M::Movdqa
            | M::Movups
            | M::Movupd
            | M::Movdqu
            | M::Movntdq
            | M::Movntps
            | M::Movntpd
            | M::Movntq
            | M::Movnti
            | M::Lddqu => self.write_dest(instr, ctx, src)?,
            M::Movd | M::Movq | M::Movdq2q | M::Movq2dq => {
                let bits = if m == M::Movd { 32 } else { 64 };
                let v = src & u128::from(mask(bits));
                match (instr.op_kind(0), d) {
                    (OpKind::Memory, _) => ctx.write_mem(0, &v.to_le_bytes()[..bits / 8])?,
                    (_, l) => self.put(l, v, ctx),
                }
            }
            M::Movss | M::Movsd => {
                let bytes = if m == M::Movss { 4 } else { 8 };
                let lm = u128::from(mask(bytes * 8));
                match (instr.op_kind(0), instr.op_kind(1)) {
                    (OpKind::Register, OpKind::Register) => {
                        self.put(d, (a & !lm) | (src & lm), ctx)
                    }
                    (OpKind::Register, _) => self.put(d, src & lm, ctx),
                    _ => ctx.write_mem(0, &src.to_le_bytes()[..bytes])?,
                }
            }
            M::Movhps | M::Movhpd | M::Movlps | M::Movlpd => {
                let high = matches!(m, M::Movhps | M::Movhpd);
                if dst_is_reg {
                    let v = src & u128::from(u64::MAX);
                    let r = if high {
                        (a & u128::from(u64::MAX)) | (v << 64)
                    } else {
                        (a & (u128::MAX << 64)) | v
                    };
                    self.put(d, r, ctx);
                } else {
                    let v = if high { (src >> 64) as u64 } else { src as u64 };
                    ctx.write_mem(0, &v.to_le_bytes())?;
                }
            }
            M::Movhlps => self.put(d, (a & (u128::MAX << 64)) | (src >> 64), ctx),
            M::Movlhps => self.put(d, (a & u128::from(u64::MAX)) | (src << 64), ctx),
            M::Movmskps | M::Movmskpd | M::Pmovmskb => {
                let size = match m {
                    M::Movmskps => 4,
                    M::Movmskpd => 8,
                    _ => 1,
                };
                let n = w / size;
                let v = (0..n).fold(0u64, |acc, i| {
                    acc | ((elem(src, i, size) >> (size * 8 - 1)) << i)
                });
                ctx.write_gpr(instr.op_register(0), v);
            }
            M::Pshufd | M::Pshuflw | M::Pshufhw | M::Pshufw | M::Shufps | M::Shufpd => {
                let imm = instr.immediate8() as usize;
                let sel = |i: usize| (imm >> (2 * i)) & 3;
                let r: u128 = match m {
                    M::Pshufd => {
                        (0..4).fold(0, |r, i| r | u128::from(elem(src, sel(i), 4)) << (32 * i))
                    }
                    M::Pshufw => {
                        (0..4).fold(0, |r, i| r | u128::from(elem(src, sel(i), 2)) << (16 * i))
                    }
                    M::Shufps => (0..4).fold(0, |r, i| {
                        let from = if i < 2 { a } else { src };
                        r | u128::from(elem(from, sel(i), 4)) << (32 * i)
                    }),
                    M::Shufpd => {
                        u128::from(elem(a, imm & 1, 8))
                            | (u128::from(elem(src, (imm >> 1) & 1, 8)) << 64)
                    }
                    M::Pshuflw => (0..4).fold(src & (u128::MAX << 64), |r, i| {
                        r | u128::from(elem(src, sel(i), 2)) << (16 * i)
                    }),
                    _ => (0..4).fold(src & u128::from(u64::MAX), |r, i| {
                        r | u128::from(elem(src, 4 + sel(i), 2)) << (16 * (i + 4))
                    }),
                };
                self.put(d, r, ctx);
            }
            M::Pinsrw => {
                let n = w / 2;
                let i = (instr.immediate8() as usize) % n;
                let r = (a & !(0xffffu128 << (16 * i))) | ((src & 0xffff) << (16 * i));
                self.put(d, r, ctx);
            }
            M::Pextrw => {
                let n = w / 2;
                let i = (instr.immediate8() as usize) % n;
                ctx.write_gpr(instr.op_register(0), elem(src, i, 2));
            }
            M::Pslldq | M::Psrldq => {
                let n = u32::from(instr.immediate8());
                let r = if n > 15 {
                    0
                } else if m == M::Pslldq {
                    a << (n * 8)
                } else {
                    a >> (n * 8)
                };
                self.put(d, r, ctx);
            }
            M::Psllw
            | M::Pslld
            | M::Psllq
            | M::Psrlw
            | M::Psrld
            | M::Psrlq
            | M::Psraw
            | M::Psrad => {
                let count = if instr.op_kind(1) == OpKind::Immediate8 {
                    u64::from(instr.immediate8())
                } else {
                    src as u64
                };
                self.put(d, shift(m, a, count, w), ctx);
            }
            _ => return Err(FpuError::NotFpu),
        }
        self.mmx_done(mmx)
    }

    /// After an MMX instruction: TOP = 0 and every register valid.
    fn mmx_done(&mut self, mmx: bool) -> Result<(), FpuError> {
        if mmx {
            self.set_top(0);
            self.empty = 0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_and_interleave_follow_lane_order() {
        let a: u128 = 0x0001_7fff_8000_ff80_0100_0080_0002_fffe;
        let b: u128 = 0;
        // PACKSSWB: words -2, 2, 0x80, 0x100, 0xff80(-128), 0x8000, 0x7fff, 1
        let r = pack(a, b, 16, 2, false);
        assert_eq!(r, 0x01_7f_80_80_7f_7f_02_fe);
        let r = pack(a, b, 16, 2, true);
        assert_eq!(r, 0x01_ff_00_00_ff_80_02_00);
        let r = interleave(0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908, 8, 1, false);
        assert_eq!(r, 0x0b03_0a02_0901_0800);
    }

    #[test]
    fn shifts_saturate_counts() {
        assert_eq!(shift(Mnemonic::Psraw, 0x8000_0001, 40, 16), 0xffff_0000);
        assert_eq!(shift(Mnemonic::Psrlw, 0x8000_0001, 16, 16), 0);
        assert_eq!(shift(Mnemonic::Psllq, 1, 63, 16), 1 << 63);
    }

    #[test]
    fn multiply_adds_and_sad() {
        let a: u128 = 0x8000_8000;
        let r = int_op(Mnemonic::Pmaddwd, a, a, 16).unwrap_or(0);
        assert_eq!(r, 0x8000_0000);
        let r = int_op(Mnemonic::Psadbw, 0xff00, 0x00ff, 8).unwrap_or(0);
        assert_eq!(r, 0x1fe);
    }
}
