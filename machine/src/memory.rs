//! Guest RAM in QEMU microvm's layout: below 3 GiB, the rest from 4 GiB,
//! and the reset-vector ROM in its BIOS area.

use cpu::GuestMemory;
use firmware::reset_rom::{self, RESET_ROM_BASE, RESET_ROM_SIZE};
use vm_memory::{Bytes, GuestAddress};

use crate::error::MachineError;

/// RAM above this guest-physical address moves to 4 GiB (`lowmem` in QEMU's microvm).
pub const LOW_RAM_LIMIT: u64 = 0xc000_0000;
/// Where RAM beyond [`LOW_RAM_LIMIT`] continues.
pub const HIGH_RAM_START: u64 = 1 << 32;

/// The (start, size) ranges `ram_bytes` of RAM occupy.
pub fn ram_ranges(ram_bytes: u64) -> Vec<(u64, u64)> {
    if ram_bytes <= LOW_RAM_LIMIT {
        vec![(0, ram_bytes)]
    } else {
        vec![
            (0, LOW_RAM_LIMIT),
            (HIGH_RAM_START, ram_bytes - LOW_RAM_LIMIT),
        ]
    }
}

/// Allocate guest RAM (anonymous, lazily backed: untouched pages cost nothing).
pub fn create(ram_bytes: u64) -> Result<GuestMemory, MachineError> {
    let ranges: Vec<(GuestAddress, usize)> = ram_ranges(ram_bytes)
        .into_iter()
        .map(|(s, l)| {
            usize::try_from(l)
                .map(|l| (GuestAddress(s), l))
                .map_err(|_| MachineError::Memory("size too large for this host".into()))
        })
        .collect::<Result<_, _>>()?;
    GuestMemory::from_ranges(&ranges).map_err(|e| MachineError::Memory(e.to_string()))
}

/// Ask the backend to map the reset-vector ROM read-only (before any vCPU
/// exists); where it cannot, the ROM stays plain RAM that every reset
/// rewrites.
pub fn protect_reset_rom(accel: &dyn cpu::Accelerator) {
    if let Err(e) = accel.protect_rom(RESET_ROM_BASE, RESET_ROM_SIZE) {
        log::info!("the reset-vector ROM stays writable RAM: {e}");
    }
}

/// Write the reset-vector ROM ([`firmware::reset_rom`]) into the BIOS
/// area, at build and at every reset (as the kernel is reloaded).
pub fn load_reset_rom(mem: &GuestMemory) -> Result<(), MachineError> {
    mem.write_slice(&reset_rom::image(), GuestAddress(RESET_ROM_BASE))
        .map_err(|e| MachineError::Firmware(format!("reset-vector ROM: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_three_gib() {
        assert_eq!(ram_ranges(256 << 20), vec![(0, 256 << 20)]);
        assert_eq!(ram_ranges(3 << 30), vec![(0, 3 << 30)]);
        assert_eq!(ram_ranges(4 << 30), vec![(0, 3 << 30), (1 << 32, 1 << 30)]);
    }

    #[test]
    fn allocates_lazily() {
        let m = create(64 << 20).unwrap();
        use vm_memory::GuestMemoryBackend;
        assert_eq!(m.num_regions(), 1);
    }
}
