//! The x86-64 protection model on the software CPU (Intel SDM vol. 3):
//! privileged instructions at CPL 3, IOPL and the TSS I/O permission
//! bitmap, POPF's IF/IOPL rules, SMEP, SMAP (explicit and implicit
//! accesses, STAC/CLAC, the software TLB), UMIP, CR4.TSD, SYSCALL/SYSRET.
//!
//! Each case runs on a small long-mode machine (`privilege/machine.rs`),
//! through the block engine and step by step, and the test asserts the
//! architecturally defined outcome: the vector, the error code, the RIP
//! of the faulting instruction, and that nothing changed. KVM cannot be
//! the oracle here (kvm_pvm does not run CPL 3 code in its emulator), so
//! the host CPU is: `privileged_instructions_fault_as_on_the_host` runs
//! each instruction at CPL 3 natively (the test process is user mode) and
//! compares the vector (#GP or #UD, and which comes first).

mod conformance;
mod privilege {
    pub mod machine;
}

use cpu::snippet::{SnippetEnd, DATA_BASE};
use iced_x86::code_asm::*;
use privilege::machine::*;

/// CR4.TSD.
const TSD: u64 = 1 << 2;
/// CR4.DE.
const DE: u64 = 1 << 3;
/// CR4.UMIP.
const UMIP: u64 = 1 << 11;
/// CR4.OSXSAVE.
const OSXSAVE: u64 = 1 << 18;
/// CR4.SMEP.
const SMEP: u64 = 1 << 20;
/// CR4.SMAP.
const SMAP: u64 = 1 << 21;
/// RFLAGS.IF, .IOPL (3), .AC.
const IF: u64 = 1 << 9;
const IOPL3: u64 = 3 << 12;
const AC: u64 = 1 << 18;

/// The registers as the machine starts them: RAX, RDX, RCX.
const START_REGS: (u64, u64, u64) = (SENTINEL, SENTINEL + 2, SENTINEL + 1);

/// Asserts `o` is exception `vector` (error code `error` if it has one)
/// raised by the instruction at the mark, with code selector `sel`.
fn assert_fault(name: &str, o: &Outcome, vector: u64, error: u64, sel: u16) {
    assert_eq!(
        (o.vector, o.error, o.rip, o.cs),
        (vector, error, o.mark, u64::from(sel)),
        "{name}: vector, error code, RIP (mark {:#x}), CS",
        o.mark
    );
    assert!(!o.halted, "{name}: halted");
}

/// Asserts the case completed (reached the done gate) with code selector
/// `sel`.
fn assert_done(name: &str, o: &Outcome, sel: u16) {
    assert_eq!(
        (o.vector, o.cs),
        (u64::from(DONE_VECTOR), u64::from(sel)),
        "{name}: should complete (error {:#x} rip {:#x} cr2 {:#x})",
        o.error,
        o.rip,
        o.cr2
    );
}

/// Asserts nothing but the instruction pointer moved: control registers,
/// descriptor tables, MSRs, user memory, ports, IF/IOPL and the registers
/// (`regs`: RAX, RDX, RCX as the case set them before the instruction).
fn assert_unchanged(name: &str, o: &Outcome, base: &Outcome, regs: (u64, u64, u64)) {
    assert_eq!(o.cr, base.cr, "{name}: CR0/CR3/CR4/CR8/EFER changed");
    assert_eq!(o.tables, base.tables, "{name}: GDTR/IDTR/LDTR/TR changed");
    assert_eq!(o.msrs, base.msrs, "{name}: GS bases or STAR changed");
    assert!(o.udata == base.udata, "{name}: user memory changed");
    assert_eq!(o.port_writes, base.port_writes, "{name}: port writes");
    // (The arithmetic flags are the setup instructions' business.)
    let system = IF | IOPL3 | AC | (1 << 8) | (1 << 10);
    assert_eq!(
        o.rflags & system,
        base.rflags & system,
        "{name}: IF, IOPL, AC, TF or DF changed"
    );
    assert_eq!((o.rax, o.rdx, o.rcx), regs, "{name}: RAX/RDX/RCX changed");
    assert_eq!(o.rsp, base.rsp, "{name}: RSP");
}

/// A CPL 3 instruction that must fault: (name, CR4 bits, code, vector,
/// RAX/RDX/RCX at the instruction).
type Denied = (&'static str, u64, Build, u64, (u64, u64, u64));

fn denied_at_cpl3() -> Vec<Denied> {
    let s = START_REGS;
    vec![
        (
            "MOV CR0, RAX",
            0,
            |a, m| {
                a.mov(eax, 0x33)?;
                a.set_label(m)?;
                a.mov(cr0, rax)
            },
            13,
            (0x33, s.1, s.2),
        ),
        (
            "MOV RAX, CR0",
            0,
            |a, m| {
                a.set_label(m)?;
                a.mov(rax, cr0)
            },
            13,
            s,
        ),
        (
            "MOV RAX, CR2",
            0,
            |a, m| {
                a.set_label(m)?;
                a.mov(rax, cr2)
            },
            13,
            s,
        ),
        (
            "MOV CR2, RAX",
            0,
            |a, m| {
                a.set_label(m)?;
                a.mov(cr2, rax)
            },
            13,
            s,
        ),
        (
            "MOV CR3, RAX",
            0,
            |a, m| {
                a.xor(eax, eax)?;
                a.set_label(m)?;
                a.mov(cr3, rax)
            },
            13,
            (0, s.1, s.2),
        ),
        (
            "MOV RAX, CR3",
            0,
            |a, m| {
                a.set_label(m)?;
                a.mov(rax, cr3)
            },
            13,
            s,
        ),
        (
            "MOV CR4, RAX",
            0,
            |a, m| {
                a.xor(eax, eax)?;
                a.set_label(m)?;
                a.mov(cr4, rax)
            },
            13,
            (0, s.1, s.2),
        ),
        (
            "MOV RAX, CR4",
            0,
            |a, m| {
                a.set_label(m)?;
                a.mov(rax, cr4)
            },
            13,
            s,
        ),
        (
            "MOV CR8, RAX",
            0,
            |a, m| {
                a.mov(eax, 0xf)?;
                a.set_label(m)?;
                a.mov(cr8, rax)
            },
            13,
            (0xf, s.1, s.2),
        ),
        (
            "MOV RAX, CR8",
            0,
            |a, m| {
                a.set_label(m)?;
                a.mov(rax, cr8)
            },
            13,
            s,
        ),
        (
            "MOV RAX, CR1 (#UD before #GP)",
            0,
            |a, m| {
                a.set_label(m)?;
                a.db(&[0x0f, 0x20, 0xc8])
            },
            6,
            s,
        ),
        (
            "MOV CR5, RAX (#UD before #GP)",
            0,
            |a, m| {
                a.set_label(m)?;
                a.db(&[0x0f, 0x22, 0xe8])
            },
            6,
            s,
        ),
        (
            "MOV RAX, CR9 (#UD before #GP)",
            0,
            |a, m| {
                a.set_label(m)?;
                a.db(&[0x44, 0x0f, 0x20, 0xc8])
            },
            6,
            s,
        ),
        (
            "MOV DR7, RAX",
            0,
            |a, m| {
                a.set_label(m)?;
                a.mov(dr7, rax)
            },
            13,
            s,
        ),
        (
            "MOV RAX, DR6",
            0,
            |a, m| {
                a.set_label(m)?;
                a.mov(rax, dr6)
            },
            13,
            s,
        ),
        (
            "MOV RAX, DR4 with CR4.DE (#GP before #UD)",
            DE,
            |a, m| {
                a.set_label(m)?;
                a.db(&[0x0f, 0x21, 0xe0])
            },
            13,
            s,
        ),
        (
            "MOV RAX, DR9 (#UD)",
            0,
            |a, m| {
                a.set_label(m)?;
                a.db(&[0x44, 0x0f, 0x21, 0xc8])
            },
            6,
            s,
        ),
        (
            "SWAPGS",
            0,
            |a, m| {
                a.set_label(m)?;
                a.swapgs()
            },
            13,
            s,
        ),
        (
            "WBINVD",
            0,
            |a, m| {
                a.set_label(m)?;
                a.wbinvd()
            },
            13,
            s,
        ),
        (
            "INVD",
            0,
            |a, m| {
                a.set_label(m)?;
                a.invd()
            },
            13,
            s,
        ),
        (
            "CLTS",
            0,
            |a, m| {
                a.set_label(m)?;
                a.clts()
            },
            13,
            s,
        ),
        (
            "LMSW AX",
            0,
            |a, m| {
                a.xor(eax, eax)?;
                a.set_label(m)?;
                a.lmsw(ax)
            },
            13,
            (0, s.1, s.2),
        ),
        (
            "HLT",
            0,
            |a, m| {
                a.set_label(m)?;
                a.hlt()
            },
            13,
            s,
        ),
        (
            "RDMSR IA32_STAR",
            0,
            |a, m| {
                a.mov(ecx, 0xc000_0081u32)?;
                a.set_label(m)?;
                a.rdmsr()
            },
            13,
            (s.0, s.1, 0xc000_0081),
        ),
        (
            "WRMSR IA32_STAR",
            0,
            |a, m| {
                a.mov(ecx, 0xc000_0081u32)?;
                a.xor(eax, eax)?;
                a.xor(edx, edx)?;
                a.set_label(m)?;
                a.wrmsr()
            },
            13,
            (0, 0, 0xc000_0081),
        ),
        (
            "LGDT [user page]",
            0,
            |a, m| {
                a.set_label(m)?;
                a.lgdt(ptr(UDATA))
            },
            13,
            s,
        ),
        (
            "LIDT [user page]",
            0,
            |a, m| {
                a.set_label(m)?;
                a.lidt(ptr(UDATA))
            },
            13,
            s,
        ),
        (
            "LLDT AX (null)",
            0,
            |a, m| {
                a.xor(eax, eax)?;
                a.set_label(m)?;
                a.lldt(ax)
            },
            13,
            (0, s.1, s.2),
        ),
        (
            "LTR AX",
            0,
            |a, m| {
                a.mov(eax, 0x28)?;
                a.set_label(m)?;
                a.ltr(ax)
            },
            13,
            (0x28, s.1, s.2),
        ),
        (
            "INVLPG [user page]",
            0,
            |a, m| {
                a.set_label(m)?;
                a.invlpg(byte_ptr(UDATA))
            },
            13,
            s,
        ),
        (
            "INVPCID (not advertised: #UD)",
            0,
            |a, m| {
                a.mov(eax, 2)?;
                a.set_label(m)?;
                a.invpcid(rax, xmmword_ptr(UDATA))
            },
            6,
            (2, s.1, s.2),
        ),
        (
            "XSETBV with CR4.OSXSAVE",
            OSXSAVE,
            |a, m| {
                a.mov(eax, 3)?;
                a.xor(edx, edx)?;
                a.xor(ecx, ecx)?;
                a.set_label(m)?;
                a.xsetbv()
            },
            13,
            (3, 0, 0),
        ),
        (
            "XSETBV without CR4.OSXSAVE (#UD first)",
            0,
            |a, m| {
                a.mov(eax, 3)?;
                a.xor(edx, edx)?;
                a.xor(ecx, ecx)?;
                a.set_label(m)?;
                a.xsetbv()
            },
            6,
            (3, 0, 0),
        ),
        (
            "RDPMC without CR4.PCE",
            0,
            |a, m| {
                a.xor(ecx, ecx)?;
                a.set_label(m)?;
                a.rdpmc()
            },
            13,
            (s.0, s.1, 0),
        ),
        (
            "MONITOR (#UD at CPL 3)",
            0,
            |a, m| {
                a.set_label(m)?;
                a.monitor()
            },
            6,
            s,
        ),
        (
            "MWAIT (#UD at CPL 3)",
            0,
            |a, m| {
                a.set_label(m)?;
                a.mwait()
            },
            6,
            s,
        ),
        (
            "STAC (#UD at CPL 3)",
            SMAP,
            |a, m| {
                a.set_label(m)?;
                a.stac()
            },
            6,
            s,
        ),
        (
            "CLAC (#UD at CPL 3)",
            SMAP,
            |a, m| {
                a.set_label(m)?;
                a.clac()
            },
            6,
            s,
        ),
        (
            "SYSRETQ",
            0,
            |a, m| {
                a.set_label(m)?;
                a.sysretq()
            },
            13,
            s,
        ),
        (
            "SYSRET (32-bit)",
            0,
            |a, m| {
                a.set_label(m)?;
                a.sysret()
            },
            13,
            s,
        ),
        (
            "CLI at IOPL 0",
            0,
            |a, m| {
                a.set_label(m)?;
                a.cli()
            },
            13,
            s,
        ),
        (
            "STI at IOPL 0",
            0,
            |a, m| {
                a.set_label(m)?;
                a.sti()
            },
            13,
            s,
        ),
        (
            "IN AL, 0x71",
            0,
            |a, m| {
                a.set_label(m)?;
                a.in_(al, 0x71)
            },
            13,
            s,
        ),
        (
            "OUT 0x70, AL",
            0,
            |a, m| {
                a.set_label(m)?;
                a.out(0x70, al)
            },
            13,
            s,
        ),
        (
            "IN EAX, DX",
            0,
            |a, m| {
                a.mov(edx, 0x3f8)?;
                a.set_label(m)?;
                a.in_(eax, dx)
            },
            13,
            (s.0, 0x3f8, s.2),
        ),
        (
            "OUT DX, AX",
            0,
            |a, m| {
                a.mov(edx, 0x3f8)?;
                a.set_label(m)?;
                a.out(dx, ax)
            },
            13,
            (s.0, 0x3f8, s.2),
        ),
        (
            "INSB",
            0,
            |a, m| {
                a.mov(edx, 0x70)?;
                a.mov(edi, UDATA as u32)?;
                a.set_label(m)?;
                a.insb()
            },
            13,
            (s.0, 0x70, s.2),
        ),
        (
            "REP OUTSW",
            0,
            |a, m| {
                a.mov(edx, 0x70)?;
                a.mov(esi, UDATA as u32)?;
                a.mov(ecx, 4)?;
                a.set_label(m)?;
                a.rep().outsw()
            },
            13,
            (s.0, 0x70, 4),
        ),
        (
            "RDTSC with CR4.TSD",
            TSD,
            |a, m| {
                a.set_label(m)?;
                a.rdtsc()
            },
            13,
            s,
        ),
        (
            "RDTSCP with CR4.TSD",
            TSD,
            |a, m| {
                a.set_label(m)?;
                a.rdtscp()
            },
            13,
            s,
        ),
        (
            "SGDT with CR4.UMIP",
            UMIP,
            |a, m| {
                a.set_label(m)?;
                a.sgdt(ptr(UDATA))
            },
            13,
            s,
        ),
        (
            "SIDT with CR4.UMIP",
            UMIP,
            |a, m| {
                a.set_label(m)?;
                a.sidt(ptr(UDATA))
            },
            13,
            s,
        ),
        (
            "SLDT AX with CR4.UMIP",
            UMIP,
            |a, m| {
                a.set_label(m)?;
                a.sldt(ax)
            },
            13,
            s,
        ),
        (
            "SLDT [mem] with CR4.UMIP",
            UMIP,
            |a, m| {
                a.set_label(m)?;
                a.sldt(word_ptr(UDATA))
            },
            13,
            s,
        ),
        (
            "SMSW EAX with CR4.UMIP",
            UMIP,
            |a, m| {
                a.set_label(m)?;
                a.smsw(eax)
            },
            13,
            s,
        ),
        (
            "SMSW [mem] with CR4.UMIP",
            UMIP,
            |a, m| {
                a.set_label(m)?;
                a.smsw(word_ptr(UDATA))
            },
            13,
            s,
        ),
        (
            "STR AX with CR4.UMIP",
            UMIP,
            |a, m| {
                a.set_label(m)?;
                a.str(ax)
            },
            13,
            s,
        ),
    ]
}

/// Every privileged instruction at CPL 3 raises its exception (#GP(0), or
/// #UD where the SDM puts #UD first) at the instruction, and changes
/// nothing: no control register, table register, MSR, memory, port or
/// register, no halt.
#[test]
fn privileged_instructions_fault_at_cpl3_without_side_effects() {
    let list = denied_at_cpl3();
    for (name, bits, user, vector, regs) in &list {
        let case = Case {
            cr4: *bits,
            ..Case::user(name, *user)
        };
        let o = run_both(&case);
        assert_fault(name, &o, *vector, 0, UCS);
        assert_eq!(o.ss, u64::from(USS), "{name}: SS of the frame");
        assert_unchanged(name, &o, &baseline(&case), *regs);
    }
    eprintln!("{} privileged instructions fault at CPL 3", list.len());
}

/// The instructions the SDM allows at CPL 3 still run there: RDTSC,
/// RDTSCP and RDPID without CR4.TSD, RDPID with it, SGDT/SMSW without
/// UMIP (storing the real values), CPUID, and user pages stay usable
/// with SMEP and SMAP on.
#[test]
fn unprivileged_instructions_run_at_cpl3() {
    let tsc = Case::user("RDTSC without CR4.TSD", |a, _| a.rdtsc());
    let o = run_both(&tsc);
    assert_done(tsc.name, &o, UCS);
    assert_ne!((o.rax, o.rdx), (START_REGS.0, START_REGS.1), "RDTSC wrote");
    assert_eq!(o.rax >> 32, 0, "RDTSC zero-extends EAX");

    let rdpid = Case {
        cr4: TSD,
        ..Case::user("RDPID with CR4.TSD", |a, _| a.rdpid(rax))
    };
    let o = run_both(&rdpid);
    assert_done(rdpid.name, &o, UCS);
    assert_eq!(o.rax, 0, "RDPID reads IA32_TSC_AUX (0)");

    let sgdt = Case::user("SGDT without UMIP", |a, _| {
        a.sgdt(ptr(UDATA))?;
        a.smsw(eax)
    });
    let o = run_both(&sgdt);
    assert_done(sgdt.name, &o, UCS);
    assert_eq!(&o.udata[0..2], &0x47u16.to_le_bytes(), "GDT limit");
    assert_eq!(&o.udata[2..10], &GDT.to_le_bytes(), "GDT base");
    assert_eq!(o.rax & 0xffff, 0x0033, "SMSW gives CR0's low bits");

    let user_pages = Case {
        cr4: SMEP | SMAP,
        ..Case::user("user data at CPL 3 with SMEP and SMAP", |a, _| {
            a.mov(rax, qword_ptr(UDATA + 0x10))?;
            a.mov(qword_ptr(UDATA + 0x20), rax)
        })
    };
    let o = run_both(&user_pages);
    assert_done(user_pages.name, &o, UCS);
    let want = u64::from_le_bytes(udata_pattern()[0x10..0x18].try_into().unwrap());
    assert_eq!(o.rax, want, "read of the user page");
    assert_eq!(&o.udata[0x20..0x28], &want.to_le_bytes(), "write");
}

/// IOPL 3: CLI/STI and port I/O are allowed at CPL 3.
#[test]
fn iopl3_allows_cli_sti_and_port_io_at_cpl3() {
    let case = Case {
        user_flags: IOPL3 | IF | 2,
        ..Case::user("IOPL 3", |a, _| {
            a.mov(al, 0x8b)?;
            a.out(0x70, al)?;
            a.in_(al, 0x71)?;
            a.cli()?;
            a.mov(edx, 0x3f8)?;
            a.mov(ecx, 0x1234_5678)?;
            a.xchg(eax, ecx)?;
            a.out(dx, eax)?;
            a.xchg(eax, ecx)
        })
    };
    let o = run_both(&case);
    assert_done(case.name, &o, UCS);
    assert_eq!(
        o.port_writes,
        vec![
            (0x70, vec![0x8b]),
            (0x3f8, 0x1234_5678u32.to_le_bytes().to_vec())
        ]
    );
    assert_eq!(o.rax & 0xff, u64::from(PORT_BYTE), "IN AL, 0x71");
    assert_eq!(o.rflags & (IF | IOPL3), IOPL3, "CLI cleared IF");

    let sti = Case {
        user_flags: IOPL3 | 2,
        ..Case::user("STI at IOPL 3", |a, _| {
            a.sti()?;
            a.nop()
        })
    };
    let o = run_both(&sti);
    assert_done(sti.name, &o, UCS);
    assert_eq!(o.rflags & IF, IF, "STI set IF");
}

/// The TSS I/O permission bitmap: (name, allowed ports, TSS limit, code,
/// whether it is allowed).
type Bitmap = (&'static str, &'static [u16], Option<u32>, Build, bool);

fn bitmap_cases() -> Vec<Bitmap> {
    vec![
        (
            "OUT 0x70, AL with 0x70 allowed",
            &[0x70],
            None,
            |a, m| {
                a.mov(al, 0x0b)?;
                a.set_label(m)?;
                a.out(0x70, al)
            },
            true,
        ),
        (
            "OUT 0x71, AL with only 0x70 allowed",
            &[0x70],
            None,
            |a, m| {
                a.set_label(m)?;
                a.out(0x71, al)
            },
            false,
        ),
        (
            "OUT 0x70, AX straddles into the denied 0x71",
            &[0x70],
            None,
            |a, m| {
                a.set_label(m)?;
                a.out(0x70, ax)
            },
            false,
        ),
        (
            "OUT 0x70, AX with 0x70 and 0x71 allowed",
            &[0x70, 0x71],
            None,
            |a, m| {
                a.set_label(m)?;
                a.out(0x70, ax)
            },
            true,
        ),
        (
            "IN AX, 0x6f with 0x70 allowed (0x6f denied)",
            &[0x70],
            None,
            |a, m| {
                a.set_label(m)?;
                a.in_(ax, 0x6f)
            },
            false,
        ),
        (
            "IN AX, DX at 0x7f..0x80 across a bitmap byte",
            &[0x7f, 0x80],
            None,
            |a, m| {
                a.mov(edx, 0x7f)?;
                a.set_label(m)?;
                a.in_(ax, dx)
            },
            true,
        ),
        (
            "IN AX, DX at 0x7f..0x80 with 0x80 denied",
            &[0x7f],
            None,
            |a, m| {
                a.mov(edx, 0x7f)?;
                a.set_label(m)?;
                a.in_(ax, dx)
            },
            false,
        ),
        (
            "IN EAX, DX at 0xfffc..0xffff",
            &[0xfffc, 0xfffd, 0xfffe, 0xffff],
            None,
            |a, m| {
                a.mov(edx, 0xfffc)?;
                a.set_label(m)?;
                a.in_(eax, dx)
            },
            true,
        ),
        (
            "port 0x70's two bitmap bytes end past the TSS limit",
            &[0x70],
            Some((IOMAP + 0x70 / 8) as u32),
            |a, m| {
                a.set_label(m)?;
                a.out(0x70, al)
            },
            false,
        ),
        (
            "port 0x70's two bitmap bytes end at the TSS limit",
            &[0x70],
            Some((IOMAP + 0x70 / 8 + 1) as u32),
            |a, m| {
                a.set_label(m)?;
                a.out(0x70, al)
            },
            true,
        ),
        (
            "a TSS limit below the I/O map base field",
            &[0x70],
            Some(0x60),
            |a, m| {
                a.set_label(m)?;
                a.out(0x70, al)
            },
            false,
        ),
        (
            "REP OUTSB to an allowed port",
            &[0x70],
            None,
            |a, m| {
                a.mov(edx, 0x70)?;
                a.mov(esi, UDATA as u32)?;
                a.mov(ecx, 3)?;
                a.set_label(m)?;
                a.rep().outsb()
            },
            true,
        ),
        (
            "INSW from allowed ports",
            &[0x70, 0x71],
            None,
            |a, m| {
                a.mov(edx, 0x70)?;
                a.mov(edi, (UDATA + 0x40) as u32)?;
                a.set_label(m)?;
                a.insw()
            },
            true,
        ),
        (
            "INSW with 0x71 denied",
            &[0x70],
            None,
            |a, m| {
                a.mov(edx, 0x70)?;
                a.mov(edi, (UDATA + 0x40) as u32)?;
                a.set_label(m)?;
                a.insw()
            },
            false,
        ),
    ]
}

/// CPL 3 at IOPL 0 consults the TSS I/O permission bitmap: every bit of
/// the access must be clear and the two bytes read inside the TSS limit.
#[test]
fn io_permission_bitmap_allows_and_denies_each_port() {
    let list = bitmap_cases();
    for (name, ports, limit, user, allowed) in &list {
        let case = Case {
            ports,
            tss_limit: *limit,
            ..Case::user(name, *user)
        };
        let o = run_both(&case);
        if *allowed {
            assert_done(name, &o, UCS);
        } else {
            assert_fault(name, &o, 13, 0, UCS);
            assert!(
                o.port_writes.is_empty(),
                "{name}: a denied port was written"
            );
            assert!(o.udata == udata_pattern(), "{name}: memory written");
        }
    }
    // The results of the allowed string forms.
    let (_, ports, _, user, _) = list[list.len() - 3];
    let o = run_both(&Case {
        ports,
        ..Case::user("REP OUTSB", user)
    });
    let p = udata_pattern();
    assert_eq!(
        o.port_writes,
        (0..3).map(|k| (0x70, vec![p[k]])).collect::<Vec<_>>()
    );
    assert_eq!(o.rcx, 0, "REP OUTSB counted RCX down");
    let (_, ports, _, user, _) = list[list.len() - 2];
    let o = run_both(&Case {
        ports,
        ..Case::user("INSW", user)
    });
    assert_eq!(&o.udata[0x40..0x42], &[PORT_BYTE, PORT_BYTE]);
    eprintln!("{} I/O bitmap cases", list.len());
}

/// POPF at CPL 3: IF changes only at CPL <= IOPL, IOPL only at CPL 0; the
/// arithmetic flags always.
#[test]
fn popf_keeps_if_and_iopl_by_privilege() {
    let push_popf: Build = |a, _| {
        a.push(0x3001)?; // CF, IOPL 3, IF clear
        a.popfq()
    };
    let o = run_both(&Case::user("POPF at CPL 3, IOPL 0", push_popf));
    assert_eq!(
        o.rflags & (IF | IOPL3 | 1),
        IF | 1,
        "IF and IOPL kept, CF set"
    );
    let o = run_both(&Case {
        user_flags: IOPL3 | IF | 2,
        ..Case::user("POPF at CPL 3, IOPL 3", |a, _| {
            a.push(0x0001)?; // CF, IOPL 0, IF clear
            a.popfq()
        })
    });
    assert_eq!(
        o.rflags & (IF | IOPL3 | 1),
        IOPL3 | 1,
        "IF cleared, IOPL kept"
    );
    let o = run_both(&Case::kernel("POPF at CPL 0", |a, _| {
        a.push(0x3201)?;
        a.popfq()
    }));
    assert_eq!(o.rflags & (IF | IOPL3 | 1), IOPL3 | IF | 1, "all written");
}

/// SMEP: a supervisor fetch from a user page is a #PF with I/D set.
#[test]
fn smep_stops_supervisor_fetches_from_user_pages() {
    let jump_to_user: Build = |a, _| {
        a.mov(rax, USER)?;
        a.jmp(rax)
    };
    // The user page holds `NOP; INT 0x40`; the kernel jumps there at CPL 0.
    let mut case = Case::user("SMEP", |a, _| a.nop());
    case.kernel = Some(jump_to_user);
    case.cr4 = SMEP;
    let o = run_both(&case);
    assert_eq!(
        (o.vector, o.error, o.rip, o.cs, o.cr2),
        (14, 0x11, USER, u64::from(KCS), USER),
        "SMEP: #PF(P|I/D) at the user page"
    );
    // Without SMEP the kernel runs the user page's code (at CPL 0).
    case.cr4 = 0;
    let o = run_both(&case);
    assert_done("no SMEP", &o, KCS);
    assert_eq!(o.rip, USER + 3, "after NOP; INT 0x40 in the user page");
}

/// A NX user page: a CPL 3 fetch faults with U and I/D.
#[test]
fn nx_user_page_faults_on_fetch() {
    let o = run_both(&Case::user("NX", |a, _| {
        a.mov(rax, UNX)?;
        a.jmp(rax)
    }));
    assert_eq!(
        (o.vector, o.error, o.rip, o.cs, o.cr2),
        (14, 0x15, UNX, u64::from(UCS), UNX)
    );
}

/// SMAP: (name, code, expected (vector, error, CR2) or `None` for done).
type Smap = (&'static str, Build, Option<(u64, u64, u64)>);

fn smap_cases() -> Vec<Smap> {
    vec![
        (
            "read of a user page, AC=0",
            |a, m| {
                a.set_label(m)?;
                a.mov(rax, qword_ptr(UDATA + 0x10))
            },
            Some((14, 1, UDATA + 0x10)),
        ),
        (
            "write to a user page, AC=0",
            |a, m| {
                a.set_label(m)?;
                a.mov(qword_ptr(UDATA + 0x18), rax)
            },
            Some((14, 3, UDATA + 0x18)),
        ),
        (
            "read and write after STAC",
            |a, _| {
                a.stac()?;
                a.mov(rax, qword_ptr(UDATA + 0x10))?;
                a.mov(qword_ptr(UDATA + 0x18), rax)?;
                a.clac()
            },
            None,
        ),
        (
            "AC set by POPF",
            |a, _| {
                a.pushfq()?;
                a.or(qword_ptr(rsp), AC as i32)?;
                a.popfq()?;
                a.mov(rax, qword_ptr(UDATA + 0x10))
            },
            None,
        ),
        (
            "CLAC after a STAC access: the TLB entry must not let it hit",
            |a, m| {
                a.stac()?;
                a.mov(rax, qword_ptr(UDATA + 0x10))?;
                a.mov(qword_ptr(UDATA + 0x18), rax)?;
                a.clac()?;
                a.set_label(m)?;
                a.mov(rax, qword_ptr(UDATA + 0x10))
            },
            Some((14, 1, UDATA + 0x10)),
        ),
        (
            "a string store with AC=0",
            |a, m| {
                a.mov(edi, (UDATA + 0x100) as u32)?;
                a.mov(ecx, 64)?;
                a.set_label(m)?;
                a.rep().stosb()
            },
            Some((14, 3, UDATA + 0x100)),
        ),
        (
            "implicit: an LDT in a user page, even with AC=1",
            |a, m| {
                a.mov(eax, 0x38)?;
                a.lldt(ax)?;
                a.stac()?;
                a.mov(eax, 0x0c)?;
                a.set_label(m)?;
                a.mov(ds, ax)
            },
            Some((14, 1, ULDT + 8)),
        ),
    ]
}

/// SMAP: supervisor data accesses to user pages fault unless RFLAGS.AC is
/// set (STAC, POPF) and the access is explicit; implicit accesses (here a
/// descriptor read from an LDT in a user page) always fault. Without
/// SMAP every case completes.
#[test]
fn smap_stops_supervisor_data_accesses_to_user_pages() {
    let list = smap_cases();
    for (name, kernel, expect) in &list {
        let case = Case {
            cr4: SMAP,
            ..Case::kernel(name, *kernel)
        };
        let o = run_both(&case);
        match expect {
            Some((v, e, addr)) => {
                assert_fault(name, &o, *v, *e, KCS);
                assert_eq!(o.cr2, *addr, "{name}: CR2");
            }
            None => {
                assert_done(name, &o, KCS);
                let want = u64::from_le_bytes(udata_pattern()[0x10..0x18].try_into().unwrap());
                assert_eq!(o.rax, want, "{name}: the read");
            }
        }
        let off = run_both(&Case::kernel(name, *kernel));
        assert_done(&format!("{name}, without SMAP"), &off, KCS);
    }
    eprintln!("{} SMAP cases", list.len());
}

/// STAC/CLAC at CPL 0 set and clear AC.
#[test]
fn stac_and_clac_set_and_clear_ac() {
    let o = run_both(&Case {
        cr4: SMAP,
        ..Case::kernel("STAC", |a, _| a.stac())
    });
    assert_eq!(o.rflags & AC, AC);
    let o = run_both(&Case {
        cr4: SMAP,
        ..Case::kernel("STAC; CLAC", |a, _| {
            a.stac()?;
            a.clac()
        })
    });
    assert_eq!(o.rflags & AC, 0);
}

/// UMIP and TSD leave CPL 0 alone; MOV DR4 with CR4.DE is #UD at CPL 0.
#[test]
fn cr4_controls_leave_cpl0_alone() {
    let o = run_both(&Case {
        cr4: UMIP | TSD,
        ..Case::kernel("SGDT and RDTSC at CPL 0", |a, _| {
            a.sgdt(ptr(KDATA))?;
            a.rdtsc()
        })
    });
    assert_done("SGDT and RDTSC at CPL 0", &o, KCS);
    let o = run_both(&Case {
        cr4: DE,
        ..Case::kernel("MOV RAX, DR4 with CR4.DE", |a, m| {
            a.set_label(m)?;
            a.db(&[0x0f, 0x21, 0xe0])
        })
    });
    assert_fault("MOV RAX, DR4 with CR4.DE", &o, 6, 0, KCS);
    let o = run_both(&Case::kernel("MOV RAX, DR4 without CR4.DE", |a, _| {
        a.db(&[0x0f, 0x21, 0xe0])
    }));
    assert_done("MOV RAX, DR4 without CR4.DE", &o, KCS);
}

/// SYSRET: to 64-bit mode with a non-canonical RCX is #GP(0) delivered at
/// CPL 0 (Intel); with a canonical one it lands at CPL 3 with the STAR
/// selectors and R11's flags. SYSCALL without EFER.SCE is #UD.
#[test]
fn syscall_and_sysret_checks() {
    let o = run_both(&Case::kernel("SYSRETQ to a non-canonical RCX", |a, m| {
        a.mov(rcx, 0x8000_0000_0000_0000u64)?;
        a.mov(r11d, 0x202)?;
        a.set_label(m)?;
        a.sysretq()
    }));
    assert_fault("SYSRETQ non-canonical", &o, 13, 0, KCS);
    assert_eq!(o.rsp, KSTACK, "the fault stays on the kernel stack");
    assert_eq!(o.rcx, 0x8000_0000_0000_0000, "RCX unchanged");

    let mut to_user = Case::user("SYSRETQ to user mode", |a, _| a.nop());
    to_user.kernel = Some(|a, _| {
        a.mov(rcx, USER)?;
        a.mov(r11d, 0x3202)?;
        a.mov(rsp, USTACK + 0x800)?;
        a.sysretq()
    });
    let o = run_both(&to_user);
    assert_done("SYSRETQ", &o, UCS);
    assert_eq!(o.ss, u64::from(USS), "SS from STAR");
    assert_eq!(o.rflags & (IF | IOPL3), IF | IOPL3, "RFLAGS from R11");

    let mut no_sce = Case::user("SYSCALL without EFER.SCE", |a, m| {
        a.set_label(m)?;
        a.syscall()
    });
    no_sce.kernel = Some(|a, _| {
        a.mov(ecx, 0xc000_0080u32)?;
        a.rdmsr()?;
        a.and(eax, !1)?;
        a.wrmsr()?;
        a.mov(rax, SENTINEL)?;
        a.mov(rcx, SENTINEL + 1)
    });
    let o = run_both(&no_sce);
    assert_fault("SYSCALL without SCE", &o, 6, 0, UCS);
}

/// The host CPU as the oracle for which exception comes first: each
/// instruction runs natively at CPL 3 in this process and on the
/// interpreter at CPL 3, and the vectors must match (instructions the
/// host kernel emulates under UMIP, and INVPCID, which the interpreter
/// does not advertise, are left out).
#[test]
fn privileged_instructions_fault_as_on_the_host() {
    type Native = (
        &'static str,
        fn(&mut CodeAssembler) -> Result<(), IcedError>,
    );
    let list: Vec<Native> = vec![
        ("mov cr0, rax", |a| a.mov(cr0, rax)),
        ("mov rax, cr3", |a| a.mov(rax, cr3)),
        ("mov rax, cr1", |a| a.db(&[0x0f, 0x20, 0xc8])),
        ("mov cr7, rax", |a| a.db(&[0x0f, 0x22, 0xf8])),
        ("mov rax, cr9", |a| a.db(&[0x44, 0x0f, 0x20, 0xc8])),
        ("mov cr8, rax", |a| a.mov(cr8, rax)),
        ("mov rax, dr7", |a| a.mov(rax, dr7)),
        ("mov dr0, rax", |a| a.mov(dr0, rax)),
        ("mov rax, dr4", |a| a.db(&[0x0f, 0x21, 0xe0])),
        ("mov rax, dr9", |a| a.db(&[0x44, 0x0f, 0x21, 0xc8])),
        ("swapgs", |a| a.swapgs()),
        ("wbinvd", |a| a.wbinvd()),
        ("invd", |a| a.invd()),
        ("clts", |a| a.clts()),
        ("lmsw ax", |a| a.lmsw(ax)),
        ("hlt", |a| a.hlt()),
        ("rdmsr", |a| a.rdmsr()),
        ("wrmsr", |a| a.wrmsr()),
        ("lgdt [8] (#GP before the memory operand)", |a| {
            a.lgdt(ptr(8))
        }),
        ("lidt [rbx]", |a| a.lidt(ptr(rbx))),
        ("lldt ax", |a| a.lldt(ax)),
        ("ltr ax", |a| a.ltr(ax)),
        ("invlpg [rbx]", |a| a.invlpg(byte_ptr(rbx))),
        ("cli", |a| a.cli()),
        ("sti", |a| a.sti()),
        ("in al, 0x80", |a| a.in_(al, 0x80)),
        ("out dx, eax", |a| a.out(dx, eax)),
        ("insb", |a| a.insb()),
        ("outsb", |a| a.outsb()),
        ("sysretq", |a| a.sysretq()),
        ("sysret (32-bit)", |a| a.sysret()),
        ("stac", |a| a.stac()),
        ("clac", |a| a.clac()),
        ("monitor", |a| a.monitor()),
        ("mwait", |a| a.mwait()),
        ("xsetbv", |a| a.xsetbv()),
        ("rdpmc", |a| a.rdpmc()),
        ("rdtsc", |a| a.rdtsc()),
        ("rdtscp", |a| a.rdtscp()),
        ("rdpid rax", |a| a.rdpid(rax)),
        ("int1 (a #DB, no gate DPL check)", |a| a.int1()),
        ("popfq (IF, IOPL)", |a| {
            a.push(0x3001)?;
            a.popfq()
        }),
    ];
    let mut compared = 0;
    for (name, build) in &list {
        // Natively: RBX, RSI, RDI point at the data buffer, DX = 0x80.
        let code = conformance::asm::asm(*build);
        let mut st = conformance::compare::initial_state();
        st.gprs[2] = 0x80;
        st.gprs[3] = DATA_BASE;
        st.gprs[6] = DATA_BASE;
        st.gprs[7] = DATA_BASE;
        let native = match conformance::native::run_snippet(&code, &mut st) {
            SnippetEnd::Completed => u64::from(DONE_VECTOR),
            SnippetEnd::Exception(v) => u64::from(v),
        };
        // On the interpreter, at CPL 3 with the host's CR4.OSXSAVE.
        let mut case = Case {
            cr4: OSXSAVE,
            ..Case::user(name, |_, _| Ok(()))
        };
        // (A `Build` is a plain fn: pick the body through a static.)
        BUILD.with(|b| b.set(Some(*build)));
        case.user = Some(|a, m| {
            a.mov(edx, 0x80)?;
            a.mov(ebx, UDATA as u32)?;
            a.mov(esi, UDATA as u32)?;
            a.mov(edi, UDATA as u32)?;
            a.set_label(m)?;
            BUILD.with(|b| b.get().expect("a builder"))(a)
        });
        let interp = run_both(&case);
        assert_eq!(
            interp.vector, native,
            "{name}: the interpreter raised vector {} (at {:#x}, mark {:#x}), the host {native}",
            interp.vector, interp.rip, interp.mark
        );
        // (#DB from INT1 is a trap: RIP is past it.)
        if native != u64::from(DONE_VECTOR) && native != 1 {
            assert_eq!(interp.rip, interp.mark, "{name}: RIP of the fault");
        }
        compared += 1;
    }
    eprintln!("{compared} instructions compared with the host at CPL 3");
}

type NativeBuild = fn(&mut CodeAssembler) -> Result<(), IcedError>;

thread_local! {
    static BUILD: std::cell::Cell<Option<NativeBuild>> = const { std::cell::Cell::new(None) };
}
