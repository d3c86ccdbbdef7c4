//! The software CPU's memory model with several vCPUs on host threads over
//! shared guest RAM: LOCK'd read-modify-writes from four vCPUs never lose
//! an update (split-line operands and an XCHG spinlock included), an A/D
//! update never resurrects a page-table entry another vCPU just changed,
//! and MFENCE forbids the store-buffering outcome of Dekker's litmus test.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use cpu::interp::cpu::{make_mmu, Cpu, Stop};
use cpu::interp::mem::Access;
use cpu::interp::ram::RamMap;
use cpu::interp::state::{CpuState, Seg};
use cpu::{Clock, ClockMode, GuestMemory};
use iced_x86::code_asm::*;
use vm_memory::{Bytes, GuestAddress};

const RAM: usize = 0x10000;

fn ram() -> Arc<GuestMemory> {
    Arc::new(GuestMemory::from_ranges(&[(GuestAddress(0), RAM)]).unwrap())
}

/// A real-mode vCPU at 0:`at` running `code` (placed there in `mem`).
fn vcpu(mem: &Arc<GuestMemory>, id: u32, at: u64, code: &[u8]) -> Cpu {
    mem.write_slice(code, GuestAddress(at)).unwrap();
    let clock = Arc::new(Clock::new(ClockMode::Host, 1_000_000));
    let mut c = Cpu::new(id, mem.clone(), clock);
    c.st.seg[Seg::Cs as usize].base = 0;
    c.st.seg[Seg::Cs as usize].selector = 0;
    c.st.rip = at;
    c
}

/// Run blocks until HLT, yielding the host CPU now and then (the vCPUs of
/// a test spin on each other, and the host may have fewer cores).
fn run_to_halt(mut c: Cpu) -> Cpu {
    loop {
        if let (_, Ok((Some(Stop::Halt), _))) = c.step_block(4096, false) {
            return c;
        }
        std::thread::yield_now();
    }
}

/// 16-bit code (32-bit operands and addresses where named) at `at`.
fn assemble(at: u64, f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(16).unwrap();
    f(&mut a).unwrap();
    a.assemble(at).unwrap()
}

/// A thread with room for a `Cpu` (large in debug builds).
fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(f)
        .unwrap()
}

/// Run one program per entry of `progs` on its own vCPU and thread.
fn run_all(mem: &Arc<GuestMemory>, progs: Vec<(u64, Vec<u8>)>) -> Vec<Cpu> {
    let cpus: Vec<Cpu> = progs
        .iter()
        .enumerate()
        .map(|(k, (at, code))| vcpu(mem, k as u32, *at, code))
        .collect();
    let threads: Vec<_> = cpus
        .into_iter()
        .map(|c| spawn(move || run_to_halt(c)))
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

const N: u32 = 10_000;
const THREADS: u64 = 4;
/// Counters, each alone in a cache line except the split ones.
const ADD: u64 = 0x2000;
const XADD: u64 = 0x2040;
const CMPXCHG: u64 = 0x2080;
const INC: u64 = 0x20c0;
/// A dword split across the cache lines at 0x2140.
const SPLIT: u64 = 0x213e;
/// A qword split across the pages at 0x3000 (CMPXCHG8B's operand is
/// claimed whole).
const SPLIT_PAGE: u64 = 0x2ffc;
const LOCK: u64 = 0x2200;
const GUARDED: u64 = 0x2240;
const XADD_SUM: u64 = 0x2280;

/// One vCPU's share of the counter workout: every kind of locked RMW, a
/// CMPXCHG loop, CMPXCHG8B across a page, and a plain increment guarded by
/// an XCHG spinlock.
fn counters(at: u64) -> Vec<u8> {
    assemble(at, |a| {
        let mut top = a.create_label();
        let mut retry = a.create_label();
        let mut retry8 = a.create_label();
        let mut acquire = a.create_label();
        a.mov(ebp, N)?;
        a.set_label(&mut top)?;
        a.lock().add(dword_ptr(ADD), 1)?;
        a.mov(eax, 1)?;
        a.lock().xadd(dword_ptr(XADD), eax)?;
        // The values XADD hands out are distinct: their sum is exact.
        a.lock().add(dword_ptr(XADD_SUM), eax)?;
        a.mov(eax, dword_ptr(CMPXCHG))?;
        a.set_label(&mut retry)?;
        a.lea(edx, dword_ptr(eax + 1))?;
        a.lock().cmpxchg(dword_ptr(CMPXCHG), edx)?;
        a.jnz(retry)?;
        a.lock().inc(dword_ptr(INC))?;
        a.lock().add(dword_ptr(SPLIT), 3)?;
        // 64-bit increment of a page-split qword with CMPXCHG8B.
        a.mov(eax, dword_ptr(SPLIT_PAGE))?;
        a.mov(edx, dword_ptr(SPLIT_PAGE + 4))?;
        a.set_label(&mut retry8)?;
        a.mov(ebx, eax)?;
        a.mov(ecx, edx)?;
        a.add(ebx, 0x8000_0000u32)?;
        a.adc(ecx, 0)?;
        a.lock().cmpxchg8b(qword_ptr(SPLIT_PAGE))?;
        a.jnz(retry8)?;
        // XCHG spinlock around a plain read-modify-write.
        a.set_label(&mut acquire)?;
        a.mov(eax, 1)?;
        a.xchg(dword_ptr(LOCK), eax)?;
        a.test(eax, eax)?;
        a.jnz(acquire)?;
        a.mov(eax, dword_ptr(GUARDED))?;
        a.inc(eax)?;
        a.mov(dword_ptr(GUARDED), eax)?;
        a.mov(dword_ptr(LOCK), 0)?;
        a.dec(ebp)?;
        a.jnz(top)?;
        a.hlt()
    })
}

#[test]
fn locked_rmws_of_four_vcpus_never_lose_an_update() {
    let mem = ram();
    let progs = (0..THREADS)
        .map(|k| {
            let at = 0x100 + k * 0x200;
            (at, counters(at))
        })
        .collect();
    run_all(&mem, progs);
    let n = u64::from(N) * THREADS;
    let d = |at| u64::from(mem.read_obj::<u32>(GuestAddress(at)).unwrap());
    assert_eq!(d(ADD), n, "LOCK ADD");
    assert_eq!(d(XADD), n, "LOCK XADD");
    // (modulo 2^32: the sum is a dword)
    assert_eq!(
        d(XADD_SUM),
        (n * (n - 1) / 2) & 0xffff_ffff,
        "values handed out by XADD"
    );
    assert_eq!(d(CMPXCHG), n, "LOCK CMPXCHG loop");
    assert_eq!(d(INC), n, "LOCK INC");
    assert_eq!(d(SPLIT), 3 * n, "LOCK ADD split across cache lines");
    let q: u64 = mem.read_obj(GuestAddress(SPLIT_PAGE)).unwrap();
    assert_eq!(q, n * 0x8000_0000, "CMPXCHG8B split across pages");
    assert_eq!(d(GUARDED), n, "XCHG spinlock");
    assert_eq!(d(LOCK), 0);
}

/// Round barrier: count arrivals at `BAR` and wait for `target` (EDX).
fn barrier(a: &mut CodeAssembler, bar: u64) -> Result<(), IcedError> {
    let mut spin = a.create_label();
    a.lock().inc(dword_ptr(bar))?;
    a.set_label(&mut spin)?;
    a.pause()?;
    a.cmp(dword_ptr(bar), edx)?;
    a.jb(spin)?;
    Ok(())
}

/// Dekker's store-buffering test, `rounds` times: each vCPU stores 1 to
/// its flag, optionally MFENCEs, loads the other's flag and records it at
/// `res + round`. The flags are cleared between two barriers.
fn dekker(at: u64, me: u64, other: u64, res: u64, fenced: bool, rounds: u32) -> Vec<u8> {
    const BAR: u64 = 0x3000;
    assemble(at, |a| {
        let mut top = a.create_label();
        a.xor(esi, esi)?;
        a.set_label(&mut top)?;
        a.mov(dword_ptr(me), 0)?;
        // EDX = 4 * round + 2, then + 4 after the second barrier.
        a.lea(edx, dword_ptr(esi * 4 + 2))?;
        barrier(a, BAR)?;
        a.mov(dword_ptr(me), 1)?;
        if fenced {
            a.mfence()?;
        }
        a.mov(eax, dword_ptr(other))?;
        a.mov(byte_ptr(esi + res as i32), al)?;
        a.add(edx, 2)?;
        barrier(a, BAR)?;
        a.inc(esi)?;
        a.cmp(esi, rounds)?;
        a.jb(top)?;
        a.hlt()
    })
}

/// Rounds of the Dekker test in which both loads saw 0.
fn both_zero(fenced: bool, rounds: u32) -> usize {
    let mem = ram();
    let (x, y, rx, ry) = (0x3040u64, 0x3080u64, 0x8000u64, 0xc000u64);
    run_all(
        &mem,
        vec![
            (0x100, dekker(0x100, x, y, rx, fenced, rounds)),
            (0x800, dekker(0x800, y, x, ry, fenced, rounds)),
        ],
    );
    let mut a = vec![0u8; rounds as usize];
    let mut b = vec![0u8; rounds as usize];
    mem.read_slice(&mut a, GuestAddress(rx)).unwrap();
    mem.read_slice(&mut b, GuestAddress(ry)).unwrap();
    a.iter()
        .zip(&b)
        .filter(|(a, b)| **a == 0 && **b == 0)
        .count()
}

#[test]
fn mfence_forbids_the_store_buffering_outcome() {
    let rounds = 2000;
    let fenced = both_zero(true, rounds);
    assert_eq!(fenced, 0, "both loads saw 0 despite MFENCE");
    // Unfenced, TSO allows it (and the host's store buffer shows it when
    // the vCPUs really overlap): reported, not asserted.
    eprintln!(
        "unfenced: {} of {rounds} rounds saw both loads 0",
        both_zero(false, rounds)
    );
}

/// Legacy 32-bit paging: page directory at 0x1000, page table at 0x2000,
/// the entry for linear 0x0040_3000 at 0x2000 + 3 * 4.
mod pte {
    use super::*;

    pub const PD: u64 = 0x1000;
    pub const PT: u64 = 0x2000;
    pub const LA: u64 = 0x0040_3000;
    pub const PTE: u64 = PT + 3 * 4;
    pub const FRAME: u64 = 0x9000;
    pub const P_RW: u32 = 0x3;
    pub const A: u32 = 0x20;
    pub const D: u32 = 0x40;

    pub fn paging_state(mem: &GuestMemory) -> CpuState {
        mem.write_obj((PT as u32) | P_RW | 4, GuestAddress(PD + 4))
            .unwrap();
        let mut st = CpuState::default();
        st.cr0 |= 0x8000_0001; // PG | PE
        st.cr3 = PD;
        st
    }
}

#[test]
fn an_ad_update_with_stale_bits_is_refused() {
    let mem = ram();
    let ram_map = RamMap::new(mem.clone());
    let mmu = make_mmu(&mem, &ram_map, None, 0);
    mem.write_obj(pte::FRAME as u32 | pte::P_RW, GuestAddress(pte::PTE))
        .unwrap();
    let seen = u64::from(pte::FRAME as u32 | pte::P_RW);
    // Another vCPU clears Present after we read the entry.
    mem.write_obj(0u32, GuestAddress(pte::PTE)).unwrap();
    assert!(!mmu.update_pte(pte::PTE, seen, seen | u64::from(pte::A), false));
    assert_eq!(mem.read_obj::<u32>(GuestAddress(pte::PTE)).unwrap(), 0);
    // Unchanged, the update lands (and only the 4-byte entry changes).
    mem.write_obj(u32::MAX, GuestAddress(pte::PTE + 4)).unwrap();
    mem.write_obj(seen as u32, GuestAddress(pte::PTE)).unwrap();
    assert!(mmu.update_pte(pte::PTE, seen, seen | u64::from(pte::A), false));
    assert_eq!(
        mem.read_obj::<u32>(GuestAddress(pte::PTE)).unwrap(),
        seen as u32 | pte::A
    );
    assert_eq!(
        mem.read_obj::<u32>(GuestAddress(pte::PTE + 4)).unwrap(),
        u32::MAX
    );
}

#[test]
fn a_cleared_present_bit_is_never_resurrected_by_a_walk() {
    let mem = ram();
    let st = pte::paging_state(&mem);
    let stop = Arc::new(AtomicBool::new(false));
    let walks = Arc::new(AtomicU64::new(0));
    // The walker: translate for writes, over and over, with a cold TLB.
    let walker = {
        let (mem, stop, walks) = (mem.clone(), stop.clone(), walks.clone());
        let mut st = st.clone();
        spawn(move || {
            let ram_map = RamMap::new(mem.clone());
            let mmu = make_mmu(&mem, &ram_map, None, 1);
            let mut ok = 0u64;
            while !stop.load(Ordering::Relaxed) {
                st.tlb.flush();
                if let Ok(pa) = mmu.translate(&mut st, pte::LA + 0x10, Access::Write) {
                    assert_eq!(pa, pte::FRAME + 0x10);
                    ok += 1;
                }
                walks.fetch_add(1, Ordering::SeqCst);
            }
            ok
        })
    };
    // The other vCPU: map the page, let the walker at it, unmap it, wait
    // until the walker is past any walk begun before, and check the entry
    // stayed unmapped.
    let mut resurrected = 0;
    for _ in 0..10_000 {
        mem.write_obj(pte::FRAME as u32 | pte::P_RW, GuestAddress(pte::PTE))
            .unwrap();
        for _ in 0..50 {
            std::hint::spin_loop();
        }
        mem.write_obj(0u32, GuestAddress(pte::PTE)).unwrap();
        let w = walks.load(Ordering::SeqCst);
        while walks.load(Ordering::SeqCst) < w + 2 {
            std::thread::yield_now();
        }
        if mem.read_obj::<u32>(GuestAddress(pte::PTE)).unwrap() != 0 {
            resurrected += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let ok = walker.join().unwrap();
    assert_eq!(resurrected, 0, "a stale A/D write-back re-mapped the page");
    assert!(ok > 0, "the walker never found the page mapped");
    // A write walk sets A on the PDE and A|D on the PTE.
    mem.write_obj(pte::FRAME as u32 | pte::P_RW, GuestAddress(pte::PTE))
        .unwrap();
    let ram_map = RamMap::new(mem.clone());
    let mmu = make_mmu(&mem, &ram_map, None, 0);
    let mut st = st;
    st.tlb.flush();
    mmu.translate(&mut st, pte::LA, Access::Write).unwrap();
    assert_eq!(
        mem.read_obj::<u32>(GuestAddress(pte::PTE)).unwrap(),
        pte::FRAME as u32 | pte::P_RW | pte::A | pte::D
    );
    assert_eq!(
        mem.read_obj::<u32>(GuestAddress(pte::PD + 4)).unwrap() & pte::A,
        pte::A
    );
}

#[test]
fn lock_cmpxchg16b_swaps_or_loads_all_16_bytes() {
    use cpu::interp::SnippetMachine;
    use cpu::snippet::{SnippetEnd, SnippetState, CODE_BASE, DATA_BASE, DATA_SIZE};
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
    s.data[..16].copy_from_slice(&[0x11; 16]);
    s.data[16..32].copy_from_slice(&[0x22; 16]);
    s.gprs[7] = DATA_BASE;
    let mut a = CodeAssembler::new(64).unwrap();
    // Equal: RCX:RBX goes in, ZF=1 (kept in R8).
    a.mov(rax, 0x1111_1111_1111_1111u64).unwrap();
    a.mov(rdx, 0x1111_1111_1111_1111u64).unwrap();
    a.mov(rbx, 0x0102_0304_0506_0708u64).unwrap();
    a.mov(rcx, 0x090a_0b0c_0d0e_0f10u64).unwrap();
    a.lock().cmpxchg16b(xmmword_ptr(rdi)).unwrap();
    a.setz(r8b).unwrap();
    // Unequal: memory comes out in RDX:RAX, ZF=0 (in R9).
    a.xor(eax, eax).unwrap();
    a.xor(edx, edx).unwrap();
    a.lock().cmpxchg16b(xmmword_ptr(rdi + 16)).unwrap();
    a.setz(r9b).unwrap();
    let code = a.assemble(CODE_BASE).unwrap();
    assert_eq!(
        SnippetMachine::new().run(&code, &mut s),
        SnippetEnd::Completed
    );
    assert_eq!(s.gprs[8] & 0xff, 1, "ZF after the equal case");
    assert_eq!(s.gprs[9] & 0xff, 0, "ZF after the unequal case");
    assert_eq!(
        &s.data[..16],
        &[8, 7, 6, 5, 4, 3, 2, 1, 0x10, 0xf, 0xe, 0xd, 0xc, 0xb, 0xa, 9]
    );
    assert_eq!(
        (s.gprs[0], s.gprs[2]),
        (0x2222_2222_2222_2222, 0x2222_2222_2222_2222)
    );
    assert_eq!(&s.data[16..32], &[0x22; 16]);
}
