//! VEX forms of SSE3, SSSE3, SSE4.1, SSE4.2, AES-NI and PCLMULQDQ.
//!
//! The lane-wise instructions run `ext_lanes` once per 128-bit half with
//! the AVX operand rules: the first source is VEX.vvvv (non-destructive),
//! VBLENDV*/VPBLENDVB take their selector from the is4 register, VEX.128
//! zeroes bits 255:128 of the destination, and the 256-bit widening moves
//! (VPMOVSX*/VPMOVZX*) read a 128-bit source. PTEST, the inserts and
//! extracts, the dot products and the string compares have their own
//! operand shapes here. Encodings the instruction sets leave undefined
//! (VEX.L=1 of VPEXTR*, VPCMPxSTRx, VDPPD, ...) are rejected by the
//! decoder, and the 256-bit VAES/VPCLMULQDQ forms by `classify`, so they
//! raise #UD.

use iced_x86::{Instruction, Mnemonic, OpKind};

use super::avx::{legacy, vreg, Y};
use super::ext_lanes::{lane_op, widening, Lane};
use super::legacy_ext::ARITH_FLAGS;
use super::softfloat::{F32, F64};
use super::{sse41, sse41fp, FpuContext, FpuError, FpuState};

impl FpuState {
    /// Execute the VEX form of an SSE3..SSE4.2, AES-NI or PCLMULQDQ
    /// instruction; `Ok(false)` if `instr` is not one.
    pub(super) fn avx_extension(
        &mut self,
        instr: &Instruction,
        ctx: &mut dyn FpuContext,
    ) -> Result<bool, FpuError> {
        use Mnemonic as M;
        let Some(l) = legacy(instr.mnemonic()) else {
            return Ok(false);
        };
        let imm = instr.immediate8();
        let op0_reg = instr.op_kind(0) == OpKind::Register;
        match l {
            M::Ptest => {
                let a = self.vop(instr, ctx, 0)?;
                let b = self.vop(instr, ctx, 1)?;
                let halves = if instr.op_register(0).is_ymm() { 2 } else { 1 };
                let zf = (0..halves).all(|h| a[h] & b[h] == 0);
                let cf = (0..halves).all(|h| !a[h] & b[h] == 0);
                ctx.set_flags(u64::from(zf) << 6 | u64::from(cf), ARITH_FLAGS);
            }
            M::Pextrb | M::Pextrd | M::Pextrq | M::Extractps => {
                let size = match l {
                    M::Pextrb => 1,
                    M::Pextrq => 8,
                    _ => 4,
                };
                let v = sse41::extract(self.vop(instr, ctx, 1)?[0], size, imm);
                if op0_reg {
                    ctx.write_gpr(instr.op_register(0), v);
                } else {
                    Self::store(ctx, [u128::from(v), 0], size)?;
                }
            }
            M::Pinsrb | M::Pinsrd | M::Pinsrq => {
                let size = match l {
                    M::Pinsrb => 1,
                    M::Pinsrq => 8,
                    _ => 4,
                };
                let a = self.vop(instr, ctx, 1)?[0];
                let v = self.vop(instr, ctx, 2)?[0] as u64;
                let r = sse41::insert(a, v, size, imm);
                self.put_v(instr.op_register(0), [r, 0])?;
            }
            M::Insertps => {
                let a = self.vop(instr, ctx, 1)?[0];
                let src = self.vop(instr, ctx, 2)?[0];
                let s = if instr.op_kind(2) == OpKind::Memory {
                    src as u32
                } else {
                    sse41::extract(src, 4, imm >> 6) as u32
                };
                self.put_v(instr.op_register(0), [sse41::insertps(a, s, imm), 0])?;
            }
            M::Movntdqa => {
                let v = self.vop(instr, ctx, 1)?;
                self.put_v(instr.op_register(0), v)?;
            }
            M::Dpps | M::Dppd => {
                // The multiplies of both halves are one step: an unmasked
                // exception there ends the instruction before any add.
                let fmt = if l == M::Dpps { F32 } else { F64 };
                let (a, b) = (self.vop(instr, ctx, 1)?, self.vop(instr, ctx, 2)?);
                let dst = instr.op_register(0);
                let halves = if dst.is_ymm() { 2 } else { 1 };
                let mx = self.mxcsr;
                let mut mul = 0;
                let t: Vec<[u64; 4]> = (0..halves)
                    .map(|h| sse41fp::dot_products(a[h], b[h], fmt, imm, mx, &mut mul))
                    .collect();
                let mul = sse41fp::step_flags(mul, mx);
                if mul & !(mx >> 7) & 0x3f != 0 {
                    return self.commit_sse_flags(mul, ctx).map(|()| true);
                }
                let mut add = 0;
                let mut out: Y = [0; 2];
                for (h, t) in t.into_iter().enumerate() {
                    out[h] = sse41fp::dot_sums(t, fmt, imm, mx, &mut add);
                }
                self.commit_sse_flags(mul | sse41fp::step_flags(add, mx), ctx)?;
                self.put_v(dst, out)?;
            }
            M::Pcmpestri
            | M::Pcmpestri64
            | M::Pcmpestrm
            | M::Pcmpestrm64
            | M::Pcmpistri
            | M::Pcmpistrm => {
                let a = self.vop(instr, ctx, 0)?[0];
                let b = self.vop(instr, ctx, 1)?[0];
                self.string_compare(l, ctx, a, b, imm);
                if matches!(l, M::Pcmpestrm | M::Pcmpestrm64 | M::Pcmpistrm) {
                    // The VEX.128 mask write zeroes the rest of YMM0.
                    self.ymm_hi[0] = 0;
                }
            }
            _ => return self.vex_lanes(l, instr, ctx),
        }
        Ok(true)
    }

    /// The lane-wise instructions: one, two or three vector sources (the
    /// third is the is4 selector), an optional immediate, each 128-bit
    /// half through [`lane_op`].
    fn vex_lanes(
        &mut self,
        l: Mnemonic,
        instr: &Instruction,
        ctx: &mut dyn FpuContext,
    ) -> Result<bool, FpuError> {
        let dst = instr.op_register(0);
        let Some((_, wide)) = vreg(dst) else {
            return Ok(false);
        };
        let count = instr.op_count();
        let has_imm = instr.op_kind(count - 1) == OpKind::Immediate8;
        let (a, mut b, sel) = match count - 1 - u32::from(has_imm) {
            3 => (
                self.vop(instr, ctx, 1)?,
                self.vop(instr, ctx, 2)?,
                self.vop(instr, ctx, 3)?,
            ),
            2 => (self.vop(instr, ctx, 1)?, self.vop(instr, ctx, 2)?, [0; 2]),
            1 => ([0; 2], self.vop(instr, ctx, 1)?, [0; 2]),
            _ => return Ok(false),
        };
        if let Some((from, to)) = widening(l) {
            // The upper half widens the next 16/to source elements.
            b[1] = b[0] >> (8 * from * 16 / to);
        }
        let mut out: Y = [0; 2];
        let mut flags = 0;
        for h in 0..if wide { 2 } else { 1 } {
            let lane = Lane {
                a: a[h],
                b: b[h],
                sel: sel[h],
                imm: instr.immediate8(),
                half: h,
                w: 16,
            };
            match lane_op(l, &lane, self.mxcsr, &mut flags) {
                Some(r) => out[h] = r,
                None => return Ok(false),
            }
        }
        self.sse_flags(flags, ctx)?;
        self.put_v(dst, out)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use iced_x86::{Decoder, DecoderOptions};

    use super::super::{execute, MemFault};
    use super::*;

    struct Ctx;

    impl FpuContext for Ctx {
        fn read_gpr(&self, _: iced_x86::Register) -> u64 {
            0
        }
        fn write_gpr(&mut self, _: iced_x86::Register, _: u64) {}
        fn read_mem(&mut self, _: u64, b: &mut [u8]) -> Result<(), MemFault> {
            b.fill(0);
            Ok(())
        }
        fn write_mem(&mut self, _: u64, _: &[u8]) -> Result<(), MemFault> {
            Ok(())
        }
        fn mem_address(&self) -> u64 {
            0
        }
        fn set_flags(&mut self, _: u64, _: u64) {}
        fn cr0(&self) -> u64 {
            0
        }
        fn cr4(&self) -> u64 {
            (1 << 9) | (1 << 18)
        }
        fn long_mode(&self) -> bool {
            true
        }
    }

    fn run(bytes: &[u8]) -> Result<(), FpuError> {
        let i = Decoder::new(64, bytes, DecoderOptions::NONE).decode();
        let mut st = FpuState::new();
        st.set_xcr0(7).expect("x87|SSE|AVX");
        execute(&mut st, &i, &mut Ctx)
    }

    const UD: Result<(), FpuError> = Err(FpuError::Exception {
        vector: 6,
        error_code: None,
    });

    #[test]
    fn vex_128_forms_execute_and_undefined_256_forms_are_ud() {
        // vaesenc xmm0, xmm1, xmm2 / ymm (VAES, not advertised).
        assert_eq!(run(&[0xc4, 0xe2, 0x71, 0xdc, 0xc2]), Ok(()));
        assert_eq!(run(&[0xc4, 0xe2, 0x75, 0xdc, 0xc2]), Err(FpuError::NotFpu));
        // vpclmulqdq xmm0, xmm1, xmm2, 0 / ymm (VPCLMULQDQ).
        assert_eq!(run(&[0xc4, 0xe3, 0x71, 0x44, 0xc2, 0x00]), Ok(()));
        assert_eq!(
            run(&[0xc4, 0xe3, 0x75, 0x44, 0xc2, 0x00]),
            Err(FpuError::NotFpu)
        );
        // vdppd and vpcmpistri with VEX.L=1 do not decode.
        assert_eq!(
            run(&[0xc4, 0xe3, 0x75, 0x41, 0xc2, 0x31]),
            Err(FpuError::NotFpu)
        );
        assert_eq!(
            run(&[0xc4, 0xe3, 0x7d, 0x63, 0xc1, 0x0c]),
            Err(FpuError::NotFpu)
        );
        // Without XCR0.AVX the VEX forms are #UD.
        let i = Decoder::new(64, &[0xc4, 0xe2, 0x71, 0xdc, 0xc2], DecoderOptions::NONE).decode();
        let mut st = FpuState::new();
        assert_eq!(execute(&mut st, &i, &mut Ctx), UD);
    }
}
