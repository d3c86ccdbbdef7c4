//! SSSE3, SSE4.1 (integer and data movement), SSE4.2 (string compares,
//! PCMPGTQ), AES-NI, PCLMULQDQ and SHA against the host CPU: every
//! instruction in its register and memory forms (and the MMX forms of
//! SSSE3), random operands biased to edge values, every immediate where
//! the immediate selects behaviour, alignment faults.

mod conformance;

use conformance::asm::asm;
use conformance::compare::{Suite, Undefined};
use conformance::rng::Rng;
use conformance::vector::{state, Lanes};
use cpu::snippet::SnippetEnd;
use iced_x86::code_asm::*;

/// Assembles one instruction form.
type Emit = fn(&mut CodeAssembler) -> Result<(), IcedError>;
/// Assembles one instruction form with an immediate.
type EmitImm = fn(&mut CodeAssembler, u32) -> Result<(), IcedError>;

/// `(name, register form, memory form)` for two-operand XMM instructions.
macro_rules! xmm_forms {
    ($($m:ident),* $(,)?) => {
        vec![$((
            stringify!($m),
            (|a: &mut CodeAssembler| a.$m(xmm1, xmm2)) as Emit,
            (|a: &mut CodeAssembler| a.$m(xmm1, ptr(rbx))) as Emit,
        )),*]
    };
}

/// The same for the MMX forms.
macro_rules! mmx_forms {
    ($($m:ident),* $(,)?) => {
        vec![$((
            stringify!($m),
            (|a: &mut CodeAssembler| a.$m(mm1, mm2)) as Emit,
            (|a: &mut CodeAssembler| a.$m(mm1, ptr(rbx))) as Emit,
        )),*]
    };
}

/// `(name, register form, memory form)` with an immediate.
macro_rules! imm_forms {
    ($($m:ident),* $(,)?) => {
        vec![$((
            stringify!($m),
            (|a: &mut CodeAssembler, i: u32| a.$m(xmm1, xmm2, i)) as EmitImm,
            (|a: &mut CodeAssembler, i: u32| a.$m(xmm1, ptr(rbx), i)) as EmitImm,
        )),*]
    };
}

/// Runs every form on `cases` random states of `lanes` kind.
fn run_forms(seed: u64, forms: &[(&str, Emit, Emit)], lanes: Lanes, cases: usize) -> usize {
    let mut r = Rng::new(seed);
    let mut s = Suite::new();
    for &(name, reg, mem) in forms {
        for (form, emit) in [("reg", reg), ("mem", mem)] {
            let code = asm(emit);
            for k in 0..cases {
                let st = state(&mut r, lanes);
                s.check(&format!("{name} {form} #{k}"), &code, &st, Undefined::NONE);
            }
        }
    }
    let n = s.cases();
    s.finish();
    n
}

/// Runs every form with every immediate in `imms`, `per_imm` random states
/// each.
fn run_imm_forms(
    seed: u64,
    forms: &[(&str, EmitImm, EmitImm)],
    imms: &[u32],
    per_imm: usize,
    lanes: Lanes,
) -> usize {
    let mut r = Rng::new(seed);
    let mut s = Suite::new();
    for &(name, reg, mem) in forms {
        for (form, emit) in [("reg", reg), ("mem", mem)] {
            for &imm in imms {
                let code = asm(|a| emit(a, imm));
                for k in 0..per_imm {
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
    let n = s.cases();
    s.finish();
    n
}

fn all_imms() -> Vec<u32> {
    (0..256).collect()
}

#[test]
fn ssse3_xmm_forms_match_host() {
    let forms = xmm_forms![
        pabsb, pabsw, pabsd, psignb, psignw, psignd, pshufb, phaddw, phaddd, phaddsw, phsubw,
        phsubd, phsubsw, pmaddubsw, pmulhrsw,
    ];
    assert!(run_forms(1, &forms, Lanes::Int, 150) >= 4000);
}

#[test]
fn ssse3_mmx_forms_match_host() {
    let forms = mmx_forms![
        pabsb, pabsw, pabsd, psignb, psignw, psignd, pshufb, phaddw, phaddd, phaddsw, phsubw,
        phsubd, phsubsw, pmaddubsw, pmulhrsw,
    ];
    assert!(run_forms(2, &forms, Lanes::Int, 100) >= 3000);
}

#[test]
fn palignr_every_shift_matches_host() {
    let xmm = imm_forms![palignr];
    let n = run_imm_forms(3, &xmm, &all_imms(), 2, Lanes::Int);
    let mmx: Vec<(&str, EmitImm, EmitImm)> = vec![(
        "palignr mmx",
        |a, i| a.palignr(mm1, mm2, i),
        |a, i| a.palignr(mm1, ptr(rbx), i),
    )];
    let m = run_imm_forms(4, &mmx, &all_imms(), 2, Lanes::Int);
    assert_eq!(n + m, 2 * 2 * 2 * 256);
}

#[test]
fn sse41_integer_forms_match_host() {
    let forms = xmm_forms![
        pmovsxbw, pmovsxbd, pmovsxbq, pmovsxwd, pmovsxwq, pmovsxdq, pmovzxbw, pmovzxbd, pmovzxbq,
        pmovzxwd, pmovzxwq, pmovzxdq, pminsb, pminsd, pminuw, pminud, pmaxsb, pmaxsd, pmaxuw,
        pmaxud, pmulld, pmuldq, packusdw, pcmpeqq, pcmpgtq, phminposuw, ptest, blendvps, blendvpd,
        pblendvb,
    ];
    assert!(run_forms(5, &forms, Lanes::Int, 120) >= 7000);
}

#[test]
fn movntdqa_and_lddqu_load_exactly() {
    let mut r = Rng::new(6);
    let mut s = Suite::new();
    let forms: [(&str, Emit); 4] = [
        ("movntdqa", |a| a.movntdqa(xmm3, ptr(rbx))),
        ("lddqu", |a| a.lddqu(xmm3, ptr(rbx))),
        ("lddqu unaligned", |a| a.lddqu(xmm3, ptr(rbx + 7))),
        ("movntdqa high reg", |a| a.movntdqa(xmm13, ptr(rbx + 0x30))),
    ];
    for (name, emit) in forms {
        let code = asm(emit);
        for k in 0..50 {
            s.check(
                &format!("{name} #{k}"),
                &code,
                &state(&mut r, Lanes::Int),
                Undefined::NONE,
            );
        }
    }
    s.finish();
}

#[test]
fn sse41_immediate_forms_match_host() {
    let forms = imm_forms![blendps, blendpd, pblendw, mpsadbw, insertps];
    let n = run_imm_forms(7, &forms, &all_imms(), 2, Lanes::Int);
    assert_eq!(n, 5 * 2 * 256 * 2);
}

#[test]
fn inserts_and_extracts_match_host() {
    let forms: Vec<(&str, EmitImm, EmitImm)> = vec![
        (
            "pinsrb",
            |a, i| a.pinsrb(xmm1, eax, i),
            |a, i| a.pinsrb(xmm1, ptr(rbx + 3), i),
        ),
        (
            "pinsrd",
            |a, i| a.pinsrd(xmm1, ecx, i),
            |a, i| a.pinsrd(xmm1, ptr(rbx + 5), i),
        ),
        (
            "pinsrq",
            |a, i| a.pinsrq(xmm1, rdx, i),
            |a, i| a.pinsrq(xmm1, ptr(rbx + 9), i),
        ),
        (
            "pextrb",
            |a, i| a.pextrb(eax, xmm2, i),
            |a, i| a.pextrb(ptr(rbx + 1), xmm2, i),
        ),
        (
            "pextrb r64",
            |a, i| a.pextrb(rax, xmm2, i),
            |a, i| a.pextrb(ptr(rbx + 15), xmm2, i),
        ),
        (
            "pextrw",
            |a, i| a.pextrw(eax, xmm2, i),
            |a, i| a.pextrw(ptr(rbx + 3), xmm2, i),
        ),
        (
            "pextrd",
            |a, i| a.pextrd(ecx, xmm2, i),
            |a, i| a.pextrd(ptr(rbx + 2), xmm2, i),
        ),
        (
            "pextrq",
            |a, i| a.pextrq(rdx, xmm2, i),
            |a, i| a.pextrq(ptr(rbx + 6), xmm2, i),
        ),
        (
            "extractps",
            |a, i| a.extractps(eax, xmm2, i),
            |a, i| a.extractps(ptr(rbx + 1), xmm2, i),
        ),
        (
            "extractps r64",
            |a, i| a.extractps(rax, xmm9, i),
            |a, i| a.extractps(ptr(rbx), xmm9, i),
        ),
    ];
    let imms: Vec<u32> = (0..20).chain([0x40, 0x7f, 0x80, 0xff]).collect();
    let n = run_imm_forms(8, &forms, &imms, 3, Lanes::Int);
    assert_eq!(n, forms.len() * 2 * imms.len() * 3);
}

#[test]
fn string_compares_every_immediate_match_host() {
    let forms = imm_forms![
        pcmpestri,
        pcmpestrm,
        pcmpistri,
        pcmpistrm,
        pcmpestri64,
        pcmpestrm64
    ];
    let mut r = Rng::new(9);
    let mut s = Suite::new();
    for &(name, reg, mem) in &forms {
        for (form, emit) in [("reg", reg), ("mem", mem)] {
            for imm in 0..256u32 {
                let code = asm(|a| emit(a, imm));
                for k in 0..3 {
                    let mut st = state(&mut r, Lanes::Int);
                    // Lengths: mostly short, sometimes negative or huge.
                    let len = |r: &mut Rng| match r.below(4) {
                        0 => r.operand(),
                        1 => (r.below(40) as i64 - 20) as u64,
                        _ => r.below(18),
                    };
                    st.gprs[0] = len(&mut r);
                    st.gprs[2] = len(&mut r);
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
    assert_eq!(s.cases(), 6 * 2 * 256 * 3);
    s.finish();
}

#[test]
fn string_compare_memory_operand_may_be_unaligned() {
    let mut r = Rng::new(10);
    let mut s = Suite::new();
    for off in 1..16 {
        let code = asm(|a| a.pcmpistri(xmm1, ptr(rbx + off), 0x0c));
        let st = state(&mut r, Lanes::Int);
        if let Some(o) = s.check(
            &format!("pcmpistri [rbx+{off}]"),
            &code,
            &st,
            Undefined::NONE,
        ) {
            assert_eq!(o.end, SnippetEnd::Completed);
        }
    }
    s.finish();
}

#[test]
fn aes_and_pclmulqdq_match_host() {
    let forms = xmm_forms![aesenc, aesenclast, aesdec, aesdeclast, aesimc];
    assert!(run_forms(11, &forms, Lanes::Int, 200) >= 2000);
    let imm = imm_forms![aeskeygenassist, pclmulqdq];
    run_imm_forms(12, &imm, &all_imms(), 2, Lanes::Int);
}

#[test]
fn sha_match_host() {
    let forms = xmm_forms![
        sha1nexte,
        sha1msg1,
        sha1msg2,
        sha256rnds2,
        sha256msg1,
        sha256msg2
    ];
    assert!(run_forms(13, &forms, Lanes::Int, 200) >= 2400);
    let imm = imm_forms![sha1rnds4];
    let imms: Vec<u32> = (0..4).chain([4, 0x7f, 0xff]).collect();
    run_imm_forms(14, &imm, &imms, 40, Lanes::Int);
}

/// Chains the instructions the way AES-128 and SHA-256 code does, so a
/// wrong lane order in one step shows up in the end result too.
#[test]
fn aes_rounds_and_sha_rounds_chained_match_host() {
    let mut r = Rng::new(15);
    let mut s = Suite::new();
    let aes = asm(|a| {
        a.pxor(xmm1, xmm2)?;
        for _ in 0..9 {
            a.aesenc(xmm1, xmm3)?;
        }
        a.aesenclast(xmm1, xmm4)?;
        a.aesimc(xmm5, xmm3)?;
        for _ in 0..9 {
            a.aesdec(xmm1, xmm5)?;
        }
        a.aesdeclast(xmm1, xmm2)?;
        a.aeskeygenassist(xmm6, xmm1, 0x36)
    });
    let sha = asm(|a| {
        a.sha256msg1(xmm3, xmm4)?;
        a.sha256msg2(xmm3, xmm5)?;
        a.sha256rnds2(xmm1, xmm2)?;
        a.sha256rnds2(xmm2, xmm1)?;
        a.sha1msg1(xmm6, xmm7)?;
        a.sha1msg2(xmm6, xmm8)?;
        a.sha1nexte(xmm9, xmm6)?;
        a.sha1rnds4(xmm10, xmm9, 2)
    });
    for k in 0..100 {
        s.check(
            &format!("aes chain #{k}"),
            &aes,
            &state(&mut r, Lanes::Int),
            Undefined::NONE,
        );
        s.check(
            &format!("sha chain #{k}"),
            &sha,
            &state(&mut r, Lanes::Int),
            Undefined::NONE,
        );
    }
    s.finish();
}

#[test]
fn misaligned_sixteen_byte_operands_raise_gp() {
    let mut r = Rng::new(16);
    let mut s = Suite::new();
    let forms: [(&str, Emit); 8] = [
        ("pshufb", |a| a.pshufb(xmm1, ptr(rbx + 4))),
        ("pmulld", |a| a.pmulld(xmm1, ptr(rbx + 8))),
        ("ptest", |a| a.ptest(xmm1, ptr(rbx + 1))),
        ("movntdqa", |a| a.movntdqa(xmm1, ptr(rbx + 2))),
        ("aesenc", |a| a.aesenc(xmm1, ptr(rbx + 12))),
        ("sha256msg1", |a| a.sha256msg1(xmm1, ptr(rbx + 3))),
        ("pclmulqdq", |a| a.pclmulqdq(xmm1, ptr(rbx + 8), 0x11)),
        ("mpsadbw", |a| a.mpsadbw(xmm1, ptr(rbx + 1), 5)),
    ];
    for (name, emit) in forms {
        let code = asm(emit);
        let o = s.check(name, &code, &state(&mut r, Lanes::Int), Undefined::NONE);
        if let Some(o) = o {
            assert_eq!(o.end, SnippetEnd::Exception(13), "{name} on the host");
        }
    }
    // Narrower memory operands and the MMX forms are never checked.
    let ok: [(&str, Emit); 3] = [
        ("pmovzxbw m64", |a| a.pmovzxbw(xmm1, ptr(rbx + 1))),
        ("pshufb mmx", |a| a.pshufb(mm1, ptr(rbx + 3))),
        ("pinsrq", |a| a.pinsrq(xmm1, ptr(rbx + 5), 1)),
    ];
    for (name, emit) in ok {
        let code = asm(emit);
        if let Some(o) = s.check(name, &code, &state(&mut r, Lanes::Int), Undefined::NONE) {
            assert_eq!(o.end, SnippetEnd::Completed, "{name} on the host");
        }
    }
    s.finish();
}

/// Encodings the assembler does not choose by itself: PEXTRW's SSE4.1
/// register form (0F 3A 15) with and without REX.W and its memory form,
/// and PEXTRB with REX-extended registers.
#[test]
fn alternative_extract_encodings_match_host() {
    let mut r = Rng::new(17);
    let mut s = Suite::new();
    let codes: [(&str, &[u8]); 4] = [
        (
            "pextrw eax,xmm2,5 (0f3a15)",
            &[0x66, 0x0f, 0x3a, 0x15, 0xd0, 0x05],
        ),
        (
            "pextrw rax,xmm2,13 (rex.w)",
            &[0x66, 0x48, 0x0f, 0x3a, 0x15, 0xd0, 0x0d],
        ),
        (
            "pextrb r9,xmm10,9",
            &[0x66, 0x45, 0x0f, 0x3a, 0x14, 0xd1, 0x09],
        ),
        (
            "pextrw [rbx+3],xmm1,6",
            &[0x66, 0x0f, 0x3a, 0x15, 0x4b, 0x03, 0x06],
        ),
    ];
    for (name, code) in codes {
        for k in 0..20 {
            let st = state(&mut r, Lanes::Int);
            s.check(&format!("{name} #{k}"), code, &st, Undefined::NONE);
        }
    }
    s.finish();
}
