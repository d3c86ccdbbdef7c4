//! The boot GDT and the segment registers derived from it.
//!
//! One table serves both entry modes, with the Linux boot protocol's selectors where Linux
//! asks for them (`__BOOT_CS` = 0x10, `__BOOT_DS` = 0x18, from `arch/x86/include/asm/segment.h`):
//!
//! | selector | descriptor |
//! |---|---|
//! | 0x00 | null |
//! | 0x08 | flat 32-bit code (PVH entry's CS) |
//! | 0x10 | 64-bit code (`__BOOT_CS`) |
//! | 0x18 | flat 32-bit data (`__BOOT_DS`, all data segments in both modes) |
//! | 0x20 | busy TSS, base 0, limit 0x67 (VMX needs a usable TR; Linux loads its own) |
//! | 0x28 | zero (upper half of a 16-byte TSS descriptor in long mode) |
//!
//! No crate writes an x86 GDT for us (linux-loader stops at boot_params), so the descriptor
//! encoding is here, with its inverse so the register state provably matches the table.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::layout::GDT_ADDR;

/// Selector of the flat 32-bit code segment.
pub const SELECTOR_CODE32: u16 = 0x08;
/// Selector of the 64-bit code segment (`__BOOT_CS`).
pub const SELECTOR_CODE64: u16 = 0x10;
/// Selector of the flat data segment (`__BOOT_DS`).
pub const SELECTOR_DATA: u16 = 0x18;
/// Selector of the TSS.
pub const SELECTOR_TSS: u16 = 0x20;

/// Descriptor flags in the compact form `0xGDLA_PDSTyp`: bits 15..12 = G, D/B, L, AVL;
/// bits 7..0 = the access byte (P, DPL, S, type).
const FLAGS_CODE32: u16 = 0xc09b;
const FLAGS_CODE64: u16 = 0xa09b;
const FLAGS_DATA: u16 = 0xc093;
const FLAGS_TSS: u16 = 0x008b;

/// A segment register with its hidden descriptor cache, in KVM's `kvm_segment` shape
/// (the same fields as the `cpu` crate's `Segment`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Segment {
    /// Base address.
    pub base: u64,
    /// Limit in bytes (already scaled by G).
    pub limit: u32,
    /// Selector.
    pub selector: u16,
    /// Type field (4 bits).
    pub type_: u8,
    /// Present.
    pub present: bool,
    /// Descriptor privilege level.
    pub dpl: u8,
    /// Default operation size (D/B).
    pub db: bool,
    /// Code/data (true) or system (false) descriptor.
    pub s: bool,
    /// 64-bit code segment.
    pub l: bool,
    /// Granularity.
    pub g: bool,
    /// Available bit.
    pub avl: bool,
    /// Null/unusable segment.
    pub unusable: bool,
}

/// GDTR or IDTR contents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DescriptorTable {
    /// Linear base address.
    pub base: u64,
    /// Limit in bytes minus one.
    pub limit: u16,
}

/// Encodes a segment descriptor from compact flags, a base and a 20-bit limit.
pub fn encode_descriptor(flags: u16, base: u32, limit: u32) -> u64 {
    let base = u64::from(base);
    let limit = u64::from(limit);
    let flags = u64::from(flags);
    ((base & 0xff00_0000) << 32)
        | ((flags & 0xf000) << 40)
        | ((limit & 0xf_0000) << 32)
        | ((flags & 0x00ff) << 40)
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0xffff)
}

/// Decodes a descriptor into the register cache a CPU would load for `selector`.
pub fn decode_descriptor(descriptor: u64, selector: u16) -> Segment {
    let base = ((descriptor >> 16) & 0x00ff_ffff) | ((descriptor >> 32) & 0xff00_0000);
    let raw_limit = ((descriptor & 0xffff) | ((descriptor >> 32) & 0xf_0000)) as u32;
    let access = (descriptor >> 40) as u8;
    let high = (descriptor >> 52) as u8;
    let g = high & 0x8 != 0;
    Segment {
        base,
        limit: if g {
            (raw_limit << 12) | 0xfff
        } else {
            raw_limit
        },
        selector,
        type_: access & 0xf,
        s: access & 0x10 != 0,
        dpl: (access >> 5) & 0x3,
        present: access & 0x80 != 0,
        avl: high & 0x1 != 0,
        l: high & 0x2 != 0,
        db: high & 0x4 != 0,
        g,
        unusable: false,
    }
}

/// The boot GDT, indexed by selector / 8.
pub fn boot_gdt() -> [u64; 6] {
    [
        0,
        encode_descriptor(FLAGS_CODE32, 0, 0xfffff),
        encode_descriptor(FLAGS_CODE64, 0, 0xfffff),
        encode_descriptor(FLAGS_DATA, 0, 0xfffff),
        encode_descriptor(FLAGS_TSS, 0, 0x67),
        0,
    ]
}

/// The GDTR value for the boot GDT.
pub fn boot_gdtr() -> DescriptorTable {
    DescriptorTable {
        base: GDT_ADDR,
        limit: (boot_gdt().len() * 8 - 1) as u16,
    }
}

/// The register cache for `selector` of the boot GDT.
pub fn boot_segment(selector: u16) -> Segment {
    let gdt = boot_gdt();
    decode_descriptor(gdt[usize::from(selector >> 3) % gdt.len()], selector)
}

/// Errors writing the GDT.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the boot GDT at {GDT_ADDR:#x}")]
pub struct GdtError(#[source] pub vm_memory::GuestMemoryError);

/// Writes the boot GDT at [`GDT_ADDR`].
pub fn write_gdt(mem: &GuestMemoryMmap<()>) -> Result<(), GdtError> {
    let bytes: Vec<u8> = boot_gdt().iter().flat_map(|d| d.to_le_bytes()).collect();
    mem.write_slice(&bytes, GuestAddress(GDT_ADDR))
        .map_err(GdtError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_match_the_classic_encodings() {
        let gdt = boot_gdt();
        assert_eq!(gdt[1], 0x00cf_9b00_0000_ffff);
        assert_eq!(gdt[2], 0x00af_9b00_0000_ffff);
        assert_eq!(gdt[3], 0x00cf_9300_0000_ffff);
        assert_eq!(gdt[4], 0x0000_8b00_0000_0067);
    }

    #[test]
    fn encode_decode_round_trip_with_base() {
        let d = encode_descriptor(0xc093, 0x1234_5678, 0xabcde);
        let s = decode_descriptor(d, 0x18);
        assert_eq!(s.base, 0x1234_5678);
        assert_eq!(s.limit, 0xabcd_efff);
        assert_eq!(
            (s.type_, s.s, s.present, s.db, s.g, s.l),
            (3, true, true, true, true, false)
        );
    }

    #[test]
    fn boot_segments() {
        let cs64 = boot_segment(SELECTOR_CODE64);
        assert!(cs64.l && !cs64.db && cs64.g && cs64.s && cs64.present);
        assert_eq!((cs64.type_, cs64.limit, cs64.base), (0xb, 0xffff_ffff, 0));
        let cs32 = boot_segment(SELECTOR_CODE32);
        assert!(!cs32.l && cs32.db);
        let tr = boot_segment(SELECTOR_TSS);
        assert!(!tr.s && !tr.g && tr.present);
        assert_eq!((tr.type_, tr.limit), (0xb, 0x67));
    }

    #[test]
    fn gdt_bytes_land_in_memory() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x1000)]).unwrap();
        write_gdt(&mem).unwrap();
        let gdtr = boot_gdtr();
        assert_eq!(gdtr.limit, 47);
        let code64: u64 = mem.read_obj(GuestAddress(GDT_ADDR + 0x10)).unwrap();
        assert_eq!(code64, 0x00af_9b00_0000_ffff);
        let null: u64 = mem.read_obj(GuestAddress(GDT_ADDR)).unwrap();
        assert_eq!(null, 0);
    }
}
