//! The floating-point instructions of SSE3 and SSE4.1 (ADDSUB*, HADD*,
//! HSUB*, the duplicating moves, ROUND*, DPPS/DPPD) against the host CPU:
//! operands biased to NaNs, denormals, infinities and halfway cases, every
//! MXCSR rounding mode with DAZ and FTZ, every immediate of ROUND* and
//! DP*, and unmasked exceptions (#XM with the destination unchanged and
//! the MXCSR flags as the host sets them).

mod conformance;

use conformance::asm::asm;
use conformance::compare::{Suite, Undefined};
use conformance::rng::Rng;
use conformance::vector::{set_mxcsr, state, Lanes};
use cpu::snippet::{SnippetEnd, SnippetState};
use iced_x86::code_asm::*;

/// Assembles one instruction form.
type Emit = fn(&mut CodeAssembler) -> Result<(), IcedError>;
/// Assembles one instruction form with an immediate.
type EmitImm = fn(&mut CodeAssembler, u32) -> Result<(), IcedError>;

/// `(name, lanes, register form, memory form)` for two-operand forms.
macro_rules! forms {
    ($($m:ident: $l:ident),* $(,)?) => {
        vec![$((
            stringify!($m),
            Lanes::$l,
            (|a: &mut CodeAssembler| a.$m(xmm1, xmm2)) as Emit,
            (|a: &mut CodeAssembler| a.$m(xmm1, ptr(rbx))) as Emit,
        )),*]
    };
}

/// The same with an immediate.
macro_rules! imm_forms {
    ($($m:ident: $l:ident),* $(,)?) => {
        vec![$((
            stringify!($m),
            Lanes::$l,
            (|a: &mut CodeAssembler, i: u32| a.$m(xmm1, xmm2, i)) as EmitImm,
            (|a: &mut CodeAssembler, i: u32| a.$m(xmm1, ptr(rbx), i)) as EmitImm,
        )),*]
    };
}

/// A start state whose MXCSR unmasks a random subset of the exceptions
/// (at least one).
fn unmasked(r: &mut Rng, lanes: Lanes) -> SnippetState {
    let mut s = state(r, lanes);
    let rc = (r.below(4) as u32) << 13;
    let daz_ftz = (r.below(2) as u32) << 6 | (r.below(2) as u32) << 15;
    let masks = (r.below(63) as u32) << 7;
    set_mxcsr(&mut s, rc | daz_ftz | masks);
    s
}

fn sse3_forms() -> Vec<(&'static str, Lanes, Emit, Emit)> {
    forms![
        addsubps: F32, addsubpd: F64, haddps: F32, haddpd: F64, hsubps: F32, hsubpd: F64,
        movddup: F64, movshdup: F32, movsldup: F32,
    ]
}

#[test]
fn sse3_arithmetic_and_moves_match_host() {
    let mut r = Rng::new(21);
    let mut s = Suite::new();
    for (name, lanes, reg, mem) in sse3_forms() {
        for (form, emit) in [("reg", reg), ("mem", mem)] {
            let code = asm(emit);
            for k in 0..600 {
                let st = state(&mut r, lanes);
                s.check(&format!("{name} {form} #{k}"), &code, &st, Undefined::NONE);
            }
        }
    }
    assert_eq!(s.cases(), 9 * 2 * 600);
    s.finish();
}

#[test]
fn sse3_unmasked_exceptions_match_host() {
    let mut r = Rng::new(22);
    let mut s = Suite::new();
    let mut faults = 0;
    for (name, lanes, reg, mem) in sse3_forms().into_iter().take(6) {
        for (form, emit) in [("reg", reg), ("mem", mem)] {
            let code = asm(emit);
            for k in 0..300 {
                let st = unmasked(&mut r, lanes);
                let o = s.check(&format!("{name} {form} #{k}"), &code, &st, Undefined::NONE);
                if o.is_some_and(|o| o.end == SnippetEnd::Exception(19)) {
                    faults += 1;
                }
            }
        }
    }
    s.finish();
    assert!(faults > 500, "only {faults} cases raised #XM");
}

fn round_forms() -> Vec<(&'static str, Lanes, EmitImm, EmitImm)> {
    imm_forms![roundps: F32, roundpd: F64, roundss: F32, roundsd: F64]
}

#[test]
fn round_every_immediate_matches_host() {
    let mut r = Rng::new(23);
    let mut s = Suite::new();
    let imms: Vec<u32> = (0..16).chain([0x10, 0x87, 0xf3, 0xff]).collect();
    for (name, lanes, reg, mem) in round_forms() {
        for (form, emit) in [("reg", reg), ("mem", mem)] {
            for &imm in &imms {
                let code = asm(|a| emit(a, imm));
                for k in 0..40 {
                    let st = state(&mut r, lanes);
                    s.check(
                        &format!("{name} {form} imm={imm:#x} #{k}"),
                        &code,
                        &st,
                        Undefined::NONE,
                    );
                }
            }
        }
    }
    assert_eq!(s.cases(), 4 * 2 * 20 * 40);
    s.finish();
}

#[test]
fn round_unmasked_exceptions_match_host() {
    let mut r = Rng::new(24);
    let mut s = Suite::new();
    for (name, lanes, reg, mem) in round_forms() {
        for (form, emit) in [("reg", reg), ("mem", mem)] {
            for imm in 0..16 {
                let code = asm(|a| emit(a, imm));
                for k in 0..10 {
                    let st = unmasked(&mut r, lanes);
                    s.check(
                        &format!("{name} {form} imm={imm:#x} #{k}"),
                        &code,
                        &st,
                        Undefined::NONE,
                    );
                }
            }
        }
    }
    s.finish();
}

#[test]
fn dot_products_every_immediate_match_host() {
    let mut r = Rng::new(25);
    let mut s = Suite::new();
    for (name, lanes, reg, mem) in imm_forms![dpps: F32, dppd: F64] {
        for (form, emit) in [("reg", reg), ("mem", mem)] {
            for imm in 0..256 {
                let code = asm(|a| emit(a, imm));
                for k in 0..6 {
                    let st = state(&mut r, lanes);
                    s.check(
                        &format!("{name} {form} imm={imm:#x} #{k}"),
                        &code,
                        &st,
                        Undefined::NONE,
                    );
                }
            }
        }
    }
    assert_eq!(s.cases(), 2 * 2 * 256 * 6);
    s.finish();
}

#[test]
fn dot_products_unmasked_exceptions_match_host() {
    let mut r = Rng::new(26);
    let mut s = Suite::new();
    for (name, lanes, reg, _) in imm_forms![dpps: F32, dppd: F64] {
        for imm in [0xff, 0xf1, 0x31, 0x55, 0xa3] {
            let code = asm(|a| reg(a, imm));
            for k in 0..200 {
                let st = unmasked(&mut r, lanes);
                s.check(
                    &format!("{name} imm={imm:#x} #{k}"),
                    &code,
                    &st,
                    Undefined::NONE,
                );
            }
        }
    }
    s.finish();
}

#[test]
fn float_forms_check_alignment() {
    let mut r = Rng::new(27);
    let mut s = Suite::new();
    let faulting: [(&str, Emit); 5] = [
        ("addsubps", |a| a.addsubps(xmm1, ptr(rbx + 4))),
        ("haddpd", |a| a.haddpd(xmm1, ptr(rbx + 8))),
        ("movshdup", |a| a.movshdup(xmm1, ptr(rbx + 1))),
        ("roundps", |a| a.roundps(xmm1, ptr(rbx + 2), 1)),
        ("dpps", |a| a.dpps(xmm1, ptr(rbx + 4), 0xff)),
    ];
    for (name, emit) in faulting {
        let code = asm(emit);
        if let Some(o) = s.check(name, &code, &state(&mut r, Lanes::F32), Undefined::NONE) {
            assert_eq!(o.end, SnippetEnd::Exception(13), "{name} on the host");
        }
    }
    let fine: [(&str, Emit); 3] = [
        ("movddup m64", |a| a.movddup(xmm1, ptr(rbx + 3))),
        ("roundss m32", |a| a.roundss(xmm1, ptr(rbx + 1), 4)),
        ("roundsd m64", |a| a.roundsd(xmm1, ptr(rbx + 5), 9)),
    ];
    for (name, emit) in fine {
        let code = asm(emit);
        if let Some(o) = s.check(name, &code, &state(&mut r, Lanes::F64), Undefined::NONE) {
            assert_eq!(o.end, SnippetEnd::Completed, "{name} on the host");
        }
    }
    s.finish();
}

/// FISTTP (SSE3's x87 addition): truncation whatever FCW.RC says, at every
/// integer width, including out-of-range values (the integer indefinite
/// with IE) and NaNs.
#[test]
fn fisttp_truncates_in_every_rounding_mode() {
    let mut r = Rng::new(28);
    let mut s = Suite::new();
    let forms: [(&str, Emit); 3] = [
        ("fisttp m16", |a| {
            a.fld(qword_ptr(rbx))?;
            a.fisttp(word_ptr(rbx + 0x20))
        }),
        ("fisttp m32", |a| {
            a.fld(qword_ptr(rbx + 8))?;
            a.fisttp(dword_ptr(rbx + 0x20))
        }),
        ("fisttp m64", |a| {
            a.fld(qword_ptr(rbx))?;
            a.fisttp(qword_ptr(rbx + 0x20))
        }),
    ];
    for (name, emit) in forms {
        let code = asm(emit);
        for k in 0..300 {
            let mut st = state(&mut r, Lanes::F64);
            // Moderate magnitudes half of the time, so results fit.
            if r.below(2) == 0 {
                let v = (r.next_u64() as i64 >> r.below(63)) as f64 / 8.0;
                st.data[0x100..0x108].copy_from_slice(&v.to_bits().to_le_bytes());
                st.data[0x108..0x110].copy_from_slice(&(-v).to_bits().to_le_bytes());
            }
            let fcw = 0x037f | (r.below(4) as u16) << 10;
            st.fxsave[0..2].copy_from_slice(&fcw.to_le_bytes());
            s.check(
                &format!("{name} fcw={fcw:#x} #{k}"),
                &code,
                &st,
                Undefined::NONE,
            );
        }
    }
    s.finish();
}
