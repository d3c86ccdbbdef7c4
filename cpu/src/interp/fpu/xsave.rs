//! The XSAVE feature set: XCR0 and XGETBV/XSETBV, the processor's XINUSE
//! tracking, XSAVE/XSAVEOPT/XSAVEC and XRSTOR (standard and compacted
//! forms), XSAVES/XRSTORS without supervisor components (IA32_XSS stays
//! 0, so they are the CPL-0 compacted forms; CPUID does not advertise
//! them until the MSR exists), and CPUID leaf 0xD describing them.
//!
//! Three state components are managed: x87 (bit 0), SSE (bit 1: XMM0-15
//! and MXCSR) and AVX (bit 2: the upper halves of YMM0-15, at offset 576
//! in the standard format and the first extended component in the
//! compacted one). XINUSE is computed from the registers: a component is
//! "in use" unless it is in its initial configuration, which the SDM
//! allows (a processor may report in use at any time, but not-in-use only
//! for a component in its initial configuration). XSAVEOPT uses the init
//! optimization only; it never skips a component as "unmodified".

use iced_x86::{Instruction, Mnemonic, Register};

use super::state::MXCSR_MASK;
use super::{FpuContext, FpuError, FpuState};

/// XCR0 bit of the x87 state component.
pub const XCR0_X87: u64 = 1;
/// XCR0 bit of the SSE state component.
pub const XCR0_SSE: u64 = 1 << 1;
/// XCR0 bit of the AVX state component.
pub const XCR0_AVX: u64 = 1 << 2;
/// Every XCR0 bit this CPU supports.
pub const XCR0_SUPPORTED: u64 = XCR0_X87 | XCR0_SSE | XCR0_AVX;

/// Offset of the XSAVE header.
const HEADER: usize = 512;
/// Offset of the AVX component (standard format; also its compacted
/// offset, as the first extended component).
const AVX_OFFSET: usize = 576;
/// Size of the AVX component.
const AVX_SIZE: usize = 256;
/// XCOMP_BV bit 63: the area uses the compacted format.
const COMPACTED: u64 = 1 << 63;

/// Which save instruction runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SaveKind {
    /// XSAVE: every requested component, standard format.
    Plain,
    /// XSAVEOPT: standard format with the init optimization.
    Opt,
    /// XSAVEC: compacted format with the init optimization.
    Compact,
}

fn gp0() -> FpuError {
    FpuError::Exception {
        vector: 13,
        error_code: Some(0),
    }
}

/// Whether `v` is a value XSETBV may load into XCR0: x87 always enabled,
/// AVX only with SSE, no unsupported bit.
pub fn xcr0_valid(v: u64) -> bool {
    v & XCR0_X87 != 0 && v & !XCR0_SUPPORTED == 0 && (v & XCR0_AVX == 0 || v & XCR0_SSE != 0)
}

/// CPUID leaf 0xD, sub-leaf `sub`, for the current XCR0.
pub fn cpuid_leaf_d(sub: u32, xcr0: u64) -> (u32, u32, u32, u32) {
    let size_for = |mask: u64| {
        if mask & XCR0_AVX != 0 {
            (AVX_OFFSET + AVX_SIZE) as u32
        } else {
            AVX_OFFSET as u32
        }
    };
    match sub {
        // Supported XCR0 bits; area size for the enabled and for all
        // supported components.
        0 => (
            XCR0_SUPPORTED as u32,
            size_for(xcr0),
            size_for(XCR0_SUPPORTED),
            0,
        ),
        // XSAVEOPT (bit 0), XSAVEC (bit 1), XGETBV with ECX=1 (bit 2); no
        // XSAVES, so no supervisor components and EBX (the compacted size
        // of XCR0 | IA32_XSS) is the compacted size of the enabled set.
        1 => (0b111, size_for(xcr0), 0, 0),
        // AVX: 256 bytes at 576, user component, no 64-byte alignment
        // needed in the compacted format.
        2 => (AVX_SIZE as u32, AVX_OFFSET as u32, 0, 0),
        _ => (0, 0, 0, 0),
    }
}

impl FpuState {
    /// XCR0.
    pub fn xcr0(&self) -> u64 {
        self.xcr0
    }

    /// Load XCR0 as XSETBV does: #GP(0) for an invalid value.
    pub fn set_xcr0(&mut self, v: u64) -> Result<(), FpuError> {
        if !xcr0_valid(v) {
            return Err(gp0());
        }
        self.xcr0 = v;
        Ok(())
    }

    /// Bits 255:128 of YMM0-YMM15.
    pub fn ymm_upper(&self) -> [u128; 16] {
        self.ymm_hi
    }

    /// Set bits 255:128 of YMM0-YMM15.
    pub fn set_ymm_upper(&mut self, v: [u128; 16]) {
        self.ymm_hi = v;
    }

    /// Whether the x87 component is in its initial configuration.
    fn x87_init(&self) -> bool {
        self.fcw == 0x037f
            && self.fsw == 0
            && self.empty == 0xff
            && self.fop == 0
            && self.fip == 0
            && self.fdp == 0
            && self.fcs == 0
            && self.fds == 0
            && self.regs.iter().all(|r| r.se == 0 && r.sig == 0)
    }

    /// XINUSE: bit i clear only when component i is in its initial
    /// configuration (SSE: XMM0-15 zero and MXCSR 0x1F80).
    pub fn xinuse(&self) -> u64 {
        let mut v = 0;
        if !self.x87_init() {
            v |= XCR0_X87;
        }
        if self.mxcsr != 0x1f80 || self.xmm.iter().any(|&x| x != 0) {
            v |= XCR0_SSE;
        }
        if self.ymm_hi.iter().any(|&x| x != 0) {
            v |= XCR0_AVX;
        }
        v
    }

    /// XGETBV, XSETBV, XSAVE*, XRSTOR* (the #UD/#NM checks are done).
    pub(super) fn execute_xsave(
        &mut self,
        instr: &Instruction,
        ctx: &mut dyn FpuContext,
    ) -> Result<(), FpuError> {
        use Mnemonic as M;
        let edx_eax = |ctx: &dyn FpuContext| {
            (ctx.read_gpr(Register::EDX) << 32) | ctx.read_gpr(Register::EAX)
        };
        match instr.mnemonic() {
            M::Xgetbv => {
                let v = match ctx.read_gpr(Register::ECX) {
                    0 => self.xcr0,
                    1 => self.xcr0 & self.xinuse(),
                    _ => return Err(gp0()),
                };
                ctx.write_gpr(Register::EAX, v & 0xffff_ffff);
                ctx.write_gpr(Register::EDX, v >> 32);
                Ok(())
            }
            M::Xsetbv => {
                if ctx.cpl() != 0 || ctx.read_gpr(Register::ECX) != 0 {
                    return Err(gp0());
                }
                self.set_xcr0(edx_eax(ctx))
            }
            m @ (M::Xsave
            | M::Xsave64
            | M::Xsaveopt
            | M::Xsaveopt64
            | M::Xsavec
            | M::Xsavec64
            | M::Xsaves
            | M::Xsaves64) => {
                let kind = match m {
                    M::Xsave | M::Xsave64 => SaveKind::Plain,
                    M::Xsaveopt | M::Xsaveopt64 => SaveKind::Opt,
                    _ => SaveKind::Compact,
                };
                // XSAVES: supervisor only; with no supervisor component
                // (IA32_XSS = 0) it saves what XSAVEC saves.
                if matches!(m, M::Xsaves | M::Xsaves64) && ctx.cpl() != 0 {
                    return Err(gp0());
                }
                let wide = matches!(m, M::Xsave64 | M::Xsaveopt64 | M::Xsavec64 | M::Xsaves64);
                aligned(ctx)?;
                self.xsave(kind, wide, edx_eax(ctx) & self.xcr0, ctx)
            }
            m @ (M::Xrstor | M::Xrstor64 | M::Xrstors | M::Xrstors64) => {
                let supervisor = matches!(m, M::Xrstors | M::Xrstors64);
                if supervisor && ctx.cpl() != 0 {
                    return Err(gp0());
                }
                aligned(ctx)?;
                let wide = matches!(m, M::Xrstor64 | M::Xrstors64);
                self.xrstor(wide, supervisor, edx_eax(ctx) & self.xcr0, ctx)
            }
            _ => Err(FpuError::NotFpu),
        }
    }

    /// Save the components in `rfbm`.
    fn xsave(
        &self,
        kind: SaveKind,
        wide: bool,
        rfbm: u64,
        ctx: &mut dyn FpuContext,
    ) -> Result<(), FpuError> {
        let mut img = [0u8; 512];
        self.fxsave_layout(&mut img, wide);
        let inuse = self.xinuse();
        // Which components are written: all requested ones for XSAVE;
        // only those in use with the init optimization.
        let written = match kind {
            SaveKind::Plain => rfbm,
            _ => rfbm & inuse,
        };
        let xmm_end = if ctx.long_mode() { 416 } else { 288 };
        if written & XCR0_X87 != 0 {
            ctx.write_mem(0, &img[..24])?;
            ctx.write_mem(32, &img[32..160])?;
        }
        let mxcsr = match kind {
            SaveKind::Compact => written & XCR0_SSE != 0,
            _ => rfbm & (XCR0_SSE | XCR0_AVX) != 0,
        };
        if mxcsr {
            ctx.write_mem(24, &img[24..32])?;
        }
        if written & XCR0_SSE != 0 {
            ctx.write_mem(160, &img[160..xmm_end])?;
        }
        if written & XCR0_AVX != 0 {
            let mut avx = [0u8; AVX_SIZE];
            let regs = if ctx.long_mode() { 16 } else { 8 };
            for (i, v) in self.ymm_hi.iter().enumerate().take(regs) {
                avx[16 * i..16 * i + 16].copy_from_slice(&v.to_le_bytes());
            }
            ctx.write_mem(AVX_OFFSET as u64, &avx[..16 * regs])?;
        }
        if kind == SaveKind::Compact {
            let mut hdr = [0u8; 16];
            hdr[..8].copy_from_slice(&(inuse & rfbm).to_le_bytes());
            hdr[8..].copy_from_slice(&(rfbm | COMPACTED).to_le_bytes());
            ctx.write_mem(HEADER as u64, &hdr)?;
        } else {
            let mut b = [0u8; 8];
            ctx.read_mem(HEADER as u64, &mut b)?;
            let old = u64::from_le_bytes(b);
            let bv = (old & !rfbm) | (inuse & rfbm);
            ctx.write_mem(HEADER as u64, &bv.to_le_bytes())?;
        }
        Ok(())
    }

    /// XRSTOR: load or initialize the components in `rfbm`.
    /// XRSTORS (`supervisor`) accepts only the compacted format.
    fn xrstor(
        &mut self,
        wide: bool,
        supervisor: bool,
        rfbm: u64,
        ctx: &mut dyn FpuContext,
    ) -> Result<(), FpuError> {
        let mut hdr = [0u8; 64];
        ctx.read_mem(HEADER as u64, &mut hdr)?;
        let q = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&hdr[o..o + 8]);
            u64::from_le_bytes(b)
        };
        let (xstate_bv, xcomp_bv) = (q(0), q(8));
        let compact = xcomp_bv & COMPACTED != 0;
        if supervisor && !compact {
            return Err(gp0());
        }
        if compact {
            if xcomp_bv & !COMPACTED & !self.xcr0 != 0
                || xstate_bv & !xcomp_bv != 0
                || hdr[16..].iter().any(|&b| b != 0)
            {
                return Err(gp0());
            }
        } else if xstate_bv & !self.xcr0 != 0 || hdr[8..24].iter().any(|&b| b != 0) {
            return Err(gp0());
        }
        let load = rfbm & xstate_bv;
        let mut mem = [0u8; 512];
        if rfbm & (XCR0_X87 | XCR0_SSE | XCR0_AVX) != 0 {
            ctx.read_mem(0, &mut mem)?;
        }
        let mut avx = [0u8; AVX_SIZE];
        if load & XCR0_AVX != 0 {
            ctx.read_mem(AVX_OFFSET as u64, &mut avx)?;
        }
        // The new MXCSR: the standard form loads it whenever SSE or AVX
        // is requested; the compacted form only with SSE, and initializes
        // it when XSTATE_BV[1] is clear.
        let mem_mxcsr = u32::from_le_bytes([mem[24], mem[25], mem[26], mem[27]]);
        let mxcsr = if compact {
            match (rfbm & XCR0_SSE != 0, load & XCR0_SSE != 0) {
                (true, true) => Some(mem_mxcsr),
                (true, false) => Some(0x1f80),
                _ => None,
            }
        } else {
            (rfbm & (XCR0_SSE | XCR0_AVX) != 0).then_some(mem_mxcsr)
        };
        if mxcsr.is_some_and(|v| v & !MXCSR_MASK != 0) {
            return Err(gp0());
        }
        // Compose a legacy image of the new state and load it whole.
        let mut img = [0u8; 512];
        self.fxsave_layout(&mut img, wide);
        if rfbm & XCR0_X87 != 0 {
            if load & XCR0_X87 != 0 {
                img[..24].copy_from_slice(&mem[..24]);
                img[32..160].copy_from_slice(&mem[32..160]);
            } else {
                img[..24].fill(0);
                img[..2].copy_from_slice(&0x037fu16.to_le_bytes());
                img[32..160].fill(0);
            }
        }
        let xmm_end = if ctx.long_mode() { 416 } else { 288 };
        if rfbm & XCR0_SSE != 0 {
            if load & XCR0_SSE != 0 {
                img[160..xmm_end].copy_from_slice(&mem[160..xmm_end]);
            } else {
                img[160..xmm_end].fill(0);
            }
        }
        if let Some(v) = mxcsr {
            img[24..28].copy_from_slice(&v.to_le_bytes());
        }
        let before = self.clone();
        self.fxrstor_layout(&img, wide)?;
        if rfbm & XCR0_X87 == 0 {
            // Untouched x87 state keeps every bit (the 32-bit pointer
            // layout would otherwise truncate FIP/FDP).
            self.regs = before.regs;
            self.fcw = before.fcw;
            self.fsw = before.fsw;
            self.empty = before.empty;
            self.fop = before.fop;
            self.fip = before.fip;
            self.fdp = before.fdp;
            self.fcs = before.fcs;
            self.fds = before.fds;
        }
        if rfbm & XCR0_AVX != 0 {
            let regs = if ctx.long_mode() { 16 } else { 8 };
            for (i, v) in self.ymm_hi.iter_mut().enumerate().take(regs) {
                let mut b = [0u8; 16];
                b.copy_from_slice(&avx[16 * i..16 * i + 16]);
                *v = u128::from_le_bytes(b);
            }
        }
        Ok(())
    }
}

/// #GP(0) unless the XSAVE area is 64-byte aligned.
fn aligned(ctx: &dyn FpuContext) -> Result<(), FpuError> {
    if ctx.mem_address() & 63 != 0 {
        return Err(gp0());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xcr0_rules() {
        assert!(xcr0_valid(1));
        assert!(xcr0_valid(3));
        assert!(xcr0_valid(7));
        assert!(!xcr0_valid(0), "x87 must stay enabled");
        assert!(!xcr0_valid(2));
        assert!(!xcr0_valid(5), "AVX needs SSE");
        assert!(!xcr0_valid(0xf), "unsupported component");
        let mut s = FpuState::new();
        assert_eq!(s.xcr0(), 1);
        assert!(s.set_xcr0(5).is_err());
        assert_eq!(s.xcr0(), 1);
        assert!(s.set_xcr0(7).is_ok());
        assert_eq!(s.xcr0(), 7);
    }

    #[test]
    fn xinuse_follows_the_initial_configuration() {
        let mut s = FpuState::new();
        assert_eq!(s.xinuse(), 0);
        s.xmm[3] = 1;
        assert_eq!(s.xinuse(), XCR0_SSE);
        s.xmm[3] = 0;
        s.mxcsr = 0x1f81;
        assert_eq!(s.xinuse(), XCR0_SSE);
        s.mxcsr = 0x1f80;
        s.ymm_hi[15] = 1 << 100;
        assert_eq!(s.xinuse(), XCR0_AVX);
        s.fcw = 0x27f;
        assert_eq!(s.xinuse(), XCR0_AVX | XCR0_X87);
    }

    #[test]
    fn leaf_d_matches_the_layout() {
        assert_eq!(cpuid_leaf_d(0, 3), (7, 576, 832, 0));
        assert_eq!(cpuid_leaf_d(0, 7), (7, 832, 832, 0));
        assert_eq!(cpuid_leaf_d(2, 7), (256, 576, 0, 0));
        assert_eq!(cpuid_leaf_d(3, 7), (0, 0, 0, 0));
    }
}
