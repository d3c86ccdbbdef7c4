//! The Intel MP table for `acpi=off`, as qboot's `mptable.c` builds it for microvm (QEMU
//! itself builds none). No crate writes MP tables (Firecracker and Cloud Hypervisor keep
//! their own in-tree), so the structures are laid out here from the MP spec 1.4:
//!
//! - floating pointer `_MP_` at 0x9fc00 (Linux scans the last KiB of base memory), pointing
//!   at the configuration table right after it;
//! - one processor entry per vCPU: APIC id = index, enabled, BSP flag on CPU 0, APIC version
//!   0x14;
//! - one bus, `ISA   `;
//! - the IOAPIC at 0xFEC00000 with id `num_cpus + 1`;
//! - ISA interrupt entries for IRQs 0-15, identity mapped, except that microvm sets
//!   `FW_CFG_IRQ0_OVERRIDE`, so IRQ 0 goes to pin 2 and IRQ 2 gets no entry (15 entries);
//! - LINT0 = ExtINT (to APIC 0), LINT1 = NMI (to all APICs).
//!
//! qboot copies the boot CPU's CPUID leaf 1 (EAX, EDX) into the processor entries; this crate
//! knows no CPU model, so it writes a family-6 signature with the FPU and APIC feature bits,
//! as Firecracker does. Linux reads only the APIC id, version and flags from these entries.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::layout::{BIOS_NVS_START, IOAPIC_ADDR, LAPIC_ADDR, MPTABLE_ADDR};

/// Local APIC / IOAPIC version qboot reports.
pub const APIC_VERSION: u8 = 0x14;
/// MP spec revision 1.4.
const MP_SPEC_REV: u8 = 4;
/// CPUID signature written in processor entries (family 6).
const CPU_SIGNATURE: u32 = 0x600;
/// CPUID feature flags written in processor entries: FPU | APIC.
const CPU_FEATURES: u32 = (1 << 0) | (1 << 9);
const MP_PROCESSOR: u8 = 0;
const MP_BUS: u8 = 1;
const MP_IOAPIC: u8 = 2;
const MP_INTSRC: u8 = 3;
const MP_LINTSRC: u8 = 4;
const MP_INT: u8 = 0;
const MP_NMI: u8 = 1;
const MP_EXTINT: u8 = 3;
const CPU_ENABLED: u8 = 1;
const CPU_BOOTPROCESSOR: u8 = 2;
const MPC_APIC_USABLE: u8 = 1;
const FLOATING_POINTER_LEN: usize = 16;
const TABLE_HEADER_LEN: usize = 44;

/// Errors building the MP table.
#[derive(Debug, thiserror::Error)]
pub enum MpTableError {
    /// APIC ids are 8 bits and the IOAPIC takes `num_cpus + 1`.
    #[error("the MP table describes 1 to 253 CPUs, not {0}")]
    BadCpuCount(u32),
    /// Guest memory refused the write.
    #[error("cannot write the MP table")]
    Write(#[source] vm_memory::GuestMemoryError),
}

/// Sum of all bytes, mod 256.
fn byte_sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b))
}

/// The value that makes `bytes` (with a zero checksum byte) sum to 0.
fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(byte_sum(bytes))
}

fn processor_entry(apic_id: u8) -> [u8; 20] {
    let mut e = [0u8; 20];
    e[0] = MP_PROCESSOR;
    e[1] = apic_id;
    e[2] = APIC_VERSION;
    e[3] = CPU_ENABLED | if apic_id == 0 { CPU_BOOTPROCESSOR } else { 0 };
    e[4..8].copy_from_slice(&CPU_SIGNATURE.to_le_bytes());
    e[8..12].copy_from_slice(&CPU_FEATURES.to_le_bytes());
    e
}

fn interrupt_entry(kind: u8, irqtype: u8, src_irq: u8, dst_apic: u8, dst_pin: u8) -> [u8; 8] {
    // type, irqtype, irqflag (u16, 0 = conforms to bus), src bus 0, src irq, dst apic, dst pin
    [kind, irqtype, 0, 0, 0, src_irq, dst_apic, dst_pin]
}

/// Builds the floating pointer and configuration table, to be placed at `base`.
pub fn build_mptable(base: u64, num_cpus: u32) -> Result<Vec<u8>, MpTableError> {
    if num_cpus == 0 || num_cpus > 253 {
        return Err(MpTableError::BadCpuCount(num_cpus));
    }
    let ioapic_id = num_cpus as u8 + 1;
    let mut entries: Vec<u8> = Vec::new();
    let mut count: u16 = 0;
    for cpu in 0..num_cpus as u8 {
        entries.extend_from_slice(&processor_entry(cpu));
        count += 1;
    }
    entries.extend_from_slice(&[MP_BUS, 0, b'I', b'S', b'A', b' ', b' ', b' ']);
    count += 1;
    let mut ioapic = [
        MP_IOAPIC,
        ioapic_id,
        APIC_VERSION,
        MPC_APIC_USABLE,
        0,
        0,
        0,
        0,
    ];
    ioapic[4..8].copy_from_slice(&(IOAPIC_ADDR as u32).to_le_bytes());
    entries.extend_from_slice(&ioapic);
    count += 1;
    for irq in 0..16u8 {
        let pin = match irq {
            0 => 2,
            2 => continue,
            n => n,
        };
        entries.extend_from_slice(&interrupt_entry(MP_INTSRC, MP_INT, irq, ioapic_id, pin));
        count += 1;
    }
    entries.extend_from_slice(&interrupt_entry(MP_LINTSRC, MP_EXTINT, 0, 0, 0));
    entries.extend_from_slice(&interrupt_entry(MP_LINTSRC, MP_NMI, 0, 0xff, 1));
    count += 2;

    let table_len = TABLE_HEADER_LEN + entries.len();
    let mut table = vec![0u8; TABLE_HEADER_LEN];
    table[0..4].copy_from_slice(b"PCMP");
    table[4..6].copy_from_slice(&(table_len as u16).to_le_bytes());
    table[6] = MP_SPEC_REV;
    table[8..16].copy_from_slice(b"KINDLING");
    table[16..28].copy_from_slice(b"MICROVM     ");
    table[34..36].copy_from_slice(&count.to_le_bytes());
    table[36..40].copy_from_slice(&(LAPIC_ADDR as u32).to_le_bytes());
    table.extend_from_slice(&entries);
    table[7] = checksum(&table);

    let mut mpf = [0u8; FLOATING_POINTER_LEN];
    mpf[0..4].copy_from_slice(b"_MP_");
    mpf[4..8].copy_from_slice(&((base + FLOATING_POINTER_LEN as u64) as u32).to_le_bytes());
    mpf[8] = 1; // length in 16-byte paragraphs
    mpf[9] = MP_SPEC_REV;
    mpf[10] = checksum(&mpf);

    let mut out = mpf.to_vec();
    out.extend_from_slice(&table);
    Ok(out)
}

/// Writes the MP table at [`MPTABLE_ADDR`]; returns its size in bytes.
pub fn write_mptable(mem: &GuestMemoryMmap<()>, num_cpus: u32) -> Result<usize, MpTableError> {
    let bytes = build_mptable(MPTABLE_ADDR, num_cpus)?;
    // 253 CPUs need 5.3 KiB: it runs past the EBDA into the legacy hole below qboot's NVS
    // range (qboot does the same), never into anything we or the kernel use.
    debug_assert!(MPTABLE_ADDR + bytes.len() as u64 <= BIOS_NVS_START);
    mem.write_slice(&bytes, GuestAddress(MPTABLE_ADDR))
        .map_err(MpTableError::Write)?;
    Ok(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny MP-table reader, the way Linux's mpparse walks it.
    struct Parsed {
        cpus: Vec<(u8, u8, u8)>,
        buses: Vec<[u8; 6]>,
        ioapics: Vec<(u8, u32)>,
        intsrc: Vec<(u8, u8, u8, u8)>,
        lint: Vec<(u8, u8, u8)>,
    }

    fn parse(mem: &GuestMemoryMmap<()>) -> Parsed {
        let mut mpf = [0u8; 16];
        mem.read_slice(&mut mpf, GuestAddress(MPTABLE_ADDR))
            .unwrap();
        assert_eq!(&mpf[..4], b"_MP_");
        assert_eq!(byte_sum(&mpf), 0, "floating pointer checksum");
        assert_eq!((mpf[8], mpf[9]), (1, 4));
        let table_at = u32::from_le_bytes(mpf[4..8].try_into().unwrap()) as u64;
        let mut hdr = [0u8; 44];
        mem.read_slice(&mut hdr, GuestAddress(table_at)).unwrap();
        assert_eq!(&hdr[..4], b"PCMP");
        let len = u16::from_le_bytes([hdr[4], hdr[5]]) as usize;
        let mut table = vec![0u8; len];
        mem.read_slice(&mut table, GuestAddress(table_at)).unwrap();
        assert_eq!(byte_sum(&table), 0, "table checksum");
        assert_eq!(
            u32::from_le_bytes(table[36..40].try_into().unwrap()),
            0xfee0_0000
        );
        let mut p = Parsed {
            cpus: vec![],
            buses: vec![],
            ioapics: vec![],
            intsrc: vec![],
            lint: vec![],
        };
        let mut at = 44;
        let mut count = 0;
        while at < len {
            let e = &table[at..];
            count += 1;
            at += match e[0] {
                MP_PROCESSOR => {
                    p.cpus.push((e[1], e[2], e[3]));
                    20
                }
                MP_BUS => {
                    p.buses.push(e[2..8].try_into().unwrap());
                    8
                }
                MP_IOAPIC => {
                    p.ioapics
                        .push((e[1], u32::from_le_bytes(e[4..8].try_into().unwrap())));
                    8
                }
                MP_INTSRC => {
                    p.intsrc.push((e[1], e[5], e[6], e[7]));
                    8
                }
                MP_LINTSRC => {
                    p.lint.push((e[1], e[6], e[7]));
                    8
                }
                t => panic!("unknown entry type {t}"),
            };
        }
        assert_eq!(at, len);
        assert_eq!(u16::from_le_bytes([table[34], table[35]]), count);
        p
    }

    #[test]
    fn two_cpu_table_matches_qboot() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let len = write_mptable(&mem, 2).unwrap();
        assert_eq!(len, 16 + 44 + 2 * 20 + 8 + 8 + 15 * 8 + 2 * 8);
        let p = parse(&mem);
        assert_eq!(p.cpus, vec![(0, 0x14, 3), (1, 0x14, 1)]);
        assert_eq!(p.buses, vec![*b"ISA   "]);
        assert_eq!(p.ioapics, vec![(3, 0xfec0_0000)]);
        assert_eq!(p.intsrc.len(), 15);
        assert_eq!(p.intsrc[0], (MP_INT, 0, 3, 2), "IRQ0 -> pin 2");
        assert!(p.intsrc.iter().all(|&(_, irq, _, _)| irq != 2));
        for &(kind, irq, apic, pin) in &p.intsrc[1..] {
            assert_eq!((kind, apic, pin), (MP_INT, 3, irq));
        }
        assert_eq!(p.lint, vec![(MP_EXTINT, 0, 0), (MP_NMI, 0xff, 1)]);
    }

    #[test]
    fn many_cpus_fit_below_the_nvs_area() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        write_mptable(&mem, 253).unwrap();
        let p = parse(&mem);
        assert_eq!(p.cpus.len(), 253);
        assert_eq!(p.ioapics[0].0, 254);
    }

    #[test]
    fn cpu_count_is_bounded() {
        assert!(matches!(
            build_mptable(MPTABLE_ADDR, 0),
            Err(MpTableError::BadCpuCount(0))
        ));
        assert!(matches!(
            build_mptable(MPTABLE_ADDR, 254),
            Err(MpTableError::BadCpuCount(254))
        ));
    }
}
