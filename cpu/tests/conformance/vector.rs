//! Random vector-unit start states for the SIMD conformance suites: XMM
//! and MM registers filled with integer patterns or float lanes biased
//! towards the IEEE edge cases (zeros, denormals, infinities, quiet and
//! signaling NaNs, halfway values, near-overflow and near-underflow
//! magnitudes), a random MXCSR rounding mode with DAZ/FTZ, and RBX
//! pointing at a 16-byte aligned operand in a random data buffer.

use cpu::snippet::{SnippetState, DATA_BASE};

use super::compare::{initial_state, set_xmm};
use super::rng::Rng;

/// RBX's value in [`state`]: a 16-byte aligned operand in the buffer.
pub const RBX_OPERAND: u64 = DATA_BASE + 0x100;

/// How the lanes of the random registers are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lanes {
    /// Random bytes, often repeated or zero (integer instructions).
    Int,
    /// Single-precision values biased to edge cases.
    F32,
    /// Double-precision values biased to edge cases.
    F64,
}

/// An f32 bit pattern: an edge value half of the time.
pub fn f32_bits(r: &mut Rng) -> u32 {
    const EDGE: [u32; 16] = [
        0,
        0x8000_0000,
        0x3f80_0000,
        0xbf80_0000,
        0x7f80_0000,
        0xff80_0000,
        0x7fc0_0000,
        0xffc0_0001,
        0x7f80_0001,
        0xffa0_0000,
        0x0000_0001,
        0x807f_ffff,
        0x0080_0000,
        0x7f7f_ffff,
        0x3fc0_0000,
        0x4020_0000,
    ];
    match r.below(4) {
        0 => r.pick(&EDGE),
        // Moderate magnitudes, so sums and products stay in range.
        1 => (r.next_u64() as u32 & 0x807f_ffff) | ((0x70 + r.below(0x20) as u32) << 23),
        // Tiny magnitudes near the denormal boundary.
        2 => (r.next_u64() as u32 & 0x80ff_ffff) | ((r.below(4) as u32) << 23),
        _ => r.next_u64() as u32,
    }
}

/// An f64 bit pattern: an edge value half of the time.
pub fn f64_bits(r: &mut Rng) -> u64 {
    const EDGE: [u64; 14] = [
        0,
        1 << 63,
        0x3ff0_0000_0000_0000,
        0xbff0_0000_0000_0000,
        0x7ff0_0000_0000_0000,
        0xfff0_0000_0000_0000,
        0x7ff8_0000_0000_0000,
        0xfff8_0000_0000_0001,
        0x7ff0_0000_0000_0001,
        0x0000_0000_0000_0001,
        0x800f_ffff_ffff_ffff,
        0x0010_0000_0000_0000,
        0x7fef_ffff_ffff_ffff,
        0x4004_0000_0000_0000,
    ];
    match r.below(4) {
        0 => r.pick(&EDGE),
        1 => (r.next_u64() & 0x800f_ffff_ffff_ffff) | ((0x3f0 + r.below(0x20)) << 52),
        2 => (r.next_u64() & 0x801f_ffff_ffff_ffff) | (r.below(4) << 52),
        _ => r.next_u64(),
    }
}

/// A 128-bit value of `lanes` kind.
pub fn vector(r: &mut Rng, lanes: Lanes) -> u128 {
    match lanes {
        Lanes::Int => {
            let alphabet = [0u8, 1, 0x7f, 0x80, 0xff, b'a', b'b'];
            match r.below(3) {
                0 => (0..16).fold(0, |v, i| v | u128::from(r.pick(&alphabet)) << (8 * i)),
                1 => u128::from(r.operand()) | u128::from(r.operand()) << 64,
                _ => u128::from(r.next_u64()) | u128::from(r.next_u64()) << 64,
            }
        }
        Lanes::F32 => (0..4).fold(0, |v, i| v | u128::from(f32_bits(r)) << (32 * i)),
        Lanes::F64 => u128::from(f64_bits(r)) | u128::from(f64_bits(r)) << 64,
    }
}

/// Sets MXCSR in an FXSAVE image.
pub fn set_mxcsr(s: &mut SnippetState, v: u32) {
    s.fxsave[24..28].copy_from_slice(&v.to_le_bytes());
}

/// A random MXCSR with every exception masked: any rounding mode, DAZ and
/// FTZ on or off.
pub fn masked_mxcsr(r: &mut Rng) -> u32 {
    0x1f80 | (r.below(4) as u32) << 13 | (r.below(2) as u32) << 6 | (r.below(2) as u32) << 15
}

/// A random start state: XMM0..15 and MM0..7 of `lanes` kind, the data
/// buffer filled with such values too, random GPRs (RBX =
/// [`RBX_OPERAND`]), random arithmetic flags and a masked random MXCSR.
pub fn state(r: &mut Rng, lanes: Lanes) -> SnippetState {
    let mut s = initial_state();
    for n in 0..16 {
        let v = vector(r, lanes);
        set_xmm(&mut s, n, v as u64, (v >> 64) as u64);
    }
    for n in 0..8 {
        let v = vector(r, lanes) as u64;
        let o = 32 + 16 * n;
        s.fxsave[o..o + 8].copy_from_slice(&v.to_le_bytes());
    }
    for chunk in s.data.chunks_mut(16) {
        let v = vector(r, lanes).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    for g in s.gprs.iter_mut() {
        *g = r.operand();
    }
    s.gprs[3] = RBX_OPERAND;
    s.rflags = r.next_u64() & 0x8d5;
    set_mxcsr(&mut s, masked_mxcsr(r));
    s
}
