//! The e820 memory map the guest receives, in the shape qboot presents it for `microvm`.
//!
//! QEMU's `etc/e820` for microvm holds one RAM entry `[0, below_4g)` (plus `[4 GiB, ...)` when
//! RAM exceeds 3 GiB). qboot (`extract_e820` in its `main.c`) then prepends four fixed entries
//! and trims the first MiB off QEMU's low entry, so Linux sees:
//!
//! | range | type |
//! |---|---|
//! | `[0, 0x9fc00)` | RAM |
//! | `[0x9fc00, 0xa0000)` | reserved (EBDA, holds the MP table) |
//! | `[0xd0000, 0xf0000)` | ACPI NVS (where firmware keeps ACPI tables) |
//! | `[0xf0000, 0x100000)` | reserved (BIOS) |
//! | `[1 MiB, below_4g)` | RAM |
//! | `[4 GiB, 4 GiB + above_4g)` | RAM (only if RAM > 3 GiB) |
//!
//! QEMU 10.0.2 hands Linux exactly this map for a 256 MiB microvm with `acpi=off` and with
//! `acpi=on` (checked by booting the shared `vmlinux` with `earlyprintk` and comparing the
//! `BIOS-e820` lines). Our ACPI tables live in the NVS range, as QEMU's do.

use crate::layout::{
    split_ram, BIOS_NVS_START, BIOS_ROM_START, EBDA_END, EBDA_START, HIGHMEM_BASE, HIMEM_START,
};

/// An e820 range type (the values Linux and the PVH memmap share).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum E820Type {
    /// Usable RAM.
    Ram = 1,
    /// Reserved, not usable.
    Reserved = 2,
    /// ACPI reclaimable.
    Acpi = 3,
    /// ACPI NVS.
    Nvs = 4,
}

/// One e820 entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E820Entry {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// Range type.
    pub kind: E820Type,
}

impl E820Entry {
    /// Exclusive end address.
    pub fn end(&self) -> u64 {
        self.addr + self.size
    }
}

/// Errors building the memory map.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum E820Error {
    /// The board needs RAM above 1 MiB for the kernel.
    #[error("guest RAM of {0:#x} bytes is too small: microvm needs more than 1 MiB")]
    RamTooSmall(u64),
}

/// Builds the e820 map for `ram_size` bytes of guest RAM.
pub fn build_e820(ram_size: u64) -> Result<Vec<E820Entry>, E820Error> {
    let (below_4g, above_4g) = split_ram(ram_size);
    if below_4g <= HIMEM_START {
        return Err(E820Error::RamTooSmall(ram_size));
    }
    let entry = |addr: u64, end: u64, kind| E820Entry {
        addr,
        size: end - addr,
        kind,
    };
    let mut map = vec![
        entry(0, EBDA_START, E820Type::Ram),
        entry(EBDA_START, EBDA_END, E820Type::Reserved),
        entry(BIOS_NVS_START, BIOS_ROM_START, E820Type::Nvs),
        entry(BIOS_ROM_START, HIMEM_START, E820Type::Reserved),
        entry(HIMEM_START, below_4g, E820Type::Ram),
    ];
    if above_4g > 0 {
        map.push(entry(HIGHMEM_BASE, HIGHMEM_BASE + above_4g, E820Type::Ram));
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_for_256m_matches_qboot() {
        let map = build_e820(256 << 20).unwrap();
        let got: Vec<_> = map.iter().map(|e| (e.addr, e.end(), e.kind)).collect();
        assert_eq!(
            got,
            vec![
                (0, 0x9fc00, E820Type::Ram),
                (0x9fc00, 0xa0000, E820Type::Reserved),
                (0xd0000, 0xf0000, E820Type::Nvs),
                (0xf0000, 0x100000, E820Type::Reserved),
                (0x100000, 256 << 20, E820Type::Ram),
            ]
        );
    }

    #[test]
    fn map_above_3g_adds_high_ram() {
        let map = build_e820(5 << 30).unwrap();
        assert_eq!(map.len(), 6);
        assert_eq!(map[4].end(), 0xc000_0000);
        assert_eq!(map[5].addr, 1 << 32);
        assert_eq!(map[5].size, 2 << 30);
        assert_eq!(map[5].kind, E820Type::Ram);
        let ram: u64 = map
            .iter()
            .filter(|e| e.kind == E820Type::Ram)
            .map(|e| e.size)
            .sum();
        // All RAM but the 385 KiB of the first MiB that are reserved or a hole.
        assert_eq!(ram, (5 << 30) - (HIMEM_START - EBDA_START));
    }

    #[test]
    fn tiny_ram_is_refused() {
        assert_eq!(build_e820(1 << 20), Err(E820Error::RamTooSmall(1 << 20)));
    }
}
