//! The firmware's entry state as the boot vCPU's registers.

use cpu::{DescriptorTable, Regs, Segment, Sregs};
use firmware::EntryState;

fn segment(s: &firmware::gdt::Segment) -> Segment {
    Segment {
        base: s.base,
        limit: s.limit,
        selector: s.selector,
        type_: s.type_,
        present: s.present,
        dpl: s.dpl,
        db: s.db,
        s: s.s,
        l: s.l,
        g: s.g,
        avl: s.avl,
        unusable: s.unusable,
    }
}

fn table(t: &firmware::gdt::DescriptorTable) -> DescriptorTable {
    DescriptorTable {
        base: t.base,
        limit: t.limit,
    }
}

/// Registers for the boot processor at the kernel's entry point.
pub fn entry_registers(e: &EntryState) -> (Regs, Sregs) {
    let regs = Regs {
        rip: e.rip,
        rsp: e.rsp,
        rsi: e.rsi,
        rbx: e.rbx,
        rflags: e.rflags | 2,
        ..Default::default()
    };
    let reset = Sregs::reset_state();
    let sregs = Sregs {
        cs: segment(&e.cs),
        ds: segment(&e.ds),
        es: segment(&e.es),
        fs: segment(&e.fs),
        gs: segment(&e.gs),
        ss: segment(&e.ss),
        tr: segment(&e.tr),
        ldt: segment(&e.ldt),
        gdt: table(&e.gdt),
        idt: table(&e.idt),
        cr0: e.cr0,
        cr2: 0,
        cr3: e.cr3,
        cr4: e.cr4,
        cr8: 0,
        efer: e.efer,
        apic_base: reset.apic_base,
    };
    (regs, sregs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pvh_entry_is_flat_32_bit_protected_mode() {
        let e = EntryState::pvh(0x100000, 0x6000);
        let (r, s) = entry_registers(&e);
        assert_eq!((r.rip, r.rbx), (0x100000, 0x6000));
        assert_eq!(s.cr0 & 0x8000_0001, 1);
        assert!(s.cs.db && !s.cs.l);
        assert_eq!(s.cs.limit, 0xffff_ffff);
        assert_eq!(s.efer, 0);
    }
}
