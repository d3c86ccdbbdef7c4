//! `info registers`: one vCPU's state in QEMU's `x86_cpu_dump_state`
//! layout (64-bit lines when CS is a long-mode code segment, 32-bit ones
//! otherwise; segment caches with their decoded descriptor type).
//!
//! The snapshot the board takes holds the general, segment, control and
//! descriptor-table registers; the debug, x87 and SSE lines QEMU adds
//! need vCPU accessors the backends do not have yet, so they are left out.

use std::fmt::Write;

use cpu::{Regs, Segment, Sregs};

const CR0_PE: u64 = 1;
const EFER_LMA: u64 = 1 << 10;

/// The descriptor flag word QEMU prints for a segment (high dword bits
/// 8-23, with the limit's top nibble as the descriptor holds it).
pub fn segment_flags(s: &Segment) -> u32 {
    let raw_limit = if s.g { s.limit >> 12 } else { s.limit };
    let mut f = u32::from(s.type_ & 0xf) << 8;
    f |= (raw_limit >> 16 & 0xf) << 16;
    f |= u32::from(s.s) << 12;
    f |= u32::from(s.dpl & 3) << 13;
    f |= u32::from(s.present) << 15;
    f |= u32::from(s.avl) << 20;
    f |= u32::from(s.l) << 21;
    f |= u32::from(s.db) << 22;
    f |= u32::from(s.g) << 23;
    f
}

fn flag_letters(rflags: u64) -> String {
    let bits = [
        (11, 'O'),
        (10, 'D'),
        (7, 'S'),
        (6, 'Z'),
        (4, 'A'),
        (2, 'P'),
        (0, 'C'),
    ];
    bits.iter()
        .map(|(b, c)| if rflags & (1 << b) != 0 { *c } else { '-' })
        .collect()
}

/// Whether the vCPU runs 64-bit code (QEMU's `HF_CS64`).
pub fn cs64(s: &Sregs) -> bool {
    s.efer & EFER_LMA != 0 && s.cs.l
}

/// QEMU's names for system descriptor types, legacy and long mode.
const SYS_TYPES: [[&str; 16]; 2] = [
    [
        "Reserved",
        "TSS16-avl",
        "LDT",
        "TSS16-busy",
        "CallGate16",
        "TaskGate",
        "IntGate16",
        "TrapGate16",
        "Reserved",
        "TSS32-avl",
        "Reserved",
        "TSS32-busy",
        "CallGate32",
        "Reserved",
        "IntGate32",
        "TrapGate32",
    ],
    [
        "<hiword>",
        "Reserved",
        "LDT",
        "Reserved",
        "Reserved",
        "Reserved",
        "Reserved",
        "Reserved",
        "Reserved",
        "TSS64-avl",
        "Reserved",
        "TSS64-busy",
        "CallGate64",
        "Reserved",
        "IntGate64",
        "TrapGate64",
    ],
];

fn segment_line(o: &mut String, name: &str, seg: &Segment, s: &Sregs) {
    let flags = segment_flags(seg);
    if cs64(s) {
        let _ = write!(
            o,
            "{name:<3}={:04x} {:016x} {:08x} {:08x}",
            seg.selector, seg.base, seg.limit, flags
        );
    } else {
        let _ = write!(
            o,
            "{name:<3}={:04x} {:08x} {:08x} {:08x}",
            seg.selector, seg.base as u32, seg.limit, flags
        );
    }
    if s.cr0 & CR0_PE != 0 && seg.present {
        let _ = write!(o, " DPL={} ", seg.dpl & 3);
        if seg.s {
            let t = seg.type_;
            if t & 8 != 0 {
                o.push_str(if seg.l {
                    "CS64"
                } else if seg.db {
                    "CS32"
                } else {
                    "CS16"
                });
                o.push_str(if t & 4 != 0 { " [C" } else { " [-" });
                o.push(if t & 2 != 0 { 'R' } else { '-' });
            } else {
                o.push_str(if seg.db || s.efer & EFER_LMA != 0 {
                    "DS  "
                } else {
                    "DS16"
                });
                o.push_str(if t & 4 != 0 { " [E" } else { " [-" });
                o.push(if t & 2 != 0 { 'W' } else { '-' });
            }
            o.push_str(if t & 1 != 0 { "A]" } else { "-]" });
        } else {
            let long = usize::from(s.efer & EFER_LMA != 0);
            o.push_str(SYS_TYPES[long][usize::from(seg.type_ & 0xf)]);
        }
    }
    o.push('\n');
}

/// `info registers` for one vCPU, lines ending in `\n`.
pub fn info_registers(r: &Regs, s: &Sregs, halted: bool) -> String {
    let mut o = String::new();
    let tail = format!(
        "[{}] CPL={} II=0 A20=1 SMM=0 HLT={}",
        flag_letters(r.rflags),
        s.cs.dpl & 3,
        u8::from(halted)
    );
    if cs64(s) {
        let _ = writeln!(
            o,
            "RAX={:016x} RBX={:016x} RCX={:016x} RDX={:016x}",
            r.rax, r.rbx, r.rcx, r.rdx
        );
        let _ = writeln!(
            o,
            "RSI={:016x} RDI={:016x} RBP={:016x} RSP={:016x}",
            r.rsi, r.rdi, r.rbp, r.rsp
        );
        let _ = writeln!(
            o,
            "R8 ={:016x} R9 ={:016x} R10={:016x} R11={:016x}",
            r.r8, r.r9, r.r10, r.r11
        );
        let _ = writeln!(
            o,
            "R12={:016x} R13={:016x} R14={:016x} R15={:016x}",
            r.r12, r.r13, r.r14, r.r15
        );
        let _ = writeln!(o, "RIP={:016x} RFL={:08x} {tail}", r.rip, r.rflags);
    } else {
        let _ = writeln!(
            o,
            "EAX={:08x} EBX={:08x} ECX={:08x} EDX={:08x}",
            r.rax as u32, r.rbx as u32, r.rcx as u32, r.rdx as u32
        );
        let _ = writeln!(
            o,
            "ESI={:08x} EDI={:08x} EBP={:08x} ESP={:08x}",
            r.rsi as u32, r.rdi as u32, r.rbp as u32, r.rsp as u32
        );
        let _ = writeln!(o, "EIP={:08x} EFL={:08x} {tail}", r.rip as u32, r.rflags);
    }
    for (name, seg) in [
        ("ES", &s.es),
        ("CS", &s.cs),
        ("SS", &s.ss),
        ("DS", &s.ds),
        ("FS", &s.fs),
        ("GS", &s.gs),
        ("LDT", &s.ldt),
        ("TR", &s.tr),
    ] {
        segment_line(&mut o, name, seg, s);
    }
    if s.efer & EFER_LMA != 0 {
        let _ = writeln!(o, "GDT=     {:016x} {:08x}", s.gdt.base, s.gdt.limit);
        let _ = writeln!(o, "IDT=     {:016x} {:08x}", s.idt.base, s.idt.limit);
        let _ = writeln!(
            o,
            "CR0={:08x} CR2={:016x} CR3={:016x} CR4={:08x}",
            s.cr0 as u32, s.cr2, s.cr3, s.cr4 as u32
        );
    } else {
        let _ = writeln!(o, "GDT=     {:08x} {:08x}", s.gdt.base as u32, s.gdt.limit);
        let _ = writeln!(o, "IDT=     {:08x} {:08x}", s.idt.base as u32, s.idt.limit);
        let _ = writeln!(
            o,
            "CR0={:08x} CR2={:08x} CR3={:08x} CR4={:08x}",
            s.cr0 as u32, s.cr2 as u32, s.cr3 as u32, s.cr4 as u32
        );
    }
    let _ = writeln!(o, "EFER={:016x}", s.efer);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_state_prints_like_qemu() {
        let r = Regs {
            rip: 0xfff0,
            rflags: 0x2,
            ..Default::default()
        };
        let s = Sregs::reset_state();
        let t = info_registers(&r, &s, false);
        assert!(t.starts_with("EAX=00000000 EBX=00000000"), "{t}");
        assert!(t.contains("EIP=0000fff0 EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0"));
        assert!(t.contains("\nCS =f000 ffff0000 0000ffff 00009b00\n"), "{t}");
        assert!(t.contains("\nDS =0000 00000000 0000ffff 00009300\n"), "{t}");
        assert!(t.contains("\nLDT=0000 00000000 0000ffff 00008200\n"), "{t}");
        assert!(t.contains("CR0=60000010"));
    }

    #[test]
    fn protected_mode_segments_are_described() {
        let r = Regs::default();
        let mut s = Sregs::reset_state();
        s.cr0 |= CR0_PE;
        s.cs = Segment::flat(8, 0xb, false);
        s.ds = Segment::flat(0x10, 0x3, false);
        let t = info_registers(&r, &s, true);
        assert!(
            t.contains("CS =0008 00000000 ffffffff 00cf9b00 DPL=0 CS32 [-RA]\n"),
            "{t}"
        );
        assert!(
            t.contains("DS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]\n"),
            "{t}"
        );
        assert!(
            t.contains("LDT=0000 00000000 0000ffff 00008200 DPL=0 LDT\n"),
            "{t}"
        );
        assert!(t.contains("HLT=1"));
    }

    #[test]
    fn long_mode_uses_64_bit_lines() {
        let r = Regs {
            rip: 0xffff_ffff_8100_0000,
            ..Default::default()
        };
        let mut s = Sregs::reset_state();
        s.cr0 |= CR0_PE | (1 << 31);
        s.efer = EFER_LMA | (1 << 8);
        s.cs = Segment::flat(0x10, 0xb, true);
        let t = info_registers(&r, &s, false);
        assert!(t.starts_with("RAX=0000000000000000 RBX="), "{t}");
        assert!(t.contains("RIP=ffffffff81000000 RFL="), "{t}");
        assert!(t.contains("CS64 [-RA]"), "{t}");
        assert!(
            t.contains("TR =0000 0000000000000000 0000ffff 00008b00 DPL=0 TSS64-busy"),
            "{t}"
        );
    }

    #[test]
    fn flag_letters_follow_qemu_order() {
        assert_eq!(flag_letters(0x2 | 1 | (1 << 6) | (1 << 11)), "O--Z--C");
        assert_eq!(flag_letters(0x2), "-------");
    }
}
