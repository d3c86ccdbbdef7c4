//! Random YMM start states for the VEX conformance suites: all 16 YMM
//! registers and a 32-byte aligned operand area (RDI) filled with float
//! lanes biased towards NaNs, infinities, denormals, zeros and boundaries
//! or integer lanes biased towards sign and width boundaries, a random
//! MXCSR (rounding, DAZ, FTZ, sometimes unmasked exceptions), and the
//! loop that compares a table of forms with the host on such states.

use cpu::snippet::{SnippetState, DATA_BASE};
use iced_x86::code_asm::{CodeAssembler, IcedError};

use super::asm::asm;
use super::compare::{initial_state, set_ymm, Suite, Undefined};
use super::rng::Rng;

/// RDI: a 32-byte aligned operand area inside the data buffer.
pub const OPS: u64 = DATA_BASE + 0x100;
/// Random cases per form.
pub const CASES: usize = 24;

/// How the random lanes are shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lanes {
    /// Single-precision lanes biased to edge values.
    F32,
    /// Double-precision lanes biased to edge values.
    F64,
    /// Integer lanes biased to sign and width boundaries.
    Int,
}

/// A random f32 lane: an edge value, a moderate magnitude or random bits.
pub fn f32_lane(r: &mut Rng) -> u64 {
    const E: [u32; 14] = [
        0,
        0x8000_0000,
        0x3f80_0000,
        0xbf80_0000,
        0x7f80_0000,
        0xff80_0000,
        0x7fc0_0000,
        0x7fa0_0001,
        0xffc0_1234,
        0x0000_0001,
        0x807f_ffff,
        0x7f7f_ffff,
        0x0080_0000,
        0x4f00_0000,
    ];
    let v = match r.below(3) {
        0 => r.pick(&E),
        // Moderate exponents, so sums and products are mostly finite.
        1 => (r.next_u64() as u32 & 0x807f_ffff) | ((0x60 + r.below(0x40) as u32) << 23),
        _ => r.next_u64() as u32,
    };
    u64::from(v)
}

/// A random f64 lane: an edge value, a moderate magnitude or random bits.
pub fn f64_lane(r: &mut Rng) -> u64 {
    const E: [u64; 13] = [
        0,
        1 << 63,
        0x3ff0_0000_0000_0000,
        0xbff0_0000_0000_0000,
        0x7ff0_0000_0000_0000,
        0xfff0_0000_0000_0000,
        0x7ff8_0000_0000_0000,
        0x7ff4_0000_0000_0001,
        1,
        0x800f_ffff_ffff_ffff,
        0x7fef_ffff_ffff_ffff,
        0x41e0_0000_0000_0000,
        0xc3e0_0000_0000_0000,
    ];
    match r.below(3) {
        0 => r.pick(&E),
        1 => (r.next_u64() & 0x800f_ffff_ffff_ffff) | ((0x3c0 + r.below(0x80)) << 52),
        _ => r.next_u64(),
    }
}

/// 128 random bits shaped as `lanes`.
pub fn random_u128(r: &mut Rng, lanes: Lanes) -> u128 {
    match lanes {
        Lanes::F32 => (0..4).fold(0, |v, i| v | u128::from(f32_lane(r)) << (32 * i)),
        Lanes::F64 => (0..2).fold(0, |v, i| v | u128::from(f64_lane(r)) << (64 * i)),
        Lanes::Int => u128::from(r.operand()) | u128::from(r.operand()) << 64,
    }
}

/// Random YMM registers, data and MXCSR (all exceptions masked unless
/// `unmask`), RDI at [`OPS`].
pub fn random_state(r: &mut Rng, lanes: Lanes, unmask: bool) -> SnippetState {
    let mut s = initial_state();
    for n in 0..16 {
        let lo = random_u128(r, lanes);
        let hi = random_u128(r, lanes);
        set_ymm(&mut s, n, lo, hi);
    }
    for k in 0..0x40 {
        let v = random_u128(r, lanes);
        let o = 0x100 + 16 * k;
        s.data[o..o + 16].copy_from_slice(&v.to_le_bytes());
    }
    let mut mxcsr = 0x1f80u32 | ((r.below(4) as u32) << 13);
    if r.below(4) == 0 {
        mxcsr |= 1 << 6; // DAZ
    }
    if r.below(4) == 0 {
        mxcsr |= 1 << 15; // FTZ
    }
    if unmask {
        mxcsr &= !((r.next_u64() as u32 & 0x3f) << 7);
    }
    s.fxsave[24..28].copy_from_slice(&mxcsr.to_le_bytes());
    for g in [0usize, 1, 2, 3, 8, 9] {
        s.gprs[g] = r.operand();
    }
    s.gprs[7] = OPS;
    s
}

/// One form: a name and its emitter.
pub type Form = (String, fn(&mut CodeAssembler) -> Result<(), IcedError>);

/// Compares every form on [`CASES`] random states of `lanes`.
pub fn run_forms(seed: u64, lanes: Lanes, forms: &[Form]) {
    let mut r = Rng::new(seed);
    let mut suite = Suite::new();
    for (name, emit) in forms {
        let code = asm(*emit);
        for c in 0..CASES {
            let s = random_state(&mut r, lanes, c % 6 == 5);
            suite.check(&format!("{name} case {c}"), &code, &s, Undefined::NONE);
        }
    }
    suite.finish();
}
