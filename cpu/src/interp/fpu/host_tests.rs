//! Differential tests: the soft-float x87 core against the host's x87.
//!
//! Every case runs the same operation natively (inline assembly on the
//! x86-64 test host) and through [`super::x87`], and compares the 80-bit
//! result, the exception flags and C1 bit for bit. Inputs come from a
//! seeded generator biased towards hard cases (ties, cancellation,
//! denormals, the edges of the exponent range, NaNs, unsupported
//! encodings), so every failure is reproducible from its printed inputs.

use core::arch::asm;

use super::softfloat::{self as sf, Env, Round, F32, F64, F80 as F80F};
use super::state::F80;
use super::x87::{self, BinOp};

/// xorshift64* — a small reproducible generator.
pub(super) struct Rng(pub u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn sig(&mut self) -> u64 {
        let r = self.next();
        match self.next() % 4 {
            0 => r & 0xffff_ff00_0000_0000,
            1 => r & 0xffff_ffff_ffff_f800,
            2 => r | 0xff,
            _ => r,
        }
    }

    /// A random 80-bit pattern near `exp` (biased) or special.
    pub(super) fn f80_near(&mut self, exp: Option<u16>) -> u128 {
        let sign = u16::from(self.next() & 1 == 1) << 15;
        let sig = self.sig();
        let top = 1u64 << 63;
        let (e, s) = match self.next() % 24 {
            0 => (0, 0),
            1 => (0x7fff, top),
            2 => (0x7fff, top | (1 << 62) | (sig >> 2)),
            3 => (0x7fff, top | ((sig >> 2) | 1)),
            4 => (0, sig >> 1 >> (self.next() % 60)),
            5 => (0, sig | top),
            6 => (1 + (self.next() % 0x7ffd) as u16, sig & !top),
            7 => (0x7ffe - (self.next() % 70) as u16, sig | top),
            8 => (1 + (self.next() % 70) as u16, sig | top),
            9 => (0x3fff + 64 - (self.next() % 128) as u16, top),
            _ => match exp {
                Some(e) => (
                    e.wrapping_add((self.next() % 140) as u16).wrapping_sub(70) & 0x7fff,
                    sig | top,
                ),
                None => (0x3fff + (self.next() % 200) as u16 - 100, sig | top),
            },
        };
        (u128::from(sign | e) << 64) | u128::from(s)
    }
}

macro_rules! host_x87 {
    ($a:expr, $b:expr, $cw:expr, $($ins:literal),*) => {{
        let a = $a.to_le_bytes();
        let b = $b.to_le_bytes();
        let cw: u16 = $cw;
        let mut r = [0u8; 16];
        let mut sw: u16 = 0;
        // SAFETY: the block only touches x87 state and the four local
        // buffers whose addresses it receives; FNINIT at the end leaves the
        // x87 in the default state the Rust ABI expects.
        unsafe {
            asm!(
                "fninit",
                "fldcw word ptr [{cw}]",
                "fld tbyte ptr [{b}]",
                "fld tbyte ptr [{a}]",
                $($ins,)*
                "fninit",
                cw = in(reg) &cw,
                a = in(reg) a.as_ptr(),
                b = in(reg) b.as_ptr(),
                r = in(reg) r.as_mut_ptr(),
                sw = in(reg) &mut sw,
                out("st(0)") _, out("st(1)") _, out("st(2)") _, out("st(3)") _,
                out("st(4)") _, out("st(5)") _, out("st(6)") _, out("st(7)") _,
                options(nostack),
            );
        }
        (u128::from_le_bytes(r), sw)
    }};
}

fn host_binop(op: BinOp, a: u128, b: u128, cw: u16) -> (u128, u16) {
    // D8 C1 / D8 C9 / D8 E1 / D8 F1: ST0 = ST0 op ST1 (ST0 = a, ST1 = b).
    match op {
        BinOp::Add => host_x87!(
            a,
            b,
            cw,
            ".byte 0xd8, 0xc1",
            "fnstsw word ptr [{sw}]",
            "fstp tbyte ptr [{r}]",
            "fstp st(0)"
        ),
        BinOp::Mul => host_x87!(
            a,
            b,
            cw,
            ".byte 0xd8, 0xc9",
            "fnstsw word ptr [{sw}]",
            "fstp tbyte ptr [{r}]",
            "fstp st(0)"
        ),
        BinOp::Sub => host_x87!(
            a,
            b,
            cw,
            ".byte 0xd8, 0xe1",
            "fnstsw word ptr [{sw}]",
            "fstp tbyte ptr [{r}]",
            "fstp st(0)"
        ),
        BinOp::Div => host_x87!(
            a,
            b,
            cw,
            ".byte 0xd8, 0xf1",
            "fnstsw word ptr [{sw}]",
            "fstp tbyte ptr [{r}]",
            "fstp st(0)"
        ),
    }
}

fn env_for(cw: u16, pc: bool) -> Env {
    let mut e = Env::new(F80F, Round::from_bits(u32::from(cw >> 10)));
    if pc {
        e.prec = match (cw >> 8) & 3 {
            0 => 24,
            2 => 53,
            _ => 64,
        };
    }
    e
}

fn c1_of(env: &Env) -> u16 {
    u16::from(env.flags & sf::PE != 0 && env.rounded_up) << 9
}

const CWS: [u16; 12] = [
    0x037f, 0x077f, 0x0b7f, 0x0f7f, 0x027f, 0x067f, 0x0a7f, 0x0e7f, 0x007f, 0x047f, 0x087f, 0x0c7f,
];

fn check_binop(op: BinOp, seed: u64, n: usize) {
    let mut rng = Rng(seed);
    let mut bad = Vec::new();
    for i in 0..n {
        let a = rng.f80_near(None);
        let ea = ((a >> 64) as u16) & 0x7fff;
        let b = rng.f80_near(Some(ea));
        let cw = CWS[i % CWS.len()];
        let (hr, hsw) = host_binop(op, a, b, cw);
        let mut env = env_for(cw, true);
        let r = x87::binary(
            op,
            F80::from_bits(a).decode(),
            F80::from_bits(b).decode(),
            &mut env,
        );
        let mr = F80::encode(r).bits();
        let msw = (env.flags as u16 & 0x3f) | c1_of(&env);
        if mr != hr || msw != hsw & 0x23f {
            bad.push(format!(
                "{op:?} a={a:#022x} b={b:#022x} cw={cw:#06x}: host {hr:#022x} sw {:#06x}, soft {mr:#022x} sw {msw:#06x}",
                hsw & 0x23f
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad[..bad.len().min(20)].join("\n")
    );
}

#[test]
fn x87_add_matches_host() {
    check_binop(BinOp::Add, 0x1234_5678, 3000);
}

#[test]
fn x87_sub_matches_host() {
    check_binop(BinOp::Sub, 0x9abc_def0, 3000);
}

#[test]
fn x87_mul_matches_host() {
    check_binop(BinOp::Mul, 0x0bad_cafe, 3000);
}

#[test]
fn x87_div_matches_host() {
    check_binop(BinOp::Div, 0xfeed_f00d, 3000);
}

#[test]
fn x87_sqrt_and_frndint_match_host() {
    let mut rng = Rng(77);
    let mut bad = Vec::new();
    for i in 0..3000 {
        let a = rng.f80_near(None);
        let cw = CWS[i % CWS.len()];
        for sqrt in [true, false] {
            let (hr, hsw) = if sqrt {
                host_x87!(
                    a,
                    0u128,
                    cw,
                    "fsqrt",
                    "fnstsw word ptr [{sw}]",
                    "fstp tbyte ptr [{r}]",
                    "fstp st(0)"
                )
            } else {
                host_x87!(
                    a,
                    0u128,
                    cw,
                    "frndint",
                    "fnstsw word ptr [{sw}]",
                    "fstp tbyte ptr [{r}]",
                    "fstp st(0)"
                )
            };
            let d = F80::from_bits(a).decode();
            let mut env = env_for(cw, sqrt);
            let r = if d.unsupported {
                env.flags |= sf::IE;
                sf::Fp::default_nan()
            } else {
                env.denormal_input = d.denormal;
                if sqrt {
                    sf::sqrt(d.v, &mut env)
                } else {
                    sf::round_to_integral(d.v, &mut env)
                }
            };
            let mr = F80::encode(r).bits();
            let msw = (env.flags as u16 & 0x3f) | c1_of(&env);
            if mr != hr || msw != hsw & 0x23f {
                bad.push(format!(
                    "{} a={a:#022x} cw={cw:#06x}: host {hr:#022x} sw {:#06x}, soft {mr:#022x} sw {msw:#06x}",
                    if sqrt { "fsqrt" } else { "frndint" },
                    hsw & 0x23f
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad[..bad.len().min(20)].join("\n")
    );
}

#[test]
fn x87_stores_match_host() {
    let mut rng = Rng(4242);
    let mut bad = Vec::new();
    for i in 0..3000 {
        let a = if i % 3 == 0 {
            // Values near the f32/f64 ranges.
            let e = [
                0x3fff - 126,
                0x3fff + 127,
                0x3fff - 1022,
                0x3fff + 1023,
                0x3fff - 149,
                0x3fff - 1074,
                0x3fff + 62,
                0x3fff + 30,
                0x3fff + 14,
            ][i / 3 % 9];
            rng.f80_near(Some(e))
        } else {
            rng.f80_near(None)
        };
        let cw = CWS[i % CWS.len()];
        let d = F80::from_bits(a).decode();
        let cases: [(&str, u128, u16); 5] = {
            let (r32, s32) = host_x87!(
                a,
                0u128,
                cw,
                "fstp dword ptr [{r}]",
                "fnstsw word ptr [{sw}]",
                "fstp st(0)"
            );
            let (r64, s64) = host_x87!(
                a,
                0u128,
                cw,
                "fstp qword ptr [{r}]",
                "fnstsw word ptr [{sw}]",
                "fstp st(0)"
            );
            let (i16_, si16) = host_x87!(
                a,
                0u128,
                cw,
                "fistp word ptr [{r}]",
                "fnstsw word ptr [{sw}]",
                "fstp st(0)"
            );
            let (i32_, si32) = host_x87!(
                a,
                0u128,
                cw,
                "fistp dword ptr [{r}]",
                "fnstsw word ptr [{sw}]",
                "fstp st(0)"
            );
            let (i64_, si64) = host_x87!(
                a,
                0u128,
                cw,
                "fistp qword ptr [{r}]",
                "fnstsw word ptr [{sw}]",
                "fstp st(0)"
            );
            [
                ("m32", r32, s32),
                ("m64", r64, s64),
                ("i16", i16_, si16),
                ("i32", i32_, si32),
                ("i64", i64_, si64),
            ]
        };
        for (what, hr, hsw) in cases {
            let mut env = env_for(cw, false);
            let mr = match what {
                "m32" => x87::store_float(d, F32, &mut env),
                "m64" => x87::store_float(d, F64, &mut env),
                _ => {
                    let bits = match what {
                        "i16" => 16,
                        "i32" => 32,
                        _ => 64,
                    };
                    let v = x87::store_int(d, bits, env.rc, &mut env)
                        .unwrap_or(i64::MIN >> (64 - bits));
                    if env.flags & sf::IE != 0 {
                        env.flags = sf::IE;
                    }
                    u128::from(v as u64) & ((1u128 << bits) - 1)
                }
            };
            let msw = (env.flags as u16 & 0x3f) | c1_of(&env);
            if mr != hr || msw != hsw & 0x23f {
                bad.push(format!(
                    "{what} a={a:#022x} cw={cw:#06x}: host {hr:#x} sw {:#06x}, soft {mr:#x} sw {msw:#06x}",
                    hsw & 0x23f
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad[..bad.len().min(20)].join("\n")
    );
}

#[test]
fn x87_compares_match_host() {
    let mut rng = Rng(999);
    let mut bad = Vec::new();
    for i in 0..3000 {
        let a = rng.f80_near(None);
        let b = if i % 4 == 0 {
            a ^ (u128::from(rng.next() & 1) << 79)
        } else {
            rng.f80_near(Some(((a >> 64) as u16) & 0x7fff))
        };
        for signaling in [true, false] {
            let (_, hsw) = if signaling {
                host_x87!(
                    a,
                    b,
                    0x37f,
                    ".byte 0xd8, 0xd1",
                    "fnstsw word ptr [{sw}]",
                    "fstp tbyte ptr [{r}]",
                    "fstp st(0)"
                )
            } else {
                host_x87!(
                    a,
                    b,
                    0x37f,
                    ".byte 0xdd, 0xe1",
                    "fnstsw word ptr [{sw}]",
                    "fstp tbyte ptr [{r}]",
                    "fstp st(0)"
                )
            };
            let mut env = env_for(0x37f, false);
            let ord = x87::compare(
                F80::from_bits(a).decode(),
                F80::from_bits(b).decode(),
                signaling,
                &mut env,
            );
            let cc: u16 = match ord {
                None => 0x4500,
                Some(core::cmp::Ordering::Less) => 0x0100,
                Some(core::cmp::Ordering::Equal) => 0x4000,
                Some(core::cmp::Ordering::Greater) => 0,
            };
            let msw = (env.flags as u16 & 0x3f) | cc;
            if msw != hsw & 0x453f {
                bad.push(format!(
                    "fcom(signaling={signaling}) a={a:#022x} b={b:#022x}: host sw {:#06x}, soft sw {msw:#06x}",
                    hsw & 0x453f
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad[..bad.len().min(20)].join("\n")
    );
}

// ---------------------------------------------------------------------
// SSE scalar lanes against the host's SSE unit.

use super::sse::{self, FOp};

macro_rules! host_sse {
    ($a:expr, $b:expr, $mx:expr, $($ins:literal),*) => {{
        let a: u64 = $a;
        let b: u64 = $b;
        let mx: u32 = $mx;
        let mut r: u64 = 0;
        let mut mxo: u32 = 0;
        let def: u32 = 0x1f80;
        // SAFETY: the block only touches rax/xmm0/xmm1 (declared clobbered),
        // MXCSR (restored to the ABI default at the end) and the local
        // variables whose addresses it receives.
        unsafe {
            asm!(
                "ldmxcsr [{mx}]",
                "movq xmm0, [{a}]",
                "movq xmm1, [{b}]",
                $($ins,)*
                "stmxcsr [{mxo}]",
                "movq [{r}], xmm0",
                "ldmxcsr [{def}]",
                mx = in(reg) &mx,
                a = in(reg) &a,
                b = in(reg) &b,
                r = in(reg) &mut r,
                mxo = in(reg) &mut mxo,
                def = in(reg) &def,
                out("rax") _, out("xmm0") _, out("xmm1") _,
                options(nostack),
            );
        }
        (r, mxo & 0x3f)
    }};
}

fn rand_lane(rng: &mut Rng, f64_: bool, near: Option<u64>) -> u64 {
    let (eb, fb) = if f64_ { (11u32, 52u32) } else { (8, 23) };
    let emax = (1u64 << eb) - 1;
    let sign = (rng.next() & 1) << (eb + fb);
    let frac = rng.sig() >> (64 - fb);
    let e = match rng.next() % 16 {
        0 => 0,
        1 => emax,
        2 => emax,
        3 => 0,
        4 => emax - 1 - rng.next() % 30,
        5 => 1 + rng.next() % 30,
        _ => match near {
            Some(e) => (e + rng.next() % 60).saturating_sub(30).clamp(1, emax - 1),
            None => (emax / 2 + rng.next() % 80).saturating_sub(40),
        },
    };
    let frac = match rng.next() % 16 {
        0 => 0,
        1 => 1 << (fb - 1),
        _ => frac,
    };
    sign | (e << fb) | frac
}

fn exp_of(v: u64, f64_: bool) -> u64 {
    if f64_ {
        (v >> 52) & 0x7ff
    } else {
        (v >> 23) & 0xff
    }
}

const MXCSRS: [u32; 8] = [
    0x1f80, 0x3f80, 0x5f80, 0x7f80, 0x9f80, 0x1fc0, 0xdfc0, 0xbf80,
];

fn host_scalar(op: FOp, dbl: bool, a: u64, b: u64, mx: u32) -> (u64, u32) {
    macro_rules! pick {
        ($s:literal, $d:literal) => {
            if dbl {
                host_sse!(a, b, mx, $d)
            } else {
                host_sse!(a, b, mx, $s)
            }
        };
    }
    match op {
        FOp::Add => pick!("addss xmm0, xmm1", "addsd xmm0, xmm1"),
        FOp::Sub => pick!("subss xmm0, xmm1", "subsd xmm0, xmm1"),
        FOp::Mul => pick!("mulss xmm0, xmm1", "mulsd xmm0, xmm1"),
        FOp::Div => pick!("divss xmm0, xmm1", "divsd xmm0, xmm1"),
        FOp::Min => pick!("minss xmm0, xmm1", "minsd xmm0, xmm1"),
        FOp::Max => pick!("maxss xmm0, xmm1", "maxsd xmm0, xmm1"),
        FOp::Sqrt => pick!("sqrtss xmm0, xmm1", "sqrtsd xmm0, xmm1"),
        FOp::Cmp(0) => pick!("cmpss xmm0, xmm1, 0", "cmpsd xmm0, xmm1, 0"),
        FOp::Cmp(1) => pick!("cmpss xmm0, xmm1, 1", "cmpsd xmm0, xmm1, 1"),
        FOp::Cmp(2) => pick!("cmpss xmm0, xmm1, 2", "cmpsd xmm0, xmm1, 2"),
        FOp::Cmp(3) => pick!("cmpss xmm0, xmm1, 3", "cmpsd xmm0, xmm1, 3"),
        FOp::Cmp(4) => pick!("cmpss xmm0, xmm1, 4", "cmpsd xmm0, xmm1, 4"),
        FOp::Cmp(5) => pick!("cmpss xmm0, xmm1, 5", "cmpsd xmm0, xmm1, 5"),
        FOp::Cmp(6) => pick!("cmpss xmm0, xmm1, 6", "cmpsd xmm0, xmm1, 6"),
        FOp::Cmp(_) => pick!("cmpss xmm0, xmm1, 7", "cmpsd xmm0, xmm1, 7"),
    }
}

fn check_sse(ops: &[FOp], seed: u64, n: usize) {
    let mut rng = Rng(seed);
    let mut bad = Vec::new();
    for i in 0..n {
        let dbl = i % 2 == 0;
        let a = rand_lane(&mut rng, dbl, None);
        let b = rand_lane(&mut rng, dbl, Some(exp_of(a, dbl)));
        let mx = MXCSRS[(i / 2) % MXCSRS.len()];
        let fmt = if dbl { F64 } else { F32 };
        let width = if dbl { u64::MAX } else { u64::from(u32::MAX) };
        for &op in ops {
            let (hr, hf) = host_scalar(op, dbl, a, b, mx);
            let mut f = 0;
            let r = sse::lane(op, a, b, fmt, mx, &mut f);
            // The host leaves the upper half of a scalar f32 lane from `a`.
            let hr = if dbl { hr } else { hr & width };
            if r != hr || f != hf {
                bad.push(format!(
                    "{op:?} {} a={a:#x} b={b:#x} mxcsr={mx:#x}: host {hr:#x} flags {hf:#x}, soft {r:#x} flags {f:#x}",
                    if dbl { "sd" } else { "ss" }
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad[..bad.len().min(20)].join("\n")
    );
}

#[test]
fn sse_arith_matches_host() {
    check_sse(
        &[FOp::Add, FOp::Sub, FOp::Mul, FOp::Div, FOp::Sqrt],
        0x5eed,
        3000,
    );
}

#[test]
fn sse_min_max_cmp_match_host() {
    let ops: Vec<FOp> = [FOp::Min, FOp::Max]
        .into_iter()
        .chain((0..8).map(FOp::Cmp))
        .collect();
    check_sse(&ops, 0xc0ffee, 1500);
}

#[test]
fn sse_conversions_match_host() {
    let mut rng = Rng(0xabcdef);
    let mut bad = Vec::new();
    for i in 0..3000 {
        let mx = MXCSRS[i % MXCSRS.len()];
        let s = rand_lane(
            &mut rng,
            false,
            Some(if i % 3 == 0 { 127 + 31 } else { 127 }),
        );
        let d = rand_lane(
            &mut rng,
            true,
            Some(if i % 3 == 0 { 1023 + 63 } else { 1023 - 126 }),
        );
        let iv = (rng.next() as i64) >> (rng.next() % 64);
        let mut check = |what: &str, host: (u64, u32), soft: u64, f: u32| {
            if host.0 != soft || host.1 != f {
                bad.push(format!(
                    "{what} s={s:#x} d={d:#x} i={iv:#x} mxcsr={mx:#x}: host {:#x} flags {:#x}, soft {soft:#x} flags {f:#x}",
                    host.0, host.1
                ));
            }
        };
        let mut f = 0;
        let r = sse::cvt_float(s, F32, F64, mx, &mut f);
        check("cvtss2sd", host_sse!(0, s, mx, "cvtss2sd xmm0, xmm1"), r, f);
        let mut f = 0;
        let r = sse::cvt_float(d, F64, F32, mx, &mut f);
        check("cvtsd2ss", host_sse!(0, d, mx, "cvtsd2ss xmm0, xmm1"), r, f);
        for (name, src, fmt, trunc) in [
            ("cvtss2si", s, F32, false),
            ("cvttss2si", s, F32, true),
            ("cvtsd2si", d, F64, false),
            ("cvttsd2si", d, F64, true),
        ] {
            for bits in [32u32, 64] {
                let mut f = 0;
                let r = sse::cvt_int(src, fmt, bits, trunc, mx, &mut f);
                let host = match (name, bits) {
                    ("cvtss2si", 32) => {
                        host_sse!(0, src, mx, "cvtss2si eax, xmm1", "movd xmm0, eax")
                    }
                    ("cvtss2si", _) => {
                        host_sse!(0, src, mx, "cvtss2si rax, xmm1", "movq xmm0, rax")
                    }
                    ("cvttss2si", 32) => {
                        host_sse!(0, src, mx, "cvttss2si eax, xmm1", "movd xmm0, eax")
                    }
                    ("cvttss2si", _) => {
                        host_sse!(0, src, mx, "cvttss2si rax, xmm1", "movq xmm0, rax")
                    }
                    ("cvtsd2si", 32) => {
                        host_sse!(0, src, mx, "cvtsd2si eax, xmm1", "movd xmm0, eax")
                    }
                    ("cvtsd2si", _) => {
                        host_sse!(0, src, mx, "cvtsd2si rax, xmm1", "movq xmm0, rax")
                    }
                    ("cvttsd2si", 32) => {
                        host_sse!(0, src, mx, "cvttsd2si eax, xmm1", "movd xmm0, eax")
                    }
                    _ => host_sse!(0, src, mx, "cvttsd2si rax, xmm1", "movq xmm0, rax"),
                };
                check(&format!("{name}/{bits}"), host, r, f);
            }
        }
        let mut f = 0;
        let r = sse::cvt_from_int(iv, F32, mx, &mut f);
        check(
            "cvtsi2ss",
            host_sse!(0, iv as u64, mx, "movq rax, xmm1", "cvtsi2ss xmm0, rax"),
            r,
            f,
        );
        let mut f = 0;
        let r = sse::cvt_from_int(iv, F64, mx, &mut f);
        check(
            "cvtsi2sd",
            host_sse!(0, iv as u64, mx, "movq rax, xmm1", "cvtsi2sd xmm0, rax"),
            r,
            f,
        );
        for signaling in [true, false] {
            for (x, y, fmt) in [
                (s, rand_lane(&mut rng, false, Some(exp_of(s, false))), F32),
                (d, d ^ (rng.next() & 1), F64),
            ] {
                let mut f = 0;
                let v = sse::comi(x, y, fmt, mx, signaling, &mut f);
                let (mut z, mut p, mut c) = (0u8, 0u8, 0u8);
                let mut mxo = 0u32;
                let def = 0x1f80u32;
                // SAFETY: as in host_sse!: xmm0/xmm1 clobbered, MXCSR restored.
                unsafe {
                    asm!(
                        "ldmxcsr [{mx}]",
                        "movq xmm0, {x}",
                        "movq xmm1, {y}",
                        "test {sig}, {sig}",
                        "jz 2f",
                        "comisd xmm0, xmm1",
                        "jmp 3f",
                        "2:",
                        "ucomisd xmm0, xmm1",
                        "3:",
                        "setz {z}",
                        "setp {p}",
                        "setc {c}",
                        "stmxcsr [{mxo}]",
                        "ldmxcsr [{def}]",
                        mx = in(reg) &mx,
                        x = in(reg) x,
                        y = in(reg) y,
                        sig = in(reg) u64::from(signaling),
                        z = out(reg_byte) z,
                        p = out(reg_byte) p,
                        c = out(reg_byte) c,
                        mxo = in(reg) &mut mxo,
                        def = in(reg) &def,
                        out("xmm0") _, out("xmm1") _,
                        options(nostack),
                    );
                }
                if fmt == F32 {
                    // Re-run the single-precision compare natively.
                    let (hz, hp, hc, hm) = host_comiss(x as u32, y as u32, mx, signaling);
                    (z, p, c, mxo) = (hz, hp, hc, hm);
                }
                let host = u64::from(z) << 6 | u64::from(p) << 2 | u64::from(c);
                check(
                    if signaling { "comis" } else { "ucomis" },
                    (host, mxo & 0x3f),
                    v,
                    f,
                );
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad[..bad.len().min(20)].join("\n")
    );
}

fn host_comiss(x: u32, y: u32, mx: u32, signaling: bool) -> (u8, u8, u8, u32) {
    let (mut z, mut p, mut c) = (0u8, 0u8, 0u8);
    let mut mxo = 0u32;
    let def = 0x1f80u32;
    // SAFETY: xmm0/xmm1 clobbered, MXCSR restored to the ABI default.
    unsafe {
        asm!(
            "ldmxcsr [{mx}]",
            "movd xmm0, {x:e}",
            "movd xmm1, {y:e}",
            "test {sig}, {sig}",
            "jz 2f",
            "comiss xmm0, xmm1",
            "jmp 3f",
            "2:",
            "ucomiss xmm0, xmm1",
            "3:",
            "setz {z}",
            "setp {p}",
            "setc {c}",
            "stmxcsr [{mxo}]",
            "ldmxcsr [{def}]",
            mx = in(reg) &mx,
            x = in(reg) u64::from(x),
            y = in(reg) u64::from(y),
            sig = in(reg) u64::from(signaling),
            z = out(reg_byte) z,
            p = out(reg_byte) p,
            c = out(reg_byte) c,
            mxo = in(reg) &mut mxo,
            def = in(reg) &def,
            out("xmm0") _, out("xmm1") _,
            options(nostack),
        );
    }
    (z, p, c, mxo)
}
