//! ACPI tables for `acpi=on`: RSDP v2 -> XSDT -> { FADT -> DSDT, MADT }, as QEMU's
//! `acpi_build_microvm` builds them, written into the BIOS area where Linux's RSDP scan
//! (0xE0000-0xFFFFF) also finds them; the RSDP's address is handed to the kernel directly
//! (`boot_params.acpi_rsdp_addr` / `hvm_start_info.rsdp_paddr`).
//!
//! Layout: RSDP at 0xE0000, then DSDT, FADT, MADT, XSDT (QEMU's blob order), each 16-byte
//! aligned, all below 0xF0000 (inside the NVS range of the e820 map).

pub mod dsdt;
pub mod fadt;
pub mod madt;

use acpi_tables::rsdp::Rsdp;
use acpi_tables::xsdt::XSDT;
use acpi_tables::Aml;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::layout::{ACPI_AREA_END, RSDP_ADDR};
use crate::transport::VirtioMmioTransport;
use dsdt::{dsdt_body, DsdtConfig, DsdtError};
use madt::{build_madt, MadtError};

/// OEM id in every table header.
pub const OEM_ID: [u8; 6] = *b"KINDLG";
/// OEM table id in every table header.
pub const OEM_TABLE_ID: [u8; 8] = *b"MICROVM ";
/// DSDT revision QEMU uses (2: 64-bit integers).
const DSDT_REVISION: u8 = 2;

/// What the tables describe.
#[derive(Debug, Clone, Copy)]
pub struct AcpiConfig<'a> {
    /// fw_cfg is present (listed in the DSDT as QEMU0002).
    pub fw_cfg: bool,
    /// vCPUs (one local APIC each).
    pub num_cpus: u32,
    /// The second IOAPIC (GSIs 24-47) exists.
    pub ioapic2: bool,
    /// An RTC is present.
    pub rtc: bool,
    /// COM1 is present.
    pub serial: bool,
    /// Populated virtio-mmio transports.
    pub transports: &'a [VirtioMmioTransport],
}

/// Where the tables went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiTables {
    /// RSDP address.
    pub rsdp: u64,
    /// `(signature, address, length)` of each table after the RSDP.
    pub tables: Vec<([u8; 4], u64, usize)>,
}

/// Errors building the tables.
#[derive(Debug, thiserror::Error)]
pub enum AcpiError {
    /// DSDT content.
    #[error("cannot build the DSDT")]
    Dsdt(#[from] DsdtError),
    /// MADT content.
    #[error("cannot build the MADT")]
    Madt(#[from] MadtError),
    /// The tables outgrew the BIOS area.
    #[error("ACPI tables need {need} bytes, more than the {room} the BIOS area holds")]
    TooLarge {
        /// Bytes needed.
        need: u64,
        /// Bytes available.
        room: u64,
    },
    /// Guest memory refused a write.
    #[error("cannot write ACPI tables")]
    Write(#[source] vm_memory::GuestMemoryError),
}

fn align16(x: u64) -> u64 {
    (x + 15) & !15
}

/// Builds all tables and their addresses (without touching guest memory).
pub fn build_acpi_tables(cfg: &AcpiConfig<'_>) -> Result<Vec<(u64, Vec<u8>)>, AcpiError> {
    let mut placed: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut next = align16(RSDP_ADDR + Rsdp::len() as u64);

    let mut dsdt = acpi_tables::sdt::Sdt::new(*b"DSDT", 36, DSDT_REVISION, OEM_ID, OEM_TABLE_ID, 1);
    dsdt.append_slice(&dsdt_body(&DsdtConfig {
        fw_cfg: cfg.fw_cfg,
        rtc: cfg.rtc,
        serial: cfg.serial,
        transports: cfg.transports,
    })?);
    let dsdt_addr = next;
    next = align16(next + dsdt.len() as u64);
    placed.push((dsdt_addr, dsdt.as_slice().to_vec()));

    let fadt = fadt::build_fadt(OEM_ID, OEM_TABLE_ID, dsdt_addr);
    let fadt_addr = next;
    next = align16(next + fadt.len() as u64);
    placed.push((fadt_addr, fadt));

    let madt = build_madt(OEM_ID, OEM_TABLE_ID, cfg.num_cpus, cfg.ioapic2)?;
    let madt_addr = next;
    next = align16(next + madt.len() as u64);
    placed.push((madt_addr, madt));

    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, 1);
    xsdt.add_entry(fadt_addr);
    xsdt.add_entry(madt_addr);
    let mut xsdt_bytes = Vec::new();
    xsdt.to_aml_bytes(&mut xsdt_bytes);
    let xsdt_addr = next;
    next += xsdt_bytes.len() as u64;
    placed.push((xsdt_addr, xsdt_bytes));

    if next > ACPI_AREA_END {
        return Err(AcpiError::TooLarge {
            need: next - RSDP_ADDR,
            room: ACPI_AREA_END - RSDP_ADDR,
        });
    }
    let mut rsdp = Vec::new();
    Rsdp::new(OEM_ID, xsdt_addr).to_aml_bytes(&mut rsdp);
    placed.insert(0, (RSDP_ADDR, rsdp));
    Ok(placed)
}

/// Builds the tables and writes them to guest memory.
pub fn write_acpi_tables(
    mem: &GuestMemoryMmap<()>,
    cfg: &AcpiConfig<'_>,
) -> Result<AcpiTables, AcpiError> {
    let placed = build_acpi_tables(cfg)?;
    let mut tables = Vec::new();
    for (addr, bytes) in &placed {
        mem.write_slice(bytes, GuestAddress(*addr))
            .map_err(AcpiError::Write)?;
        if *addr != RSDP_ADDR {
            let mut sig = [0u8; 4];
            sig.copy_from_slice(&bytes[..4]);
            tables.push((sig, *addr, bytes.len()));
        }
    }
    Ok(AcpiTables {
        rsdp: RSDP_ADDR,
        tables,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    fn cfg(transports: &[VirtioMmioTransport]) -> AcpiConfig<'_> {
        AcpiConfig {
            fw_cfg: true,
            num_cpus: 2,
            ioapic2: true,
            rtc: true,
            serial: true,
            transports,
        }
    }

    fn read(mem: &GuestMemoryMmap<()>, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
        v
    }

    #[test]
    fn tables_chain_from_rsdp_with_good_checksums() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let transports = [VirtioMmioTransport::slot(23, 47)];
        let out = write_acpi_tables(&mem, &cfg(&transports)).unwrap();
        assert_eq!(out.rsdp, 0xe0000);

        let rsdp = read(&mem, out.rsdp, 36);
        assert_eq!(&rsdp[..8], b"RSD PTR ");
        assert_eq!(rsdp[15], 2, "revision");
        assert_eq!(sum(&rsdp[..20]), 0, "v1 checksum");
        assert_eq!(sum(&rsdp), 0, "extended checksum");
        let xsdt_addr = u64::from_le_bytes(rsdp[24..32].try_into().unwrap());

        let xsdt_len = u32::from_le_bytes(read(&mem, xsdt_addr + 4, 4).try_into().unwrap());
        let xsdt = read(&mem, xsdt_addr, xsdt_len as usize);
        assert_eq!(&xsdt[..4], b"XSDT");
        assert_eq!(sum(&xsdt), 0);
        let entries: Vec<u64> = xsdt[36..]
            .chunks(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(entries.len(), 2);
        let mut sigs = Vec::new();
        for e in &entries {
            let len = u32::from_le_bytes(read(&mem, e + 4, 4).try_into().unwrap());
            let t = read(&mem, *e, len as usize);
            assert_eq!(
                sum(&t),
                0,
                "checksum of {}",
                String::from_utf8_lossy(&t[..4])
            );
            sigs.push(t[..4].to_vec());
            if &t[..4] == b"FACP" {
                let dsdt = u64::from_le_bytes(t[140..148].try_into().unwrap());
                let dlen = u32::from_le_bytes(read(&mem, dsdt + 4, 4).try_into().unwrap());
                let d = read(&mem, dsdt, dlen as usize);
                assert_eq!(&d[..4], b"DSDT");
                assert_eq!(d[8], 2);
                assert_eq!(sum(&d), 0);
            }
        }
        assert_eq!(sigs, vec![b"FACP".to_vec(), b"APIC".to_vec()]);
        for (_, addr, len) in &out.tables {
            assert!(*addr >= 0xe0000 && addr + *len as u64 <= 0xf0000);
            assert_eq!(addr % 16, 0);
        }
    }

    #[test]
    fn too_many_transports_still_fit_the_area() {
        let transports: Vec<_> = (0..24)
            .map(|i| VirtioMmioTransport::slot(i, 24 + i))
            .collect();
        let placed = build_acpi_tables(&AcpiConfig {
            num_cpus: 255,
            ..cfg(&transports)
        })
        .unwrap();
        let (last_addr, last) = placed.last().unwrap();
        assert!(last_addr + last.len() as u64 <= ACPI_AREA_END);
    }

    /// Disassembles every table with ACPICA's iasl when it is installed
    /// (`apt-get install acpica-tools`), and checks it understood them.
    #[test]
    fn iasl_disassembles_the_tables() {
        let Ok(out) = std::process::Command::new("iasl").arg("-v").output() else {
            println!("skipping: iasl not installed (apt-get install acpica-tools)");
            return;
        };
        assert!(out.status.success() || !out.stdout.is_empty());
        let dir = std::env::temp_dir().join(format!("kindling-acpi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let transports = [
            VirtioMmioTransport::slot(23, 47),
            VirtioMmioTransport::slot(22, 46),
        ];
        let placed = build_acpi_tables(&cfg(&transports)).unwrap();
        let mut listings = std::collections::HashMap::new();
        for (_, bytes) in placed.iter().skip(1) {
            let sig = String::from_utf8_lossy(&bytes[..4]).to_lowercase();
            let bin = dir.join(format!("{sig}.dat"));
            std::fs::write(&bin, bytes).unwrap();
            let run = std::process::Command::new("iasl")
                .current_dir(&dir)
                .arg("-d")
                .arg(&bin)
                .output()
                .unwrap();
            let log = String::from_utf8_lossy(&run.stdout).into_owned()
                + &String::from_utf8_lossy(&run.stderr);
            assert!(run.status.success(), "iasl -d {sig} failed:\n{log}");
            let dsl = std::fs::read_to_string(dir.join(format!("{sig}.dsl"))).unwrap();
            assert!(!dsl.contains("Incorrect checksum"), "{sig}:\n{dsl}");
            listings.insert(sig, dsl);
        }
        let dsdt = &listings["dsdt"];
        for needle in [
            "Device (FWCF)",
            "\"QEMU0002\"",
            "Device (COM1)",
            "EisaId (\"PNP0501\")",
            "Device (RTC)",
            "Device (GED)",
            "\"ACPI0013\"",
            "Method (_EVT, 1, Serialized)",
            "Notify (PWRB, 0x80)",
            "\"PNP0C0C\"",
            "Device (VR23)",
            "\"LNRO0005\"",
            "Memory32Fixed (ReadWrite,",
            "0xFEB02E00",
            "Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive, ,, )",
            "Scope (\\)",
            "Name (_S5, Package (0x04)",
        ] {
            assert!(dsdt.contains(needle), "DSDT lacks {needle}:\n{dsdt}");
        }
        let fadt = &listings["facp"];
        assert!(fadt.contains("Hardware Reduced (V5) : 1"), "{fadt}");
        assert!(fadt.contains("Reset Register Supported (V2) : 1"), "{fadt}");
        let madt = &listings["apic"];
        assert!(madt.contains("[Local APIC NMI]"), "{madt}");
        assert_eq!(
            madt.matches("Subtable Type : 01 [I/O APIC]").count(),
            2,
            "{madt}"
        );
        if std::env::var_os("KINDLING_KEEP_ACPI").is_some() {
            println!("tables kept in {}", dir.display());
        } else {
            std::fs::remove_dir_all(&dir).ok();
        }
    }
}
