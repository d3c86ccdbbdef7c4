//! Chained compiled code (direct links, the indirect-branch cache) leaves
//! exactly the state single-stepping leaves, and really chains: the
//! dispatcher calls compiled code a few times while thousands of blocks
//! run. Also: a store that rewrites a block another block is linked to
//! makes the new code run.

use cpu::interp::SnippetMachine;
use cpu::snippet::{SnippetEnd, SnippetState, DATA_BASE, DATA_SIZE};
use iced_x86::code_asm::*;

const LOOPS: u32 = 3000;
/// Iterations of the self-modifying loop (each one compiles a block).
const SMC_LOOPS: u32 = 200;

fn start() -> SnippetState {
    let mut fx = [0u8; 512];
    fx[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
    fx[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
    let mut s = SnippetState {
        gprs: [0; 16],
        rflags: 2,
        fxsave: fx,
        ymm_hi: [0; 16],
        data: vec![0; DATA_SIZE],
    };
    for (i, g) in s.gprs.iter_mut().enumerate() {
        *g = 0x0123_4567_89ab_cdefu64.rotate_left(i as u32 * 7) ^ i as u64;
    }
    s.gprs[1] = u64::from(LOOPS); // RCX: the loop count
    s.gprs[7] = DATA_BASE; // RDI
    s
}

/// Runs `code` single-stepped and with every block compiled at its first
/// run; both must agree. Returns the compiled tier's counters.
fn same_as_single_step(name: &str, code: &[u8]) -> cpu::interp::jit::JitStats {
    let mut reference = start();
    let end_ref = SnippetMachine::with_single_step().run(code, &mut reference);
    assert_eq!(end_ref, SnippetEnd::Completed, "{name}: single-stepped");
    let mut m = SnippetMachine::with_jit_threshold(1);
    let mut compiled = start();
    let end = m.run(code, &mut compiled);
    assert_eq!(end, SnippetEnd::Completed, "{name}: compiled");
    assert_eq!(compiled.gprs, reference.gprs, "{name}: registers");
    assert_eq!(compiled.rflags, reference.rflags, "{name}: RFLAGS");
    assert!(compiled.data == reference.data, "{name}: memory");
    m.jit_stats()
}

fn assemble(f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).expect("assembler");
    f(&mut a).expect("instruction");
    a.assemble(cpu::snippet::CODE_BASE).expect("assemble")
}

#[test]
fn calls_returns_and_indirect_branches_chain_exactly() {
    let code = assemble(|a| {
        let (mut top, mut f, mut g, mut h, mut back, mut end) = (
            a.create_label(),
            a.create_label(),
            a.create_label(),
            a.create_label(),
            a.create_label(),
            a.create_label(),
        );
        a.lea(rdx, ptr(g))?;
        a.lea(rsi, ptr(back))?;
        a.mov(qword_ptr(rdi + 8), rsi)?;
        a.set_label(&mut top)?;
        a.call(f)?; // direct CALL, RET through the cache
        a.call(rdx)?; // CALL through a register
        a.push(rcx)?;
        a.call(h)?; // RET 8
        a.jmp(qword_ptr(rdi + 8))?; // JMP through memory
        a.set_label(&mut back)?;
        a.add(qword_ptr(rdi), rax)?;
        a.dec(ecx)?;
        a.jnz(top)?;
        a.jmp(end)?;
        a.set_label(&mut f)?;
        a.add(rax, rcx)?;
        a.ret()?;
        a.set_label(&mut g)?;
        a.xor(rbx, rax)?;
        a.rol(rbx, 3)?;
        a.ret()?;
        a.set_label(&mut h)?;
        a.add(rbp, qword_ptr(rsp + 8))?;
        a.ret_1(8)?;
        a.set_label(&mut end)?;
        a.nop()
    });
    let st = same_as_single_step("call/ret", &code);
    // Some 10 blocks run per iteration; after the first few, every exit
    // follows a link or a cache line.
    let blocks = u64::from(LOOPS) * 8;
    assert!(st.links >= 8, "exits were linked: {st:?}");
    assert!(
        st.calls * 50 < blocks,
        "compiled code mostly chained instead of returning: {st:?}"
    );
}

#[test]
fn conditional_branches_chain_both_ways() {
    let code = assemble(|a| {
        let (mut top, mut skip, mut odd) = (a.create_label(), a.create_label(), a.create_label());
        a.set_label(&mut top)?;
        a.add(rax, rbx)?;
        a.test(cl, 1)?;
        a.jnz(odd)?; // taken every other time
        a.sub(rdx, rax)?;
        a.jmp(skip)?;
        a.set_label(&mut odd)?;
        a.xor(rdx, rax)?;
        a.set_label(&mut skip)?;
        a.add(qword_ptr(rdi + 16), rdx)?;
        a.dec(ecx)?;
        a.jnz(top)?;
        a.nop()
    });
    let st = same_as_single_step("jcc", &code);
    assert!(st.links >= 4, "both ways linked: {st:?}");
    assert!(
        st.calls * 50 < u64::from(LOOPS) * 3,
        "compiled code mostly chained: {st:?}"
    );
}

/// The loop calls a function on another page that returns an immediate,
/// then rewrites that immediate: the link into the function stays, but
/// the function's page changed, so the new code must run each time (the
/// sum of the returned values says which code ran).
#[test]
fn a_store_into_a_linked_block_on_another_page_runs_the_new_code() {
    let code = assemble(|a| {
        let (mut top, mut func, mut end) = (a.create_label(), a.create_label(), a.create_label());
        a.xor(ebp, ebp)?;
        a.mov(ecx, SMC_LOOPS)?;
        a.lea(rsi, ptr(func))?;
        a.set_label(&mut top)?;
        a.call(func)?;
        a.add(rbp, rax)?;
        a.mov(dword_ptr(rsi + 1), ecx)?; // MOV EAX, imm32: the imm32
        a.dec(ecx)?;
        a.jnz(top)?;
        a.jmp(end)?;
        a.db(&[0xcc; 4096])?;
        a.set_label(&mut func)?;
        a.mov(eax, 7)?;
        a.ret()?;
        a.set_label(&mut end)?;
        a.nop()
    });
    let st = same_as_single_step("smc", &code);
    assert!(
        st.compiled > u64::from(SMC_LOOPS),
        "the function was rebuilt: {st:?}"
    );
    // 7, then SMC_LOOPS, SMC_LOOPS - 1, ..., 2.
    let mut m = SnippetMachine::with_jit_threshold(1);
    let mut s = start();
    assert_eq!(m.run(&code, &mut s), SnippetEnd::Completed);
    let n = u64::from(SMC_LOOPS);
    assert_eq!(s.gprs[5], 7 + n * (n + 1) / 2 - 1);
}
