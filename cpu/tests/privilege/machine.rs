//! A small long-mode machine for privilege tests on the software CPU:
//! a GDT with kernel and user segments and a 64-bit TSS with a full I/O
//! permission bitmap, an IDT whose handlers log the exception frame, and
//! 4-level paging with user and supervisor pages. A case's kernel code
//! runs at CPL 0, sets CR4 bits, then (for user cases) IRETQs to its user
//! code at CPL 3. Every case ends in a handler: an exception's, or that of
//! `INT 0x40` (the "done" gate, DPL 3) that the builder appends.
//!
//! Each case runs twice, through the block engine and one instruction at
//! a time, and both runs must leave the same state (the block engine may
//! not bypass a check).

use std::sync::{Arc, Mutex};

use cpu::interp::cpu::{Cpu, Stop};
use cpu::interp::state::Seg;
use cpu::{Clock, ClockMode, GuestMemory, IoBus, Segment};
use iced_x86::code_asm::*;
use iced_x86::BlockEncoderOptions;
use vm_memory::{Bytes, GuestAddress};

const RAM: usize = 4 << 20;
/// GDT: null, kernel code 0x08, kernel data 0x10, user data 0x18, user
/// code 0x20 (the SYSRET layout with STAR[63:48] = 0x10), TSS 0x28, an
/// LDT 0x38 whose table is in the user page at [`ULDT`].
pub const GDT: u64 = 0x500;
/// IDT (256 16-byte gates).
pub const IDT: u64 = 0x1000;
/// The 64-bit TSS; its I/O bitmap follows at `TSS + IOMAP`.
pub const TSS: u64 = 0x2000;
/// Offset of the I/O bitmap in the TSS (the value at TSS+0x66).
pub const IOMAP: u64 = 0x68;
/// The TSS limit: the whole 8 KiB bitmap plus its terminating 0xff byte.
pub const TSS_LIMIT: u32 = (IOMAP + 0x2000) as u32;
/// The handler's log: vector, error code, RIP, CS, RFLAGS, RSP, SS, CR2,
/// then RAX, RDX, RCX as the handler found them.
pub const LOG: u64 = 0x5000;
/// The kernel stack top (TSS.RSP0).
pub const KSTACK: u64 = 0x7000;
/// Kernel code of a case.
pub const CODE: u64 = 0x8000;
/// Supervisor data.
pub const KDATA: u64 = 0x9000;
/// Page tables.
const PML4: u64 = 0x10000;
const PDPT: u64 = 0x11000;
const PD: u64 = 0x12000;
const PT: u64 = 0x13000;
/// User code (U, W).
pub const USER: u64 = 0x20000;
/// User stack page; the user RSP starts at its end.
pub const USTACK: u64 = 0x21000;
/// User data (U, W).
pub const UDATA: u64 = 0x23000;
/// The LDT the GDT's selector 0x38 describes (in the user data page);
/// its entry 1 (selector 0x0c) is a flat data segment.
pub const ULDT: u64 = UDATA + 0x800;
/// A user page that is not executable (U, W, XD).
pub const UNX: u64 = 0x24000;
/// Handler for vector `v` at `HANDLERS + v * HANDLER_SIZE`.
const HANDLERS: u64 = 0x40000;
const HANDLER_SIZE: u64 = 0x100;
/// The port a handler writes when the case is over.
const DONE: u16 = 0x99;
/// The "done" vector (a DPL 3 interrupt gate).
pub const DONE_VECTOR: u8 = 0x40;
/// Selectors.
pub const KCS: u16 = 0x08;
/// User code selector (RPL 3).
pub const UCS: u16 = 0x23;
/// User stack selector (RPL 3).
pub const USS: u16 = 0x1b;
/// Initial RAX..R15 (RSP is set by the machine): recognisable values.
pub const SENTINEL: u64 = 0x5e47_1e00;
/// The value port reads return: `PORT_BYTE` in every byte.
pub const PORT_BYTE: u8 = 0xa5;

const P: u64 = 1;
const W: u64 = 2;
const U: u64 = 4;
const XD: u64 = 1 << 63;

/// Code builder: emits instructions and places `mark` before the
/// instruction under test.
pub type Build = fn(&mut CodeAssembler, &mut CodeLabel) -> Result<(), IcedError>;

/// One case.
#[derive(Clone)]
pub struct Case {
    /// What it checks.
    pub name: &'static str,
    /// CR4 bits the kernel sets first.
    pub cr4: u64,
    /// RFLAGS for CPL 3 (IOPL, IF, AC); ignored for kernel-only cases.
    pub user_flags: u64,
    /// Ports whose bitmap bits are cleared (allowed).
    pub ports: &'static [u16],
    /// A TSS limit other than [`TSS_LIMIT`].
    pub tss_limit: Option<u32>,
    /// Kernel code (CPL 0), run before going to user mode.
    pub kernel: Option<Build>,
    /// User code (CPL 3); `None`: the case stays at CPL 0.
    pub user: Option<Build>,
}

impl Case {
    /// A CPL 3 case with IF set and nothing else.
    pub fn user(name: &'static str, user: Build) -> Case {
        Case {
            name,
            cr4: 0,
            user_flags: 0x202,
            ports: &[],
            tss_limit: None,
            kernel: None,
            user: Some(user),
        }
    }

    /// A CPL 0 case.
    pub fn kernel(name: &'static str, kernel: Build) -> Case {
        Case {
            user: None,
            kernel: Some(kernel),
            ..Case::user(name, |_, _| Ok(()))
        }
    }
}

/// What a run left behind.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Vector of the handler that ended the case.
    pub vector: u64,
    /// Its error code (0 for vectors without one).
    pub error: u64,
    /// RIP, CS, RFLAGS, RSP, SS of the frame.
    pub rip: u64,
    /// CS of the frame.
    pub cs: u64,
    /// RFLAGS of the frame.
    pub rflags: u64,
    /// RSP of the frame.
    pub rsp: u64,
    /// SS of the frame.
    pub ss: u64,
    /// CR2 when the handler ran.
    pub cr2: u64,
    /// RAX, RDX, RCX when the handler ran.
    pub rax: u64,
    /// RDX.
    pub rdx: u64,
    /// RCX.
    pub rcx: u64,
    /// The address of the `mark` label (the instruction under test).
    pub mark: u64,
    /// Whether the CPU halted.
    pub halted: bool,
    /// Port writes seen: (port, bytes).
    pub port_writes: Vec<(u16, Vec<u8>)>,
    /// CR0, CR3, CR4, CR8, EFER at the end.
    pub cr: [u64; 5],
    /// GDTR, IDTR, LDTR selector, TR selector at the end.
    pub tables: (u64, u16, u64, u16, u16, u16),
    /// GS base and KERNEL_GS_BASE, IA32_STAR at the end.
    pub msrs: [u64; 3],
    /// The user data page at the end.
    pub udata: Vec<u8>,
}

/// Ports: records writes, reads give [`PORT_BYTE`]s, notes `DONE`.
#[derive(Default)]
struct Ports {
    writes: Mutex<Vec<(u16, Vec<u8>)>>,
    done: std::sync::atomic::AtomicBool,
}

impl IoBus for Ports {
    fn pio_read(&self, _: u32, _: u16, d: &mut [u8]) {
        d.fill(PORT_BYTE);
    }
    fn pio_write(&self, _: u32, port: u16, d: &[u8]) {
        if port == DONE {
            self.done.store(true, std::sync::atomic::Ordering::SeqCst);
        } else {
            self.writes.lock().unwrap().push((port, d.to_vec()));
        }
    }
    fn mmio_read(&self, _: u32, _: u64, d: &mut [u8]) {
        d.fill(0xff);
    }
    fn mmio_write(&self, _: u32, _: u64, _: &[u8]) {}
}

fn has_error_code(v: u8) -> bool {
    matches!(v, 8 | 10..=14 | 17 | 21)
}

/// Handler `v`: log RAX, RDX, RCX, the frame and CR2, then write `DONE`
/// and spin.
fn handler(v: u8) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    let ip = HANDLERS + u64::from(v) * HANDLER_SIZE;
    (|| -> Result<(), IcedError> {
        a.mov(qword_ptr(LOG + 64), rax)?;
        a.mov(qword_ptr(LOG + 72), rdx)?;
        a.mov(qword_ptr(LOG + 80), rcx)?;
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
        let mut here = a.create_label();
        a.out(DONE as i32, al)?;
        a.set_label(&mut here)?;
        a.jmp(here)
    })()
    .unwrap();
    let code = a.assemble(ip).unwrap();
    assert!(code.len() as u64 <= HANDLER_SIZE, "handler {v}");
    code
}

/// Assemble `build` at `ip`; returns the code and the `mark` address
/// (`ip` if the builder placed no mark).
fn assemble(ip: u64, build: impl FnOnce(&mut CodeAssembler, &mut CodeLabel)) -> (Vec<u8>, u64) {
    let mut a = CodeAssembler::new(64).unwrap();
    let mut mark = a.create_label();
    build(&mut a, &mut mark);
    let r = a
        .assemble_options(ip, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)
        .unwrap();
    let at = r.label_ip(&mark).unwrap_or(ip);
    (r.inner.code_buffer, at)
}

/// A long-mode CPU at CPL 0 on `mem`, with the machine's tables.
fn cpu(mem: &Arc<GuestMemory>) -> Cpu {
    let clock = Arc::new(Clock::new(
        ClockMode::InstructionCounted { shift: 0 },
        1_000_000,
    ));
    let mut c = Cpu::new(0, mem.clone(), clock);
    let st = &mut c.st;
    let data = Segment::flat(0x10, 0x3, false);
    st.seg = [data, Segment::flat(KCS, 0xb, true), data, data, data, data];
    st.tr = Segment {
        base: TSS,
        limit: TSS_LIMIT,
        selector: 0x28,
        type_: 0xb,
        present: true,
        s: false,
        ..Default::default()
    };
    st.ldtr = Segment {
        unusable: true,
        type_: 2,
        ..Default::default()
    };
    st.gdtr = (GDT, 0x47);
    st.idtr = (IDT, 0xfff);
    st.cr0 = 0x8005_0033;
    st.cr3 = PML4;
    st.cr4 = 0x20 | 0x200 | 0x400;
    st.efer = 0xd01;
    st.msr.star = (0x10u64 << 48) | (u64::from(KCS) << 32);
    st.msr.lstar = KDATA;
    st.msr.fmask = 0x4_0700;
    st.msr.kernel_gs_base = 0x6b67_7362;
    st.seg[Seg::Gs as usize].base = 0x6773_6261;
    st.gpr = [SENTINEL; 16];
    for (k, g) in st.gpr.iter_mut().enumerate() {
        *g += k as u64;
    }
    st.gpr[4] = KSTACK;
    st.rip = CODE;
    st.rflags = 2;
    c
}

/// Lay out memory for `case`: tables, handlers, the case's code.
fn machine(mem: &GuestMemory, case: &Case) -> u64 {
    mem.write_slice(&vec![0u8; RAM], GuestAddress(0)).unwrap();
    let tss_desc_lo = (u64::from(case.tss_limit.unwrap_or(TSS_LIMIT)) & 0xffff)
        | ((TSS & 0xff_ffff) << 16)
        | (0x8bu64 << 40)
        | ((u64::from(case.tss_limit.unwrap_or(TSS_LIMIT)) >> 16 & 0xf) << 48);
    let ldt_lo = 0xff | ((ULDT & 0xff_ffff) << 16) | (0x82u64 << 40) | ((ULDT >> 24) << 56);
    let gdt: [u64; 9] = [
        0,
        0x00af_9b00_0000_ffff, // 0x08 kernel code 64
        0x00cf_9300_0000_ffff, // 0x10 kernel data
        0x00cf_f300_0000_ffff, // 0x18 user data
        0x00af_fb00_0000_ffff, // 0x20 user code 64
        tss_desc_lo,           // 0x28 TSS (busy), 16 bytes
        0,
        ldt_lo, // 0x38 LDT, 16 bytes
        0,
    ];
    for (k, d) in gdt.iter().enumerate() {
        mem.write_obj(*d, GuestAddress(GDT + 8 * k as u64)).unwrap();
    }
    mem.write_obj(KSTACK, GuestAddress(TSS + 4)).unwrap();
    mem.write_obj(IOMAP as u16, GuestAddress(TSS + 0x66))
        .unwrap();
    // Every port denied, then the case's ports allowed; the byte after
    // the bitmap is all ones.
    mem.write_slice(&[0xffu8; 0x2001], GuestAddress(TSS + IOMAP))
        .unwrap();
    for &port in case.ports {
        let at = GuestAddress(TSS + IOMAP + u64::from(port / 8));
        let b: u8 = mem.read_obj(at).unwrap();
        mem.write_obj(b & !(1u8 << (port % 8)), at).unwrap();
    }
    for v in 0..=255u8 {
        let h = HANDLERS + u64::from(v) * HANDLER_SIZE;
        let dpl = if v == DONE_VECTOR { 3u64 } else { 0 };
        let lo = (h & 0xffff)
            | (u64::from(KCS) << 16)
            | ((0x8e | (dpl << 5)) << 40)
            | ((h >> 16 & 0xffff) << 48);
        mem.write_obj(lo, GuestAddress(IDT + 16 * u64::from(v)))
            .unwrap();
        mem.write_obj(h >> 32, GuestAddress(IDT + 16 * u64::from(v) + 8))
            .unwrap();
        mem.write_slice(&handler(v), GuestAddress(h)).unwrap();
    }
    mem.write_obj(PDPT | P | W | U, GuestAddress(PML4)).unwrap();
    mem.write_obj(PD | P | W | U, GuestAddress(PDPT)).unwrap();
    mem.write_obj(PT | P | W | U, GuestAddress(PD)).unwrap();
    for page in 0..512u64 {
        let pa = page << 12;
        let flags = match pa {
            USER | USTACK | UDATA => P | W | U,
            UNX => P | W | U | XD,
            _ => P | W,
        };
        mem.write_obj(pa | flags, GuestAddress(PT + 8 * page))
            .unwrap();
    }
    // The user page holds a recognisable pattern (and the LDT).
    mem.write_slice(&udata_pattern(), GuestAddress(UDATA))
        .unwrap();
    let mut mark = 0;
    let (kcode, kmark) = assemble(CODE, |a, m| {
        (|| -> Result<(), IcedError> {
            if case.cr4 != 0 {
                a.mov(rax, cr4)?;
                a.or(rax, case.cr4 as i32)?;
                a.mov(cr4, rax)?;
                a.mov(rax, SENTINEL)?;
            }
            if let Some(k) = case.kernel {
                k(a, m)?;
            }
            if case.user.is_some() {
                a.push(i32::from(USS))?;
                a.push((USTACK + 0x1000) as i32)?;
                a.push(case.user_flags as i32)?;
                a.push(i32::from(UCS))?;
                a.push(USER as i32)?;
                a.iretq()?;
            } else {
                a.int(u32::from(DONE_VECTOR))?;
            }
            Ok(())
        })()
        .unwrap()
    });
    mem.write_slice(&kcode, GuestAddress(CODE)).unwrap();
    if case.kernel.is_some() {
        mark = kmark;
    }
    if let Some(u) = case.user {
        let (ucode, umark) = assemble(USER, |a, m| {
            (|| -> Result<(), IcedError> {
                u(a, m)?;
                a.int(u32::from(DONE_VECTOR))
            })()
            .unwrap()
        });
        mem.write_slice(&ucode, GuestAddress(USER)).unwrap();
        mark = umark;
    }
    mark
}

/// Run `case` on a fresh CPU; `blocks`: through the block engine, else
/// one instruction at a time.
pub fn run(case: &Case, blocks: bool) -> Outcome {
    let mem = Arc::new(GuestMemory::from_ranges(&[(GuestAddress(0), RAM)]).unwrap());
    let mark = machine(&mem, case);
    let mut c = cpu(&mem);
    c.st.tr.limit = case.tss_limit.unwrap_or(TSS_LIMIT);
    let ports = Ports::default();
    c.attach_io(Some(&ports));
    let mut halted = false;
    for _ in 0..100_000 {
        let r = if blocks {
            c.step_block(64, false).1
        } else {
            c.step()
        };
        match r {
            Ok((Some(Stop::Halt), _)) => {
                halted = true;
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("{}: {e:?}", case.name),
        }
        if ports.done.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
    }
    c.attach_io(None);
    assert!(
        halted || ports.done.load(std::sync::atomic::Ordering::SeqCst),
        "{}: did not finish",
        case.name
    );
    let log: Vec<u64> = (0..11)
        .map(|k| mem.read_obj::<u64>(GuestAddress(LOG + 8 * k)).unwrap())
        .collect();
    let mut udata = vec![0u8; 0x1000];
    mem.read_slice(&mut udata, GuestAddress(UDATA)).unwrap();
    let st = &c.st;
    Outcome {
        vector: log[0],
        error: log[1],
        rip: log[2],
        cs: log[3],
        rflags: log[4],
        rsp: log[5],
        ss: log[6],
        cr2: log[7],
        rax: log[8],
        rdx: log[9],
        rcx: log[10],
        mark,
        halted,
        port_writes: ports.writes.into_inner().unwrap(),
        cr: [st.cr0, st.cr3, st.cr4, st.cr8, st.efer],
        tables: (
            st.gdtr.0,
            st.gdtr.1,
            st.idtr.0,
            st.idtr.1,
            st.ldtr.selector,
            st.tr.selector,
        ),
        msrs: [
            st.seg[Seg::Gs as usize].base,
            st.msr.kernel_gs_base,
            st.msr.star,
        ],
        udata,
    }
}

/// Run `case` through the block engine and step by step; both must agree.
pub fn run_both(case: &Case) -> Outcome {
    let a = run(case, true);
    let b = run(case, false);
    assert_eq!(a, b, "{}: block engine and single steps differ", case.name);
    a
}

/// The state a case starts from, for "nothing changed" checks: a run of
/// the same machine whose user code is only the done gate.
pub fn baseline(case: &Case) -> Outcome {
    let mut quiet = case.clone();
    quiet.user = Some(|_, _| Ok(()));
    run(&quiet, false)
}

/// The user data page as the machine starts it.
pub fn udata_pattern() -> Vec<u8> {
    let mut p: Vec<u8> = (0..0x1000u32).map(|k| (k * 7 + 3) as u8).collect();
    p[0x808..0x810].copy_from_slice(&0x00cf_9300_0000_ffffu64.to_le_bytes());
    p
}
