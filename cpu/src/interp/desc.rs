//! Segment descriptors: loading selectors from the GDT/LDT.

use super::mem::{Access, Exception, Mmu};
use super::state::CpuState;
use crate::Segment;

/// Decode a descriptor's two dwords into a segment cache.
pub fn decode(lo: u32, hi: u32, selector: u16) -> Segment {
    let base = (lo >> 16) | ((hi & 0xff) << 16) | (hi & 0xff00_0000);
    let mut limit = (lo & 0xffff) | (hi & 0x000f_0000);
    let g = hi & (1 << 23) != 0;
    if g {
        limit = (limit << 12) | 0xfff;
    }
    Segment {
        base: u64::from(base),
        limit,
        selector,
        type_: ((hi >> 8) & 0xf) as u8,
        s: hi & (1 << 12) != 0,
        dpl: ((hi >> 13) & 3) as u8,
        present: hi & (1 << 15) != 0,
        avl: hi & (1 << 20) != 0,
        l: hi & (1 << 21) != 0,
        db: hi & (1 << 22) != 0,
        g,
        unusable: false,
    }
}

/// Read the descriptor for `selector` (16 bytes for system descriptors in
/// long mode when `wide`), as an implicit supervisor access (SMAP applies
/// whatever RFLAGS.AC and the CPL).
pub fn load(
    mmu: &Mmu,
    cpu: &mut CpuState,
    selector: u16,
    wide: bool,
) -> Result<Segment, Exception> {
    let saved = cpu.sys_access;
    cpu.sys_access = true;
    let r = load_descriptor(mmu, cpu, selector, wide);
    cpu.sys_access = saved;
    r
}

fn load_descriptor(
    mmu: &Mmu,
    cpu: &mut CpuState,
    selector: u16,
    wide: bool,
) -> Result<Segment, Exception> {
    let (base, limit) = if selector & 4 != 0 {
        (cpu.ldtr.base, cpu.ldtr.limit)
    } else {
        (cpu.gdtr.0, u32::from(cpu.gdtr.1))
    };
    let off = u64::from(selector & !7);
    if off + 7 > u64::from(limit) {
        return Err(Exception::gp(u32::from(selector & !3)));
    }
    let mut b = [0u8; 8];
    mmu.read(cpu, base + off, &mut b, Access::Read)?;
    let lo = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let hi = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let mut seg = decode(lo, hi, selector);
    if wide && !seg.s {
        let mut u = [0u8; 4];
        mmu.read(cpu, base + off + 8, &mut u, Access::Read)?;
        seg.base |= u64::from(u32::from_le_bytes(u)) << 32;
    }
    if !seg.present {
        return Err(Exception {
            vector: 11,
            error_code: Some(u32::from(selector & !3)),
        });
    }
    Ok(seg)
}

/// Set the accessed bit of a code/data descriptor in memory (an implicit
/// supervisor access).
pub fn mark_accessed(mmu: &Mmu, cpu: &mut CpuState, selector: u16) {
    if selector & 4 != 0 || selector < 8 {
        return;
    }
    let addr = cpu.gdtr.0 + u64::from(selector & !7) + 5;
    let saved = cpu.sys_access;
    cpu.sys_access = true;
    let mut b = [0u8];
    if mmu.read(cpu, addr, &mut b, Access::Read).is_ok() && b[0] & 1 == 0 {
        let _ = mmu.write(cpu, addr, &[b[0] | 1]);
    }
    cpu.sys_access = saved;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_flat_code_segments() {
        let d = 0x00cf_9a00_0000_ffffu64;
        let s = decode(d as u32, (d >> 32) as u32, 8);
        assert_eq!((s.base, s.limit, s.type_), (0, 0xffff_ffff, 0xa));
        assert!(s.db && s.g && s.present && s.s && !s.l);
        let d = 0x00af_9a00_0000_ffffu64;
        assert!(decode(d as u32, (d >> 32) as u32, 8).l);
    }
}
