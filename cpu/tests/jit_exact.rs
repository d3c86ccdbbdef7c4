//! Compiled code leaves exactly the state single-stepping leaves. Precise
//! exceptions: a fault in the middle of a block compiled at its first
//! execution (vector, RIP of the faulting instruction, every register,
//! RFLAGS, CR2, memory), as the interpreted block engine does; and the
//! memory corner cases of the inline RAM path: accesses crossing a page,
//! stores into the block's own code.

use cpu::interp::SnippetMachine;
use cpu::snippet::{SnippetEnd, SnippetState, CODE_BASE, DATA_BASE, DATA_SIZE};
use iced_x86::code_asm::*;

/// Not mapped by the snippet machine's page tables (it maps 1 GiB).
const UNMAPPED: u64 = 0x4000_0000;
/// Not canonical.
const NON_CANONICAL: u64 = 0x8000_0000_0000_0000;

/// Everything a run leaves behind.
#[derive(Debug, PartialEq, Eq)]
struct After {
    end: SnippetEnd,
    gprs: [u64; 16],
    rflags: u64,
    rip: u64,
    rsp: u64,
    cr2: u64,
    data: Vec<u8>,
}

fn start() -> SnippetState {
    let mut fx = [0u8; 512];
    fx[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
    fx[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
    let mut s = SnippetState {
        gprs: [0; 16],
        rflags: 2,
        fxsave: fx,
        ymm_hi: [0; 16],
        data: (0..DATA_SIZE).map(|i| (i * 7 + 3) as u8).collect(),
    };
    for (i, g) in s.gprs.iter_mut().enumerate() {
        *g = 0x0123_4567_89ab_cdefu64.rotate_left(i as u32 * 5) ^ i as u64;
    }
    s.gprs[1] = 0; // RCX: a zero divisor
    s.gprs[7] = DATA_BASE; // RDI
    s.gprs[8] = UNMAPPED; // R8
    s.gprs[9] = NON_CANONICAL; // R9
    s.gprs[10] = DATA_BASE; // R10
    s
}

fn run(m: &mut SnippetMachine, code: &[u8]) -> After {
    let mut s = start();
    let end = m.run(code, &mut s);
    let (rip_after, rsp_after, cr2_after) = m.rip_rsp_cr2();
    After {
        end,
        gprs: s.gprs,
        rflags: s.rflags,
        rip: rip_after,
        rsp: rsp_after,
        cr2: cr2_after,
        data: s.data,
    }
}

type Asm = fn(&mut CodeAssembler) -> Result<(), IcedError>;

fn assemble(parts: &[Asm]) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).expect("assembler");
    for p in parts {
        p(&mut a).expect("instruction");
    }
    a.assemble(CODE_BASE).expect("assemble")
}

/// Runs `before` + `faulting` + `after` single-stepped, on the block
/// interpreter and compiled; all three must agree, with exception
/// `vector` raised at `faulting` (its first run when `loops` is false).
fn check(name: &str, before: &[Asm], faulting: Asm, after: &[Asm], vector: u8, loops: bool) {
    let code = assemble(&[before, &[faulting], after].concat());
    let fault_rip = CODE_BASE + assemble(before).len() as u64;
    let stepped = run(&mut SnippetMachine::with_single_step(), &code);
    let blocks = run(&mut SnippetMachine::with_jit_threshold(0), &code);
    let mut jit = SnippetMachine::with_jit_threshold(1);
    let compiled = run(&mut jit, &code);
    assert_eq!(blocks.end, SnippetEnd::Exception(vector), "{name}");
    if !loops {
        assert_eq!(blocks.rip, fault_rip, "{name}: faulting RIP");
    }
    assert_eq!(blocks, compiled, "{name}: compiled code differs");
    if name != "ret #GP" {
        assert_eq!(stepped, blocks, "{name}: block interpreter differs");
    } else {
        // The single-step executor's RET takes a non-canonical target and
        // faults at the fetch there; the block engine (like hardware)
        // faults on the RET itself. Everything else agrees.
        assert_eq!(stepped.gprs, blocks.gprs, "{name}");
        assert_eq!(stepped.end, blocks.end, "{name}");
    }
    let st = jit.jit_stats();
    assert!(
        st.compiled >= 1 && st.retired >= 1,
        "{name}: not compiled: {st:?}"
    );
}

#[test]
fn a_page_fault_on_a_load_mid_block_is_precise() {
    check(
        "load #PF",
        &[|a| a.add(rax, rbx), |a| a.xor(rcx, rax), |a| a.sub(edx, 5)],
        |a| a.mov(rdx, qword_ptr(r8 + 0x10)),
        &[|a| a.inc(rax), |a| a.mov(qword_ptr(rdi), rax)],
        14,
        false,
    );
}

#[test]
fn a_page_fault_on_a_store_and_a_read_modify_write_is_precise() {
    check(
        "store #PF",
        &[|a| a.sub(rax, 7), |a| a.mov(qword_ptr(rdi + 8), rax)],
        |a| a.mov(dword_ptr(r8 + 4), eax),
        &[|a| a.add(rbx, 1)],
        14,
        false,
    );
    // The flags of the CMP stay: ADD [m], r faults before writing them.
    check(
        "rmw #PF",
        &[|a| a.cmp(rax, rbx), |a| a.adc(word_ptr(rdi), ax)],
        |a| a.add(qword_ptr(r8), rax),
        &[|a| a.setb(cl)],
        14,
        false,
    );
}

#[test]
fn a_general_protection_fault_on_a_non_canonical_address_is_precise() {
    check(
        "load #GP",
        &[|a| a.add(rax, 1), |a| a.shl(rbx, 3)],
        |a| a.mov(rcx, qword_ptr(r9)),
        &[|a| a.dec(rax)],
        13,
        false,
    );
    check(
        "ret #GP",
        &[|a| a.add(rdx, rax), |a| a.push(r9)],
        |a| a.ret(),
        &[],
        13,
        false,
    );
}

#[test]
fn a_divide_error_mid_block_is_precise() {
    check(
        "div #DE",
        &[|a| a.add(rax, rbx), |a| a.xor(edx, edx), |a| a.or(r11, rax)],
        |a| a.div(rcx),
        &[|a| a.inc(rax)],
        0,
        false,
    );
}

#[test]
fn stack_faults_are_precise() {
    check(
        "push #PF",
        &[|a| a.add(rax, 3), |a| a.lea(rsp, qword_ptr(r8 + 0x10))],
        |a| a.push(rax),
        &[|a| a.pop(rbx)],
        14,
        false,
    );
    check(
        "pop #PF",
        &[|a| a.sub(rbx, rax), |a| a.mov(rsp, r8)],
        |a| a.pop(rax),
        &[],
        14,
        false,
    );
}

#[test]
fn a_fault_in_a_later_iteration_of_a_compiled_loop_is_precise() {
    // R10 starts at the data buffer and moves 1 GiB per iteration: the
    // second load faults, after one whole compiled run of the loop.
    check(
        "loop #PF",
        &[
            |a| a.mov(ecx, 3),
            |a| {
                let mut top = a.create_label();
                a.set_label(&mut top)?;
                a.add(rdx, qword_ptr(r10))?;
                a.add(r10, 0x4000_0000)?;
                a.dec(ecx)?;
                a.jnz(top)
            },
        ],
        |a| a.nop(),
        &[],
        14,
        true,
    );
}

/// Runs `code` single-stepped and compiled; both must complete alike.
fn check_completes(name: &str, code: &[u8]) {
    let stepped = run(&mut SnippetMachine::with_single_step(), code);
    let mut jit = SnippetMachine::with_jit_threshold(1);
    let compiled = run(&mut jit, code);
    assert_eq!(stepped.end, SnippetEnd::Completed, "{name}");
    assert_eq!(stepped, compiled, "{name}: compiled code differs");
    assert!(jit.jit_stats().retired > 0, "{name}: nothing ran compiled");
}

#[test]
fn accesses_crossing_a_page_in_a_compiled_loop_are_exact() {
    // Every size, at offsets walking over the data buffer's page boundary
    // (DATA_BASE + 0x1000), loads and read-modify-writes, 16 iterations.
    let code = assemble(&[
        |a| a.lea(r10, qword_ptr(rdi + 0x7f0)),
        |a| a.mov(ecx, 16),
        |a| {
            let mut top = a.create_label();
            a.set_label(&mut top)?;
            a.mov(qword_ptr(r10), rax)?;
            a.add(rdx, qword_ptr(r10 + 1))?;
            a.mov(dword_ptr(r10 + 3), edx)?;
            a.xor(word_ptr(r10 + 5), bx)?;
            a.sub(byte_ptr(r10 + 7), cl)?;
            a.movzx(r11d, word_ptr(r10 + 6))?;
            a.add(rax, r11)?;
            a.inc(r10)?;
            a.dec(ecx)?;
            a.jnz(top)
        },
    ]);
    check_completes("page-crossing loop", &code);
}

#[test]
fn a_store_into_the_running_block_is_seen_at_once() {
    // The store rewrites the immediate of the ADD right after it (RIP-
    // relative, so the target is this very block): the new byte counts.
    let mut a = CodeAssembler::new(64).expect("assembler");
    let mut patched = a.create_label();
    a.mov(rbx, 0u64).expect("mov");
    a.lea(rax, qword_ptr(patched)).expect("lea");
    a.mov(byte_ptr(rax + 3), 0x55).expect("store");
    a.set_label(&mut patched).expect("label");
    a.add(rbx, 0x11).expect("add");
    a.add(rbx, rbx).expect("add");
    let code = a.assemble(CODE_BASE).expect("assemble");
    check_completes("self-modifying store", &code);
    let mut s = start();
    SnippetMachine::with_jit_threshold(1).run(&code, &mut s);
    assert_eq!(s.gprs[3], 0xaa, "the patched immediate 0x55 was used");
}

#[test]
fn divide_errors_of_every_kind_from_compiled_code_are_precise() {
    // IDIV's one overflowing quotient (i64::MIN / -1).
    check(
        "idiv overflow #DE",
        &[
            |a| a.mov(rax, 0x8000_0000_0000_0000u64),
            |a| a.cqo(),
            |a| a.mov(rbx, -1i64),
            |a| a.shl(r11, 3),
        ],
        |a| a.idiv(rbx),
        &[|a| a.inc(rax)],
        0,
        false,
    );
    // A 32-bit quotient that does not fit.
    check(
        "div quotient #DE",
        &[|a| a.mov(edx, 5), |a| a.mov(ebx, 3), |a| a.add(rax, rbx)],
        |a| a.div(ebx),
        &[|a| a.dec(rax)],
        0,
        false,
    );
    // A zero divisor in memory, after a multiply that set the flags.
    check(
        "div m #DE",
        &[
            |a| a.mov(qword_ptr(rdi + 0x20), 0),
            |a| a.mul(rbx),
            |a| a.imul_2(r11, rax),
        ],
        |a| a.idiv(byte_ptr(rdi + 0x20)),
        &[|a| a.inc(rax)],
        0,
        false,
    );
}

#[test]
fn wide_dividends_and_multiplies_complete_exactly_when_compiled() {
    // DIV with a 128-bit dividend (the interpreter's path inside compiled
    // code), then the multiplies and shifts compiled code does inline.
    let code = assemble(&[
        |a| a.mov(rdx, 3u64),
        |a| a.mov(rax, 0x1234_5678_9abc_def0u64),
        |a| a.mov(rbx, 0x10_0000_0007u64),
        |a| a.div(rbx),
        |a| a.mov(r11, rdx),
        |a| a.mul(r11),
        |a| a.imul_3(r12, rdx, 0x7531),
        |a| a.mov(ecx, 67),
        |a| a.shld(r12, rax, cl),
        |a| a.sar(r11d, cl),
        |a| a.adc(rbx, r12),
    ]);
    check_completes("wide divide", &code);
}
