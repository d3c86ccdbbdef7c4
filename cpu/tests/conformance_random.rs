//! Randomized differential test: random short programs of integer,
//! memory and string instructions run on the host CPU and on the
//! interpreter from the same random state, and must agree on registers,
//! flags and memory.
//!
//! Seeded and bounded in time: `KINDLING_FUZZ_SEED=N` picks the seed (the
//! default is fixed, so CI runs are reproducible), `KINDLING_FUZZ_SECS`
//! the time budget (default 3 s). A failure prints the seed and the case
//! number, which reproduce it.

mod conformance;

use std::time::{Duration, Instant};

use conformance::asm::asm;
use conformance::compare::{initial_state, Suite, Tier, Undefined, AF, ARITH, CF, OF, PF, SF, ZF};
use conformance::rng::Rng;
use conformance::step::{mem, step, Step};
use cpu::snippet::{SnippetState, DATA_BASE};
use iced_x86::code_asm::*;

/// Registers a program may write (not RSP, RSI or RDI, which hold the
/// stack and the data pointers).
const R64: [AsmRegister64; 12] = [rax, rcx, rdx, rbx, rbp, r8, r9, r10, r11, r12, r13, r15];
const R32: [AsmRegister32; 12] = [
    eax, ecx, edx, ebx, ebp, r8d, r9d, r10d, r11d, r12d, r13d, r15d,
];
const R16: [AsmRegister16; 12] = [ax, cx, dx, bx, bp, r8w, r9w, r10w, r11w, r12w, r13w, r15w];
const R8: [AsmRegister8; 12] = [al, cl, dl, bl, bpl, r8b, r9b, r10b, r11b, r12b, r13b, r15b];

/// RDI's start: the middle of the data buffer, so `[rdi+disp]` with a
/// disp8 stays inside it even after string instructions move RDI.
const RDI_START: u64 = DATA_BASE + 0x800;
/// RSI's start.
const RSI_START: u64 = DATA_BASE + 0x1000;

/// Two-operand ALU forms with fully defined flags: reg,reg / reg,mem /
/// mem,reg / reg,imm at every size.
fn alu(r: &mut Rng) -> Step {
    let op = r.below(8);
    let size = r.pick(&[8u32, 16, 32, 64]);
    let form = r.below(4);
    let (i, j) = (r.below(12) as usize, r.below(12) as usize);
    let m = mem(r, size);
    let imm = r.operand() as i32;
    let names = ["add", "adc", "sub", "sbb", "cmp", "and", "or", "xor"];
    let undefined = if op >= 5 { AF } else { 0 };
    macro_rules! each {
        ($a:ident, $d:expr, $s:expr) => {
            match op {
                0 => $a.add($d, $s),
                1 => $a.adc($d, $s),
                2 => $a.sub($d, $s),
                3 => $a.sbb($d, $s),
                4 => $a.cmp($d, $s),
                5 => $a.and($d, $s),
                6 => $a.or($d, $s),
                _ => $a.xor($d, $s),
            }
        };
    }
    let emit = move |a: &mut CodeAssembler| match (size, form) {
        (64, 0) => each!(a, R64[i], R64[j]),
        (64, 1) => each!(a, R64[i], m),
        (64, 2) => each!(a, m, R64[j]),
        (64, _) => each!(a, R64[i], imm),
        (32, 0) => each!(a, R32[i], R32[j]),
        (32, 1) => each!(a, R32[i], m),
        (32, 2) => each!(a, m, R32[j]),
        (32, _) => each!(a, R32[i], imm),
        (16, 0) => each!(a, R16[i], R16[j]),
        (16, 1) => each!(a, R16[i], m),
        (16, 2) => each!(a, m, R16[j]),
        (16, _) => each!(a, R16[i], imm as i16 as i32),
        (_, 0) => each!(a, R8[i], R8[j]),
        (_, 1) => each!(a, R8[i], m),
        (_, 2) => each!(a, m, R8[j]),
        (_, _) => each!(a, R8[i], imm as i8 as i32),
    };
    step(
        format!("{} size {size} form {form}", names[op as usize]),
        undefined,
        emit,
    )
}

/// Unary and data-movement forms with defined flags (or none touched).
fn unary_or_move(r: &mut Rng) -> Step {
    let k = r.below(12);
    let (i, j) = (r.below(12) as usize, r.below(12) as usize);
    let m32 = mem(r, 32);
    let m64 = mem(r, 64);
    let m8 = mem(r, 8);
    let cc = r.below(16) as u32;
    let imm = r.operand();
    let emit = move |a: &mut CodeAssembler| match k {
        0 => a.inc(R32[i]),
        1 => a.dec(m64),
        2 => a.neg(R16[i]),
        3 => a.not(m8),
        4 => a.xadd(m32, R32[j]),
        5 => a.xchg(R64[i], R64[j]),
        6 => a.movzx(R64[i], R16[j]),
        7 => a.movsx(R32[i], m8),
        8 => a.bswap(R64[i]),
        9 => a.lea(R64[i], qword_ptr(R64[j] + R64[i] * 4 + 0x1234)),
        10 => a.mov(R64[i], imm),
        _ => {
            cmovcc(a, cc, R64[i], R64[j])?;
            setcc(a, cc, R8[j])
        }
    };
    step(format!("unary/move {k}"), 0, emit)
}

/// CMOVcc `d, s` for condition code `cc` (0..16, the encoding's order).
fn cmovcc(
    a: &mut CodeAssembler,
    cc: u32,
    d: AsmRegister64,
    s: AsmRegister64,
) -> Result<(), IcedError> {
    match cc {
        0 => a.cmovo(d, s),
        1 => a.cmovno(d, s),
        2 => a.cmovb(d, s),
        3 => a.cmovae(d, s),
        4 => a.cmove(d, s),
        5 => a.cmovne(d, s),
        6 => a.cmovbe(d, s),
        7 => a.cmova(d, s),
        8 => a.cmovs(d, s),
        9 => a.cmovns(d, s),
        10 => a.cmovp(d, s),
        11 => a.cmovnp(d, s),
        12 => a.cmovl(d, s),
        13 => a.cmovge(d, s),
        14 => a.cmovle(d, s),
        _ => a.cmovg(d, s),
    }
}

/// Jcc to `l` for condition code `cc`.
fn jcc(a: &mut CodeAssembler, cc: u32, l: CodeLabel) -> Result<(), IcedError> {
    match cc {
        0 => a.jo(l),
        1 => a.jno(l),
        2 => a.jb(l),
        3 => a.jae(l),
        4 => a.je(l),
        5 => a.jne(l),
        6 => a.jbe(l),
        7 => a.ja(l),
        8 => a.js(l),
        9 => a.jns(l),
        10 => a.jp(l),
        11 => a.jnp(l),
        12 => a.jl(l),
        13 => a.jge(l),
        14 => a.jle(l),
        _ => a.jg(l),
    }
}

/// SETcc `d` for condition code `cc`.
fn setcc(a: &mut CodeAssembler, cc: u32, d: AsmRegister8) -> Result<(), IcedError> {
    match cc {
        0 => a.seto(d),
        1 => a.setno(d),
        2 => a.setb(d),
        3 => a.setae(d),
        4 => a.sete(d),
        5 => a.setne(d),
        6 => a.setbe(d),
        7 => a.seta(d),
        8 => a.sets(d),
        9 => a.setns(d),
        10 => a.setp(d),
        11 => a.setnp(d),
        12 => a.setl(d),
        13 => a.setge(d),
        14 => a.setle(d),
        _ => a.setg(d),
    }
}

/// Sign extensions, flag instructions, the stack, exchanges and compare-
/// exchanges with memory (locked or not), SETcc to memory, widening moves,
/// a conditional jump over an instruction and a short counted loop (block
/// boundaries in the interpreter's block engine).
fn misc(r: &mut Rng) -> Step {
    let k = r.below(18);
    let trips = 1 + r.below(5) as u32;
    let (i, j) = (r.below(12) as usize, r.below(12) as usize);
    let m8 = mem(r, 8);
    let m16 = mem(r, 16);
    let m32 = mem(r, 32);
    let m64 = mem(r, 64);
    let cc = r.below(16) as u32;
    let emit = move |a: &mut CodeAssembler| match k {
        0 => a.cbw(),
        1 => a.cwde(),
        2 => a.cdqe(),
        3 => a.cwd(),
        4 => a.cdq(),
        5 => a.cqo(),
        6 => {
            a.cmc()?;
            a.lahf()?;
            a.sahf()
        }
        7 => {
            a.push(R64[i])?;
            a.pop(R64[j])
        }
        8 => a.xchg(m64, R64[i]),
        9 => a.cmpxchg(m32, R32[j]),
        10 => a.lock().cmpxchg(m64, R64[j]),
        11 => a.lock().xadd(m16, R16[j]),
        12 => a.movsx(R64[i], m16),
        13 => a.movzx(R32[i], m8),
        14 => {
            // SETcc to memory via a register-free encoding.
            setcc(a, cc, R8[i])?;
            a.mov(m8, R8[i])
        }
        15 => a.lock().neg(m64),
        16 => {
            let mut skip = a.create_label();
            jcc(a, cc, skip)?;
            a.add(R64[i], R64[j])?;
            a.set_label(&mut skip)?;
            a.nop()
        }
        _ => {
            let mut top = a.create_label();
            let c = if i == j { (j + 1) % 12 } else { j };
            a.mov(R32[c], trips)?;
            a.set_label(&mut top)?;
            a.add(R64[i], qword_ptr(rdi))?;
            a.xor(qword_ptr(rdi + 8), R64[i])?;
            a.dec(R32[c])?;
            a.jnz(top)
        }
    };
    step(format!("misc {k}"), 0, emit)
}

/// String instructions with REP and either direction, on short counts.
fn string(r: &mut Rng) -> Step {
    let k = r.below(8);
    let count = r.below(40) as u32;
    let down = r.below(2) == 1;
    let emit = move |a: &mut CodeAssembler| {
        a.mov(ecx, count)?;
        if down {
            a.std()?;
        } else {
            a.cld()?;
        }
        match k {
            0 => a.rep().movsb(),
            1 => a.rep().movsq(),
            2 => a.rep().stosd(),
            3 => a.rep().stosw(),
            4 => a.lodsb(),
            5 => a.repe().cmpsb(),
            6 => a.repne().scasb(),
            _ => a.repe().cmpsd(),
        }?;
        a.cld()
    };
    step(format!("string {k} count {count} down {down}"), 0, emit)
}

/// Instructions that leave some flags undefined: only at a program's end.
fn undefined_flags_tail(r: &mut Rng) -> Step {
    let k = r.below(8);
    let (i, j) = (r.below(12) as usize, r.below(12) as usize);
    let count = r.pick(&[0u32, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65]);
    let size = r.pick(&[8u32, 16, 32, 64]);
    let m = mem(r, 32);
    let masked = count & if size == 64 { 63 } else { 31 };
    let shift_undef = match masked {
        0 => 0,
        1 => AF,
        _ => AF | OF | if masked >= size { CF } else { 0 },
    };
    let (undefined, name) = match k {
        0..=2 => (shift_undef, format!("shift {k} size {size} by {count}")),
        3 => (SF | ZF | AF | PF, "imul".to_string()),
        4 => (SF | ZF | AF | PF, "mul".to_string()),
        5 => (ARITH, "div".to_string()),
        6 => (OF | SF | AF | PF, "bt".to_string()),
        _ => (CF | OF | SF | AF | PF, "bsf/bsr".to_string()),
    };
    let emit = move |a: &mut CodeAssembler| match (k, size) {
        (0, 64) => a.shl(R64[i], count),
        (0, 32) => a.shr(R32[i], count),
        (0, 16) => a.sar(R16[i], count),
        (0, _) => a.shl(R8[i], count),
        (1, 64) => a.rol(R64[i], count),
        (1, 32) => a.ror(m, count),
        (1, 16) => a.rcl(R16[i], count),
        (1, _) => a.rcr(R8[i], count),
        (2, 64) => a.shld(R64[i], R64[j], count),
        (2, 32) => a.shrd(R32[i], R32[j], count),
        (2, 16) => a.sar(m, count),
        (2, _) => a.shr(R8[i], count),
        (3, 64) => a.imul_3(R64[i], R64[j], 0x7531),
        (3, 32) => a.imul_2(R32[i], m),
        (3, _) => a.imul(R16[i]),
        (4, 64) => a.mul(R64[i]),
        (4, _) => a.mul(m),
        (5, 64) => a.div(R64[i]),
        (5, 32) => a.idiv(m),
        (5, _) => a.div(R8[i]),
        (6, 64) => a.btc(R64[i], R64[j]),
        (6, 32) => a.bts(m, count),
        (6, _) => a.btr(R16[i], R16[j]),
        (_, 64) => a.bsf(R64[i], R64[j]),
        (_, _) => a.bsr(R32[i], m),
    };
    step(name, undefined, emit)
}

/// The block engine's wider fast path (multiply, divide, NEG/NOT, INC/DEC
/// of memory, shifts by CL, SHLD/SHRD, BT*, XCHG, CMPXCHG, NOPs with
/// operands, absolute addresses) and its control flow (indirect JMP/CALL
/// through a register or memory, RET imm16, LOOP/LOOPE/LOOPNE/JRCXZ):
/// with fully defined flags mid-program, or leaving some undefined as a
/// program's last step.
fn fast_forms(r: &mut Rng, last: bool) -> Step {
    let k = if last { r.below(20) } else { 8 + r.below(12) };
    let size = r.pick(&[8u32, 16, 32, 64]);
    // Registers other than RAX, RCX, RDX (implicit operands here).
    let (i, j) = (3 + r.below(9) as usize, 3 + r.below(9) as usize);
    let m = mem(r, size);
    let m64 = mem(r, 64);
    let disp = (r.below(0x100) as i32 - 0x80) & !7;
    let count = r.below(70) as u32;
    let imm = r.operand() as i32;
    let trips = 1 + r.below(6) as u32;
    let cc = r.below(16) as u32;
    let kind = r.below(4);
    let wide = if size >= 32 { size } else { 32 };
    let masked = count & if wide == 64 { 63 } else { 31 };
    let sh_masked = count & if size == 64 { 63 } else { 31 };
    let shift_undef = match sh_masked {
        0 => 0,
        1 => AF,
        _ => AF | OF | if sh_masked >= size { CF } else { 0 },
    };
    let (undefined, name) = match k {
        0..=2 => (SF | ZF | AF | PF, format!("mul/imul {k} size {size}")),
        3 => (ARITH, format!("div/idiv size {size}")),
        4 => (shift_undef, format!("shift by cl={count} size {size}")),
        5 => (
            if masked == 0 {
                0
            } else {
                AF | if masked > 1 { OF } else { 0 }
            },
            format!("shld/shrd by cl={count} size {wide}"),
        ),
        6 | 7 => (OF | SF | AF | PF, format!("bt {k} size {size}")),
        _ => (0, format!("fast {k} size {size}")),
    };
    let emit = move |a: &mut CodeAssembler| {
        macro_rules! sized {
            ($f:ident, $($extra:expr),*) => {
                match size {
                    64 => a.$f(R64[i] $(, $extra)*),
                    32 => a.$f(R32[i] $(, $extra)*),
                    16 => a.$f(R16[i] $(, $extra)*),
                    _ => a.$f(R8[i] $(, $extra)*),
                }
            };
        }
        match k {
            0 => match (size, kind) {
                (8, _) => a.imul_2(R16[i], R16[j]),
                (16, 0) => a.imul_2(R16[i], m),
                (32, 1) => a.imul_3(R32[i], R32[j], imm),
                (64, 2) => a.imul_3(R64[i], m, imm),
                (16, _) => a.imul_3(R16[i], R16[j], imm as i16 as i32),
                (32, _) => a.imul_2(R32[i], m),
                _ => a.imul_2(R64[i], R64[j]),
            },
            1 => match (size, kind & 1) {
                (64, 0) => a.mul(R64[j]),
                (64, _) => a.imul(m),
                (32, 0) => a.imul(R32[j]),
                (32, _) => a.mul(m),
                (16, 0) => a.mul(R16[j]),
                (16, _) => a.imul(m),
                (_, 0) => a.imul(R8[j]),
                (_, _) => a.mul(m),
            },
            2 => {
                // The RSA inner loop's shape: MUL by memory, ADD/ADC.
                a.mov(rax, qword_ptr(rdi + disp))?;
                a.mul(R64[j])?;
                a.add(rax, R64[i])?;
                a.adc(rdx, 0)?;
                a.mov(qword_ptr(rdi + disp), rax)
            }
            3 => {
                // A divisor that is odd (non-zero) and a dividend that fits.
                let signed = kind & 1 == 1;
                match size {
                    64 => a.or(R64[j], 1)?,
                    32 => a.or(R32[j], 1)?,
                    16 => a.or(R16[j], 1)?,
                    _ => a.or(R8[j], 1)?,
                }
                match (size, signed) {
                    (8, false) => a.movzx(eax, al)?,
                    (8, true) => a.movsx(eax, al)?,
                    (16, false) => a.xor(edx, edx)?,
                    (16, true) => a.cwd()?,
                    (32, false) => a.xor(edx, edx)?,
                    (32, true) => a.cdq()?,
                    (_, false) => a.xor(edx, edx)?,
                    (_, true) => a.cqo()?,
                }
                match (size, signed) {
                    (64, false) => a.div(R64[j]),
                    (64, true) => a.idiv(R64[j]),
                    (32, false) => a.div(R32[j]),
                    (32, true) => a.idiv(R32[j]),
                    (16, false) => a.div(R16[j]),
                    (16, true) => a.idiv(R16[j]),
                    (_, false) => a.div(R8[j]),
                    (_, true) => a.idiv(R8[j]),
                }
            }
            4 => {
                a.mov(cl, count)?;
                match kind {
                    0 => sized!(shl, cl),
                    1 => sized!(shr, cl),
                    2 => sized!(sar, cl),
                    _ => match r8_rotate(count) {
                        0 => sized!(rol, cl),
                        1 => sized!(ror, cl),
                        2 => sized!(rcl, cl),
                        _ => sized!(rcr, cl),
                    },
                }
            }
            5 => {
                a.mov(cl, count)?;
                match (wide, kind & 1) {
                    (64, 0) => a.shld(R64[i], R64[j], cl),
                    (64, _) => a.shrd(R64[i], R64[j], cl),
                    (_, 0) => a.shld(R32[i], R32[j], cl),
                    (_, _) => a.shrd(R32[i], R32[j], cl),
                }
            }
            6 => match (size, kind) {
                (8, _) | (16, _) => a.bt(R16[i], R16[j]),
                (32, 0) => a.bts(R32[i], R32[j]),
                (32, _) => a.btr(R32[i], count),
                (_, 0) => a.btc(R64[i], count),
                (_, _) => a.bt(R64[i], R64[j]),
            },
            7 => match (size, kind) {
                (8, _) | (16, 0) => a.bts(word_ptr(rdi + disp), count),
                (16, _) => a.bt(word_ptr(rdi + disp), count),
                (32, _) => a.btr(dword_ptr(rdi + disp), count),
                _ => a.btc(qword_ptr(rdi + disp), count),
            },
            8 => match kind {
                0 => sized!(neg,),
                1 => sized!(not,),
                2 => a.inc(m),
                _ => a.dec(m),
            },
            9 => match size {
                64 => a.xchg(R64[i], R64[j]),
                32 => a.xchg(R32[i], R32[j]),
                16 => a.xchg(R16[i], R16[j]),
                _ => a.xchg(R8[i], R8[j]),
            },
            10 => match (size, kind & 1) {
                (64, 0) => a.cmpxchg(R64[i], R64[j]),
                (64, _) => a.cmpxchg(m, R64[j]),
                (32, 0) => a.cmpxchg(R32[i], R32[j]),
                (32, _) => a.cmpxchg(m, R32[j]),
                (16, 0) => a.cmpxchg(R16[i], R16[j]),
                (16, _) => a.cmpxchg(m, R16[j]),
                (_, 0) => a.cmpxchg(R8[i], R8[j]),
                (_, _) => a.cmpxchg(m, R8[j]),
            },
            11 => {
                a.nop_1(dword_ptr(rax + rax + 0x10))?;
                a.prefetcht0(m)?;
                // An absolute address (no base, no index).
                a.add(R64[i], qword_ptr(RDI_START as i64 as u64 + 0x40))?;
                a.mov(dword_ptr(RDI_START + 0x48), R32[j])
            }
            12 => {
                a.pushfq()?;
                a.pop(R64[i])?;
                a.and(R64[i], 0x8d5)
            }
            13 => {
                let mut over = a.create_label();
                a.lea(R64[i], ptr(over))?;
                if kind & 1 == 0 {
                    a.jmp(R64[i])?;
                } else {
                    a.mov(m64, R64[i])?;
                    a.jmp(m64)?;
                }
                a.add(R64[j], R64[i])?;
                a.set_label(&mut over)?;
                a.nop()
            }
            14 => {
                let mut f = a.create_label();
                let mut end = a.create_label();
                a.lea(R64[i], ptr(f))?;
                if kind & 1 == 0 {
                    a.call(R64[i])?;
                } else {
                    a.mov(m64, R64[i])?;
                    a.call(m64)?;
                }
                a.jmp(end)?;
                a.set_label(&mut f)?;
                a.add(R64[j], R64[i])?;
                a.ret()?;
                a.set_label(&mut end)?;
                a.nop()
            }
            15 => {
                let mut f = a.create_label();
                let mut end = a.create_label();
                for _ in 0..kind {
                    a.push(R64[i])?;
                }
                a.call(f)?;
                a.jmp(end)?;
                a.set_label(&mut f)?;
                a.sub(R64[j], R64[i])?;
                a.ret_1(8 * kind as i32)?;
                a.set_label(&mut end)?;
                a.nop()
            }
            16 | 17 => {
                let mut top = a.create_label();
                a.mov(ecx, trips)?;
                a.set_label(&mut top)?;
                a.add(R64[i], R64[j])?;
                match (k, kind) {
                    (16, _) => a.loop_(top),
                    (_, 0) => {
                        a.cmp(R64[i], R64[j])?;
                        a.loope(top)
                    }
                    _ => {
                        a.test(R64[i], 3)?;
                        a.loopne(top)
                    }
                }
            }
            18 => {
                let mut skip = a.create_label();
                a.mov(ecx, (kind & 1) as u32)?;
                a.jrcxz(skip)?;
                a.xor(R64[i], R64[j])?;
                a.set_label(&mut skip)?;
                a.nop()
            }
            _ => {
                let mut skip = a.create_label();
                jcc(a, cc, skip)?;
                a.neg(R64[i])?;
                a.set_label(&mut skip)?;
                a.nop()
            }
        }
    };
    step(name, undefined, emit)
}

/// Which rotate a shift-by-CL step uses (0 ROL, 1 ROR, 2 RCL, 3 RCR).
fn r8_rotate(count: u32) -> u32 {
    count % 4
}

/// A random start state: random GPRs and flags, RSI/RDI into the buffer.
fn random_state(r: &mut Rng) -> SnippetState {
    let mut s = initial_state();
    for g in s.gprs.iter_mut() {
        *g = r.operand();
    }
    s.gprs[6] = RSI_START;
    s.gprs[7] = RDI_START;
    s.rflags = r.next_u64() & ARITH;
    for b in s.data.iter_mut().step_by(7) {
        *b = r.next_u64() as u8;
    }
    s
}

/// One random program of 1..=8 instructions and what it leaves undefined.
fn random_program(r: &mut Rng) -> (Vec<u8>, Undefined, String) {
    let n = 1 + r.below(7);
    let mut steps: Vec<Step> = (0..n)
        .map(|_| match r.below(15) {
            0..=4 => alu(r),
            5..=7 => unary_or_move(r),
            8..=9 => misc(r),
            10..=12 => fast_forms(r, false),
            _ => string(r),
        })
        .collect();
    match r.below(4) {
        0 | 1 => steps.push(undefined_flags_tail(r)),
        2 => steps.push(fast_forms(r, true)),
        _ => {}
    }
    let undefined = steps.iter().fold(0, |u, s| u | s.undefined);
    let regs = if steps.iter().any(|s| s.name.starts_with("bsf")) {
        // The destination of BSF/BSR with a zero source is undefined.
        0xffff
    } else {
        0
    };
    let name = steps
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let code = asm(|a| {
        for s in &steps {
            (s.emit)(a)?;
        }
        Ok(())
    });
    (
        code,
        Undefined {
            flags: undefined,
            regs,
            ..Undefined::NONE
        },
        name,
    )
}

#[test]
fn random_programs_match_the_host() {
    random_programs(Tier::Default);
}

/// The same programs with every block compiled at its first execution.
#[test]
fn random_programs_compiled_match_the_host() {
    random_programs(Tier::Compiled);
}

fn random_programs(tier: Tier) {
    let seed = std::env::var("KINDLING_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x4b69_6e64_6c65u64);
    let secs = std::env::var("KINDLING_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3u64);
    // Compiling every block is slower than interpreting it: more time.
    let secs = if tier == Tier::Compiled {
        secs * 2
    } else {
        secs
    };
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut r = Rng::new(seed);
    let mut suite = Suite::new();
    let mut case = 0u64;
    while Instant::now() < deadline && case < 200_000 {
        let (code, undefined, name) = random_program(&mut r);
        let start = random_state(&mut r);
        suite.check_as(
            &format!("seed {seed} case {case} ({tier:?}): {name}"),
            &code,
            &start,
            undefined,
            tier,
        );
        case += 1;
    }
    assert!(suite.cases() > 100, "too few cases ran: {}", suite.cases());
    if tier == Tier::Compiled {
        let st = conformance::compare::compiled_stats();
        eprintln!("compiled tier: {st:?}");
        assert!(st.compiled >= case, "every program compiles: {st:?}");
        assert_eq!(st.failed, 0, "no block fails to compile");
        assert!(st.retired > 0, "compiled code ran");
    }
    eprintln!("randomized differential ({tier:?}): seed {seed}, {case} programs");
    suite.finish();
}
