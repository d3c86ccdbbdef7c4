//! Interpreter speed in guest instructions per second (criterion reports
//! elements/s = instructions/s): an ALU register loop, a load/store loop,
//! call/ret, a bignum MUL/ADC loop, shifts by CL, REP MOVSB, and LOCK'd read-modify-writes (LOCK ADD, XCHG and
//! LOCK CMPXCHG on an aligned operand: the single-vCPU cost of atomicity).

use cpu::interp::SnippetMachine;
use cpu::snippet::{SnippetState, DATA_BASE, DATA_SIZE};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use iced_x86::code_asm::*;

const ITER: u32 = 200_000;

fn state() -> SnippetState {
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
    s.gprs[7] = DATA_BASE;
    s
}

fn build(f: impl FnOnce(&mut CodeAssembler, &mut CodeLabel) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    let mut top = a.create_label();
    a.mov(ecx, ITER).unwrap();
    a.set_label(&mut top).unwrap();
    f(&mut a, &mut top).unwrap();
    a.assemble(cpu::snippet::CODE_BASE).unwrap()
}

fn bench(c: &mut Criterion) {
    // (name, code, instructions per iteration including the loop control)
    let alu = build(|a, top| {
        a.add(rax, rbx)?;
        a.xor(rdx, rax)?;
        a.sub(rbx, 1)?;
        a.dec(ecx)?;
        a.jnz(*top)
    });
    let mem = build(|a, top| {
        a.mov(qword_ptr(rdi), rax)?;
        a.mov(rax, qword_ptr(rdi + 8))?;
        a.add(qword_ptr(rdi + 16), rax)?;
        a.dec(ecx)?;
        a.jnz(*top)
    });
    let locked = build(|a, top| {
        a.lock().add(qword_ptr(rdi), 1)?;
        a.xchg(qword_ptr(rdi + 8), rax)?;
        a.mov(rax, qword_ptr(rdi + 16))?;
        a.lea(rdx, qword_ptr(rax + 1))?;
        a.lock().cmpxchg(qword_ptr(rdi + 16), rdx)?;
        a.dec(ecx)?;
        a.jnz(*top)
    });
    let callret = {
        let mut a = CodeAssembler::new(64).unwrap();
        let mut top = a.create_label();
        let mut func = a.create_label();
        let mut end = a.create_label();
        a.mov(ecx, ITER).unwrap();
        a.set_label(&mut top).unwrap();
        a.call(func).unwrap();
        a.dec(ecx).unwrap();
        a.jnz(top).unwrap();
        a.jmp(end).unwrap();
        a.set_label(&mut func).unwrap();
        a.ret().unwrap();
        a.set_label(&mut end).unwrap();
        a.nop().unwrap();
        a.assemble(cpu::snippet::CODE_BASE).unwrap()
    };
    let movsb = build(|a, top| {
        a.mov(rsi, rdi)?;
        a.lea(rdi, qword_ptr(rsi + 4096))?;
        a.mov(edx, ecx)?;
        a.mov(ecx, 2048)?;
        a.rep().movsb()?;
        a.mov(rdi, rsi)?;
        a.mov(ecx, edx)?;
        a.dec(ecx)?;
        a.jnz(*top)
    });
    // The RSA inner loop's shape (mpihelp_addmul_1): MUL by memory, then
    // ADD/ADC into the product and the carry word.
    let bignum = build(|a, top| {
        a.mov(rax, qword_ptr(rdi))?;
        a.mul(rbx)?;
        a.add(rax, r8)?;
        a.adc(rdx, 0)?;
        a.add(qword_ptr(rdi + 8), rax)?;
        a.adc(rdx, 0)?;
        a.mov(r8, rdx)?;
        a.dec(ecx)?;
        a.jnz(*top)
    });
    // Bit twiddling by CL (as zstd's and xz's decoders do), IMUL, SHRD.
    let shifts = build(|a, top| {
        a.mov(edx, ecx)?;
        a.and(edx, 31)?;
        a.xchg(ecx, edx)?;
        a.shl(rax, cl)?;
        a.shr(ebx, cl)?;
        a.shrd(rax, rbx, cl)?;
        a.xchg(ecx, edx)?;
        a.imul_2(ebx, eax)?;
        a.dec(ecx)?;
        a.jnz(*top)
    });
    let cases: [(&str, Vec<u8>, u64, u64); 7] = [
        ("alu_loop", alu, 5, u64::from(ITER)),
        ("load_store_loop", mem, 5, u64::from(ITER)),
        ("call_ret", callret, 4, u64::from(ITER)),
        ("locked_rmw", locked, 7, u64::from(ITER)),
        ("mul_adc_loop", bignum, 9, u64::from(ITER)),
        ("shift_cl_loop", shifts, 10, u64::from(ITER)),
        // Each REP MOVSB of 2 KiB counts as 2048 instructions (one per byte
        // moved, as the MIPS figures of other interpreters count it).
        ("rep_movsb_2k", movsb, 2048 + 8, 1000),
    ];
    let mut m = SnippetMachine::new();
    let mut g = c.benchmark_group("interp_mips");
    g.sample_size(10);
    for (name, code, per_iter, iters) in cases {
        let code = if name == "rep_movsb_2k" {
            // Fewer iterations: patch the loop count.
            let mut a = CodeAssembler::new(64).unwrap();
            a.mov(ecx, iters as u32).unwrap();
            let mut c2 = a.assemble(cpu::snippet::CODE_BASE).unwrap();
            c2.extend_from_slice(&code[c2.len()..]);
            c2
        } else {
            code
        };
        g.throughput(Throughput::Elements(per_iter * iters));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut s = state();
                m.run(&code, &mut s);
            })
        });
    }
    g.finish();
    let st = m.jit_stats();
    if st.compiled > 0 {
        eprintln!(
            "compiled tier: {} blocks, {:.0} us and {} code bytes per block; {:?}",
            st.compiled,
            st.compile_ns as f64 / 1e3 / st.compiled as f64,
            st.code_bytes / st.compiled,
            st
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
