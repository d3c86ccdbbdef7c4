//! System-level conformance: paging, exceptions and interrupts through
//! the IDT, run on the interpreter and on KVM from the same long-mode
//! machine state, compared register for register and byte for byte (the
//! exception log the handlers write, and the page tables with their
//! accessed and dirty bits).
//!
//! Where KVM is hardware-backed (kvm_intel/kvm_amd) the CPU itself is the
//! oracle. On kvm_pvm hosts KVM runs this kernel-mode code in its own
//! instruction emulator: the test still runs there, as a cross-check of two
//! independent implementations. Without a usable /dev/kvm it says why it
//! skips.

use std::sync::Arc;

use cpu::interp::InterpAccelerator;
use cpu::kvm::host::KvmFlavor;
use cpu::kvm::KvmAccelerator;
use cpu::{
    Accelerator, Clock, ClockMode, DescriptorTable, GuestMemory, IoBus, Regs, Segment, Sregs,
    VcpuExit,
};
use iced_x86::code_asm::*;
use vm_memory::{Bytes, GuestAddress};

const RAM: usize = 8 << 20;
const GDT: u64 = 0x500;
const TSS: u64 = 0x600;
const IDT: u64 = 0x1000;
/// Handler `v` is at `HANDLERS + v * 0x80`.
const HANDLERS: u64 = 0x40000;
/// Kernel code under test.
const CODE: u64 = 0x4000;
/// Where the handler writes what it saw: vector, error code, RIP, CS,
/// RFLAGS, RSP, SS, CR2.
const LOG: u64 = 0x8000;
const KSTACK: u64 = 0xa000;
const PML4: u64 = 0x10000;
const PDPT: u64 = 0x11000;
const PD: u64 = 0x12000;
const PT: u64 = 0x13000;
/// A user page (code and stack).
const USER: u64 = 0x20000;
/// Ordinary data pages.
const DATA: u64 = 0x21000;
/// A second frame, for remapping.
const OTHER: u64 = 0x23000;
/// A read-only page.
const RO: u64 = 0x30000;
/// A no-execute page.
const NX: u64 = 0x31000;
/// A not-present page.
const ABSENT: u64 = 0x32000;

/// The case that needs 1 GiB pages (CPUID pdpe1gb).
const ONE_GIB: &str = "a 1 GiB page";
/// Cases that need SMEP / SMAP (CPUID 7.0:EBX bits 7 / 20).
const SMEP_CASE: &str = "SMEP: a supervisor fetch from a user page: #PF 0x11";
const SMAP_CASES: [&str; 2] = [
    "SMAP: a supervisor read of a user page: #PF 1",
    "SMAP: STAC allows the read, CLAC forbids it again",
];

/// The port a finished case writes.
const DONE: u16 = 0x99;

const P: u64 = 1;
const W: u64 = 2;
const U: u64 = 4;
const PS: u64 = 0x80;
const XD: u64 = 1 << 63;

/// Vectors whose exceptions push an error code.
fn has_error_code(v: u8) -> bool {
    matches!(v, 8 | 10..=14 | 17 | 21)
}

/// The end of a case: a write to port `DONE`, then a spin (KVM keeps a
/// HLT in the kernel, so HLT cannot end a run there).
fn finish(a: &mut CodeAssembler) -> Result<(), IcedError> {
    let mut here = a.create_label();
    a.out(DONE as i32, al)?;
    a.set_label(&mut here)?;
    a.jmp(here)
}

/// The handler for vector `v`: log the frame and CR2, then finish.
fn handler(v: u8) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    let ip = HANDLERS + u64::from(v) * 0x80;
    (|| -> Result<(), IcedError> {
        if !has_error_code(v) {
            a.push(0)?;
        }
        a.mov(qword_ptr(LOG), u32::from(v) as i32)?;
        a.pop(rax)?;
        a.mov(qword_ptr(LOG + 8), rax)?;
        for k in 0..5u64 {
            a.mov(rax, qword_ptr(rsp + 8 * k as i32))?;
            a.mov(qword_ptr(LOG + 16 + 8 * k), rax)?;
        }
        a.mov(rax, cr2)?;
        a.mov(qword_ptr(LOG + 56), rax)?;
        finish(&mut a)
    })()
    .unwrap();
    let code = a.assemble(ip).unwrap();
    assert!(code.len() <= 0x80, "handler {v} is {} bytes", code.len());
    code
}

/// Build the machine in `mem`: GDT with a TSS, IDT with a handler per
/// vector, 4-level paging (4 KiB pages below 2 MiB, a 2 MiB page at
/// 2 MiB, a 1 GiB page at 1 GiB onto physical 0), and `code` at `CODE`.
fn machine(mem: &GuestMemory, code: &[u8]) {
    let zero = vec![0u8; RAM];
    mem.write_slice(&zero, GuestAddress(0)).unwrap();
    let gdt: [u64; 7] = [
        0,
        0x00af_9b00_0000_ffff,                            // 0x08 kernel code 64
        0x00cf_9300_0000_ffff,                            // 0x10 kernel data
        0x00cf_f300_0000_ffff,                            // 0x18 user data
        0x00af_fb00_0000_ffff,                            // 0x20 user code 64
        0x0000_8b00_0000_0067 | ((TSS & 0xffffff) << 16), // 0x28 TSS (busy)
        0,
    ];
    for (k, d) in gdt.iter().enumerate() {
        mem.write_obj(*d, GuestAddress(GDT + 8 * k as u64)).unwrap();
    }
    mem.write_obj(KSTACK, GuestAddress(TSS + 4)).unwrap(); // RSP0
    for v in 0..=255u8 {
        let h = HANDLERS + u64::from(v) * 0x80;
        let dpl = if v == 3 || v == 0x40 { 3u64 } else { 0 };
        let lo =
            (h & 0xffff) | (0x08 << 16) | ((0x8e | (dpl << 5)) << 40) | ((h >> 16 & 0xffff) << 48);
        mem.write_obj(lo, GuestAddress(IDT + 16 * u64::from(v)))
            .unwrap();
        mem.write_obj(h >> 32, GuestAddress(IDT + 16 * u64::from(v) + 8))
            .unwrap();
        mem.write_slice(&handler(v), GuestAddress(h)).unwrap();
    }
    mem.write_obj(PDPT | P | W | U, GuestAddress(PML4)).unwrap();
    mem.write_obj(PD | P | W | U, GuestAddress(PDPT)).unwrap();
    mem.write_obj(P | W | PS, GuestAddress(PDPT + 8)).unwrap(); // 1 GiB at 1 GiB -> 0
    mem.write_obj(PT | P | W | U, GuestAddress(PD)).unwrap();
    mem.write_obj(0x20_0000 | P | W | PS, GuestAddress(PD + 8))
        .unwrap(); // 2 MiB page
    for page in 0..512u64 {
        let pa = page << 12;
        let flags = match pa {
            USER => P | W | U,
            RO => P,
            NX => P | W | XD,
            ABSENT => 0,
            _ => P | W,
        };
        mem.write_obj(pa | flags, GuestAddress(PT + 8 * page))
            .unwrap();
    }
    mem.write_slice(code, GuestAddress(CODE)).unwrap();
    mem.write_slice(&user_code(), GuestAddress(USER)).unwrap();
}

fn sregs() -> Sregs {
    let data = Segment::flat(0x10, 0x3, false);
    Sregs {
        cs: Segment::flat(0x08, 0xb, true),
        ds: data,
        es: data,
        fs: data,
        gs: data,
        ss: data,
        tr: Segment {
            base: TSS,
            limit: 0x67,
            selector: 0x28,
            type_: 0xb,
            present: true,
            s: false,
            ..Default::default()
        },
        ldt: Segment {
            unusable: true,
            type_: 2,
            ..Default::default()
        },
        gdt: DescriptorTable {
            base: GDT,
            limit: 0x37,
        },
        idt: DescriptorTable {
            base: IDT,
            limit: 0xfff,
        },
        cr0: 0x8005_0033,
        cr3: PML4,
        cr4: 0x20 | 0x200 | 0x400,
        efer: 0xd01,
        ..Sregs::reset_state()
    }
}

/// No devices; notes the write to `DONE`.
#[derive(Default)]
struct Ports {
    done: std::sync::atomic::AtomicBool,
}

impl IoBus for Ports {
    fn pio_read(&self, _: u32, _: u16, d: &mut [u8]) {
        d.fill(0xff);
    }
    fn pio_write(&self, _: u32, port: u16, _: &[u8]) {
        if port == DONE {
            self.done.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    fn mmio_read(&self, _: u32, _: u64, d: &mut [u8]) {
        d.fill(0xff);
    }
    fn mmio_write(&self, _: u32, _: u64, _: &[u8]) {}
}

/// What a run left: registers, the log and the page tables.
#[derive(Debug, PartialEq)]
struct Outcome {
    regs: Regs,
    log: Vec<u64>,
    tables: Vec<(u64, u64)>,
}

/// Run one case; `Err` when the backend cannot run it at all.
fn run(accel: &dyn Accelerator, mem: &GuestMemory, code: &[u8]) -> Result<Outcome, String> {
    machine(mem, code);
    let mut v = accel.create_vcpu(0, 1).unwrap();
    v.set_cpuid(&accel.supported_cpuid()).unwrap();
    v.set_sregs(&sregs()).unwrap();
    v.set_regs(&Regs {
        rip: CODE,
        rsp: KSTACK,
        rflags: 2,
        rbx: 0x1111,
        rcx: 0x2222,
        ..Default::default()
    })
    .unwrap();
    let ports = Ports::default();
    for _ in 0..10_000 {
        let exit = v.run(&ports).map_err(|e| e.to_string())?;
        assert_eq!(exit, VcpuExit::Continue, "{}", accel.name());
        if ports.done.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
    }
    assert!(ports.done.into_inner(), "{} did not finish", accel.name());
    let log = (0..8)
        .map(|k| mem.read_obj::<u64>(GuestAddress(LOG + 8 * k)).unwrap())
        .collect();
    // Every page-table entry in use, with its A and D bits.
    let mut tables = Vec::new();
    for addr in [PML4, PDPT, PDPT + 8, PD, PD + 8] {
        tables.push((addr, mem.read_obj(GuestAddress(addr)).unwrap()));
    }
    for page in 0..512u64 {
        let addr = PT + 8 * page;
        tables.push((addr, mem.read_obj(GuestAddress(addr)).unwrap()));
    }
    let regs = v.regs().unwrap();
    Ok(Outcome { regs, log, tables })
}

/// The cases: (name, code). Each ends by `finish` or in an exception
/// whose handler logs it and finishes.
fn cases() -> Vec<(&'static str, Vec<u8>)> {
    type Build = fn(&mut CodeAssembler) -> Result<(), IcedError>;
    let list: Vec<(&'static str, Build)> = vec![
        ("read of a not-present page: #PF 0, CR2", |a| {
            a.mov(rax, qword_ptr(ABSENT + 0x10))?;
            finish(a)
        }),
        ("write to a read-only page with CR0.WP: #PF 3", |a| {
            a.mov(rax, 5u64)?;
            a.mov(qword_ptr(RO + 8), rax)?;
            finish(a)
        }),
        ("fetch from a no-execute page: #PF 0x11", |a| {
            a.mov(rax, NX)?;
            a.jmp(rax)
        }),
        ("non-canonical address: #GP 0", |a| {
            a.mov(rax, 0x8000_0000_0000_0000u64)?;
            a.mov(rbx, qword_ptr(rax))?;
            finish(a)
        }),
        ("UD2: #UD", |a| {
            a.add(rbx, rcx)?;
            a.ud2()
        }),
        (
            "divide by zero: #DE with the flags of the instruction before",
            |a| {
                a.mov(rax, 7u64)?;
                a.xor(edx, edx)?;
                a.cmp(rax, rbx)?;
                a.div(rdx)?;
                finish(a)
            },
        ),
        ("INT3: #BP is a trap (RIP after)", |a| {
            a.stc()?;
            a.int3()?;
            finish(a)
        }),
        ("INT 0x40 through a DPL 3 gate", |a| {
            a.std()?;
            a.int(0x40)?;
            finish(a)
        }),
        ("non-present gate: #NP with the IDT error code", |a| {
            // Clear P in vector 6's gate, then UD2.
            a.mov(rax, IDT + 16 * 6 + 5)?;
            a.and(byte_ptr(rax), 0x7f)?;
            a.ud2()
        }),
        ("accessed and dirty bits, a 2 MiB page", |a| {
            a.mov(qword_ptr(DATA + 0x10), rcx)?;
            a.mov(rax, qword_ptr(DATA + 0x1000))?;
            a.mov(rdx, 0x20_0008u64)?;
            a.mov(qword_ptr(rdx), rbx)?;
            a.mov(rsi, qword_ptr(rdx))?;
            finish(a)
        }),
        (ONE_GIB, |a| {
            a.mov(rsi, 0x4000_0000u64 + GDT + 8)?;
            a.mov(rsi, qword_ptr(rsi))?;
            finish(a)
        }),
        ("INVLPG after remapping a page", |a| {
            a.mov(qword_ptr(OTHER), rcx)?;
            a.mov(rax, qword_ptr(DATA))?;
            a.mov(rdx, PT + 8 * (DATA >> 12))?;
            a.mov(rdi, OTHER | P | W)?;
            a.mov(qword_ptr(rdx), rdi)?;
            a.mov(rdi, DATA)?;
            a.invlpg(qword_ptr(rdi))?;
            a.mov(rsi, qword_ptr(DATA))?;
            finish(a)
        }),
        ("CR3 reload after remapping a page", |a| {
            a.mov(qword_ptr(OTHER + 8), rbx)?;
            a.mov(rax, qword_ptr(DATA + 8))?;
            a.mov(rdx, PT + 8 * (DATA >> 12))?;
            a.mov(rdi, OTHER | P | W)?;
            a.mov(qword_ptr(rdx), rdi)?;
            a.mov(rax, cr3)?;
            a.mov(cr3, rax)?;
            a.mov(rsi, qword_ptr(DATA + 8))?;
            finish(a)
        }),
        (SMEP_CASE, |a| {
            a.mov(rax, cr4)?;
            a.or(rax, 1 << 20)?;
            a.mov(cr4, rax)?;
            a.mov(rax, USER)?;
            a.jmp(rax)
        }),
        (SMAP_CASES[0], |a| {
            a.mov(rax, cr4)?;
            a.or(rax, 1 << 21)?;
            a.mov(cr4, rax)?;
            a.mov(rax, qword_ptr(USER + 8))?;
            finish(a)
        }),
        (SMAP_CASES[1], |a| {
            a.mov(rax, cr4)?;
            a.or(rax, 1 << 21)?;
            a.mov(cr4, rax)?;
            a.stac()?;
            a.mov(rsi, qword_ptr(USER + 8))?;
            a.clac()?;
            a.mov(rdi, qword_ptr(USER + 16))?;
            finish(a)
        }),
        (
            "user mode touching a supervisor page: #PF 5 from CPL 3",
            |a| {
                // IRETQ to CPL 3 at USER, whose code reads CODE.
                a.push(0x1bu32 as i32)?;
                a.push((USER + 0x800) as i32)?;
                a.push(0x202u32 as i32)?;
                a.push(0x23u32 as i32)?;
                a.push(USER as i32)?;
                a.iretq()
            },
        ),
    ];
    list.into_iter()
        .map(|(name, build)| {
            let mut a = CodeAssembler::new(64).unwrap();
            build(&mut a).unwrap();
            (name, a.assemble(CODE).unwrap())
        })
        .collect()
}

/// The user-mode part of the last case, placed at `USER`.
fn user_code() -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    a.mov(rax, qword_ptr(CODE)).unwrap();
    finish(&mut a).unwrap();
    a.assemble(USER).unwrap()
}

#[test]
fn paging_exceptions_and_interrupts_match_kvm() {
    let mem = Arc::new(GuestMemory::from_ranges(&[(GuestAddress(0), RAM)]).unwrap());
    if let Err(e) = KvmAccelerator::new(&mem, 24) {
        eprintln!("skipping: no KVM to compare against ({e})");
        return;
    }
    let clock = Arc::new(Clock::new(ClockMode::Host, 1_000_000));
    let interp = InterpAccelerator::new(mem.clone(), clock);
    let flavor = cpu::kvm::host::flavor();
    let mut failures = Vec::new();
    let (mut compared, mut skipped) = (0, 0);
    // 1 GiB pages are compared only where KVM offers them (kvm_pvm does
    // not, and then their PS bit is reserved).
    let kvm_1g = KvmAccelerator::new(&mem, 24)
        .unwrap()
        .supported_cpuid()
        .iter()
        .any(|e| e.function == 0x8000_0001 && e.edx & (1 << 26) != 0);
    // SMEP and SMAP likewise.
    let kvm_leaf7 = KvmAccelerator::new(&mem, 24)
        .unwrap()
        .supported_cpuid()
        .iter()
        .find(|e| e.function == 7 && e.index == 0)
        .map_or(0, |e| e.ebx);
    for (name, code) in cases() {
        if name == ONE_GIB && !kvm_1g {
            eprintln!("{name}: skipped, this KVM has no 1 GiB pages");
            skipped += 1;
            continue;
        }
        let needs = if name == SMEP_CASE {
            1 << 7
        } else if SMAP_CASES.contains(&name) {
            1 << 20
        } else {
            0
        };
        if kvm_leaf7 & needs != needs {
            eprintln!("{name}: skipped, this KVM has no SMEP/SMAP");
            skipped += 1;
            continue;
        }
        let on_interp = run(&interp, &mem, &code).expect("the interpreter runs every case");
        if std::env::var_os("KINDLING_DEBUG_SYSTEM").is_some() {
            eprintln!("{name}: interp {:x?} {:x?}", on_interp.regs, on_interp.log);
        }
        // A VM per case: vCPU 0 exists once per VM.
        let kvm = KvmAccelerator::new(&mem, 24).expect("KVM worked a moment ago");
        let on_kvm = match run(&kvm, &mem, &code) {
            Ok(o) => o,
            // kvm_pvm's instruction emulator lacks some instructions
            // (INT n, IRETQ to user mode, ...): no oracle for this case.
            Err(e) if flavor != KvmFlavor::Hardware => {
                eprintln!("{name}: skipped, {flavor:?} KVM cannot run it: {e}");
                skipped += 1;
                continue;
            }
            Err(e) => panic!("{name}: KVM failed: {e}"),
        };
        compared += 1;
        if on_kvm != on_interp {
            failures.push(format!(
                "{name}:\n  kvm:    {:x?} {:x?}\n  interp: {:x?} {:x?}\n  tables differ: {:x?}",
                on_kvm.regs,
                on_kvm.log,
                on_interp.regs,
                on_interp.log,
                on_kvm
                    .tables
                    .iter()
                    .zip(&on_interp.tables)
                    .filter(|(a, b)| a != b)
                    .collect::<Vec<_>>()
            ));
        }
    }
    eprintln!("system conformance on {flavor:?} KVM: {compared} cases compared, {skipped} skipped");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(compared >= 8, "too few cases compared: {compared}");
}
