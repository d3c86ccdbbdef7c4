//! AVX2 gathers: VGATHERDPS/DPD/QPS/QPD and VPGATHERDD/DQ/QD/QQ.
//!
//! The core resolves the VSIB operand's segment, base and displacement
//! ([`FpuContext::mem_address`]; the vector index contributes nothing
//! there), and each element is read at that address plus its own
//! sign-extended index times the scale. Elements are gathered lowest
//! first; each one that completes is written to the destination and its
//! mask element cleared, so a fault leaves exactly the completed elements
//! done and the faulting one and above pending (the SDM's restartable,
//! per-element update; the register write-back on a fault follows the
//! host, see [`FpuState::execute_gather`]). A completed gather zeroes the
//! whole mask register and the destination beyond its elements.

use iced_x86::{Instruction, Mnemonic};

use super::avx::{vreg, yget, yput};
use super::{FpuContext, FpuError, FpuState};

/// Sizes of one gather: (index element bytes, data element bytes).
fn sizes(m: Mnemonic) -> Option<(usize, usize)> {
    use Mnemonic as M;
    Some(match m {
        M::Vgatherdps | M::Vpgatherdd => (4, 4),
        M::Vgatherdpd | M::Vpgatherdq => (4, 8),
        M::Vgatherqps | M::Vpgatherqd => (8, 4),
        M::Vgatherqpd | M::Vpgatherqq => (8, 8),
        _ => return None,
    })
}

fn ud() -> FpuError {
    FpuError::Exception {
        vector: 6,
        error_code: None,
    }
}

impl FpuState {
    /// Execute a gather; `Ok(false)` if `instr` is not one.
    pub(super) fn execute_gather(
        &mut self,
        instr: &Instruction,
        ctx: &mut dyn FpuContext,
    ) -> Result<bool, FpuError> {
        let Some((isize, dsize)) = sizes(instr.mnemonic()) else {
            return Ok(false);
        };
        let (d, dwide) = vreg(instr.op_register(0)).ok_or(FpuError::NotFpu)?;
        let (k, _) = vreg(instr.op_register(2)).ok_or(FpuError::NotFpu)?;
        let index_reg = instr.memory_index();
        let (x, xwide) = vreg(index_reg).ok_or(FpuError::NotFpu)?;
        // Destination, index and mask must be three different registers.
        if d == k || d == x || k == x {
            return Err(ud());
        }
        let index = [self.xmm[x], if xwide { self.ymm_hi[x] } else { 0 }];
        let count = (if xwide { 32 } else { 16 } / isize).min(if dwide { 32 } else { 16 } / dsize);
        let scale = u64::from(instr.memory_index_scale());
        let mut dst = [self.xmm[d], self.ymm_hi[d]];
        let mut mask = [self.xmm[k], self.ymm_hi[k]];
        let mut gathered = false;
        for i in 0..count {
            if yget(mask, i, dsize) >> (dsize * 8 - 1) == 0 {
                continue;
            }
            let raw = yget(index, i, isize);
            let idx = if isize == 4 {
                raw as u32 as i32 as i64 as u64
            } else {
                raw
            };
            let mut b = [0u8; 8];
            if let Err(e) = ctx.read_mem(idx.wrapping_mul(scale), &mut b[..dsize]) {
                // As the host does: the mask is written back with the
                // instruction's vector length (a VEX.128 form zeroes bits
                // 255:128), the destination only once an element was
                // gathered into it.
                let narrow = !(xwide || dwide);
                if narrow {
                    dst[1] = 0;
                    mask[1] = 0;
                }
                if gathered {
                    self.set_pair(d, dst);
                }
                self.set_pair(k, mask);
                return Err(FpuError::Memory(e));
            }
            yput(&mut dst, i, dsize, u64::from_le_bytes(b));
            yput(&mut mask, i, dsize, 0);
            gathered = true;
        }
        // Done: the data elements beyond `count` and bits 255:128 of a
        // narrow result are zeroed, and the whole mask register.
        let mut out = [0u128; 2];
        for i in 0..count {
            yput(&mut out, i, dsize, yget(dst, i, dsize));
        }
        self.set_pair(d, out);
        self.set_pair(k, [0, 0]);
        Ok(true)
    }

    fn set_pair(&mut self, n: usize, v: [u128; 2]) {
        self.xmm[n] = v[0];
        self.ymm_hi[n] = v[1];
    }
}
