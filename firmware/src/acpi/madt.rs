//! The MADT as QEMU's `acpi_build_madt` emits it for microvm: one enabled local APIC per
//! vCPU (UID = APIC id = index), IOAPIC 0 at 0xFEC00000 (GSI base 0), IOAPIC 1 at
//! 0xFEC10000 (GSI base 24) when the second IOAPIC exists, and a local APIC NMI on LINT1 for
//! all processors. Flags = PCAT_COMPAT.
//!
//! No interrupt source override: QEMU emits IRQ0 -> GSI 2 only for machines whose class sets
//! `apic_xrupt_override`, which the PC machines do and microvm does not (a hardware-reduced
//! kernel does not use the PIT). The MP table, by contrast, does route IRQ 0 to pin 2.
//!
//! acpi_tables provides the local APIC and IOAPIC structures but no local APIC NMI
//! structure, and its MADT builder has no flags setter, so the table is assembled with its
//! generic `Sdt` and the NMI structure's six bytes are written here.

use acpi_tables::madt::{EnabledStatus, IoApic, ProcessorLocalApic};
use acpi_tables::sdt::Sdt;
use acpi_tables::Aml;

use crate::layout::{IOAPIC2_ADDR, IOAPIC2_GSI_BASE, IOAPIC_ADDR, LAPIC_ADDR};

/// MADT revision QEMU 10.0's microvm tables carry (Linux reports `APIC ... (v01 BOCHS ...)`).
const MADT_REVISION: u8 = 1;
/// MADT flag: the platform also has dual 8259s.
const PCAT_COMPAT: u32 = 1;
/// Structure type: local APIC NMI.
const LOCAL_APIC_NMI: u8 = 4;

/// Errors building the MADT.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MadtError {
    /// xAPIC ids are 8 bits and 255 is the broadcast id.
    #[error("the MADT describes 1 to 255 CPUs with xAPIC entries, not {0}")]
    BadCpuCount(u32),
}

fn aml_bytes(a: &dyn Aml) -> Vec<u8> {
    let mut v = Vec::new();
    a.to_aml_bytes(&mut v);
    v
}

/// The MADT bytes.
pub fn build_madt(
    oem_id: [u8; 6],
    oem_table_id: [u8; 8],
    num_cpus: u32,
    ioapic2: bool,
) -> Result<Vec<u8>, MadtError> {
    if num_cpus == 0 || num_cpus > 255 {
        return Err(MadtError::BadCpuCount(num_cpus));
    }
    let mut madt = Sdt::new(*b"APIC", 44, MADT_REVISION, oem_id, oem_table_id, 1);
    madt.write_u32(36, LAPIC_ADDR as u32);
    madt.write_u32(40, PCAT_COMPAT);
    for cpu in 0..num_cpus as u8 {
        madt.append_slice(&aml_bytes(&ProcessorLocalApic::new(
            cpu,
            cpu,
            EnabledStatus::Enabled,
        )));
    }
    madt.append_slice(&aml_bytes(&IoApic::new(0, IOAPIC_ADDR as u32, 0)));
    if ioapic2 {
        madt.append_slice(&aml_bytes(&IoApic::new(
            1,
            IOAPIC2_ADDR as u32,
            IOAPIC2_GSI_BASE,
        )));
    }
    // Local APIC NMI: type, length 6, ACPI processor UID 0xFF (all), flags 0, LINT1.
    madt.append_slice(&[LOCAL_APIC_NMI, 6, 0xff, 0, 0, 1]);
    Ok(madt.as_slice().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn madt_structures() {
        let m = build_madt(*b"KINDLG", *b"MICROVM ", 2, true).unwrap();
        assert_eq!(&m[0..4], b"APIC");
        assert_eq!(
            u32::from_le_bytes(m[4..8].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(m.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
        assert_eq!(&m[36..44], &[0, 0, 0xe0, 0xfe, 1, 0, 0, 0]);
        let s = &m[44..];
        assert_eq!(&s[0..8], &[0, 8, 0, 0, 1, 0, 0, 0], "CPU 0");
        assert_eq!(&s[8..16], &[0, 8, 1, 1, 1, 0, 0, 0], "CPU 1");
        assert_eq!(&s[16..28], &[1, 12, 0, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0]);
        assert_eq!(&s[28..40], &[1, 12, 1, 0, 0, 0, 0xc1, 0xfe, 24, 0, 0, 0]);
        assert_eq!(&s[40..], &[4, 6, 0xff, 0, 0, 1]);
    }

    #[test]
    fn single_ioapic_and_cpu_bounds() {
        let m = build_madt(*b"KINDLG", *b"MICROVM ", 1, false).unwrap();
        assert_eq!(m.len(), 44 + 8 + 12 + 6);
        assert_eq!(
            build_madt(*b"KINDLG", *b"MICROVM ", 0, false),
            Err(MadtError::BadCpuCount(0))
        );
        assert_eq!(
            build_madt(*b"KINDLG", *b"MICROVM ", 256, false),
            Err(MadtError::BadCpuCount(256))
        );
    }
}
