//! SSE/SSE2 float lanes on the host's own SSE unit (x86-64 hosts).
//!
//! The guest's ADD/SUB/MUL/DIV/MIN/MAX/SQRT/CMP of PS/PD/SS/SD are the very
//! instructions the host has: run with the guest's MXCSR loaded (rounding,
//! DAZ, FTZ) they give the guest's result and exception flags bit for bit,
//! about a hundred times faster than the software core. Only the masked
//! case is taken here: with any exception unmasked, the guest needs the
//! destination left unchanged and #XM, which the software core (`sse`)
//! decides; it also stays the path on other hosts and the reference that
//! `host_tests` holds this one to.
//!
//! Each operation is one `asm!` block that saves the host's MXCSR, loads
//! the guest's (all exceptions masked, flags clear), runs the instruction,
//! reads the flags and restores the host's: compiled Rust code never runs
//! under the guest's floating-point environment.

use super::softfloat::{Format, F32};
use super::sse::FOp;

/// MXCSR exception mask bits (IM..PM).
const MASKS: u32 = 0x1f80;
/// MXCSR exception flag bits (IE..PE).
const FLAGS: u32 = 0x3f;

/// `op` on `a` and `b` (only the low lane if `scalar`, the others from
/// `a`) as the host computes it under `mxcsr`: the result and the
/// exception flags raised. `None` when the software core must decide (an
/// unmasked exception, or a VEX compare predicate above 7).
#[cfg(target_arch = "x86_64")]
pub(super) fn arith(
    (op, fmt, scalar): (FOp, Format, bool),
    a: u128,
    b: u128,
    mxcsr: u32,
) -> Option<(u128, u32)> {
    use core::arch::asm;
    use core::arch::x86_64::__m128i;
    if mxcsr & MASKS != MASKS {
        return None;
    }
    let csr_in = mxcsr & !FLAGS;
    // SAFETY: u128 and __m128i are both 16 plain bytes.
    let (mut x, y): (__m128i, __m128i) = unsafe {
        (
            core::mem::transmute::<u128, __m128i>(a),
            core::mem::transmute::<u128, __m128i>(b),
        )
    };
    let mut csr = csr_in;
    let mut host = 0u32;
    macro_rules! run {
        ($($insn:tt)+) => {
            // SAFETY: the block touches only its operands and the two
            // MXCSR images it is given (valid, aligned u32s on this
            // stack frame); the host's MXCSR is restored before it ends,
            // and every exception is masked while the guest's is loaded.
            unsafe {
                asm!(
                    "stmxcsr [{host}]",
                    "ldmxcsr [{csr}]",
                    $($insn)+,
                    "stmxcsr [{csr}]",
                    "ldmxcsr [{host}]",
                    host = in(reg) &mut host as *mut u32,
                    csr = in(reg) &mut csr as *mut u32,
                    x = inout(xmm_reg) x,
                    y = in(xmm_reg) y,
                    options(nostack, preserves_flags),
                )
            }
        };
    }
    // `stem` + ps/ss/pd/sd, then `tail` (a compare's predicate).
    macro_rules! forms {
        ($stem:literal $(, $tail:literal)?) => {
            match (fmt == F32, scalar) {
                (true, false) => run!(concat!($stem, "ps {x}, {y}" $(, $tail)?)),
                (true, true) => run!(concat!($stem, "ss {x}, {y}" $(, $tail)?)),
                (false, false) => run!(concat!($stem, "pd {x}, {y}" $(, $tail)?)),
                (false, true) => run!(concat!($stem, "sd {x}, {y}" $(, $tail)?)),
            }
        };
    }
    match op {
        FOp::Add => forms!("add"),
        FOp::Sub => forms!("sub"),
        FOp::Mul => forms!("mul"),
        FOp::Div => forms!("div"),
        FOp::Min => forms!("min"),
        FOp::Max => forms!("max"),
        FOp::Sqrt => forms!("sqrt"),
        FOp::Cmp(0) => forms!("cmp", ", 0"),
        FOp::Cmp(1) => forms!("cmp", ", 1"),
        FOp::Cmp(2) => forms!("cmp", ", 2"),
        FOp::Cmp(3) => forms!("cmp", ", 3"),
        FOp::Cmp(4) => forms!("cmp", ", 4"),
        FOp::Cmp(5) => forms!("cmp", ", 5"),
        FOp::Cmp(6) => forms!("cmp", ", 6"),
        FOp::Cmp(7) => forms!("cmp", ", 7"),
        FOp::Cmp(_) => return None,
    }
    // SAFETY: as above.
    let r = unsafe { core::mem::transmute::<__m128i, u128>(x) };
    Some((r, csr & FLAGS))
}

/// Other hosts: the software core decides everything.
#[cfg(not(target_arch = "x86_64"))]
pub(super) fn arith(_: (FOp, Format, bool), _: u128, _: u128, _: u32) -> Option<(u128, u32)> {
    None
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    //! The host path against the software core, which `host_tests` holds
    //! to the host lane by lane: random and special operands, every
    //! rounding mode with DAZ/FTZ, packed and scalar.
    use super::super::softfloat::F64;
    use super::super::sse::arith_lanes_soft;
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// A lane value: specials (zeros, denormals, infinities, NaNs, the
    /// largest and smallest normals) a quarter of the time, else random.
    fn lane(rng: &mut Rng, dbl: bool) -> u64 {
        let specials32: [u32; 9] = [
            0,
            0x8000_0000,
            1,
            0x807f_ffff,
            0x7f80_0000,
            0xff80_0000,
            0x7fc0_0001,
            0x7fa0_0000,
            0x7f7f_ffff,
        ];
        let specials64: [u64; 9] = [
            0,
            1 << 63,
            1,
            0x800f_ffff_ffff_ffff,
            0x7ff0 << 48,
            0xfff0 << 48,
            0x7ff8_0000_0000_0001,
            0x7ff4 << 48,
            0x7fef_ffff_ffff_ffff,
        ];
        let r = rng.next();
        let pick = (r >> 32) as usize % specials32.len();
        match (r & 3 == 0, dbl) {
            (true, false) => u64::from(specials32[pick]),
            (true, true) => specials64[pick],
            (false, false) => r & 0xffff_ffff,
            (false, true) => r,
        }
    }

    fn vector(rng: &mut Rng, dbl: bool) -> u128 {
        if dbl {
            u128::from(lane(rng, true)) | u128::from(lane(rng, true)) << 64
        } else {
            (0..4).fold(0u128, |v, i| v | u128::from(lane(rng, false)) << (32 * i))
        }
    }

    #[test]
    fn host_lanes_match_the_software_core() {
        let ops = [
            FOp::Add,
            FOp::Sub,
            FOp::Mul,
            FOp::Div,
            FOp::Min,
            FOp::Max,
            FOp::Sqrt,
            FOp::Cmp(0),
            FOp::Cmp(1),
            FOp::Cmp(2),
            FOp::Cmp(3),
            FOp::Cmp(4),
            FOp::Cmp(5),
            FOp::Cmp(6),
            FOp::Cmp(7),
        ];
        // Rounding modes with DAZ (bit 6) and FTZ (bit 15) on and off.
        let modes = [0x1f80, 0x3f80, 0x5f80, 0x7f80, 0x1fc0, 0x9f80, 0xffc0];
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut bad = Vec::new();
        for i in 0..40_000 {
            let op = ops[i % ops.len()];
            let dbl = i / ops.len() % 2 == 1;
            let fmt = if dbl { F64 } else { F32 };
            let scalar = i / (2 * ops.len()) % 2 == 1;
            let mx = modes[i / (4 * ops.len()) % modes.len()];
            let (a, b) = (vector(&mut rng, dbl), vector(&mut rng, dbl));
            let spec = (op, fmt, scalar);
            let host = arith(spec, a, b, mx).expect("masked");
            let mut flags = 0;
            let soft = arith_lanes_soft(spec, a, b, mx, &mut flags);
            if host != (soft, flags) {
                bad.push(format!(
                    "{op:?} dbl={dbl} scalar={scalar} mxcsr={mx:#x} a={a:#x} b={b:#x}: host {:#x}/{:#x} soft {soft:#x}/{flags:#x}",
                    host.0, host.1
                ));
            }
        }
        assert!(
            bad.is_empty(),
            "{} mismatches:\n{}",
            bad.len(),
            bad[..bad.len().min(10)].join("\n")
        );
    }

    #[test]
    fn unmasked_exceptions_and_vex_predicates_go_to_the_software_core() {
        assert_eq!(arith((FOp::Add, F32, false), 0, 0, 0x1f00), None);
        assert_eq!(arith((FOp::Div, F64, true), 1, 0, 0x1d80), None);
        assert_eq!(arith((FOp::Cmp(8), F32, false), 0, 0, 0x1f80), None);
        // The host's own MXCSR is untouched by a guest mode.
        let before = host_mxcsr();
        let r = arith((FOp::Div, F32, true), 1 << 23, 0, 0x7fc0);
        assert_eq!(
            r.map(|(_, f)| f & 0x4),
            Some(0x4),
            "division by zero flagged"
        );
        assert_eq!(host_mxcsr(), before);
    }

    fn host_mxcsr() -> u32 {
        let mut v = 0u32;
        // SAFETY: STMXCSR stores 4 bytes to a valid, aligned u32.
        unsafe { core::arch::asm!("stmxcsr [{}]", in(reg) &mut v as *mut u32, options(nostack)) };
        v
    }
}
