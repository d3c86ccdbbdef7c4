//! The integer extensions of x86-64-v2/v3 with the host CPU as the
//! oracle: POPCNT, LZCNT, TZCNT, BMI1 (ANDN BEXTR BLSI BLSMSK BLSR), BMI2
//! (BZHI MULX PDEP PEXT RORX SARX SHLX SHRX), ADX (ADCX ADOX), MOVBE,
//! CRC32, CMPXCHG16B, LAHF/SAHF and RDRAND/RDSEED's flags; every operand
//! size and form (register and memory sources), edge operands (0, all
//! ones, sign bits, start/length/index/count beyond the width) and random
//! ones. Flags are compared exactly where the Intel SDM defines them.
//!
//! RDRAND/RDSEED values (the host's randomness, or a repeatable sequence
//! under instruction-counted time), FSGSBASE (needs CR4) and RDPID (reads
//! IA32_TSC_AUX) are checked on the interpreter alone.

mod conformance;

use conformance::asm::asm;
use conformance::compare::{initial_state, Suite, Undefined, AF, ARITH, CF, OF, PF, SF, ZF};
use conformance::rng::{Rng, EDGES};
use cpu::snippet::{SnippetEnd, SnippetState, DATA_BASE};
use iced_x86::code_asm::*;

/// Operands that probe the control fields: BEXTR start/length, BZHI
/// index, shift and rotate counts, around 8/16/32/64.
const CONTROLS: [u64; 18] = [
    0, 1, 7, 8, 15, 16, 31, 32, 33, 63, 64, 65, 0xff, 0x100, 0x0820, 0x2008, 0x4040, 0xff00,
];

/// Assembles `$body` with `$x`, `$y`, `$z` = RAX, RBX, RCX at width
/// `$bits` and `$m` a memory operand of that width at [R8] (DATA_BASE).
macro_rules! w {
    ($bits:expr, |$a:ident, $x:ident, $y:ident, $z:ident, $m:ident| $body:expr) => {
        match $bits {
            16 => asm(|$a| {
                let ($x, $y, $z, $m) = (ax, bx, cx, word_ptr(r8));
                $body
            }),
            32 => asm(|$a| {
                let ($x, $y, $z, $m) = (eax, ebx, ecx, dword_ptr(r8));
                $body
            }),
            _ => asm(|$a| {
                let ($x, $y, $z, $m) = (rax, rbx, rcx, qword_ptr(r8));
                $body
            }),
        }
    };
}

/// [`w!`] for the 32- and 64-bit forms only (the VEX instructions).
macro_rules! v {
    ($bits:expr, |$a:ident, $x:ident, $y:ident, $z:ident, $m:ident| $body:expr) => {
        match $bits {
            32 => asm(|$a| {
                let ($x, $y, $z, $m) = (eax, ebx, ecx, dword_ptr(r8));
                $body
            }),
            _ => asm(|$a| {
                let ($x, $y, $z, $m) = (rax, rbx, rcx, qword_ptr(r8));
                $body
            }),
        }
    };
}

/// A start state: RAX=a, RBX=b, RCX=c, RDX=d, R8 = DATA_BASE whose first
/// qword holds `mem`, and `flags`.
fn state(a: u64, b: u64, c: u64, d: u64, mem: u64, flags: u64) -> SnippetState {
    let mut s = initial_state();
    s.gprs[0] = a;
    s.gprs[3] = b;
    s.gprs[1] = c;
    s.gprs[2] = d;
    s.gprs[8] = DATA_BASE;
    s.data[..8].copy_from_slice(&mem.to_le_bytes());
    s.rflags = flags;
    s
}

/// Which register a memory form's operand replaces.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rm {
    /// RBX (the second operand).
    B,
    /// RCX (the third operand).
    C,
}

/// Operand pairs: every pair of edges and controls, then random ones.
fn pairs(rng: &mut Rng, random: usize) -> Vec<(u64, u64)> {
    let vals: Vec<u64> = EDGES.iter().chain(CONTROLS.iter()).copied().collect();
    let mut out: Vec<(u64, u64)> = vals
        .iter()
        .flat_map(|&x| vals.iter().map(move |&y| (x, y)))
        .collect();
    for _ in 0..random {
        let x = rng.operand();
        let y = match rng.below(3) {
            0 => rng.pick(&CONTROLS),
            1 => rng.operand(),
            _ => rng.next_u64(),
        };
        out.push((x, y));
    }
    out
}

/// Runs `make(bits, mem)` for every size and both forms over [`pairs`]
/// (B, C), with random RAX/RDX and starting flags.
fn sweep(
    suite: &mut Suite,
    name: &str,
    sizes: &[u32],
    rm: Rm,
    undef: u64,
    make: impl Fn(u32, bool) -> Vec<u8>,
) {
    let mut rng = Rng::new(0xb1_0000 + name.len() as u64);
    for &bits in sizes {
        for mem in [false, true] {
            let code = make(bits, mem);
            let random = if mem { 60 } else { 200 };
            let all = pairs(&mut rng, random);
            // Memory forms: every 5th edge pair, then the random ones.
            for (k, &(b, c)) in all.iter().enumerate() {
                if mem && k < all.len() - random && k % 5 != 0 {
                    continue;
                }
                let flags = rng.pick(&[0, ARITH, CF | ZF, OF | SF | PF]);
                let cell = if rm == Rm::B { b } else { c };
                let s = state(rng.operand(), b, c, rng.operand(), cell, flags);
                let what = format!("{name} {bits}-bit {} b={b:#x} c={c:#x}", form(mem));
                suite.check(&what, &code, &s, Undefined::flags(undef));
            }
        }
    }
}

fn form(mem: bool) -> &'static str {
    if mem {
        "mem"
    } else {
        "reg"
    }
}

#[test]
fn popcnt_lzcnt_tzcnt() {
    let mut suite = Suite::new();
    let ops: [(&str, u64); 3] = [
        ("popcnt", 0),
        ("lzcnt", OF | SF | PF | AF),
        ("tzcnt", OF | SF | PF | AF),
    ];
    for (name, undef) in ops {
        sweep(
            &mut suite,
            name,
            &[16, 32, 64],
            Rm::B,
            undef,
            |bits, mem| {
                w!(bits, |a, x, y, _z, m| match (name, mem) {
                    ("popcnt", false) => a.popcnt(x, y),
                    ("popcnt", true) => a.popcnt(x, m),
                    ("lzcnt", false) => a.lzcnt(x, y),
                    ("lzcnt", true) => a.lzcnt(x, m),
                    (_, false) => a.tzcnt(x, y),
                    (_, true) => a.tzcnt(x, m),
                })
            },
        );
    }
    // Single set bits at every position of every width.
    for bits in [16u32, 32, 64] {
        for k in 0..bits {
            for name in ["lzcnt", "tzcnt", "popcnt"] {
                let code = w!(bits, |a, x, y, _z, _m| match name {
                    "lzcnt" => a.lzcnt(x, y),
                    "tzcnt" => a.tzcnt(x, y),
                    _ => a.popcnt(x, y),
                });
                let s = state(u64::MAX, 1 << k, 0, 0, 0, ARITH);
                let undef = if name == "popcnt" {
                    0
                } else {
                    OF | SF | PF | AF
                };
                suite.check(
                    &format!("{name} {bits} bit {k}"),
                    &code,
                    &s,
                    Undefined::flags(undef),
                );
            }
        }
    }
    eprintln!("{} cases", suite.cases());
    suite.finish();
}

#[test]
fn bmi1_andn_bextr() {
    let mut suite = Suite::new();
    sweep(
        &mut suite,
        "andn",
        &[32, 64],
        Rm::C,
        AF | PF,
        |bits, mem| {
            v!(bits, |a, x, y, z, m| if mem {
                a.andn(x, y, m)
            } else {
                a.andn(x, y, z)
            })
        },
    );
    sweep(
        &mut suite,
        "bextr",
        &[32, 64],
        Rm::B,
        AF | SF | PF,
        |bits, mem| {
            v!(bits, |a, x, y, z, m| if mem {
                a.bextr(x, m, z)
            } else {
                a.bextr(x, y, z)
            })
        },
    );
    eprintln!("{} cases", suite.cases());
    suite.finish();
}

#[test]
fn bmi1_blsi_blsmsk_blsr() {
    let mut suite = Suite::new();
    for name in ["blsi", "blsmsk", "blsr"] {
        sweep(&mut suite, name, &[32, 64], Rm::B, AF | PF, |bits, mem| {
            v!(bits, |a, x, y, _z, m| match (name, mem) {
                ("blsi", false) => a.blsi(x, y),
                ("blsi", true) => a.blsi(x, m),
                ("blsmsk", false) => a.blsmsk(x, y),
                ("blsmsk", true) => a.blsmsk(x, m),
                (_, false) => a.blsr(x, y),
                (_, true) => a.blsr(x, m),
            })
        });
    }
    eprintln!("{} cases", suite.cases());
    suite.finish();
}

#[test]
fn bmi2_bzhi_pdep_pext() {
    let mut suite = Suite::new();
    sweep(
        &mut suite,
        "bzhi",
        &[32, 64],
        Rm::B,
        AF | PF,
        |bits, mem| {
            v!(bits, |a, x, y, z, m| if mem {
                a.bzhi(x, m, z)
            } else {
                a.bzhi(x, y, z)
            })
        },
    );
    sweep(&mut suite, "pdep", &[32, 64], Rm::C, 0, |bits, mem| {
        v!(bits, |a, x, y, z, m| if mem {
            a.pdep(x, y, m)
        } else {
            a.pdep(x, y, z)
        })
    });
    sweep(&mut suite, "pext", &[32, 64], Rm::C, 0, |bits, mem| {
        v!(bits, |a, x, y, z, m| if mem {
            a.pext(x, y, m)
        } else {
            a.pext(x, y, z)
        })
    });
    // Random masks of every density.
    let mut rng = Rng::new(7);
    for bits in [32u32, 64] {
        for k in 0..300 {
            let mask = match k % 3 {
                0 => rng.next_u64() & rng.next_u64(),
                1 => rng.next_u64() | rng.next_u64(),
                _ => rng.next_u64(),
            };
            let src = rng.next_u64();
            for name in ["pdep", "pext"] {
                let code = v!(bits, |a, x, y, z, _m| if name == "pdep" {
                    a.pdep(x, y, z)
                } else {
                    a.pext(x, y, z)
                });
                let s = state(0, src, mask, 0, 0, ARITH);
                suite.check(
                    &format!("{name} {bits} mask {mask:#x}"),
                    &code,
                    &s,
                    Undefined::NONE,
                );
            }
        }
    }
    eprintln!("{} cases", suite.cases());
    suite.finish();
}

#[test]
fn bmi2_mulx_rorx_shifts() {
    let mut suite = Suite::new();
    // MULX: high half to RAX, low half to RBX, RDX times RCX (or memory).
    let mut rng = Rng::new(11);
    let vals: Vec<u64> = EDGES.to_vec();
    for bits in [32u32, 64] {
        for mem in [false, true] {
            let code = v!(bits, |a, x, y, z, m| if mem {
                a.mulx(x, y, m)
            } else {
                a.mulx(x, y, z)
            });
            let mut cases: Vec<(u64, u64)> = vals
                .iter()
                .flat_map(|&d| vals.iter().map(move |&c| (d, c)))
                .collect();
            cases.extend((0..100).map(|_| (rng.operand(), rng.operand())));
            for (d, c) in cases {
                let s = state(1, 2, c, d, c, ARITH);
                suite.check(
                    &format!("mulx {bits} {} d={d:#x} c={c:#x}", form(mem)),
                    &code,
                    &s,
                    Undefined::NONE,
                );
            }
        }
        // One register for both halves: the high half wins.
        let code = v!(bits, |a, x, _y, z, _m| a.mulx(x, x, z));
        let s = state(0, 0, 0xdead_beef_1234_5678, u64::MAX, 0, 0);
        suite.check(
            &format!("mulx {bits} same destination"),
            &code,
            &s,
            Undefined::NONE,
        );
    }
    for imm in [0u32, 1, 7, 8, 31, 32, 33, 63, 64, 255] {
        for bits in [32u32, 64] {
            for mem in [false, true] {
                let code = v!(bits, |a, x, y, _z, m| if mem {
                    a.rorx(x, m, imm)
                } else {
                    a.rorx(x, y, imm)
                });
                for v in EDGES {
                    let s = state(0, v, 0, 0, v, CF | OF);
                    suite.check(
                        &format!("rorx {bits} {} {imm} v={v:#x}", form(mem)),
                        &code,
                        &s,
                        Undefined::NONE,
                    );
                }
            }
        }
    }
    for name in ["sarx", "shlx", "shrx"] {
        sweep(&mut suite, name, &[32, 64], Rm::B, 0, |bits, mem| {
            v!(bits, |a, x, y, z, m| match (name, mem) {
                ("sarx", false) => a.sarx(x, y, z),
                ("sarx", true) => a.sarx(x, m, z),
                ("shlx", false) => a.shlx(x, y, z),
                ("shlx", true) => a.shlx(x, m, z),
                (_, false) => a.shrx(x, y, z),
                (_, true) => a.shrx(x, m, z),
            })
        });
    }
    eprintln!("{} cases", suite.cases());
    suite.finish();
}

#[test]
fn adx_adcx_adox() {
    let mut suite = Suite::new();
    for name in ["adcx", "adox"] {
        sweep(&mut suite, name, &[32, 64], Rm::B, 0, |bits, mem| {
            v!(bits, |a, x, y, _z, m| match (name, mem) {
                ("adcx", false) => a.adcx(x, y),
                ("adcx", true) => a.adcx(x, m),
                (_, false) => a.adox(x, y),
                (_, true) => a.adox(x, m),
            })
        });
    }
    // Two interleaved carry chains, as multi-precision code runs them.
    let code = asm(|a| {
        a.adcx(rax, rbx)?;
        a.adox(rcx, rdx)?;
        a.adcx(rax, rcx)?;
        a.adox(rbx, rdx)?;
        a.adcx(rdx, rax)
    });
    let mut rng = Rng::new(3);
    for k in 0..200 {
        let flags = [0, CF, OF, CF | OF][k % 4];
        let s = state(
            rng.operand(),
            rng.operand(),
            rng.operand(),
            rng.operand(),
            0,
            flags,
        );
        suite.check(&format!("adcx/adox chain {k}"), &code, &s, Undefined::NONE);
    }
    eprintln!("{} cases", suite.cases());
    suite.finish();
}

#[test]
fn movbe_loads_and_stores() {
    let mut suite = Suite::new();
    let mut rng = Rng::new(5);
    for bits in [16u32, 32, 64] {
        let load = w!(bits, |a, x, _y, _z, m| a.movbe(x, m));
        let store = w!(bits, |a, _x, y, _z, m| a.movbe(m, y));
        for k in 0..40 {
            let (v, old) = (rng.operand(), rng.next_u64());
            let s = state(old, v, 0, 0, v, ARITH);
            suite.check(
                &format!("movbe load {bits} #{k}"),
                &load,
                &s,
                Undefined::NONE,
            );
            suite.check(
                &format!("movbe store {bits} #{k}"),
                &store,
                &s,
                Undefined::NONE,
            );
        }
    }
    eprintln!("{} cases", suite.cases());
    suite.finish();
}

#[test]
fn crc32_every_source_size() {
    let mut suite = Suite::new();
    let mut rng = Rng::new(9);
    let forms: Vec<(&str, Vec<u8>)> = vec![
        ("r32, r8", asm(|a| a.crc32(eax, bl))),
        ("r32, r16", asm(|a| a.crc32(eax, bx))),
        ("r32, r32", asm(|a| a.crc32(eax, ebx))),
        ("r64, r8", asm(|a| a.crc32(rax, bl))),
        ("r64, r64", asm(|a| a.crc32(rax, rbx))),
        ("r32, m8", asm(|a| a.crc32(eax, byte_ptr(r8)))),
        ("r32, m16", asm(|a| a.crc32(eax, word_ptr(r8)))),
        ("r32, m32", asm(|a| a.crc32(eax, dword_ptr(r8)))),
        ("r64, m8", asm(|a| a.crc32(rax, byte_ptr(r8)))),
        ("r64, m64", asm(|a| a.crc32(rax, qword_ptr(r8)))),
        // A running CRC over several operands.
        (
            "chain",
            asm(|a| {
                a.crc32(eax, bl)?;
                a.crc32(eax, cx)?;
                a.crc32(rax, rdx)?;
                a.crc32(eax, dword_ptr(r8))
            }),
        ),
    ];
    for (name, code) in &forms {
        for k in 0..60 {
            let crc = EDGES.get(k).copied().unwrap_or_else(|| rng.operand());
            let v = rng.operand();
            let s = state(crc, v, rng.next_u64(), rng.next_u64(), v, ARITH);
            suite.check(
                &format!("crc32 {name} crc={crc:#x} v={v:#x}"),
                code,
                &s,
                Undefined::NONE,
            );
        }
    }
    eprintln!("{} cases", suite.cases());
    suite.finish();
}

#[test]
fn cmpxchg16b_and_lahf_sahf() {
    let mut suite = Suite::new();
    // RDX:RAX against [R8 + off], RCX:RBX the replacement; R9 = the high qword.
    for (locked, off) in [
        (false, 0i32),
        (true, 0),
        (false, 16),
        (true, 32),
        (false, 8),
        (true, 4),
    ] {
        let code = asm(|a| {
            if locked {
                a.lock().cmpxchg16b(xmmword_ptr(r8 + off))
            } else {
                a.cmpxchg16b(xmmword_ptr(r8 + off))
            }
        });
        for equal in [false, true] {
            let mut s = state(0x1111, 0x3333, 0x4444, 0x2222, 0, 0);
            let o = off as usize;
            let (lo, hi) = if equal {
                (0x1111u64, 0x2222u64)
            } else {
                (0x1111, 0x9999)
            };
            s.data[o..o + 8].copy_from_slice(&lo.to_le_bytes());
            s.data[o + 8..o + 16].copy_from_slice(&hi.to_le_bytes());
            let what = format!("cmpxchg16b lock={locked} off={off} equal={equal}");
            let out = suite.check(&what, &code, &s, Undefined::NONE);
            if let Some(out) = out {
                let expect = if off % 16 == 0 {
                    SnippetEnd::Completed
                } else {
                    SnippetEnd::Exception(13)
                };
                assert_eq!(out.end, expect, "{what}");
            }
        }
    }
    let code = asm(|a| {
        a.lahf()?;
        a.mov(bl, ah)?;
        a.mov(ah, cl)?;
        a.sahf()
    });
    let mut rng = Rng::new(13);
    for k in 0..64u64 {
        let flags = [0, CF, PF, AF, ZF, SF, OF, ARITH][k as usize % 8] | (rng.next_u64() & ARITH);
        let s = state(rng.next_u64(), 0, rng.next_u64(), 0, 0, flags);
        suite.check(&format!("lahf/sahf #{k}"), &code, &s, Undefined::NONE);
    }
    eprintln!("{} cases", suite.cases());
    suite.finish();
}

#[test]
fn rdrand_rdseed_set_cf_and_clear_the_rest() {
    // Retry until CF=1 (RDSEED may run dry on the host), so both sides
    // end the same way; the values are the hosts' own and not compared.
    let mut suite = Suite::new();
    for seed in [false, true] {
        for bits in [16u32, 32, 64] {
            let code = asm(|a| {
                let mut retry = a.create_label();
                a.set_label(&mut retry)?;
                match (seed, bits) {
                    (false, 16) => a.rdrand(ax)?,
                    (false, 32) => a.rdrand(eax)?,
                    (false, _) => a.rdrand(rax)?,
                    (true, 16) => a.rdseed(ax)?,
                    (true, 32) => a.rdseed(eax)?,
                    (true, _) => a.rdseed(rax)?,
                }
                a.jnc(retry)
            });
            for flags in [0, ARITH, ZF | OF | SF] {
                let s = state(0x5a5a_5a5a_5a5a_5a5a, 0, 0, 0, 0, flags);
                let undef = Undefined {
                    flags: 0,
                    fsw: 0,
                    regs: 1,
                };
                let what = format!("rd{} {bits}", if seed { "seed" } else { "rand" });
                let out = suite.check(&what, &code, &s, undef);
                if let Some(out) = out {
                    assert_eq!(out.state.rflags & ARITH, CF, "{what}");
                }
            }
        }
    }
    suite.finish();
    // On the interpreter: values vary, and narrow forms keep RAX's upper bits.
    let code = asm(|a| {
        a.rdrand(rax)?;
        a.rdrand(rbx)?;
        a.rdseed(rcx)?;
        a.rdseed(rdx)?;
        a.rdrand(r9w)?;
        a.rdseed(r10d)
    });
    let mut s = state(0, 0, 0, 0, 0, ARITH);
    s.gprs[9] = 0x1234_5678_9abc_def0;
    s.gprs[10] = u64::MAX;
    let mut again = s.clone();
    let end = cpu::interp::run_snippet(&code, &mut s);
    assert_eq!(end, SnippetEnd::Completed);
    // The snippet machine runs on instruction-counted time, where the
    // values repeat run for run (as -icount boots must).
    cpu::interp::run_snippet(&code, &mut again);
    assert_eq!(again.gprs, s.gprs);
    assert_eq!(s.rflags & ARITH, CF);
    assert_ne!(s.gprs[0], s.gprs[3]);
    assert_ne!(s.gprs[1], s.gprs[2]);
    assert_eq!(s.gprs[9] >> 16, 0x1234_5678_9abc);
    assert_eq!(s.gprs[10] >> 32, 0);
}

/// `mov rax, cr4; bts rax, 16; mov cr4, rax` when `on`, then `body`.
fn with_fsgsbase(
    on: bool,
    body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
) -> Vec<u8> {
    asm(|a| {
        if on {
            a.mov(r15, cr4)?;
            a.bts(r15, 16)?;
            a.mov(cr4, r15)?;
        }
        body(a)
    })
}

#[test]
fn fsgsbase_needs_cr4_and_canonical_bases() {
    let run = |code: &[u8], s: &mut SnippetState| cpu::interp::run_snippet(code, s);
    // Enabled: FS/GS bases move, FS: accesses follow, the MSRs agree.
    let code = with_fsgsbase(true, |a| {
        a.wrfsbase(rax)?;
        a.wrgsbase(ebx)?;
        a.rdfsbase(rcx)?;
        a.rdgsbase(r12)?;
        a.mov(r9, qword_ptr(0x10).fs())?;
        a.rdfsbase(r10d)?;
        a.mov(ecx, 0xc000_0101u32)?;
        a.rdmsr()?;
        a.mov(r11, rax)
    });
    let mut s = state(DATA_BASE, 0xffff_ffff_8000_1000, 0, 0, 0, 0);
    s.data[0x10..0x18].copy_from_slice(&0x0123_4567_89ab_cdefu64.to_le_bytes());
    s.gprs[10] = u64::MAX;
    assert_eq!(run(&code, &mut s), SnippetEnd::Completed);
    assert_eq!(s.gprs[9], 0x0123_4567_89ab_cdef, "fs: access");
    assert_eq!(s.gprs[12], 0x8000_1000, "wrgsbase r32 zero-extends");
    assert_eq!(s.gprs[10], DATA_BASE, "rdfsbase r32");
    assert_eq!(s.gprs[11], 0x8000_1000, "IA32_GS_BASE low half");
    // Disabled: #UD, for every form.
    for body in [
        asm(|a| a.rdfsbase(rax)),
        asm(|a| a.rdgsbase(eax)),
        asm(|a| a.wrfsbase(rax)),
        asm(|a| a.wrgsbase(eax)),
    ] {
        let mut s = state(0, 0, 0, 0, 0, 0);
        assert_eq!(run(&body, &mut s), SnippetEnd::Exception(6));
    }
    // Non-canonical writes: #GP(0), base unchanged.
    for bad in [0x0000_8000_0000_0000u64, 0xfff0_0000_0000_0000] {
        let code = with_fsgsbase(true, |a| {
            a.wrgsbase(rbx)?;
            a.wrfsbase(rax)
        });
        let mut s = state(bad, 0x1000, 0, 0, 0, 0);
        assert_eq!(run(&code, &mut s), SnippetEnd::Exception(13), "{bad:#x}");
    }
}

#[test]
fn rdpid_reads_tsc_aux() {
    let code = asm(|a| {
        a.mov(ecx, 0xc000_0103u32)?;
        a.mov(eax, 0x8765_4321u32)?;
        a.mov(edx, 0x1111u32)?;
        a.wrmsr()?;
        a.rdpid(rbx)?;
        a.rdtscp()
    });
    let mut s = state(0, u64::MAX, 0, 0, 0, 0);
    assert_eq!(
        cpu::interp::run_snippet(&code, &mut s),
        SnippetEnd::Completed
    );
    assert_eq!(s.gprs[3], 0x8765_4321, "RDPID: TSC_AUX's low 32 bits");
    assert_eq!(s.gprs[1], 0x8765_4321, "RDTSCP agrees");
}

/// Registers the mixed programs use (not RSP, nor RDI, the data pointer).
const MIX: [AsmRegister64; 8] = [rax, rcx, rdx, rbx, rbp, r9, r10, r11];
const MIX32: [AsmRegister32; 8] = [eax, ecx, edx, ebx, ebp, r9d, r10d, r11d];

/// One step of a mixed program: how to emit it, the flags it writes
/// with defined values and the flags it leaves undefined.
type MixStep = (Emit, u64, u64);

/// Emits one instruction.
type Emit = Box<dyn Fn(&mut CodeAssembler) -> Result<(), IcedError>>;

fn mix_step(r: &mut Rng) -> MixStep {
    let (i, j, k) = (
        r.below(8) as usize,
        r.below(8) as usize,
        r.below(8) as usize,
    );
    let (x, y, z) = (MIX[i], MIX[j], MIX[k]);
    let (x32, y32) = (MIX32[i], MIX32[j]);
    let disp = (r.below(16) * 8) as i32;
    let m = qword_ptr(rdi + disp);
    let imm = r.below(64) as u32;
    let n = r.below(16);
    let emit: Emit = Box::new(move |a| match n {
        // Block-engine fast ops: full flag writers and CF readers.
        0 => a.add(x, y),
        1 => a.adc(x, y),
        2 => a.sbb(x32, y32),
        3 => a.cmp(x, m),
        4 => a.add(m, y),
        // The extensions (generic slots), register and memory forms.
        5 => a.andn(x, y, m),
        6 => a.blsr(x32, y32),
        7 => a.bzhi(x, y, z),
        8 => a.popcnt(x, m),
        9 => a.adcx(x, y),
        10 => a.adox(x32, y32),
        11 => a.shlx(x, m, z),
        12 => a.rorx(x, y, imm),
        13 => a.movbe(m, y),
        14 => a.crc32(x, y),
        _ => a.mulx(x, y, z),
    });
    let (writes, undef) = match n {
        0..=4 => (ARITH, 0),
        5..=7 => (ARITH & !(AF | PF), AF | PF),
        8 => (ARITH, 0),
        9 => (CF, 0),
        10 => (OF, 0),
        _ => (0, 0),
    };
    (emit, writes, undef)
}

#[test]
fn mixed_programs_through_the_block_engine() {
    // Extensions between fast ops in one block: flags produced before a
    // generic slot must survive it (BMI2 and MOVBE/CRC32 write none,
    // ADCX/ADOX one), memory written by MOVBE must be seen by later fast
    // loads. Undefined flags are masked only if no later step redefines them.
    let mut r = Rng::new(0x006d_6978);
    let mut suite = Suite::new();
    for case in 0..1500 {
        let steps: Vec<MixStep> = (0..2 + r.below(7)).map(|_| mix_step(&mut r)).collect();
        let undef = steps
            .iter()
            .fold(0, |u, (_, writes, undef)| (u & !writes) | undef);
        let code = asm(|a| {
            for (emit, _, _) in &steps {
                emit(a)?;
            }
            Ok(())
        });
        let mut s = initial_state();
        for g in s.gprs.iter_mut() {
            *g = r.operand();
        }
        s.gprs[7] = DATA_BASE + 0x800;
        s.rflags = r.next_u64() & ARITH;
        suite.check(
            &format!("mixed #{case}"),
            &code,
            &s,
            Undefined::flags(undef),
        );
    }
    eprintln!("{} cases", suite.cases());
    suite.finish();
}
