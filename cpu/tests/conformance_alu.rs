//! Integer instruction conformance: the host CPU is the oracle. Each
//! snippet runs natively and on the interpreter from the same registers
//! and flags; registers and flags must match (flags the manuals leave
//! undefined for that instruction are masked).

mod conformance;

use conformance::native::{self, Ctx};
use cpu::interp::SnippetMachine;
use cpu::snippet::{SnippetEnd, SnippetState, DATA_SIZE};
use iced_x86::code_asm::*;

const CF: u64 = 1;
const PF: u64 = 4;
const AF: u64 = 0x10;
const ZF: u64 = 0x40;
const SF: u64 = 0x80;
const OF: u64 = 0x800;
const ARITH: u64 = CF | PF | AF | ZF | SF | OF;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Interesting operands: boundaries more often than uniform values.
    fn value(&mut self) -> u64 {
        const EDGES: [u64; 10] = [
            0,
            1,
            2,
            0x7f,
            0x80,
            0xff,
            0x7fff,
            0x8000,
            0x7fff_ffff,
            0x8000_0000,
        ];
        match self.below(4) {
            0 => EDGES[self.below(10) as usize],
            1 => EDGES[self.below(10) as usize].wrapping_neg(),
            _ => self.next(),
        }
    }
}

fn interp(m: &mut SnippetMachine, code: &[u8], ctx: &Ctx) -> Ctx {
    let mut fx = [0u8; 512];
    fx[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
    fx[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
    let mut s = SnippetState {
        gprs: ctx.gprs,
        rflags: ctx.rflags,
        fxsave: fx,
        data: vec![0; DATA_SIZE],
    };
    assert_eq!(m.run(code, &mut s), SnippetEnd::Completed);
    Ctx {
        gprs: s.gprs,
        rflags: s.rflags,
    }
}

/// Compare one snippet; `undefined` flags are masked.
fn check(m: &mut SnippetMachine, code: &[u8], ctx: &Ctx, undefined: u64, what: &str) {
    let mut n = *ctx;
    n.rflags = (n.rflags & 0x8d5) | 2;
    let start = n;
    native::run(code, &mut n);
    let i = interp(m, code, &start);
    let mut ng = n.gprs;
    let mut ig = i.gprs;
    ng[4] = 0;
    ig[4] = 0;
    let mask = ARITH & !undefined;
    assert!(
        ng == ig && n.rflags & mask == i.rflags & mask,
        "{what}: {code:02x?}\n  input  {start:x?}\n  native {:x?} flags {:#x}\n  interp {:x?} flags {:#x}",
        n.gprs,
        n.rflags & mask,
        i.gprs,
        i.rflags & mask
    );
}

fn assemble(f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    f(&mut a).unwrap();
    a.assemble(0x2000_0000).unwrap()
}

const R64: [AsmRegister64; 15] = [
    rax, rcx, rdx, rbx, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15,
];
const R32: [AsmRegister32; 8] = [eax, ecx, edx, ebx, esi, edi, r8d, r15d];
const R16: [AsmRegister16; 8] = [ax, cx, dx, bx, si, di, r8w, r15w];
const R8: [AsmRegister8; 8] = [al, cl, dl, bl, bpl, sil, r8b, r15b];

fn random_ctx(r: &mut Rng) -> Ctx {
    let mut c = Ctx::default();
    for g in c.gprs.iter_mut() {
        *g = r.value();
    }
    c.rflags = r.next() & ARITH;
    c
}

/// One randomly generated instruction and its undefined-flags mask.
fn random_instruction(r: &mut Rng) -> (Vec<u8>, u64, String) {
    let size = [64, 32, 16, 8][r.below(4) as usize];
    let op = r.below(16);
    let (i, j) = (r.below(8) as usize, r.below(8) as usize);
    let (a64, b64) = (R64[r.below(15) as usize], R64[r.below(15) as usize]);
    let imm = r.value() as i32;
    let count = [0u32, 1, 2, 7, 8, 15, 16, 31, 32, 33, 63, 64][r.below(12) as usize];
    let desc = format!("op {op} size {size}");
    macro_rules! by_size {
        ($m:ident, $($extra:tt)*) => {
            assemble(|a| match size {
                64 => a.$m(a64, b64),
                32 => a.$m(R32[i], R32[j]),
                16 => a.$m(R16[i], R16[j]),
                _ => a.$m(R8[i], R8[j]),
            })
        };
    }
    let shift_undef = if count & if size == 64 { 63 } else { 31 } == 0 {
        0
    } else {
        AF | if count == 1 { 0 } else { OF } | if count >= size { CF } else { 0 }
    };
    let c8 = count;
    match op {
        0 => (by_size!(add,), 0, desc),
        1 => (by_size!(adc,), 0, desc),
        2 => (by_size!(sub,), 0, desc),
        3 => (by_size!(sbb,), 0, desc),
        4 => (by_size!(and,), AF, desc),
        5 => (by_size!(or,), AF, desc),
        6 => (by_size!(xor,), AF, desc),
        7 => (by_size!(cmp,), 0, desc),
        8 => (by_size!(test,), AF, desc),
        9 => (
            assemble(|a| match size {
                64 => a.add(a64, imm),
                32 => a.sub(R32[i], imm as u32),
                16 => a.and(R16[i], imm as u32 & 0xffff),
                _ => a.xor(R8[i], imm as u32 & 0xff),
            }),
            if size == 16 || size == 8 { AF } else { 0 },
            desc,
        ),
        10 => (
            assemble(|a| match r.below(4) {
                0 => a.inc(a64),
                1 => a.dec(R32[i]),
                2 => a.neg(R16[i]),
                _ => a.not(R8[i]),
            }),
            0,
            desc,
        ),
        11 | 12 => {
            let k = r.below(7);
            let code = assemble(|a| match (size, k) {
                (64, 0) => a.shl(a64, c8),
                (64, 1) => a.shr(a64, c8),
                (64, 2) => a.sar(a64, c8),
                (64, 3) => a.rol(a64, c8),
                (64, 4) => a.ror(a64, c8),
                (64, 5) => a.rcl(a64, c8),
                (64, _) => a.rcr(a64, c8),
                (32, 0) => a.shl(R32[i], c8),
                (32, 1) => a.shr(R32[i], c8),
                (32, 2) => a.sar(R32[i], c8),
                (32, 3) => a.rol(R32[i], c8),
                (32, 4) => a.ror(R32[i], c8),
                (32, 5) => a.rcl(R32[i], c8),
                (32, _) => a.rcr(R32[i], c8),
                (16, 0) => a.shl(R16[i], c8),
                (16, 1) => a.shr(R16[i], c8),
                (16, 2) => a.sar(R16[i], c8),
                (16, 3) => a.rol(R16[i], c8),
                (16, 4) => a.ror(R16[i], c8),
                (16, 5) => a.rcl(R16[i], c8),
                (16, _) => a.rcr(R16[i], c8),
                (_, 0) => a.shl(R8[i], c8),
                (_, 1) => a.shr(R8[i], c8),
                (_, 2) => a.sar(R8[i], c8),
                (_, 3) => a.rol(R8[i], c8),
                (_, 4) => a.ror(R8[i], c8),
                (_, 5) => a.rcl(R8[i], c8),
                (_, _) => a.rcr(R8[i], c8),
            });
            // The mask is the shifts' (a superset of the rotates').
            (code, shift_undef, format!("{desc} shift {k} by {count}"))
        }
        13 => (
            assemble(|a| match size {
                64 => a.imul_2(a64, b64),
                32 => a.imul_2(R32[i], R32[j]),
                16 => a.imul_2(R16[i], R16[j]),
                _ => a.mul(R8[i]),
            }),
            SF | ZF | AF | PF,
            desc,
        ),
        14 => (
            assemble(|a| match size {
                64 => a.movzx(a64, R16[j]),
                32 => a.movsx(R32[i], R8[j]),
                16 => a.bswap(R32[i]),
                _ => a.xadd(R8[i], R8[j]),
            }),
            0,
            desc,
        ),
        _ => (
            assemble(|a| match r.below(3) {
                0 => a.cmovl(R32[i], R32[j]),
                1 => a.setbe(R8[i]),
                _ => a.lea(a64, qword_ptr(b64 + R64[j] * 4 + 0x123)),
            }),
            0,
            desc,
        ),
    }
}

#[test]
fn flags_for_every_size_at_the_edges() {
    let mut m = SnippetMachine::new();
    let edges = [
        0u64,
        1,
        0x7f,
        0x80,
        0xff,
        0x7fff,
        0x8000,
        0xffff,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_ffff,
        u64::MAX,
        1 << 63,
    ];
    let ops: Vec<(Vec<u8>, u64, &str)> = vec![
        (assemble(|a| a.add(rax, rbx)), 0, "add rax,rbx"),
        (assemble(|a| a.adc(eax, ebx)), 0, "adc eax,ebx"),
        (assemble(|a| a.sub(ax, bx)), 0, "sub ax,bx"),
        (assemble(|a| a.sbb(al, bl)), 0, "sbb al,bl"),
        (assemble(|a| a.cmp(rax, rbx)), 0, "cmp rax,rbx"),
        (assemble(|a| a.neg(eax)), 0, "neg eax"),
        (assemble(|a| a.inc(ax)), 0, "inc ax"),
        (assemble(|a| a.dec(al)), 0, "dec al"),
        (assemble(|a| a.and(rax, rbx)), AF, "and rax,rbx"),
        (assemble(|a| a.xor(al, bl)), AF, "xor al,bl"),
    ];
    for (code, undef, what) in &ops {
        for &x in &edges {
            for &y in &edges {
                for cf in [0, CF] {
                    let mut c = Ctx::default();
                    c.gprs[0] = x;
                    c.gprs[3] = y;
                    c.rflags = cf;
                    check(&mut m, code, &c, *undef, what);
                }
            }
        }
    }
}

#[test]
fn shifts_and_rotates_by_0_1_width_and_more() {
    let mut m = SnippetMachine::new();
    for count in [0u32, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63] {
        for v in [0x81u64, 0x8000_0001, 0xdead_beef_cafe_f00d, 1] {
            for (code, bits, rot, what) in [
                (assemble(|a| a.shl(rax, count)), 64, false, "shl rax"),
                (assemble(|a| a.shr(eax, count)), 32, false, "shr eax"),
                (assemble(|a| a.sar(ax, count)), 16, false, "sar ax"),
                (assemble(|a| a.rol(al, count)), 8, true, "rol al"),
                (assemble(|a| a.ror(rax, count)), 64, true, "ror rax"),
                (assemble(|a| a.rcl(eax, count)), 32, true, "rcl eax"),
                (assemble(|a| a.rcr(ax, count)), 16, true, "rcr ax"),
            ] {
                let masked = count & if bits == 64 { 63 } else { 31 };
                let undef = if masked == 0 {
                    0
                } else {
                    let mut u = if masked == 1 { 0 } else { OF };
                    if !rot {
                        u |= AF;
                        if masked >= bits {
                            u |= CF;
                        }
                    }
                    u
                };
                let mut c = Ctx::default();
                c.gprs[0] = v;
                c.rflags = CF | ZF;
                check(&mut m, &code, &c, undef, &format!("{what}, {count}"));
            }
        }
    }
}

#[test]
fn multiply_divide_and_double_shifts() {
    let mut m = SnippetMachine::new();
    let mut r = Rng(7);
    for n in 0..600 {
        let mut c = random_ctx(&mut r);
        let k = n % 10;
        let (code, undef): (Vec<u8>, u64) = match k {
            0 => (assemble(|a| a.mul(rbx)), SF | ZF | AF | PF),
            1 => (assemble(|a| a.imul(ebx)), SF | ZF | AF | PF),
            2 => (assemble(|a| a.mul(bx)), SF | ZF | AF | PF),
            3..=6 => {
                // Divisions that cannot fault: high half below the divisor.
                let bits = [64u32, 32, 16, 8][k as usize - 3];
                let mask = if bits == 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                };
                let d = (c.gprs[3] & mask) | 1;
                c.gprs[3] = d;
                c.gprs[2] = (c.gprs[2] & !mask) | ((c.gprs[2] & mask) % d);
                if bits == 8 {
                    let d8 = d & 0xff;
                    let high = (c.gprs[0] >> 8) % d8;
                    c.gprs[0] = (c.gprs[0] & !0xff00) | (high << 8);
                }
                (
                    assemble(|a| match bits {
                        64 => a.div(rbx),
                        32 => a.div(ebx),
                        16 => a.div(bx),
                        _ => a.div(bl),
                    }),
                    ARITH,
                )
            }
            7 => {
                let cnt = (r.below(40)) as u32;
                let undef = if cnt & 63 == 0 {
                    0
                } else {
                    AF | if cnt == 1 { 0 } else { OF }
                };
                (assemble(|a| a.shld(rax, rbx, cnt)), undef)
            }
            8 => {
                let cnt = (r.below(31)) as u32;
                let undef = if cnt & 31 == 0 {
                    0
                } else {
                    AF | if cnt == 1 { 0 } else { OF }
                };
                (assemble(|a| a.shrd(eax, ebx, cnt)), undef)
            }
            _ => {
                c.gprs[3] |= 1 << r.below(64);
                (assemble(|a| a.bsr(rax, rbx)), CF | OF | SF | AF | PF)
            }
        };
        check(&mut m, &code, &c, undef, &format!("case {n} kind {k}"));
    }
}

#[test]
fn randomized_differential() {
    let seed = std::env::var("KINDLING_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6b69_6e64_6c69_6e67u64);
    println!("seed {seed} (set KINDLING_FUZZ_SEED to reproduce)");
    let mut r = Rng(seed);
    let mut m = SnippetMachine::new();
    let start = std::time::Instant::now();
    for n in 0..2000 {
        if start.elapsed() > std::time::Duration::from_secs(10) {
            break;
        }
        let (code, undef, what) = random_instruction(&mut r);
        let ctx = random_ctx(&mut r);
        check(
            &mut m,
            &code,
            &ctx,
            undef,
            &format!("case {n} (seed {seed}): {what}"),
        );
    }
}
