//! Memory-operand and string-instruction conformance against the host
//! CPU: registers, flags and the data buffer must match.

mod conformance;

use conformance::asm::asm;
use conformance::compare::{self, initial_state, Undefined, AF, ARITH, CF, DF, OF, PF, SF, ZF};
use cpu::interp::SnippetMachine;
use cpu::snippet::DATA_BASE;
use iced_x86::code_asm::*;

/// Runs `code` natively and on the interpreter from `gprs`/`flags` and the
/// default data pattern; registers, flags but `undef`, and data must match.
fn check(
    _m: &mut SnippetMachine,
    code: &[u8],
    gprs: [u64; 16],
    flags: u64,
    undef: u64,
    what: &str,
) {
    let mut s = initial_state();
    s.gprs = gprs;
    s.rflags = flags & (ARITH | DF);
    if let Err(report) = compare::compare(
        code,
        &s,
        Undefined {
            flags: undef,
            ..Undefined::NONE
        },
    ) {
        panic!("{what}: native and interpreter differ\n{report}");
    }
}

fn regs(dst: u64, src: u64, count: u64, acc: u64, other: u64) -> [u64; 16] {
    let mut g = [0u64; 16];
    g[0] = acc;
    g[1] = count;
    g[3] = other;
    g[6] = src;
    g[7] = dst;
    g
}

#[test]
fn read_modify_write_memory_forms() {
    let mut m = SnippetMachine::new();
    let cases: Vec<(Vec<u8>, u64, &str)> = vec![
        (
            asm(|a| a.add(qword_ptr(rdi + 8), rax)),
            0,
            "add [rdi+8], rax",
        ),
        (
            asm(|a| a.sub(dword_ptr(rdi + 3), ebx)),
            0,
            "sub [rdi+3], ebx",
        ),
        (asm(|a| a.inc(word_ptr(rdi + 5))), 0, "inc word [rdi+5]"),
        (asm(|a| a.neg(byte_ptr(rdi + 7))), 0, "neg byte [rdi+7]"),
        (
            asm(|a| a.shl(dword_ptr(rdi + 16), 3)),
            AF,
            "shl dword [rdi+16], 3",
        ),
        (
            asm(|a| a.xadd(qword_ptr(rdi + 24), rax)),
            0,
            "xadd [rdi+24], rax",
        ),
        (
            asm(|a| a.cmpxchg(qword_ptr(rdi + 32), rbx)),
            0,
            "cmpxchg [rdi+32], rbx",
        ),
        (
            asm(|a| a.cmpxchg(dword_ptr(rdi), ebx)),
            0,
            "cmpxchg [rdi], ebx",
        ),
        (
            asm(|a| a.lock().cmpxchg(qword_ptr(rdi), rbx)),
            0,
            "lock cmpxchg [rdi], rbx",
        ),
        (
            asm(|a| a.xchg(qword_ptr(rdi + 40), rax)),
            0,
            "xchg [rdi+40], rax",
        ),
        (asm(|a| a.sete(byte_ptr(rdi + 48))), 0, "sete [rdi+48]"),
        (
            asm(|a| a.movzx(eax, byte_ptr(rdi + 9))),
            0,
            "movzx eax, byte [rdi+9]",
        ),
        (
            asm(|a| a.movsx(rax, word_ptr(rdi + 9))),
            0,
            "movsx rax, word [rdi+9]",
        ),
        (
            asm(|a| a.movsxd(rax, dword_ptr(rdi + 9))),
            0,
            "movsxd rax, dword [rdi+9]",
        ),
        (
            asm(|a| a.imul_3(eax, dword_ptr(rdi + 4), 1000)),
            SF | ZF | AF | PF,
            "imul eax, [rdi+4], 1000",
        ),
    ];
    for (code, undef, what) in &cases {
        for v in [0u64, 1, 0x8899_aabb_ccdd_eeff, u64::MAX] {
            for flags in [0, ZF | CF] {
                check(
                    &mut m,
                    code,
                    regs(DATA_BASE, 0, 0, v, v.rotate_left(7)),
                    flags,
                    *undef,
                    what,
                );
            }
        }
    }
    // CMPXCHG success path: accumulator equal to memory.
    let code = asm(|a| {
        a.mov(rax, qword_ptr(rdi))?;
        a.cmpxchg(qword_ptr(rdi), rbx)
    });
    check(
        &mut m,
        &code,
        regs(DATA_BASE, 0, 0, 0, 0x1234),
        0,
        0,
        "cmpxchg success",
    );
    let code = asm(|a| {
        a.mov(eax, dword_ptr(rdi))?;
        a.mov(edx, dword_ptr(rdi + 4))?;
        a.cmpxchg8b(qword_ptr(rdi))
    });
    check(
        &mut m,
        &code,
        regs(DATA_BASE, 0, 0x55, 0, 0x66),
        0,
        0,
        "cmpxchg8b",
    );
}

#[test]
fn bit_tests_on_memory_reach_beyond_the_operand() {
    let mut m = SnippetMachine::new();
    for off in [0i64, 5, 31, 32, 63, 64, 100, 1000, -1, -9, -64] {
        for (code, what) in [
            (asm(|a| a.bt(dword_ptr(rdi + 256), ecx)), "bt dword"),
            (asm(|a| a.bts(qword_ptr(rdi + 256), rcx)), "bts qword"),
            (asm(|a| a.btr(word_ptr(rdi + 256), cx)), "btr word"),
            (asm(|a| a.btc(qword_ptr(rdi + 256), rcx)), "btc qword"),
            (asm(|a| a.bts(dword_ptr(rdi + 256), 37)), "bts dword imm 37"),
        ] {
            check(
                &mut m,
                &code,
                regs(DATA_BASE, 0, off as u64, 0, 0),
                0,
                OF | SF | AF | PF | ZF,
                &format!("{what} {off}"),
            );
        }
    }
}

#[test]
fn string_instructions_with_df_both_ways_and_rep() {
    let mut m = SnippetMachine::new();
    let ops: Vec<(Vec<u8>, &str)> = vec![
        (asm(|a| a.movsb()), "movsb"),
        (asm(|a| a.rep().movsd()), "rep movsd"),
        (asm(|a| a.rep().movsq()), "rep movsq"),
        (asm(|a| a.rep().stosw()), "rep stosw"),
        (asm(|a| a.lodsq()), "lodsq"),
        (asm(|a| a.repe().cmpsb()), "repe cmpsb"),
        (asm(|a| a.repne().scasb()), "repne scasb"),
        (asm(|a| a.repe().scasd()), "repe scasd"),
    ];
    for (code, what) in &ops {
        for df in [0, DF] {
            for count in [0u64, 1, 7, 64] {
                let (src, dst) = if df == 0 {
                    (DATA_BASE + 16, DATA_BASE + 2048)
                } else {
                    (DATA_BASE + 1024, DATA_BASE + 4000)
                };
                let mut g = regs(dst, src, count, 0x4b, 0);
                g[0] = u64::from(compare::data_pattern()[2048 + 5]);
                let code = {
                    let mut c = if df == 0 { vec![0xfc] } else { vec![0xfd] };
                    c.extend_from_slice(code);
                    c.push(0xfc);
                    c
                };
                check(
                    &mut m,
                    &code,
                    g,
                    0,
                    0,
                    &format!("{what} df={} count={count}", df != 0),
                );
            }
        }
    }
}
