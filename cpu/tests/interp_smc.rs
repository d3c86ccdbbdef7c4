//! Self-modifying code on the software CPU: code that already ran as a
//! cached block is overwritten — by a plain store, a LOCK'd RMW, an SSE
//! store, REP MOVS, REP STOS, another vCPU (one after the other, and while
//! the first spins in a self-looping block) — and the new code runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cpu::interp::cpu::{Cpu, Stop};
use cpu::interp::state::Seg;
use cpu::interp::SnippetMachine;
use cpu::snippet::{SnippetEnd, SnippetState, CODE_BASE, DATA_BASE, DATA_SIZE};
use cpu::{Clock, ClockMode, GuestMemory};
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

/// Run `program(patch)` with `data` at the start of the data buffer: the
/// results of the first and the last call.
fn run(patch: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>, data: &[u8]) -> (u64, u64) {
    let code = program(patch).unwrap();
    let mut s = state();
    s.data[..data.len()].copy_from_slice(data);
    s.gprs[6] = DATA_BASE; // rsi
    assert_eq!(
        SnippetMachine::new().run(&code, &mut s),
        SnippetEnd::Completed
    );
    (s.gprs[3], s.gprs[0])
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
