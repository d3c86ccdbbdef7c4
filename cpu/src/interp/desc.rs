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
/// long mode when `wide`); a descriptor that is not present is #NP.
pub fn load(
    mmu: &Mmu,
    cpu: &mut CpuState,
    selector: u16,
    wide: bool,
) -> Result<Segment, Exception> {
    let seg = read(mmu, cpu, selector, wide)?;
    if !seg.present {
        return Err(Exception {
            vector: 11,
            error_code: Some(u32::from(selector & !3)),
        });
    }
    Ok(seg)
}

/// Read the descriptor for `selector`, present or not (#GP(selector) when
/// it lies beyond its table's limit), as an implicit supervisor access
/// (SMAP applies whatever RFLAGS.AC and the CPL).
pub fn read(
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
        // A null LDTR (LLDT 0) holds no table, whatever base it kept.
        if cpu.ldtr.unusable {
            return Err(Exception::gp(u32::from(selector & !3)));
        }
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
    Ok(seg)
}

/// The checks of loading `d` (named by the non-null `selector`) into a data
/// segment register, or into SS when `stack`, at `cpl` (SDM, MOV to a
/// segment register): SS takes a writable data segment with RPL = DPL =
/// CPL, else #GP(selector), and a missing one is #SS(selector); DS, ES, FS
/// and GS take data or readable code that privilege allows (conforming
/// code whatever its DPL), else #GP(selector), and a missing one is #NP.
pub fn check_data_load(d: &Segment, selector: u16, stack: bool, cpl: u8) -> Result<(), Exception> {
    let rpl = (selector & 3) as u8;
    let err = |vector| Exception {
        vector,
        error_code: Some(u32::from(selector & !3)),
    };
    let code = d.type_ & 8 != 0;
    if stack {
        let writable_data = d.s && !code && d.type_ & 2 != 0;
        if !writable_data || rpl != cpl || d.dpl != cpl {
            return Err(err(13));
        }
        if !d.present {
            return Err(err(12));
        }
    } else {
        let readable = !code || d.type_ & 2 != 0;
        let conforming = code && d.type_ & 4 != 0;
        if !d.s || !readable || (!conforming && (rpl > d.dpl || cpl > d.dpl)) {
            return Err(err(13));
        }
        if !d.present {
            return Err(err(11));
        }
    }
    Ok(())
}

/// The checks IRET and far RET make on the code segment `d` they return
/// to, named by `selector`, from `cpl`: a code segment, not to an inner
/// level, DPL = RPL (non-conforming) or DPL <= RPL (conforming), present.
pub fn check_code_return(d: &Segment, selector: u16, cpl: u8) -> Result<(), Exception> {
    let rpl = (selector & 3) as u8;
    let code = d.s && d.type_ & 8 != 0;
    let conforming = d.type_ & 4 != 0;
    let gp = Exception::gp(u32::from(selector & !3));
    if !code || rpl < cpl || (conforming && d.dpl > rpl) || (!conforming && d.dpl != rpl) {
        return Err(gp);
    }
    if !d.present {
        return Err(Exception {
            vector: 11,
            error_code: Some(u32::from(selector & !3)),
        });
    }
    Ok(())
}

/// Whether LSL (or LAR, `lar`) reports descriptor `d` to code at `cpl`
/// that names it with `selector`: code and data segments that privilege
/// allows (conforming code whatever its DPL), LDTs and TSSs, and for LAR
/// call gates too (the system types that exist in long mode).
pub fn visible_to_lsl_lar(d: &Segment, lar: bool, cpl: u8, selector: u16) -> bool {
    let rpl = (selector & 3) as u8;
    if d.s {
        let conforming_code = d.type_ & 0xc == 0xc;
        conforming_code || (d.dpl >= cpl && d.dpl >= rpl)
    } else {
        let type_ok = matches!(d.type_, 2 | 9 | 0xb) || (lar && d.type_ == 0xc);
        type_ok && d.dpl >= cpl && d.dpl >= rpl
    }
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
