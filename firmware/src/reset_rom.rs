//! The reset-vector ROM: what sits in the BIOS area `[0xF0000, 0x100000)`,
//! where QEMU maps its firmware (qboot for microvm).
//!
//! Kindling boots kernels directly and needs no BIOS code, but a guest
//! that restarts the BIOS way (Linux's `reboot=b`, the last resort of its
//! default order: back to real mode, then `ljmp $0xf000, $0xfff0`) jumps
//! here and must find something that restarts the machine. The ROM's code
//! at the reset vector sends the keyboard controller's reset command (0xFE
//! to port 0x64), which the board's i8042 stub turns into a machine reset,
//! then halts with interrupts off in case nothing listens. Every other byte
//! is a NOP, so a jump anywhere into the ROM slides down to that code; the
//! bytes hold no table signature a guest scans this range for ("_MP_",
//! "RSD PTR ", "_SM_", "_DMI_").
//!
//! The code decodes the same in 16-, 32- and 64-bit mode. The e820 map
//! keeps describing the range as reserved ([`crate::e820`]); the board maps
//! it read-only to the guest where the backend can.

use crate::layout::{BIOS_ROM_START, HIMEM_START};

/// Guest-physical start of the ROM.
pub const RESET_ROM_BASE: u64 = BIOS_ROM_START;
/// Size of the ROM (to the end of the first MiB).
pub const RESET_ROM_SIZE: u64 = HIMEM_START - BIOS_ROM_START;
/// Where a real-mode `F000:FFF0` lands.
pub const RESET_VECTOR: u64 = 0xf_fff0;

/// The code at the reset vector.
const RESET_CODE: [u8; 8] = [
    0xb0, 0xfe, // mov al, 0xfe   (i8042: pulse the reset line)
    0xe6, 0x64, // out 0x64, al
    0xfa, //       cli
    0xf4, //       hlt
    0xeb, 0xfd, // jmp short back to the hlt
];

/// The ROM's bytes, [`RESET_ROM_SIZE`] of them, to place at [`RESET_ROM_BASE`].
pub fn image() -> Vec<u8> {
    let mut rom = vec![0x90u8; RESET_ROM_SIZE as usize];
    let at = (RESET_VECTOR - RESET_ROM_BASE) as usize;
    rom[at..at + RESET_CODE.len()].copy_from_slice(&RESET_CODE);
    rom
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_the_bios_area_with_the_reset_code_at_the_vector() {
        let rom = image();
        assert_eq!(RESET_ROM_BASE + rom.len() as u64, 0x10_0000);
        let at = (RESET_VECTOR - RESET_ROM_BASE) as usize;
        // The i8042 reset command to its command port, then cli; hlt.
        assert_eq!(&rom[at..at + 6], &[0xb0, 0xfe, 0xe6, 0x64, 0xfa, 0xf4]);
        // The loop jumps back onto its hlt.
        let jmp_end = at + 8;
        let target = jmp_end as i64 + i64::from(rom[at + 7] as i8);
        assert_eq!(target as usize, at + 5);
        assert!(
            rom[..at].iter().all(|&b| b == 0x90),
            "a NOP slide to the code"
        );
    }

    #[test]
    fn holds_no_table_signature() {
        let rom = image();
        for sig in [&b"_MP_"[..], b"RSD PTR ", b"_SM_", b"_DMI_"] {
            assert!(!rom.windows(sig.len()).any(|w| w == sig), "{sig:?}");
        }
    }
}
