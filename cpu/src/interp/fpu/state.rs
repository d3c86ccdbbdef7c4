//! The architectural x87/MMX/SSE register file and its FXSAVE image.

use super::softfloat::{self, Decoded, Fp, F80 as F80_FMT};
use super::FpuError;

/// One x87 register as stored: sign and exponent, then the 64-bit
/// significand with its explicit integer bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct F80 {
    /// Sign (bit 15) and biased exponent (bits 0-14).
    pub se: u16,
    /// Significand, integer bit at bit 63.
    pub sig: u64,
}

impl F80 {
    /// The x87 "real indefinite" QNaN.
    pub const INDEFINITE: F80 = F80 {
        se: 0xffff,
        sig: 0xc000_0000_0000_0000,
    };

    /// From the 80 low bits of `v`.
    pub fn from_bits(v: u128) -> Self {
        F80 {
            se: (v >> 64) as u16,
            sig: v as u64,
        }
    }
    /// The 80-bit pattern.
    pub fn bits(self) -> u128 {
        (u128::from(self.se) << 64) | u128::from(self.sig)
    }
    /// From 10 little-endian bytes.
    pub fn from_bytes(b: &[u8]) -> Self {
        let mut x = [0u8; 16];
        x[..10].copy_from_slice(&b[..10]);
        F80::from_bits(u128::from_le_bytes(x))
    }
    /// 10 little-endian bytes.
    pub fn to_bytes(self) -> [u8; 10] {
        let b = self.bits().to_le_bytes();
        let mut o = [0u8; 10];
        o.copy_from_slice(&b[..10]);
        o
    }
    /// Decode for arithmetic.
    pub fn decode(self) -> Decoded {
        softfloat::unpack(self.bits(), F80_FMT)
    }
    /// Encode an (already rounded) value.
    pub fn encode(v: Fp) -> Self {
        F80::from_bits(softfloat::pack(v, F80_FMT))
    }
    /// The two-bit tag this value would get in a full tag word
    /// (0 valid, 1 zero, 2 special).
    pub fn tag(self) -> u16 {
        let e = self.se & 0x7fff;
        if e == 0x7fff {
            2
        } else if e == 0 {
            if self.sig == 0 {
                1
            } else {
                2
            }
        } else if self.sig >> 63 == 0 {
            2
        } else {
            0
        }
    }
    /// Sign bit.
    pub fn sign(self) -> bool {
        self.se & 0x8000 != 0
    }
}

/// FSW bit: stack fault.
pub const SW_SF: u16 = 1 << 6;
/// FSW bit: exception summary.
pub const SW_ES: u16 = 1 << 7;
/// FSW condition code C0.
pub const SW_C0: u16 = 1 << 8;
/// FSW condition code C1.
pub const SW_C1: u16 = 1 << 9;
/// FSW condition code C2.
pub const SW_C2: u16 = 1 << 10;
/// FSW condition code C3.
pub const SW_C3: u16 = 1 << 14;
/// FSW busy bit (mirrors ES).
pub const SW_B: u16 = 1 << 15;

/// All x87, MMX and SSE state of one vCPU.
#[derive(Debug, Clone)]
pub struct FpuState {
    /// Physical x87 registers R0-R7 (MM0-MM7 alias their significands).
    pub(super) regs: [F80; 8],
    /// x87 control word.
    pub(super) fcw: u16,
    /// x87 status word, TOP included (bits 11-13).
    pub(super) fsw: u16,
    /// Bit i set: physical register i is empty.
    pub(super) empty: u8,
    /// Last x87 opcode (11 bits).
    pub(super) fop: u16,
    /// Last x87 instruction pointer.
    pub(super) fip: u64,
    /// Last x87 data pointer.
    pub(super) fdp: u64,
    /// Last x87 code segment selector (kept for FSTENV/FSAVE/FXSAVE32).
    pub(super) fcs: u16,
    /// Last x87 data segment selector.
    pub(super) fds: u16,
    /// SSE control/status.
    pub(super) mxcsr: u32,
    /// XMM0-XMM15.
    pub(super) xmm: [u128; 16],
    /// Bits 255:128 of YMM0-YMM15 (the AVX state component).
    pub(super) ymm_hi: [u128; 16],
    /// XCR0, the XSAVE feature-enabled mask (bit 0 always set).
    pub(super) xcr0: u64,
}

impl Default for FpuState {
    fn default() -> Self {
        Self::new()
    }
}

/// MXCSR bits this CPU implements (also reported as MXCSR_MASK).
pub const MXCSR_MASK: u32 = 0xffff;

impl FpuState {
    /// The state after reset/FNINIT: FCW 0x37F, empty stack, MXCSR 0x1F80.
    pub fn new() -> Self {
        FpuState {
            regs: [F80::default(); 8],
            fcw: 0x037f,
            fsw: 0,
            empty: 0xff,
            fop: 0,
            fip: 0,
            fdp: 0,
            fcs: 0,
            fds: 0,
            mxcsr: 0x1f80,
            xmm: [0; 16],
            ymm_hi: [0; 16],
            xcr0: 1,
        }
    }

    /// The FXSAVE (64-bit layout) image of this state.
    pub fn fxsave(&self, out: &mut [u8; 512]) {
        self.fxsave_layout(out, true);
    }

    /// FXSAVE image; `wide` selects the 64-bit FIP/FDP layout (REX.W),
    /// otherwise FIP/FCS/FDP/FDS are stored as 32+16-bit pairs.
    pub(super) fn fxsave_layout(&self, out: &mut [u8; 512], wide: bool) {
        out.fill(0);
        out[0..2].copy_from_slice(&self.fcw.to_le_bytes());
        out[2..4].copy_from_slice(&self.fsw.to_le_bytes());
        out[4] = !self.empty;
        out[6..8].copy_from_slice(&self.fop.to_le_bytes());
        if wide {
            out[8..16].copy_from_slice(&self.fip.to_le_bytes());
            out[16..24].copy_from_slice(&self.fdp.to_le_bytes());
        } else {
            out[8..12].copy_from_slice(&(self.fip as u32).to_le_bytes());
            out[12..14].copy_from_slice(&self.fcs.to_le_bytes());
            out[16..20].copy_from_slice(&(self.fdp as u32).to_le_bytes());
            out[20..22].copy_from_slice(&self.fds.to_le_bytes());
        }
        out[24..28].copy_from_slice(&self.mxcsr.to_le_bytes());
        out[28..32].copy_from_slice(&MXCSR_MASK.to_le_bytes());
        for i in 0..8 {
            let r = self.regs[self.phys(i)];
            out[32 + 16 * i..42 + 16 * i].copy_from_slice(&r.to_bytes());
        }
        for (i, x) in self.xmm.iter().enumerate() {
            out[160 + 16 * i..176 + 16 * i].copy_from_slice(&x.to_le_bytes());
        }
    }

    /// Load state from an FXSAVE image. #GP(0) if MXCSR has reserved bits set.
    pub fn fxrstor(&mut self, image: &[u8; 512]) -> Result<(), FpuError> {
        self.fxrstor_layout(image, true)
    }

    /// FXRSTOR with the 64-bit (`wide`) or 32-bit pointer layout.
    pub(super) fn fxrstor_layout(&mut self, image: &[u8; 512], wide: bool) -> Result<(), FpuError> {
        let rd16 = |o: usize| u16::from_le_bytes([image[o], image[o + 1]]);
        let rd32 =
            |o: usize| u32::from_le_bytes([image[o], image[o + 1], image[o + 2], image[o + 3]]);
        let rd64 = |o: usize| u64::from(rd32(o)) | (u64::from(rd32(o + 4)) << 32);
        let mxcsr = rd32(24);
        if mxcsr & !MXCSR_MASK != 0 {
            return Err(FpuError::Exception {
                vector: 13,
                error_code: Some(0),
            });
        }
        self.set_fcw(rd16(0));
        self.fsw = rd16(2);
        self.empty = !image[4];
        self.fop = rd16(6) & 0x7ff;
        if wide {
            self.fip = rd64(8);
            self.fdp = rd64(16);
        } else {
            self.fip = u64::from(rd32(8));
            self.fcs = rd16(12);
            self.fdp = u64::from(rd32(16));
            self.fds = rd16(20);
        }
        self.mxcsr = mxcsr;
        for i in 0..8 {
            let p = self.phys(i);
            self.regs[p] = F80::from_bytes(&image[32 + 16 * i..42 + 16 * i]);
        }
        for (i, x) in self.xmm.iter_mut().enumerate() {
            let mut b = [0u8; 16];
            b.copy_from_slice(&image[160 + 16 * i..176 + 16 * i]);
            *x = u128::from_le_bytes(b);
        }
        Ok(())
    }

    /// Load FCW: bit 6 reads as one and bits 13-15 as zero.
    pub(super) fn set_fcw(&mut self, v: u16) {
        self.fcw = (v & 0x1f3f) | 0x40;
    }

    /// TOP of the x87 stack.
    pub(super) fn top(&self) -> usize {
        usize::from((self.fsw >> 11) & 7)
    }

    /// Set TOP.
    pub(super) fn set_top(&mut self, top: usize) {
        self.fsw = (self.fsw & !(7 << 11)) | (((top & 7) as u16) << 11);
    }

    /// Physical register number of ST(i).
    pub(super) fn phys(&self, i: usize) -> usize {
        (self.top() + i) & 7
    }

    /// ST(i), or `None` if that register is empty.
    pub(super) fn st(&self, i: usize) -> Option<F80> {
        let p = self.phys(i);
        (self.empty & (1 << p) == 0).then_some(self.regs[p])
    }

    /// Write ST(i) and mark it valid.
    pub(super) fn set_st(&mut self, i: usize, v: F80) {
        let p = self.phys(i);
        self.regs[p] = v;
        self.empty &= !(1 << p);
    }

    /// Mark ST(0) empty and increment TOP.
    pub(super) fn pop(&mut self) {
        let p = self.phys(0);
        self.empty |= 1 << p;
        self.set_top(self.top() + 1);
    }

    /// The full 16-bit tag word (two bits per physical register).
    pub(super) fn full_tag(&self) -> u16 {
        (0..8).fold(0u16, |t, p| {
            let tag = if self.empty & (1 << p) != 0 {
                3
            } else {
                self.regs[p].tag()
            };
            t | (tag << (2 * p))
        })
    }

    /// Set the empty bits from a full tag word (only "empty" is kept).
    pub(super) fn set_full_tag(&mut self, tag: u16) {
        self.empty = (0..8).fold(0u8, |e, p| e | (u8::from((tag >> (2 * p)) & 3 == 3) << p));
    }

    /// Decoded value of ST(i) if it is valid.
    pub(super) fn st_value(&self, i: usize) -> Option<Decoded> {
        self.st(i).map(F80::decode)
    }
}
