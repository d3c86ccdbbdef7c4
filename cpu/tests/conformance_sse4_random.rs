//! Randomized differential test of the SSE3..SHA extensions: random short
//! programs mixing them (any XMM register, XMM0 as destination of the
//! instructions that also read it implicitly, register and memory forms,
//! the MMX forms, GPR inserts and extracts, string compares feeding
//! later instructions) run on the host CPU and on the interpreter from the
//! same random state (a quarter of them with some MXCSR exceptions
//! unmasked), and must agree on every register, flag and byte, and on the
//! exception that ends the program, if any.
//!
//! Seeded and bounded in time like `conformance_random`:
//! `KINDLING_FUZZ_SEED=N` picks the seed (fixed by default),
//! `KINDLING_FUZZ_SECS` the time budget (default 3 s).

mod conformance;

use std::time::{Duration, Instant};

use conformance::asm::asm;
use conformance::compare::{Suite, Undefined};
use conformance::rng::Rng;
use conformance::vector::{set_mxcsr, state, Lanes};
use iced_x86::code_asm::*;

/// Assembles one generated instruction.
type Emit = Box<dyn Fn(&mut CodeAssembler) -> Result<(), IcedError>>;

const XMM: [AsmRegisterXmm; 16] = [
    xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13, xmm14,
    xmm15,
];
const MM: [AsmRegisterMm; 8] = [mm0, mm1, mm2, mm3, mm4, mm5, mm6, mm7];
/// GPRs a program may write (not RSP, not RBX, which points at the data).
const R64: [AsmRegister64; 6] = [rax, rcx, rdx, r8, r9, r10];
const R32: [AsmRegister32; 6] = [eax, ecx, edx, r8d, r9d, r10d];

/// Operands of one generated instruction.
#[derive(Clone, Copy)]
struct Ops {
    d: AsmRegisterXmm,
    s: AsmRegisterXmm,
    md: AsmRegisterMm,
    ms: AsmRegisterMm,
    r64: AsmRegister64,
    r32: AsmRegister32,
    /// A 16-byte aligned displacement from RBX.
    aligned: i32,
    /// Any displacement from RBX.
    any: i32,
    mem: bool,
    imm: u32,
}

fn ops(r: &mut Rng) -> Ops {
    let g = r.below(6) as usize;
    Ops {
        d: r.pick(&XMM),
        s: r.pick(&XMM),
        md: r.pick(&MM),
        ms: r.pick(&MM),
        r64: R64[g],
        r32: R32[g],
        aligned: 16 * r.below(0x40) as i32,
        any: r.below(0x400) as i32,
        mem: r.below(3) == 0,
        imm: r.below(256) as u32,
    }
}

/// `op xmm, xmm/m128` (aligned memory).
macro_rules! x2 {
    ($($m:ident),*) => {
        &[$(|o: Ops| -> Emit {
            Box::new(move |a| {
                if o.mem {
                    a.$m(o.d, ptr(rbx + o.aligned))
                } else {
                    a.$m(o.d, o.s)
                }
            })
        }),*]
    };
}

/// `op xmm, xmm/m128, imm8` (aligned memory).
macro_rules! x3 {
    ($($m:ident),*) => {
        &[$(|o: Ops| -> Emit {
            Box::new(move |a| {
                if o.mem {
                    a.$m(o.d, ptr(rbx + o.aligned), o.imm)
                } else {
                    a.$m(o.d, o.s, o.imm)
                }
            })
        }),*]
    };
}

/// `op xmm, xmm/mN` with a narrow or unaligned-OK memory operand.
macro_rules! x2u {
    ($($m:ident),*) => {
        &[$(|o: Ops| -> Emit {
            Box::new(move |a| {
                if o.mem {
                    a.$m(o.d, ptr(rbx + o.any))
                } else {
                    a.$m(o.d, o.s)
                }
            })
        }),*]
    };
}

/// `op mm, mm/m64`.
macro_rules! m2 {
    ($($m:ident),*) => {
        &[$(|o: Ops| -> Emit {
            Box::new(move |a| {
                if o.mem {
                    a.$m(o.md, ptr(rbx + o.any))
                } else {
                    a.$m(o.md, o.ms)
                }
            })
        }),*]
    };
}

type Gen = fn(Ops) -> Emit;

fn families() -> Vec<(&'static str, &'static [Gen])> {
    vec![
        (
            "sse3/ssse3",
            x2![
                addsubps, addsubpd, haddps, haddpd, hsubps, hsubpd, movshdup, movsldup, pabsb,
                pabsw, pabsd, psignb, psignw, psignd, pshufb, phaddw, phaddd, phaddsw, phsubw,
                phsubd, phsubsw, pmaddubsw, pmulhrsw
            ],
        ),
        (
            "sse4.1",
            x2![
                pminsb, pminsd, pminuw, pminud, pmaxsb, pmaxsd, pmaxuw, pmaxud, pmulld, pmuldq,
                packusdw, pcmpeqq, pcmpgtq, phminposuw, ptest, blendvps, blendvpd, pblendvb
            ],
        ),
        (
            "narrow",
            x2u![
                movddup, pmovsxbw, pmovsxbd, pmovsxbq, pmovsxwd, pmovsxwq, pmovsxdq, pmovzxbw,
                pmovzxbd, pmovzxbq, pmovzxwd, pmovzxwq, pmovzxdq
            ],
        ),
        (
            "imm",
            x3![
                palignr,
                blendps,
                blendpd,
                pblendw,
                mpsadbw,
                insertps,
                roundps,
                roundpd,
                roundss,
                roundsd,
                dpps,
                dppd,
                aeskeygenassist,
                pclmulqdq,
                sha1rnds4
            ],
        ),
        (
            "crypto",
            x2![
                aesenc,
                aesenclast,
                aesdec,
                aesdeclast,
                aesimc,
                sha1nexte,
                sha1msg1,
                sha1msg2,
                sha256rnds2,
                sha256msg1,
                sha256msg2
            ],
        ),
        (
            "mmx",
            m2![
                pabsb, pabsw, pabsd, psignb, psignw, psignd, pshufb, phaddw, phaddd, phaddsw,
                phsubw, phsubd, phsubsw, pmaddubsw, pmulhrsw
            ],
        ),
        (
            "gpr",
            &[
                |o: Ops| -> Emit { Box::new(move |a| a.pinsrb(o.d, o.r32, o.imm)) },
                |o: Ops| -> Emit { Box::new(move |a| a.pinsrd(o.d, ptr(rbx + o.any), o.imm)) },
                |o: Ops| -> Emit { Box::new(move |a| a.pinsrq(o.d, o.r64, o.imm)) },
                |o: Ops| -> Emit { Box::new(move |a| a.pextrb(o.r32, o.s, o.imm)) },
                |o: Ops| -> Emit { Box::new(move |a| a.pextrw(ptr(rbx + o.any), o.s, o.imm)) },
                |o: Ops| -> Emit { Box::new(move |a| a.pextrd(o.r32, o.s, o.imm)) },
                |o: Ops| -> Emit { Box::new(move |a| a.pextrq(ptr(rbx + o.any), o.s, o.imm)) },
                |o: Ops| -> Emit { Box::new(move |a| a.extractps(o.r64, o.s, o.imm)) },
                |o: Ops| -> Emit { Box::new(move |a| a.palignr(o.md, o.ms, o.imm)) },
                |o: Ops| -> Emit { Box::new(move |a| a.lddqu(o.d, ptr(rbx + o.any))) },
                |o: Ops| -> Emit { Box::new(move |a| a.movntdqa(o.d, ptr(rbx + o.aligned))) },
            ],
        ),
        (
            "string",
            &[
                |o: Ops| -> Emit {
                    Box::new(move |a| {
                        if o.mem {
                            a.pcmpestri(o.d, ptr(rbx + o.any), o.imm)
                        } else {
                            a.pcmpestri(o.d, o.s, o.imm)
                        }
                    })
                },
                |o: Ops| -> Emit { Box::new(move |a| a.pcmpestrm(o.d, o.s, o.imm)) },
                |o: Ops| -> Emit { Box::new(move |a| a.pcmpistri(o.d, o.s, o.imm)) },
                |o: Ops| -> Emit { Box::new(move |a| a.pcmpistrm(o.d, ptr(rbx + o.any), o.imm)) },
                |o: Ops| -> Emit { Box::new(move |a| a.pcmpestri64(o.d, o.s, o.imm)) },
                |o: Ops| -> Emit { Box::new(move |a| a.pcmpestrm64(o.d, o.s, o.imm)) },
            ],
        ),
    ]
}

#[test]
fn random_extension_programs_match_the_host() {
    let seed = std::env::var("KINDLING_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5353_4534u64);
    let secs = std::env::var("KINDLING_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3u64);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let fams = families();
    let mut r = Rng::new(seed);
    let mut suite = Suite::new();
    let mut case = 0u64;
    while Instant::now() < deadline && case < 100_000 {
        let n = 1 + r.below(8);
        let mut names = Vec::new();
        let mut steps: Vec<Emit> = Vec::new();
        for _ in 0..n {
            let (fam, gens) = fams[r.below(fams.len() as u64) as usize];
            let k = r.below(gens.len() as u64) as usize;
            names.push(format!("{fam}[{k}]"));
            steps.push(gens[k](ops(&mut r)));
        }
        let code = asm(|a| {
            for s in &steps {
                s(a)?;
            }
            Ok(())
        });
        let lanes = r.pick(&[Lanes::Int, Lanes::F32, Lanes::F64]);
        let mut start = state(&mut r, lanes);
        if r.below(4) == 0 {
            // Some exceptions unmasked: a program may end in #XM.
            let mxcsr = (r.next_u64() as u32 & 0xe040) | (r.below(64) as u32) << 7;
            set_mxcsr(&mut start, mxcsr);
        }
        suite.check(
            &format!("seed {seed} case {case}: {}", names.join("; ")),
            &code,
            &start,
            Undefined::NONE,
        );
        case += 1;
    }
    assert!(suite.cases() > 100, "too few cases ran: {}", suite.cases());
    eprintln!("randomized SIMD differential: seed {seed}, {case} programs");
    suite.finish();
}
