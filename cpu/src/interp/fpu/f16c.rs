//! F16C: VCVTPH2PS and VCVTPS2PH, between IEEE half precision and single
//! precision lanes, on the soft-float core (the immediate of VCVTPS2PH
//! selects the rounding unless its bit 2 defers to MXCSR.RC).

use iced_x86::{Instruction, Mnemonic, OpKind};

use super::avx::{vreg, yget, yput};
use super::softfloat::{DE, F16, F32};
use super::sse::cvt_float;
use super::{FpuContext, FpuError, FpuState};

/// MXCSR rounding-control field.
const RC: u32 = 3 << 13;
/// MXCSR DAZ bit.
const DAZ: u32 = 1 << 6;
/// MXCSR FTZ bit.
const FTZ: u32 = 1 << 15;

impl FpuState {
    /// Execute VCVTPH2PS/VCVTPS2PH; `Ok(false)` for other instructions.
    pub(super) fn execute_f16c(
        &mut self,
        instr: &Instruction,
        ctx: &mut dyn FpuContext,
    ) -> Result<bool, FpuError> {
        let m = instr.mnemonic();
        if !matches!(m, Mnemonic::Vcvtph2ps | Mnemonic::Vcvtps2ph) {
            return Ok(false);
        }
        let src = match instr.op_kind(1) {
            OpKind::Register => {
                let (n, _) = vreg(instr.op_register(1)).ok_or(FpuError::NotFpu)?;
                [self.xmm[n], self.ymm_hi[n]]
            }
            OpKind::Memory => {
                let size = instr.memory_size().size().clamp(1, 16);
                let mut b = [0u8; 16];
                ctx.read_mem(0, &mut b[..size])?;
                [u128::from_le_bytes(b), 0]
            }
            _ => return Err(FpuError::NotFpu),
        };
        let mut flags = 0u32;
        let mut out = [0u128; 2];
        if m == Mnemonic::Vcvtph2ps {
            let (n, wide) = vreg(instr.op_register(0)).ok_or(FpuError::NotFpu)?;
            let count = if wide { 8 } else { 4 };
            // Half-precision inputs are exact in single precision; DAZ
            // does not apply to them and denormals are not reported.
            let mx = self.mxcsr & !DAZ;
            for i in 0..count {
                let v = cvt_float(yget(src, i, 2), F16, F32, mx, &mut flags);
                yput(&mut out, i, 4, v);
            }
            flags &= !DE;
            self.sse_flags(flags, ctx)?;
            self.xmm[n] = out[0];
            self.ymm_hi[n] = if wide { out[1] } else { 0 };
        } else {
            let wide = instr.op_register(1).is_ymm();
            let count = if wide { 8 } else { 4 };
            let imm = u32::from(instr.immediate8());
            let mut mx = self.mxcsr & !FTZ;
            if imm & 4 == 0 {
                mx = (mx & !RC) | ((imm & 3) << 13);
            }
            for i in 0..count {
                let v = cvt_float(yget(src, i, 4), F32, F16, mx, &mut flags);
                yput(&mut out, i, 2, v);
            }
            self.sse_flags(flags, ctx)?;
            match instr.op_kind(0) {
                OpKind::Register => {
                    let (n, _) = vreg(instr.op_register(0)).ok_or(FpuError::NotFpu)?;
                    self.xmm[n] = out[0];
                    self.ymm_hi[n] = 0;
                }
                _ => {
                    let bytes = out[0].to_le_bytes();
                    ctx.write_mem(0, &bytes[..count * 2])?;
                }
            }
        }
        Ok(true)
    }
}
