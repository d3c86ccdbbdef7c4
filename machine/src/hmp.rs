//! Text output of the HMP commands people type most, in QEMU's layout.

use std::fmt::Write;

use cpu::{Regs, Segment, Sregs};

/// The descriptor flag word QEMU prints for a segment (high dword bits 8-23).
fn segment_flags(s: &Segment) -> u32 {
    let mut f = u32::from(s.type_ & 0xf) << 8;
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

/// `info registers` for one vCPU (64-bit layout, as QEMU prints for x86_64).
pub fn info_registers(r: &Regs, s: &Sregs, halted: bool) -> String {
    let mut o = String::new();
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
    let _ = writeln!(
        o,
        "RIP={:016x} RFL={:08x} [{}] CPL={} II=0 A20=1 SMM=0 HLT={}",
        r.rip,
        r.rflags,
        flag_letters(r.rflags),
        s.cs.dpl & 3,
        u8::from(halted)
    );
    for (name, seg) in [
        ("ES =", &s.es),
        ("CS =", &s.cs),
        ("SS =", &s.ss),
        ("DS =", &s.ds),
        ("FS =", &s.fs),
        ("GS =", &s.gs),
        ("LDT=", &s.ldt),
        ("TR =", &s.tr),
    ] {
        let _ = writeln!(
            o,
            "{name}{:04x} {:016x} {:08x} {:08x}",
            seg.selector,
            seg.base,
            seg.limit,
            segment_flags(seg)
        );
    }
    let _ = writeln!(o, "GDT=     {:016x} {:08x}", s.gdt.base, s.gdt.limit);
    let _ = writeln!(o, "IDT=     {:016x} {:08x}", s.idt.base, s.idt.limit);
    let _ = writeln!(
        o,
        "CR0={:08x} CR2={:016x} CR3={:016x} CR4={:08x}",
        s.cr0, s.cr2, s.cr3, s.cr4
    );
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
        assert!(t.starts_with("RAX=0000000000000000 RBX=0000000000000000"));
        assert!(t.contains("RIP=000000000000fff0 RFL=00000002 [-------] CPL=0"));
        assert!(t.contains("CS =f000 00000000ffff0000 0000ffff 00009b00"));
        assert!(t.contains("DS =0000 0000000000000000 0000ffff 00009300"));
        assert!(t.contains("CR0=60000010"));
    }

    #[test]
    fn flag_letters_follow_qemu_order() {
        assert_eq!(flag_letters(0x2 | 1 | (1 << 6) | (1 << 11)), "O--Z--C");
        assert_eq!(flag_letters(0x2), "-------");
    }
}
