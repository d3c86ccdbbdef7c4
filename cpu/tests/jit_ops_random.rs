//! Randomized differential test of the compiled tier's wider op set:
//! programs made only of MUL/IMUL (one, two and three operands), DIV/IDIV
//! (fitting dividends, 128-bit ones, and divide errors), shifts and
//! rotates by CL (count 0, counts at and past the size), SHLD/SHRD by CL
//! and by an immediate, BT/BTS/BTR/BTC, CMPXCHG, INC/DEC of memory,
//! CBW..CQO, PUSHFQ, ADC/SBB chains and LOOP, at every operand size, run
//! on the host CPU and with every block compiled at its first execution,
//! from the same random state (edge values included). Each instruction
//! that leaves flags undefined is followed by a capture (PUSHFQ; POP; AND
//! with its defined flags; XOR into R15), so a long block checks every
//! defined flag of every instruction, and nothing undefined is read.
//!
//! Seeded and bounded in time like `conformance_random`
//! (`KINDLING_FUZZ_SEED`, `KINDLING_FUZZ_SECS`, default 3 s, doubled as
//! compiling is slow).

mod conformance;

use std::time::{Duration, Instant};

use conformance::asm::asm;
use conformance::compare::{initial_state, Suite, Tier, Undefined, AF, ARITH, CF, OF, PF, SF, ZF};
use conformance::rng::Rng;
use conformance::step::{mem, step, Step};
use cpu::snippet::{SnippetState, DATA_BASE};
use iced_x86::code_asm::*;

/// Operand registers (RAX, RCX and RDX are implicit operands here; R13 is
/// the capture's scratch, R15 its accumulator, R14 the runner's, RSI and
/// RDI point into the data buffer).
const R64: [AsmRegister64; 7] = [rbx, rbp, r8, r9, r10, r11, r12];
const R32: [AsmRegister32; 7] = [ebx, ebp, r8d, r9d, r10d, r11d, r12d];
const R16: [AsmRegister16; 7] = [bx, bp, r8w, r9w, r10w, r11w, r12w];
const R8: [AsmRegister8; 7] = [bl, bpl, r8b, r9b, r10b, r11b, r12b];

/// RDI's start: the middle of the data buffer.
const RDI_START: u64 = DATA_BASE + 0x800;

/// Emit `$f` on register `$i` of the operand size `$size`, with extra
/// operands.
macro_rules! sized {
    ($a:expr, $size:expr, $f:ident, $i:expr $(, $extra:expr)*) => {
        match $size {
            64 => $a.$f(R64[$i] $(, $extra)*),
            32 => $a.$f(R32[$i] $(, $extra)*),
            16 => $a.$f(R16[$i] $(, $extra)*),
            _ => $a.$f(R8[$i] $(, $extra)*),
        }
    };
}

/// The flags a shift or rotate by `count` leaves undefined.
fn shift_undefined(count: u32, size: u32) -> u64 {
    let masked = count & if size == 64 { 63 } else { 31 };
    match masked {
        0 => 0,
        1 => AF,
        _ => AF | OF | if masked >= size { CF } else { 0 },
    }
}

fn multiply(r: &mut Rng) -> Step {
    let size = r.pick(&[8u32, 16, 32, 64]);
    let (i, j) = (r.below(7) as usize, r.below(7) as usize);
    let m = mem(r, size);
    let imm = r.operand() as i32;
    let form = r.below(6);
    let emit = move |a: &mut CodeAssembler| match (form, size) {
        (0, _) => sized!(a, size, mul, j),
        (1, _) => sized!(a, size, imul, j),
        (2, _) => a.mul(m),
        (3, _) => a.imul(m),
        (4, 8) | (4, 16) => a.imul_2(R16[i], R16[j]),
        (4, 32) => a.imul_2(R32[i], m),
        (4, _) => a.imul_2(R64[i], R64[j]),
        (_, 8) => a.imul_3(R16[i], m, imm as i16 as i32),
        (_, 16) => a.imul_3(R16[i], R16[j], imm as i8 as i32),
        (_, 32) => a.imul_3(R32[i], R32[j], imm),
        (_, _) => a.imul_3(R64[i], m, imm),
    };
    step(
        format!("mul form {form} size {size}"),
        SF | ZF | AF | PF,
        emit,
    )
}

fn divide(r: &mut Rng) -> Step {
    let size = r.pick(&[8u32, 16, 32, 64]);
    let j = r.below(7) as usize;
    let signed = r.below(2) == 1;
    // 0: any dividend (a divide error is likely); 1: extended rAX; 2: a
    // wide dividend whose quotient still fits (unsigned only: rDX below
    // the divisor).
    let setup = r.below(3);
    let m = mem(r, size);
    let from_mem = r.below(3) == 0;
    let emit = move |a: &mut CodeAssembler| {
        if setup != 0 {
            sized!(a, size, or, j, 1)?;
        }
        match (setup, size, signed) {
            (0, _, _) => {}
            (1, 8, false) => a.movzx(eax, al)?,
            (1, 8, true) => a.movsx(eax, al)?,
            (1, 16, false) => a.xor(edx, edx)?,
            (1, 16, true) => a.cwd()?,
            (1, 32, false) => a.xor(edx, edx)?,
            (1, 32, true) => a.cdq()?,
            (1, _, false) => a.xor(edx, edx)?,
            (1, _, true) => a.cqo()?,
            (_, 8, _) => {
                // AH = the divisor / 2.
                a.movzx(edx, R8[j])?;
                a.shr(edx, 1)?;
                a.shl(edx, 8)?;
                a.movzx(eax, al)?;
                a.or(eax, edx)?;
            }
            (_, 16, _) => {
                a.mov(dx, R16[j])?;
                a.shr(dx, 1)?;
            }
            (_, 32, _) => {
                a.mov(edx, R32[j])?;
                a.shr(edx, 1)?;
            }
            _ => {
                a.mov(rdx, R64[j])?;
                a.shr(rdx, 1)?;
            }
        }
        let signed = signed && setup != 2;
        match (from_mem && setup == 0, signed) {
            (true, false) => a.div(m),
            (true, true) => a.idiv(m),
            (false, false) => sized!(a, size, div, j),
            (false, true) => sized!(a, size, idiv, j),
        }
    };
    step(
        format!("div size {size} signed {signed} setup {setup}"),
        ARITH,
        emit,
    )
}

fn shift_by_cl(r: &mut Rng) -> Step {
    let size = r.pick(&[8u32, 16, 32, 64]);
    let i = r.below(7) as usize;
    let count = r.pick(&[0u32, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65])
        + r.below(2) as u32 * r.below(64) as u32;
    let op = r.below(7);
    let emit = move |a: &mut CodeAssembler| {
        a.mov(cl, count & 0xff)?;
        match op {
            0 => sized!(a, size, shl, i, cl),
            1 => sized!(a, size, shr, i, cl),
            2 => sized!(a, size, sar, i, cl),
            3 => sized!(a, size, rol, i, cl),
            4 => sized!(a, size, ror, i, cl),
            5 => sized!(a, size, rcl, i, cl),
            _ => sized!(a, size, rcr, i, cl),
        }
    };
    step(
        format!("shift {op} by cl={} size {size}", count & 0xff),
        shift_undefined(count & 0xff, size),
        emit,
    )
}

fn double_shift(r: &mut Rng) -> Step {
    let size = r.pick(&[16u32, 32, 64]);
    let (i, j) = (r.below(7) as usize, r.below(7) as usize);
    let lim = if size == 16 { 16 } else { 70 };
    let count = r.below(lim) as u32;
    let by_cl = r.below(2) == 0;
    let left = r.below(2) == 0;
    let masked = count & if size == 64 { 63 } else { 31 };
    let emit = move |a: &mut CodeAssembler| {
        if by_cl {
            a.mov(cl, count)?;
        }
        match (size, left, by_cl) {
            (64, true, true) => a.shld(R64[i], R64[j], cl),
            (64, true, false) => a.shld(R64[i], R64[j], count),
            (64, false, true) => a.shrd(R64[i], R64[j], cl),
            (64, false, false) => a.shrd(R64[i], R64[j], count),
            (32, true, true) => a.shld(R32[i], R32[j], cl),
            (32, true, false) => a.shld(R32[i], R32[j], count),
            (32, false, true) => a.shrd(R32[i], R32[j], cl),
            (32, false, false) => a.shrd(R32[i], R32[j], count),
            (_, true, true) => a.shld(R16[i], R16[j], cl),
            (_, true, false) => a.shld(R16[i], R16[j], count),
            (_, false, true) => a.shrd(R16[i], R16[j], cl),
            (_, false, false) => a.shrd(R16[i], R16[j], count),
        }
    };
    let undefined = match masked {
        0 => 0,
        1 => AF,
        _ => AF | OF,
    };
    step(
        format!("shld/shrd left {left} by {count} cl {by_cl} size {size}"),
        undefined,
        emit,
    )
}

fn bit_ops(r: &mut Rng) -> Step {
    let size = r.pick(&[16u32, 32, 64]);
    let (i, j) = (r.below(7) as usize, r.below(7) as usize);
    let op = r.below(4);
    let bit = r.below(256) as u32;
    let form = r.below(3);
    let m = mem(r, size);
    let emit = move |a: &mut CodeAssembler| {
        macro_rules! each {
            ($d:expr, $s:expr) => {
                match op {
                    0 => a.bt($d, $s),
                    1 => a.bts($d, $s),
                    2 => a.btr($d, $s),
                    _ => a.btc($d, $s),
                }
            };
        }
        match (form, size) {
            (0, 64) => each!(R64[i], R64[j]),
            (0, 32) => each!(R32[i], R32[j]),
            (0, _) => each!(R16[i], R16[j]),
            (1, 64) => each!(R64[i], bit & 0xff),
            (1, 32) => each!(R32[i], bit & 0xff),
            (1, _) => each!(R16[i], bit & 0xff),
            (_, _) => each!(m, bit & 0xff),
        }
    };
    step(
        format!("bt {op} form {form} size {size}"),
        OF | SF | AF | PF,
        emit,
    )
}

fn compare_exchange(r: &mut Rng) -> Step {
    let size = r.pick(&[8u32, 16, 32, 64]);
    let (i, j) = (r.below(7) as usize, r.below(7) as usize);
    let m = mem(r, size);
    let to_mem = r.below(2) == 0;
    // Half the time rAX first equals the destination.
    let same = r.below(2) == 0;
    let emit = move |a: &mut CodeAssembler| {
        if same {
            if to_mem {
                match size {
                    64 => a.mov(rax, m)?,
                    32 => a.mov(eax, m)?,
                    16 => a.mov(ax, m)?,
                    _ => a.mov(al, m)?,
                }
            } else {
                a.mov(rax, R64[i])?;
            }
        }
        match (size, to_mem) {
            (64, true) => a.cmpxchg(m, R64[j]),
            (32, true) => a.cmpxchg(m, R32[j]),
            (16, true) => a.cmpxchg(m, R16[j]),
            (_, true) => a.cmpxchg(m, R8[j]),
            (64, false) => a.cmpxchg(R64[i], R64[j]),
            (32, false) => a.cmpxchg(R32[i], R32[j]),
            (16, false) => a.cmpxchg(R16[i], R16[j]),
            (_, false) => a.cmpxchg(R8[i], R8[j]),
        }
    };
    step(
        format!("cmpxchg size {size} mem {to_mem} same {same}"),
        0,
        emit,
    )
}

fn misc(r: &mut Rng) -> Step {
    let k = r.below(6);
    let size = r.pick(&[8u32, 16, 32, 64]);
    let (i, j) = (r.below(7) as usize, r.below(7) as usize);
    let m = mem(r, size);
    let m64 = mem(r, 64);
    let trips = 1 + r.below(5) as u32;
    let emit = move |a: &mut CodeAssembler| match k {
        0 => a.inc(m),
        1 => a.dec(m),
        2 => match size {
            8 => a.cbw(),
            16 => a.cwde(),
            32 => a.cdqe(),
            _ => match j % 3 {
                0 => a.cwd(),
                1 => a.cdq(),
                _ => a.cqo(),
            },
        },
        3 => {
            // The RSA inner loop's shape: MUL by memory, ADD/ADC, SBB.
            a.mov(rax, m64)?;
            a.mul(R64[j])?;
            a.add(rax, R64[i])?;
            a.adc(rdx, 0)?;
            a.sbb(R64[i], rdx)?;
            a.adc(m64, rax)
        }
        4 => {
            let mut top = a.create_label();
            a.mov(ecx, trips)?;
            a.set_label(&mut top)?;
            a.imul_2(R64[i], R64[j])?;
            a.add(R64[j], 3)?;
            a.loop_(top)
        }
        _ => {
            a.pushfq()?;
            a.pop(R64[i])?;
            a.and(R64[i], 0x8d5)
        }
    };
    step(format!("misc {k} size {size}"), 0, emit)
}

/// A random start state: edge values and random ones, R15 zero.
fn random_state(r: &mut Rng) -> SnippetState {
    let mut s = initial_state();
    for g in s.gprs.iter_mut() {
        *g = r.operand();
    }
    s.gprs[6] = DATA_BASE + 0x1000;
    s.gprs[7] = RDI_START;
    s.gprs[15] = 0;
    s.rflags = r.next_u64() & ARITH;
    for b in s.data.iter_mut().step_by(5) {
        *b = r.next_u64() as u8;
    }
    s
}

/// One random program of 6..=24 steps, each followed by a capture of its
/// defined flags when it leaves some undefined.
fn random_program(r: &mut Rng) -> (Vec<u8>, String) {
    let n = 6 + r.below(19);
    let steps: Vec<Step> = (0..n)
        .map(|_| match r.below(8) {
            0 => multiply(r),
            1 => divide(r),
            2 => shift_by_cl(r),
            3 => double_shift(r),
            4 => bit_ops(r),
            5 => compare_exchange(r),
            _ => misc(r),
        })
        .collect();
    let name = steps
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let code = asm(|a| {
        for s in &steps {
            (s.emit)(a)?;
            if s.undefined != 0 {
                a.pushfq()?;
                a.pop(r13)?;
                a.and(r13, (ARITH & !s.undefined) as i32)?;
                a.xor(r15, r13)?;
            }
        }
        Ok(())
    });
    (code, name)
}

#[test]
fn the_compiled_tiers_wider_ops_match_the_host() {
    let seed = std::env::var("KINDLING_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6a69_746f_7073u64);
    let secs = std::env::var("KINDLING_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3u64)
        * 2;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut r = Rng::new(seed);
    let mut suite = Suite::new();
    let mut case = 0u64;
    while Instant::now() < deadline && case < 100_000 {
        let (code, name) = random_program(&mut r);
        let start = random_state(&mut r);
        suite.check_as(
            &format!("seed {seed} case {case}: {name}"),
            &code,
            &start,
            Undefined::NONE,
            Tier::Compiled,
        );
        case += 1;
    }
    assert!(suite.cases() > 50, "too few cases ran: {}", suite.cases());
    let st = conformance::compare::compiled_stats();
    eprintln!("compiled tier: {st:?}; seed {seed}, {case} programs");
    assert_eq!(st.failed, 0, "no block fails to compile");
    assert!(
        st.retired > 10 * case,
        "the programs ran compiled (retired {} in {case} programs)",
        st.retired
    );
    suite.finish();
}
