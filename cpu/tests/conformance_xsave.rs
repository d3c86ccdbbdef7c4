//! The XSAVE feature set against the host CPU: XSAVE, XSAVEOPT, XSAVEC
//! (and their REX.W forms) write the same bytes as the host's for the
//! same x87/SSE/AVX state and every requested-feature mask over the three
//! components; XRSTOR (standard and compacted) loads the same state from
//! the same image; XGETBV reports the same enabled and in-use bits; the
//! faults (misaligned area, bad header, bad MXCSR) agree.
//!
//! The oracle enters each snippet through XRSTOR with XSTATE_BV naming
//! exactly the components that are not in their initial configuration,
//! so the host's XINUSE matches the interpreter's (which is computed from
//! the registers). Masks stay within bits 0-2 because the host may enable
//! more components (AVX-512, PKRU) than the interpreter supports.

mod conformance;

use conformance::asm::asm;
use conformance::compare::{initial_state, set_ymm, Suite, Undefined};
use conformance::rng::Rng;
use cpu::snippet::{SnippetState, DATA_BASE};
use iced_x86::code_asm::*;

/// Where the XSAVE area starts (64-byte aligned).
const AREA: u64 = DATA_BASE + 0x400;
/// Offset of the area inside the data buffer.
const AREA_OFF: usize = 0x400;

/// The states the images are taken of: (name, state).
fn states(r: &mut Rng) -> Vec<(&'static str, SnippetState)> {
    let mut out = Vec::new();
    out.push(("all initial", initial_state()));
    let mut x87 = initial_state();
    // ST0 = 1.0 (TOP 0, physical register 0 valid), FCW with PC=53 bits.
    x87.fxsave[0..2].copy_from_slice(&0x027fu16.to_le_bytes());
    x87.fxsave[4] = 0x01;
    x87.fxsave[32..40].copy_from_slice(&(1u64 << 63).to_le_bytes());
    x87.fxsave[40..42].copy_from_slice(&0x3fffu16.to_le_bytes());
    out.push(("x87 in use", x87));
    let mut sse = initial_state();
    for n in 0..16 {
        set_ymm(
            &mut sse,
            n,
            u128::from(r.next_u64()) << 64 | u128::from(r.next_u64()),
            0,
        );
    }
    out.push(("SSE in use", sse));
    let mut mx = initial_state();
    mx.fxsave[24..28].copy_from_slice(&0x3f80u32.to_le_bytes());
    out.push(("MXCSR only", mx));
    let mut avx = initial_state();
    for n in 0..16 {
        avx.ymm_hi[n] = u128::from(r.next_u64()) << 64 | u128::from(r.next_u64());
    }
    out.push(("AVX in use", avx));
    let mut one = initial_state();
    one.ymm_hi[9] = 1;
    out.push(("one AVX bit", one));
    let mut all = initial_state();
    all.fxsave[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
    all.fxsave[2..4].copy_from_slice(&0x3800u16.to_le_bytes());
    all.fxsave[4] = 0x80;
    all.fxsave[144..152].copy_from_slice(&r.next_u64().to_le_bytes());
    all.fxsave[152..154].copy_from_slice(&0x4003u16.to_le_bytes());
    all.fxsave[24..28].copy_from_slice(&0x1f9fu32.to_le_bytes());
    for n in 0..16 {
        let lo = u128::from(r.next_u64()) << 64 | u128::from(r.next_u64());
        let hi = u128::from(r.next_u64()) << 64 | u128::from(r.next_u64());
        set_ymm(&mut all, n, lo, hi);
    }
    out.push(("all in use", all));
    out
}

/// A save instruction: name and emitter.
type Save = (
    &'static str,
    fn(&mut CodeAssembler) -> Result<(), IcedError>,
);

const SAVES: [Save; 6] = [
    ("xsave", |a| a.xsave(ptr(rdi))),
    ("xsave64", |a| a.xsave64(ptr(rdi))),
    ("xsaveopt", |a| a.xsaveopt(ptr(rdi))),
    ("xsaveopt64", |a| a.xsaveopt64(ptr(rdi))),
    ("xsavec", |a| a.xsavec(ptr(rdi))),
    ("xsavec64", |a| a.xsavec64(ptr(rdi))),
];

#[test]
fn xsave_images_match_the_host() {
    let mut r = Rng::new(0x5a5e);
    let mut suite = Suite::new();
    for (sname, st) in states(&mut r) {
        for (iname, emit) in SAVES {
            let code = asm(emit);
            for mask in 0..8u64 {
                let mut s = st.clone();
                s.gprs[7] = AREA;
                s.gprs[0] = mask;
                s.gprs[2] = 0;
                suite.check(
                    &format!("{iname} mask {mask:#x}, {sname}"),
                    &code,
                    &s,
                    Undefined::NONE,
                );
            }
        }
    }
    assert_eq!(suite.cases(), 7 * 6 * 8);
    suite.finish();
}

/// Builds a standard or compacted image of random state in the data buffer.
fn image(s: &mut SnippetState, r: &mut Rng, xstate_bv: u64, compact: bool) {
    let a = &mut s.data[AREA_OFF..AREA_OFF + 832];
    for b in a.iter_mut() {
        *b = r.next_u64() as u8;
    }
    // A valid x87 part: FCW, FSW, tags, and ST values with integer bits.
    a[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
    a[2..4].copy_from_slice(&0u16.to_le_bytes());
    a[4] = 0xc3;
    // FIP/FDP: the host keeps them canonical, so random pointers would
    // come back changed.
    a[8..24].fill(0);
    a[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
    for i in 0..8 {
        a[32 + 16 * i + 7] |= 0x80;
    }
    a[512..576].fill(0);
    a[512..520].copy_from_slice(&xstate_bv.to_le_bytes());
    if compact {
        a[520..528].copy_from_slice(&(7u64 | 1 << 63).to_le_bytes());
    }
}

#[test]
fn xrstor_loads_what_the_host_loads() {
    let mut r = Rng::new(0x7257);
    let mut suite = Suite::new();
    let restores: [Save; 2] = [
        ("xrstor", |a| a.xrstor(ptr(rdi))),
        ("xrstor64", |a| a.xrstor64(ptr(rdi))),
    ];
    let start = states(&mut r);
    for (iname, emit) in restores {
        let code = asm(emit);
        for compact in [false, true] {
            for bv in 0..8u64 {
                for mask in 0..8u64 {
                    // Start from a state with every component in use so
                    // initialization is visible.
                    let mut s = start[6].1.clone();
                    image(&mut s, &mut r, bv, compact);
                    s.gprs[7] = AREA;
                    s.gprs[0] = mask;
                    s.gprs[2] = 0;
                    suite.check(
                        &format!("{iname} compact {compact} xstate_bv {bv:#x} mask {mask:#x}"),
                        &code,
                        &s,
                        Undefined::NONE,
                    );
                }
            }
        }
    }
    suite.finish();
}

#[test]
fn xrstor_then_xsave_round_trips() {
    // Random non-initial state restored, then saved elsewhere by every
    // save form: the second image must match the host's.
    let mut r = Rng::new(0x2077);
    let mut suite = Suite::new();
    for (iname, emit) in SAVES {
        let code = asm(|a| {
            a.mov(eax, 7)?;
            a.xrstor64(ptr(rdi))?;
            a.lea(rdi, ptr(rdi + 0x400))?;
            emit(a)
        });
        for compact in [false, true] {
            let mut s = initial_state();
            image(&mut s, &mut r, 7, compact);
            s.gprs[7] = AREA;
            s.gprs[2] = 0;
            suite.check(
                &format!("{iname} after xrstor64 compact {compact}"),
                &code,
                &s,
                Undefined::NONE,
            );
        }
    }
    suite.finish();
}

#[test]
fn xsave_faults_match_the_host() {
    let mut r = Rng::new(0xfa17);
    let mut suite = Suite::new();
    let all = states(&mut r).remove(6).1;
    // Misaligned areas (#GP) for every form.
    for (iname, emit) in SAVES {
        let code = asm(emit);
        for off in [8u64, 16, 32, 48, 1] {
            let mut s = all.clone();
            s.gprs[7] = AREA + off;
            s.gprs[0] = 7;
            suite.check(&format!("{iname} at +{off}"), &code, &s, Undefined::NONE);
        }
    }
    let xrstor = asm(|a| a.xrstor64(ptr(rdi)));
    for off in [16u64, 32] {
        let mut s = all.clone();
        image(&mut s, &mut r, 7, false);
        s.gprs[7] = AREA + off;
        s.gprs[0] = 7;
        suite.check(&format!("xrstor64 at +{off}"), &xrstor, &s, Undefined::NONE);
    }
    // Header rules: standard form with XCOMP_BV or bytes 16..23 set,
    // compacted form with XSTATE_BV outside XCOMP_BV or reserved bytes.
    let bad_headers: [(&str, usize, u64); 5] = [
        ("standard XCOMP_BV", 8, 3),
        ("standard bytes 16..23", 16, 1),
        ("compacted XSTATE_BV not in XCOMP_BV", 8, 1 << 63 | 3),
        ("compacted bytes 16..23", 16, 1),
        ("compacted bytes 56..63", 56, 1),
    ];
    for (what, off, v) in bad_headers {
        let mut s = all.clone();
        image(&mut s, &mut r, 7, what.starts_with("compacted") && off != 8);
        let h = AREA_OFF + 512 + off;
        s.data[h..h + 8].copy_from_slice(&v.to_le_bytes());
        s.gprs[7] = AREA;
        s.gprs[0] = 7;
        suite.check(&format!("xrstor64 {what}"), &xrstor, &s, Undefined::NONE);
    }
    // Reserved MXCSR bits: #GP in the standard form when SSE or AVX is
    // requested (even with XSTATE_BV[1] clear), not with x87 alone.
    for mask in [1u64, 2, 4, 7] {
        for bv in [0u64, 7] {
            let mut s = all.clone();
            image(&mut s, &mut r, bv, false);
            let m = AREA_OFF + 24;
            s.data[m..m + 4].copy_from_slice(&0x0001_1f80u32.to_le_bytes());
            s.gprs[7] = AREA;
            s.gprs[0] = mask;
            suite.check(
                &format!("xrstor64 bad MXCSR mask {mask} bv {bv}"),
                &xrstor,
                &s,
                Undefined::NONE,
            );
        }
    }
    suite.finish();
}

#[test]
fn xgetbv_reports_enabled_and_in_use_components() {
    let mut r = Rng::new(0x9e7b);
    let mut suite = Suite::new();
    // The host may enable more than x87/SSE/AVX: compare those three bits.
    let code = |ecx_v: u32| {
        asm(move |a| {
            a.mov(ecx, ecx_v)?;
            a.xgetbv()?;
            a.and(eax, 7)?;
            a.xor(edx, edx)
        })
    };
    for (name, st) in states(&mut r) {
        for e in [0u32, 1] {
            suite.check(
                &format!("xgetbv {e}, {name}"),
                &code(e),
                &st,
                Undefined::NONE,
            );
        }
    }
    // vzeroupper puts AVX back in its initial configuration.
    let after = asm(|a| {
        a.vzeroupper()?;
        a.mov(ecx, 1)?;
        a.xgetbv()?;
        a.and(eax, 7)?;
        a.xor(edx, edx)
    });
    let all = states(&mut r).remove(6).1;
    suite.check("xgetbv 1 after vzeroupper", &after, &all, Undefined::NONE);
    // ECX other than 0/1: #GP.
    suite.check("xgetbv 2", &code(2), &all, Undefined::NONE);
    suite.finish();
}

#[test]
fn cpuid_leaf_d_describes_the_same_layout_as_the_host() {
    let mut suite = Suite::new();
    let s = initial_state();
    // Sub-leaf 2: the AVX component's size and standard-format offset.
    let avx = asm(|a| {
        a.mov(eax, 0xd)?;
        a.mov(ecx, 2)?;
        a.cpuid()
    });
    suite.check("cpuid 0xd.2", &avx, &s, Undefined::NONE);
    // Sub-leaf 1, XSAVEOPT/XSAVEC/XGETBV1 (the host may have more).
    let opt = asm(|a| {
        a.mov(eax, 0xd)?;
        a.mov(ecx, 1)?;
        a.cpuid()?;
        a.and(eax, 7)?;
        a.xor(ebx, ebx)?;
        a.xor(ecx, ecx)?;
        a.xor(edx, edx)
    });
    suite.check("cpuid 0xd.1", &opt, &s, Undefined::NONE);
    suite.finish();
}
