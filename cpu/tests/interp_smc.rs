//! Self-modifying code on the software CPU: code that already ran as a
//! cached block is overwritten — by a plain store, a LOCK'd RMW, an SSE
//! store, REP MOVS, REP STOS, another vCPU (one after the other, and while
//! the first spins in a self-looping block) — and the new code runs.
//! Every snippet case also runs with every block compiled (the compiled
//! tier at threshold 1), and the cross-vCPU and stale-host-page cases
//! run compiled 64-bit code, so compiled stores are seen by the code-page
//! tracker exactly as the interpreter's are.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cpu::interp::cpu::{Cpu, Stop};
use cpu::interp::state::{Seg, CR0_PE, CR0_PG, CR4_PAE, EFER_LMA, EFER_LME};
use cpu::interp::SnippetMachine;
use cpu::snippet::{SnippetEnd, SnippetState, CODE_BASE, DATA_BASE, DATA_SIZE};
use cpu::{Clock, ClockMode, GuestMemory, Segment};
use iced_x86::code_asm::*;
use vm_memory::{Bytes, GuestAddress};

fn state() -> SnippetState {
    let mut fx = [0u8; 512];
    fx[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
    fx[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
    SnippetState {
        gprs: [0; 16],
        rflags: 2,
        fxsave: fx,
        ymm_hi: [0; 16],
        data: vec![0; DATA_SIZE],
    }
}

/// A snippet that calls `f` (`mov eax, 1; ret`) three times, so it is a
/// cached block, keeps the result in RBX, lets `patch` overwrite `f` (RDI
/// holds `f`'s address), then calls `f` again: the new result is in RAX.
fn program(
    patch: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
) -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    let mut f = a.create_label();
    let mut again = a.create_label();
    let mut end = a.create_label();
    a.mov(r15, 3u64)?;
    a.set_label(&mut again)?;
    a.call(f)?;
    a.dec(r15)?;
    a.jnz(again)?;
    a.mov(rbx, rax)?;
    a.lea(rdi, ptr(f))?;
    patch(&mut a)?;
    a.call(f)?;
    a.jmp(end)?;
    a.set_label(&mut f)?;
    a.mov(eax, 1u32)?;
    a.ret()?;
    for _ in 0..16 {
        a.int3()?;
    }
    a.set_label(&mut end)?;
    a.nop()?;
    a.assemble(CODE_BASE)
}

/// Run `code` with `data` at the start of the data buffer and RSI
/// pointing at it, interpreted (blocks, no compiled tier) and with every
/// block compiled at its first execution: the final state of both, which
/// must agree on every register.
fn run_both(code: &[u8], data: &[u8]) -> SnippetState {
    let mut out = Vec::new();
    for threshold in [0, 1] {
        let mut s = state();
        s.data[..data.len()].copy_from_slice(data);
        s.gprs[6] = DATA_BASE; // rsi
        let mut m = SnippetMachine::with_jit_threshold(threshold);
        assert_eq!(m.run(code, &mut s), SnippetEnd::Completed);
        if threshold == 1 {
            assert!(m.jit_stats().compiled > 0, "no block was compiled");
        }
        out.push(s);
    }
    assert_eq!(
        out[0].gprs, out[1].gprs,
        "interpreted and compiled runs differ"
    );
    out.remove(1)
}

/// Run `program(patch)` with `data` at the start of the data buffer (both
/// tiers): the results of the first and the last call.
fn run(patch: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>, data: &[u8]) -> (u64, u64) {
    let code = program(patch).unwrap();
    let s = run_both(&code, data);
    (s.gprs[3], s.gprs[0])
}

/// A block that patches its own next instruction (`mov eax, imm32`) with
/// `patch` (RDI holds the instruction's address): RAX after it.
fn run_self_patching(
    patch: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
    data: &[u8],
) -> u64 {
    let mut a = CodeAssembler::new(64).unwrap();
    let mut next = a.create_label();
    a.lea(rdi, ptr(next)).unwrap();
    patch(&mut a).unwrap();
    a.set_label(&mut next).unwrap();
    a.mov(eax, 1u32).unwrap();
    a.nop().unwrap();
    let code = a.assemble(CODE_BASE).unwrap();
    run_both(&code, data).gprs[0]
}

#[test]
fn a_store_into_the_running_block_runs_the_new_instruction_in_both_tiers() {
    let r = run_self_patching(|a| a.mov(dword_ptr(rdi + 1), 0x77u32), &[]);
    assert_eq!(r, 0x77, "a fast store");
    let r = run_self_patching(|a| a.add(dword_ptr(rdi + 1), 0x10u32), &[]);
    assert_eq!(r, 0x11, "a read-modify-write");
    let new = [0xb8, 0x21, 0x43, 0x65, 0x07]; // mov eax, 0x07654321
    let r = run_self_patching(
        |a| {
            a.mov(ecx, 5u32)?;
            a.rep().movsb()
        },
        &new,
    );
    assert_eq!(r, 0x0765_4321, "REP MOVSB over the next instruction");
}

/// A function in the data buffer's second page (`mov eax, 1; ret`; that
/// page and the code's use different software-TLB slots) is called three
/// times; each time the loop first stores to another chunk of the same
/// page, so the compiled tier caches a writable host page for it *before*
/// the page holds code and stores through that entry after. Then a fast
/// store patches the function's immediate: it must be reported, and the
/// next call returns the new value.
#[test]
fn a_store_through_a_host_page_cached_before_the_page_held_code_is_seen() {
    let mut a = CodeAssembler::new(64).unwrap();
    let mut again = a.create_label();
    a.lea(rdi, qword_ptr(rsi + 0x1000)).unwrap();
    a.mov(r15, 3u64).unwrap();
    a.set_label(&mut again).unwrap();
    a.mov(qword_ptr(rdi + 0x800), r15).unwrap();
    a.call(rdi).unwrap();
    a.dec(r15).unwrap();
    a.jnz(again).unwrap();
    a.mov(rbx, rax).unwrap();
    a.mov(dword_ptr(rdi + 1), 9u32).unwrap();
    a.call(rdi).unwrap();
    let code = a.assemble(CODE_BASE).unwrap();
    let mut data = vec![0u8; 0x1000];
    data.extend_from_slice(&[0xb8, 0x01, 0x00, 0x00, 0x00, 0xc3]);
    let s = run_both(&code, &data);
    assert_eq!((s.gprs[3], s.gprs[0]), (1, 9));
    assert_eq!(&s.data[0x1001..0x1005], &9u32.to_le_bytes());
    assert_eq!(&s.data[0x1800..0x1808], &1u64.to_le_bytes());
}

#[test]
fn a_plain_store_over_a_cached_block_runs_the_new_code() {
    // mov eax, imm32 is b8 imm32: patch the immediate.
    let r = run(|a| a.mov(dword_ptr(rdi + 1), 2u32), &[]);
    assert_eq!(r, (1, 2));
    let r = run(|a| a.mov(byte_ptr(rdi + 1), 7u32), &[]);
    assert_eq!(r, (1, 7), "a byte store through the generic executor");
}

#[test]
fn a_locked_rmw_over_a_cached_block_runs_the_new_code() {
    let r = run(|a| a.lock().add(dword_ptr(rdi + 1), 41u32), &[]);
    assert_eq!(r, (1, 42));
    let r = run(
        |a| {
            a.mov(ecx, 5u32)?;
            a.xchg(dword_ptr(rdi + 1), ecx)
        },
        &[],
    );
    assert_eq!(r, (1, 5), "XCHG with memory (implicitly locked)");
}

#[test]
fn an_sse_store_over_a_cached_block_runs_the_new_code() {
    // 16 bytes of new code: mov eax, 0x1234; ret; int3 ...
    let mut new = [0xccu8; 16];
    new[..6].copy_from_slice(&[0xb8, 0x34, 0x12, 0x00, 0x00, 0xc3]);
    let r = run(
        |a| {
            a.movups(xmm0, xmmword_ptr(rsi))?;
            a.movups(xmmword_ptr(rdi), xmm0)
        },
        &new,
    );
    assert_eq!(r, (1, 0x1234));
}

#[test]
fn rep_movs_and_rep_stos_over_a_cached_block_run_the_new_code() {
    let new = [0xb8, 0x78, 0x56, 0x34, 0x12, 0xc3]; // mov eax, 0x12345678; ret
    let r = run(
        |a| {
            a.mov(ecx, 6u32)?;
            a.rep().movsb()
        },
        &new,
    );
    assert_eq!(r, (1, 0x1234_5678), "REP MOVSB (the bulk path)");
    let r = run(
        |a| {
            a.add(rdi, 1i32)?;
            a.mov(eax, 0x0909_0909u32)?;
            a.mov(ecx, 1u32)?;
            a.rep().stosd()
        },
        &[],
    );
    assert_eq!(r, (1, 0x0909_0909), "REP STOSD over the immediate");
}

/// A real-mode CPU at 0:`at` on `mem`.
fn real_mode_cpu(mem: &Arc<GuestMemory>, id: u32, at: u64) -> Cpu {
    let clock = Arc::new(Clock::new(ClockMode::Host, 1_000_000));
    let mut c = Cpu::new(id, mem.clone(), clock);
    c.st.seg[Seg::Cs as usize].base = 0;
    c.st.seg[Seg::Cs as usize].selector = 0;
    c.st.rip = at;
    c
}

/// Run `c` through the block engine until it halts (or `limit` passes).
fn run_to_halt(c: &mut Cpu, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let (_, Ok((Some(Stop::Halt), _))) = c.step_block(1000, false) {
            return true;
        }
    }
    false
}

#[test]
fn another_vcpus_store_is_seen_at_the_next_block_entry() {
    let mem = Arc::new(GuestMemory::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap());
    // vCPU 0's function at 0x1000: mov ax, 1; hlt.
    mem.write_slice(&[0xb8, 0x01, 0x00, 0xf4], GuestAddress(0x1000))
        .unwrap();
    // vCPU 1 at 0x2000: mov word [0x1001], 2; hlt.
    mem.write_slice(
        &[0xc7, 0x06, 0x01, 0x10, 0x02, 0x00, 0xf4],
        GuestAddress(0x2000),
    )
    .unwrap();
    let mut c0 = real_mode_cpu(&mem, 0, 0x1000);
    let mut c1 = real_mode_cpu(&mem, 1, 0x2000);
    for _ in 0..3 {
        c0.st.rip = 0x1000;
        assert!(run_to_halt(&mut c0, Duration::from_secs(5)));
        assert_eq!(c0.st.gpr[0] & 0xffff, 1);
    }
    assert!(run_to_halt(&mut c1, Duration::from_secs(5)));
    c0.st.rip = 0x1000;
    assert!(run_to_halt(&mut c0, Duration::from_secs(5)));
    assert_eq!(c0.st.gpr[0] & 0xffff, 2, "vCPU 1's store was seen");
}

#[test]
fn a_self_looping_block_sees_another_vcpus_store() {
    let mem = Arc::new(GuestMemory::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap());
    // vCPU 0 spins at 0x1000: jmp $ (eb fe).
    mem.write_slice(&[0xeb, 0xfe], GuestAddress(0x1000))
        .unwrap();
    // vCPU 1: mov word [0x1000], 0xf490 (nop; hlt); hlt.
    mem.write_slice(
        &[0xc7, 0x06, 0x00, 0x10, 0x90, 0xf4, 0xf4],
        GuestAddress(0x2000),
    )
    .unwrap();
    let mut c0 = real_mode_cpu(&mem, 0, 0x1000);
    let mut c1 = real_mode_cpu(&mem, 1, 0x2000);
    // The loop is a cached, self-looping block before vCPU 1 runs.
    assert!(!run_to_halt(&mut c0, Duration::from_millis(50)));
    let writer = std::thread::spawn(move || run_to_halt(&mut c1, Duration::from_secs(5)));
    assert!(
        run_to_halt(&mut c0, Duration::from_secs(10)),
        "vCPU 0 kept running the old loop"
    );
    assert!(writer.join().unwrap());
    assert_eq!(c0.st.rip, 0x1002, "halted on the new HLT");
}

/// A 64-bit CPU at `at` on `mem` (identity-mapped by 2 MiB pages from
/// the tables at 0x8000), with every block compiled at its first run.
fn long_mode_cpu(mem: &Arc<GuestMemory>, id: u32, at: u64) -> Cpu {
    let clock = Arc::new(Clock::new(ClockMode::Host, 1_000_000));
    let mut c = Cpu::new(id, mem.clone(), clock);
    c.set_jit_threshold(1);
    let st = &mut c.st;
    st.cr0 = CR0_PE | CR0_PG | 0x10;
    st.cr3 = 0x8000;
    st.cr4 = CR4_PAE;
    st.efer = EFER_LME | EFER_LMA;
    st.seg[Seg::Cs as usize] = Segment::flat(0x10, 0xb, true);
    for s in [Seg::Ds, Seg::Es, Seg::Ss, Seg::Fs, Seg::Gs] {
        st.seg[s as usize] = Segment::flat(0x18, 0x3, false);
    }
    st.gpr[4] = 0x7000;
    st.rip = at;
    c
}

/// 1 MiB of RAM with page tables for `long_mode_cpu`.
fn long_mode_memory() -> Arc<GuestMemory> {
    let mem = Arc::new(GuestMemory::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap());
    mem.write_obj(0x9003u64, GuestAddress(0x8000)).unwrap();
    mem.write_obj(0xa003u64, GuestAddress(0x9000)).unwrap();
    mem.write_obj(0x83u64, GuestAddress(0xa000)).unwrap();
    mem
}

/// Run `c` until it halts, `max` instructions per call to the block
/// engine (or `limit` passes).
fn run_to_halt_by(c: &mut Cpu, max: u64, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let (_, Ok((Some(Stop::Halt), _))) = c.step_block(max, false) {
            return true;
        }
    }
    false
}

#[test]
fn a_compiled_function_sees_another_compiled_vcpus_store() {
    let mem = long_mode_memory();
    // vCPU 0 at 0x1000: mov eax, 1; hlt.
    mem.write_slice(&[0xb8, 0x01, 0x00, 0x00, 0x00, 0xf4], GuestAddress(0x1000))
        .unwrap();
    // vCPU 1 at 0x2000: mov dword [0x1001], 2 (a fast store); hlt.
    let mut a = CodeAssembler::new(64).unwrap();
    a.mov(dword_ptr(0x1001u64), 2u32).unwrap();
    a.hlt().unwrap();
    mem.write_slice(&a.assemble(0x2000).unwrap(), GuestAddress(0x2000))
        .unwrap();
    let mut c0 = long_mode_cpu(&mem, 0, 0x1000);
    let mut c1 = long_mode_cpu(&mem, 1, 0x2000);
    for _ in 0..3 {
        c0.st.rip = 0x1000;
        assert!(run_to_halt(&mut c0, Duration::from_secs(5)));
        assert_eq!(c0.st.gpr[0], 1);
    }
    assert!(c0.jit_stats().compiled > 0, "vCPU 0's block is compiled");
    assert!(run_to_halt(&mut c1, Duration::from_secs(5)));
    c0.st.rip = 0x1000;
    assert!(run_to_halt(&mut c0, Duration::from_secs(5)));
    assert_eq!(c0.st.gpr[0], 2, "vCPU 1's compiled store was seen");
}

#[test]
fn a_compiled_self_loop_sees_another_compiled_vcpus_store() {
    let mem = long_mode_memory();
    // vCPU 0 spins at 0x1000: inc rax; jmp 0x1000 (a compiled block that
    // loops inside its code).
    mem.write_slice(&[0x48, 0xff, 0xc0, 0xeb, 0xfb], GuestAddress(0x1000))
        .unwrap();
    // vCPU 1: mov word [0x1003], 0xf490 (nop; hlt over the JMP); hlt.
    let mut a = CodeAssembler::new(64).unwrap();
    a.mov(word_ptr(0x1003u64), 0xf490u32).unwrap();
    a.hlt().unwrap();
    mem.write_slice(&a.assemble(0x2000).unwrap(), GuestAddress(0x2000))
        .unwrap();
    let mut c0 = long_mode_cpu(&mem, 0, 0x1000);
    let mut c1 = long_mode_cpu(&mem, 1, 0x2000);
    // The loop is compiled and spinning before vCPU 1 runs.
    assert!(!run_to_halt_by(&mut c0, 1000, Duration::from_millis(50)));
    assert!(c0.jit_stats().retired > 0, "the loop ran compiled");
    let writer = std::thread::spawn(move || run_to_halt(&mut c1, Duration::from_secs(5)));
    // A budget far beyond the time limit: only the compiled loop's own
    // check of its page generation can end it in time.
    assert!(
        run_to_halt_by(&mut c0, 1 << 36, Duration::from_secs(10)),
        "vCPU 0 kept running the old loop"
    );
    assert!(writer.join().unwrap());
    assert_eq!(c0.st.rip, 0x1005, "halted on the new HLT");
}
