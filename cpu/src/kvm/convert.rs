//! Backend-neutral registers ↔ KVM's structs.

use kvm_bindings::{kvm_dtable, kvm_regs, kvm_segment, kvm_sregs};

use crate::{DescriptorTable, Regs, Segment, Sregs};

/// `Regs` → `kvm_regs`.
pub fn to_kvm_regs(r: &Regs) -> kvm_regs {
    kvm_regs {
        rax: r.rax,
        rbx: r.rbx,
        rcx: r.rcx,
        rdx: r.rdx,
        rsi: r.rsi,
        rdi: r.rdi,
        rsp: r.rsp,
        rbp: r.rbp,
        r8: r.r8,
        r9: r.r9,
        r10: r.r10,
        r11: r.r11,
        r12: r.r12,
        r13: r.r13,
        r14: r.r14,
        r15: r.r15,
        rip: r.rip,
        rflags: r.rflags | 2,
    }
}

/// `kvm_regs` → `Regs`.
pub fn from_kvm_regs(r: &kvm_regs) -> Regs {
    Regs {
        rax: r.rax,
        rbx: r.rbx,
        rcx: r.rcx,
        rdx: r.rdx,
        rsi: r.rsi,
        rdi: r.rdi,
        rsp: r.rsp,
        rbp: r.rbp,
        r8: r.r8,
        r9: r.r9,
        r10: r.r10,
        r11: r.r11,
        r12: r.r12,
        r13: r.r13,
        r14: r.r14,
        r15: r.r15,
        rip: r.rip,
        rflags: r.rflags,
    }
}

fn to_kvm_seg(s: &Segment) -> kvm_segment {
    kvm_segment {
        base: s.base,
        limit: s.limit,
        selector: s.selector,
        type_: s.type_,
        present: u8::from(s.present),
        dpl: s.dpl,
        db: u8::from(s.db),
        s: u8::from(s.s),
        l: u8::from(s.l),
        g: u8::from(s.g),
        avl: u8::from(s.avl),
        unusable: u8::from(s.unusable),
        padding: 0,
    }
}

fn from_kvm_seg(s: &kvm_segment) -> Segment {
    Segment {
        base: s.base,
        limit: s.limit,
        selector: s.selector,
        type_: s.type_,
        present: s.present != 0,
        dpl: s.dpl,
        db: s.db != 0,
        s: s.s != 0,
        l: s.l != 0,
        g: s.g != 0,
        avl: s.avl != 0,
        unusable: s.unusable != 0,
    }
}

/// Copy `Sregs` into a `kvm_sregs` fetched from KVM (keeps the interrupt bitmap).
pub fn to_kvm_sregs(s: &Sregs, k: &mut kvm_sregs) {
    k.cs = to_kvm_seg(&s.cs);
    k.ds = to_kvm_seg(&s.ds);
    k.es = to_kvm_seg(&s.es);
    k.fs = to_kvm_seg(&s.fs);
    k.gs = to_kvm_seg(&s.gs);
    k.ss = to_kvm_seg(&s.ss);
    k.tr = to_kvm_seg(&s.tr);
    k.ldt = to_kvm_seg(&s.ldt);
    k.gdt = kvm_dtable {
        base: s.gdt.base,
        limit: s.gdt.limit,
        padding: [0; 3],
    };
    k.idt = kvm_dtable {
        base: s.idt.base,
        limit: s.idt.limit,
        padding: [0; 3],
    };
    k.cr0 = s.cr0;
    k.cr2 = s.cr2;
    k.cr3 = s.cr3;
    k.cr4 = s.cr4;
    k.cr8 = s.cr8;
    k.efer = s.efer;
    k.apic_base = s.apic_base;
}

/// `kvm_sregs` → `Sregs`.
pub fn from_kvm_sregs(k: &kvm_sregs) -> Sregs {
    Sregs {
        cs: from_kvm_seg(&k.cs),
        ds: from_kvm_seg(&k.ds),
        es: from_kvm_seg(&k.es),
        fs: from_kvm_seg(&k.fs),
        gs: from_kvm_seg(&k.gs),
        ss: from_kvm_seg(&k.ss),
        tr: from_kvm_seg(&k.tr),
        ldt: from_kvm_seg(&k.ldt),
        gdt: DescriptorTable {
            base: k.gdt.base,
            limit: k.gdt.limit,
        },
        idt: DescriptorTable {
            base: k.idt.base,
            limit: k.idt.limit,
        },
        cr0: k.cr0,
        cr2: k.cr2,
        cr3: k.cr3,
        cr4: k.cr4,
        cr8: k.cr8,
        efer: k.efer,
        apic_base: k.apic_base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_round_trip() {
        let r = Regs {
            rax: 1,
            r15: 15,
            rip: 0x1000,
            rflags: 0x202,
            ..Default::default()
        };
        assert_eq!(from_kvm_regs(&to_kvm_regs(&r)), r);
        let s = Sregs {
            cs: Segment::flat(0x10, 0xb, true),
            cr0: 0x8000_0011,
            efer: 0x500,
            gdt: DescriptorTable {
                base: 0x500,
                limit: 31,
            },
            ..Sregs::reset_state()
        };
        let mut k = kvm_sregs::default();
        to_kvm_sregs(&s, &mut k);
        assert_eq!(from_kvm_sregs(&k), s);
    }
}
