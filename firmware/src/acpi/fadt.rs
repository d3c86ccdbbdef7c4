//! The FADT, revision 5 and hardware-reduced, as QEMU's `acpi_build_microvm` fills it:
//! flags `HW_REDUCED_ACPI | RESET_REG_SUP`, the reset register at GED+0x202 (value 0x42),
//! sleep control/status at GED+0x200/+0x201, all 8-bit system-memory registers, and both
//! the 32- and 64-bit DSDT pointers.
//!
//! acpi_tables' builder has the ACPI 6.x layout (276 bytes, with the 6.0 hypervisor vendor
//! field); a revision 5 FADT ends after the sleep status register (268 bytes, what QEMU
//! emits), so we cut the tail and fix length, revision and checksum by hand.

use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::Aml;

use crate::layout::{GED_REG_RESET, GED_REG_SLEEP_CTL, GED_REG_SLEEP_STS, GED_RESET_VALUE};

/// Length of an ACPI 5.0 FADT.
pub const FADT_REV5_LEN: usize = 268;
const FADT_REVISION: u8 = 5;
const FADT_MINOR_REVISION: u8 = 0;
/// Byte offsets in the FADT.
const OFF_LENGTH: usize = 4;
const OFF_REVISION: usize = 8;
const OFF_CHECKSUM: usize = 9;
const OFF_MINOR_REVISION: usize = 131;

/// An 8-bit system-memory register. The access size is left "undefined" (0, the register
/// width decides), byte for byte what QEMU 10 emits.
fn byte_register(address: u64) -> GAS {
    GAS::new(
        AddressSpace::SystemMemory,
        8,
        0,
        AccessSize::Undefined,
        address,
    )
}

/// Sets a table's checksum byte (offset 9) so all its bytes sum to zero.
pub fn fix_checksum(table: &mut [u8]) {
    table[OFF_CHECKSUM] = 0;
    let sum = table.iter().fold(0u8, |acc, b| acc.wrapping_add(*b));
    table[OFF_CHECKSUM] = 0u8.wrapping_sub(sum);
}

/// The FADT bytes, pointing at the DSDT at `dsdt_addr`.
pub fn build_fadt(oem_id: [u8; 6], oem_table_id: [u8; 8], dsdt_addr: u64) -> Vec<u8> {
    let mut b = FADTBuilder::new(oem_id, oem_table_id, 1)
        .flag(Flags::HwReducedAcpi)
        .flag(Flags::ResetRegSup);
    b.dsdt = (dsdt_addr as u32).into();
    b.x_dsdt = dsdt_addr.into();
    b.reset_reg = byte_register(GED_REG_RESET);
    b.reset_value = GED_RESET_VALUE;
    b.sleep_control_reg = byte_register(GED_REG_SLEEP_CTL);
    b.sleep_status_reg = byte_register(GED_REG_SLEEP_STS);
    let mut bytes = Vec::new();
    b.finalize().to_aml_bytes(&mut bytes);
    bytes.truncate(FADT_REV5_LEN);
    bytes[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&(FADT_REV5_LEN as u32).to_le_bytes());
    bytes[OFF_REVISION] = FADT_REVISION;
    bytes[OFF_MINOR_REVISION] = FADT_MINOR_REVISION;
    fix_checksum(&mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn fadt_fields_at_acpi_offsets() {
        let f = build_fadt(*b"KINDLG", *b"MICROVM ", 0xe0040);
        assert_eq!(f.len(), 268);
        assert_eq!(&f[0..4], b"FACP");
        assert_eq!(u32_at(&f, 4), 268);
        assert_eq!(f[8], 5);
        assert_eq!(f.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
        assert_eq!(u32_at(&f, 40), 0xe0040, "DSDT");
        assert_eq!(u64_at(&f, 140), 0xe0040, "X_DSDT");
        let flags = u32_at(&f, 112);
        assert_eq!(
            flags,
            (1 << 20) | (1 << 10),
            "HW_REDUCED_ACPI | RESET_REG_SUP"
        );
        // RESET_REG GAS at 116, RESET_VALUE at 128.
        assert_eq!(&f[116..120], &[0, 8, 0, 0]);
        assert_eq!(u64_at(&f, 120), 0xfea0_0202);
        assert_eq!(f[128], 0x42);
        // SLEEP_CONTROL_REG at 244, SLEEP_STATUS_REG at 256.
        assert_eq!(&f[244..248], &[0, 8, 0, 0]);
        assert_eq!(u64_at(&f, 248), 0xfea0_0200);
        assert_eq!(u64_at(&f, 260), 0xfea0_0201);
        // No FACS on hardware-reduced platforms.
        assert_eq!(u32_at(&f, 36), 0);
        assert_eq!(u64_at(&f, 132), 0);
    }
}
