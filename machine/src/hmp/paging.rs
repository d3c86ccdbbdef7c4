//! `info tlb` and `info mem`: the guest's page tables walked from CR3 in
//! its paging mode (32-bit, PAE or 4-level), printed as QEMU does: every
//! present leaf with its flag letters, or ranges of equal protection.

use std::fmt::Write;

use cpu::Sregs;

const PRESENT: u64 = 1;
const RW: u64 = 1 << 1;
const USER: u64 = 1 << 2;
const PSE: u64 = 1 << 7;
const NX: u64 = 1 << 63;

/// One mapped page (or large page) of the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leaf {
    /// Guest-virtual start (canonical).
    pub va: u64,
    /// The leaf entry as stored.
    pub pte: u64,
    /// Size of the mapping in bytes.
    pub size: u64,
    /// USER and RW as every level grants them.
    pub prot: u64,
}

struct Mode {
    /// (shift, index bits, large page allowed) per level, top first.
    levels: &'static [(u32, u32, bool)],
    entry: u64,
    addr_mask: u64,
    long: bool,
}

fn mode(s: &Sregs) -> Option<Mode> {
    const PG: u64 = 1 << 31;
    const CR4_PAE: u64 = 1 << 5;
    const CR4_PSE: u64 = 1 << 4;
    const LMA: u64 = 1 << 10;
    if s.cr0 & PG == 0 {
        return None;
    }
    Some(if s.efer & LMA != 0 {
        Mode {
            levels: &[(39, 9, false), (30, 9, true), (21, 9, true), (12, 9, false)],
            entry: 8,
            addr_mask: 0x000f_ffff_ffff_f000,
            long: true,
        }
    } else if s.cr4 & CR4_PAE != 0 {
        Mode {
            levels: &[(30, 2, false), (21, 9, true), (12, 9, false)],
            entry: 8,
            addr_mask: 0x000f_ffff_ffff_f000,
            long: false,
        }
    } else {
        Mode {
            levels: if s.cr4 & CR4_PSE != 0 {
                &[(22, 10, true), (12, 10, false)]
            } else {
                &[(22, 10, false), (12, 10, false)]
            },
            entry: 4,
            addr_mask: 0xffff_f000,
            long: false,
        }
    })
}

/// Every present leaf mapping, in address order; `None` when paging is off.
pub fn leaves(s: &Sregs, read: &dyn Fn(u64, u64) -> Option<u64>) -> Option<Vec<Leaf>> {
    let m = mode(s)?;
    let mut out = Vec::new();
    let root = if m.entry == 8 && !m.long {
        s.cr3 & 0xffff_ffe0
    } else {
        s.cr3 & m.addr_mask
    };
    walk(&m, 0, root, 0, USER | RW, read, &mut out);
    Some(out)
}

fn walk(
    m: &Mode,
    level: usize,
    table: u64,
    va: u64,
    prot: u64,
    read: &dyn Fn(u64, u64) -> Option<u64>,
    out: &mut Vec<Leaf>,
) {
    let (shift, bits, large_ok) = m.levels[level];
    let last = level + 1 == m.levels.len();
    for i in 0..(1u64 << bits) {
        let Some(e) = read(table + i * m.entry, m.entry) else {
            continue;
        };
        if e & PRESENT == 0 {
            continue;
        }
        let a = va | (i << shift);
        // PAE's top level has no USER/RW bits.
        let p = if m.entry == 8 && !m.long && level == 0 {
            prot
        } else {
            prot & e
        };
        if last || (large_ok && e & PSE != 0) {
            let va = if m.long && a & (1 << 47) != 0 {
                a | 0xffff_0000_0000_0000
            } else {
                a
            };
            out.push(Leaf {
                va,
                pte: e,
                size: 1 << shift,
                prot: p & (USER | RW),
            });
        } else {
            walk(m, level + 1, e & m.addr_mask, a, p, read, out);
        }
    }
}

/// `info tlb`: one line per present leaf, QEMU's flag letters.
pub fn info_tlb(leaves: &[Leaf]) -> String {
    let mut o = String::new();
    for l in leaves {
        let mask = 0x000f_ffff_ffff_f000 & !(l.size - 1);
        let f = |bit: u64, c: char| if l.pte & bit != 0 { c } else { '-' };
        let _ = writeln!(
            o,
            "{:016x}: {:016x} {}{}{}{}{}{}{}{}{}",
            l.va,
            l.pte & mask,
            f(NX, 'X'),
            f(1 << 8, 'G'),
            f(PSE, 'P'),
            f(1 << 6, 'D'),
            f(1 << 5, 'A'),
            f(1 << 4, 'C'),
            f(1 << 3, 'T'),
            f(USER, 'U'),
            f(RW, 'W'),
        );
    }
    o
}

/// `info mem`: contiguous ranges of equal protection.
pub fn info_mem(leaves: &[Leaf]) -> String {
    let mut o = String::new();
    let mut cur: Option<(u64, u64, u64)> = None;
    let flush = |o: &mut String, r: (u64, u64, u64)| {
        let (start, end, prot) = r;
        let _ = writeln!(
            o,
            "{start:016x}-{end:016x} {:016x} {}r{}",
            end.wrapping_sub(start),
            if prot & USER != 0 { 'u' } else { '-' },
            if prot & RW != 0 { 'w' } else { '-' }
        );
    };
    for l in leaves {
        let end = l.va.wrapping_add(l.size);
        match cur {
            Some((s, e, p)) if e == l.va && p == l.prot => cur = Some((s, end, p)),
            Some(r) => {
                flush(&mut o, r);
                cur = Some((l.va, end, l.prot));
            }
            None => cur = Some((l.va, end, l.prot)),
        }
    }
    if let Some(r) = cur {
        flush(&mut o, r);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn long_mode() -> Sregs {
        let mut s = Sregs::reset_state();
        s.cr0 |= 1 | (1 << 31);
        s.cr4 |= 1 << 5;
        s.efer = (1 << 10) | (1 << 8);
        s.cr3 = 0x1000;
        s
    }

    #[test]
    fn paging_off_has_no_leaves() {
        let s = Sregs::reset_state();
        assert!(leaves(&s, &|_, _| Some(0)).is_none());
    }

    #[test]
    fn four_level_tables_with_a_2m_page_and_4k_pages() {
        // PML4[0] -> PDPT 0x2000; PDPT[0] -> PD 0x3000; PD[0] = 2M page at 0
        // (kernel RW); PD[1] -> PT 0x4000 with two user 4K pages.
        let mut mem = HashMap::new();
        mem.insert(0x1000u64, 0x2007u64);
        mem.insert(0x2000, 0x3007);
        mem.insert(0x3000, 0x0000_00e3);
        mem.insert(0x3008, 0x4007);
        mem.insert(0x4000, 0x0050_0005);
        mem.insert(0x4008, 0x0050_1007);
        let read = |a: u64, _: u64| Some(*mem.get(&a).unwrap_or(&0));
        let l = leaves(&long_mode(), &read).unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(
            info_tlb(&l),
            "0000000000000000: 0000000000000000 --PDA---W\n\
             0000000000200000: 0000000000500000 -------U-\n\
             0000000000201000: 0000000000501000 -------UW\n"
        );
        assert_eq!(
            info_mem(&l),
            "0000000000000000-0000000000200000 0000000000200000 -rw\n\
             0000000000200000-0000000000201000 0000000000001000 ur-\n\
             0000000000201000-0000000000202000 0000000000001000 urw\n"
        );
    }
}
