//! CPUID of the software CPU: a table built once per vCPU from a `-cpu`
//! model (as QEMU names them) and the `+feat`/`-feat` list, advertising
//! only what the interpreter implements.
//!
//! The base leaves are the same for every model: vendor GenuineIntel,
//! family 6 (Linux reads leaves 0x15/0x16 only on Intel), max leaf 0x16,
//! topology leaf 0xB, the TSC/crystal leaves 0x15/0x16, the brand string
//! and 40/48-bit address sizes. Feature bits come from a model's list of
//! QEMU feature names ([`crate::features`] maps each to its bit), so a
//! feature is one line in [`MAX`].
//!
//! `max` (also `host` on tcg, and the default) advertises:
//! - CPUID.1:EDX fpu pse tsc msr pae cx8 apic sep pge cmov pat clflush
//!   mmx fxsr sse sse2;
//! - CPUID.1:ECX sse3 (pni) pclmulqdq ssse3 fma cx16 sse4.1 sse4.2 movbe
//!   popcnt tsc-deadline aes xsave avx f16c rdrand hypervisor (OSXSAVE
//!   follows CR4);
//! - CPUID.6:EAX arat;
//! - CPUID.7.0:EBX fsgsbase bmi1 avx2 bmi2 rdseed adx smep smap sha-ni;
//!   CPUID.7.0:ECX umip rdpid;
//! - CPUID.(EAX=0DH,ECX=1):EAX xsaveopt xsavec xgetbv1 (leaf 0xD itself
//!   follows XCR0);
//! - CPUID.80000001H:ECX lahf_lm abm; EDX syscall nx rdtscp lm;
//! - CPUID.80000007H:EDX invtsc;
//! - CPUID.40000000H "KVMKVMKVM", CPUID.40000001H:EAX kvmclock (the
//!   CLOCKSOURCE2 MSRs) and kvmclock-stable-bit (see `kvmclock`).
//!
//! `qemu64` is QEMU's qemu64 list restricted to those, plus the bits that
//! describe this board rather than the instruction set ([`PLATFORM`]);
//! its vendor and family stay as above (QEMU's qemu64 claims AMD family
//! 15, which would hide the clock leaves Linux relies on).

use super::cpu::{Cpu, CRYSTAL_HZ};
use crate::features::{self, CpuModel};
use crate::CpuidEntry;

/// Every feature the interpreter implements (QEMU names): `max`.
pub const MAX: &[&str] = &[
    // CPUID.1:EDX (PSE: Linux's AP trampoline requires it).
    "fpu",
    "pse",
    "tsc",
    "msr",
    "pae",
    "cx8",
    "apic",
    "sep",
    "pge",
    "cmov",
    "pat",
    "clflush",
    "mmx",
    "fxsr",
    "sse",
    "sse2",
    // CPUID.1:ECX.
    "sse3",
    "pclmulqdq",
    "ssse3",
    "fma",
    "cx16",
    "sse4.1",
    "sse4.2",
    "movbe",
    "popcnt",
    "tsc-deadline",
    "aes",
    "xsave",
    "avx",
    "f16c",
    "rdrand",
    "hypervisor",
    // CPUID.6:EAX.
    "arat",
    // CPUID.7.0:EBX/ECX.
    "fsgsbase",
    "bmi1",
    "avx2",
    "bmi2",
    "rdseed",
    "adx",
    "smep",
    "smap",
    "sha-ni",
    "umip",
    "rdpid",
    // CPUID.(EAX=0DH,ECX=1):EAX.
    "xsaveopt",
    "xsavec",
    "xgetbv1",
    // CPUID.80000001H:ECX/EDX.
    "lahf_lm",
    "abm",
    "syscall",
    "nx",
    "rdtscp",
    "lm",
    // CPUID.80000007H:EDX.
    "invtsc",
    // CPUID.40000001H:EAX: KVM's paravirtual clock.
    "kvmclock",
    "kvmclock-stable-bit",
];

/// Board and timer bits every model keeps (QEMU sets `hypervisor` on all
/// models; the others describe our LAPIC timer and TSC).
pub const PLATFORM: &[&str] = &[
    "hypervisor",
    "tsc-deadline",
    "arat",
    "invtsc",
    "kvmclock",
    "kvmclock-stable-bit",
];

/// A vCPU's CPUID table, and the decode-relevant features it shows.
#[derive(Debug, Clone)]
pub struct CpuidTable {
    entries: Vec<CpuidEntry>,
    id: u32,
    /// LZCNT is advertised (else it runs as BSR).
    pub lzcnt: bool,
    /// BMI1 is advertised (else TZCNT runs as BSF).
    pub bmi1: bool,
}

fn leaf(function: u32, eax: u32, ebx: u32, ecx: u32, edx: u32) -> CpuidEntry {
    CpuidEntry {
        function,
        eax,
        ebx,
        ecx,
        edx,
        ..Default::default()
    }
}

fn subleaf(function: u32, index: u32, regs: (u32, u32, u32, u32)) -> CpuidEntry {
    CpuidEntry {
        function,
        index,
        significant_index: true,
        eax: regs.0,
        ebx: regs.1,
        ecx: regs.2,
        edx: regs.3,
    }
}

/// The leaves without feature bits, for vCPU `id` with a TSC of `tsc_khz`.
fn base(id: u32, tsc_khz: u64) -> Vec<CpuidEntry> {
    let mhz = (tsc_khz / 1000) as u32;
    vec![
        // Max leaf 0x16; "GenuineIntel".
        leaf(0, 0x16, 0x756e_6547, 0x6c65_746e, 0x4965_6e69),
        // Family 6; APIC ID, one logical processor, CLFLUSH line 8*8.
        leaf(1, 0x0006_06a0, (id << 24) | (1 << 16) | (8 << 8), 0, 0),
        leaf(6, 0, 0, 0, 0),
        subleaf(7, 0, (0, 0, 0, 0)),
        // Leaf 0xD's sizes follow XCR0 (`Cpu::cpuid`); the table holds
        // the feature bits of subleaf 1.
        subleaf(0xd, 1, (0, 0, 0, 0)),
        subleaf(0xb, 0, (0, 1, 0x100, id)),
        // TSC/crystal ratio and the crystal rate (= the LAPIC timer's).
        // Linux computes crystal_khz * EBX / EAX in 32 bits, so the ratio
        // is given in MHz/1000 (the board rounds the TSC to whole MHz).
        leaf(0x15, 1000, mhz, CRYSTAL_HZ, 0),
        leaf(0x16, mhz, mhz, CRYSTAL_HZ / 1_000_000, 0),
        // "KVMKVMKVM": kvmclock's CPUID leaves (the bits are features).
        leaf(0x4000_0000, 0x4000_0001, 0x4b4d_564b, 0x564b_4d56, 0x4d),
        leaf(0x4000_0001, 0, 0, 0, 0),
        leaf(0x8000_0000, 0x8000_0008, 0, 0, 0),
        leaf(0x8000_0001, 0, 0, 0, 0),
        // "Kindling software CPU".
        leaf(
            0x8000_0002,
            0x646e_694b,
            0x676e_696c,
            0x6f73_2020,
            0x6177_7466,
        ),
        leaf(0x8000_0003, 0x4320_6572, 0x5550, 0, 0),
        leaf(0x8000_0004, 0, 0, 0, 0),
        leaf(0x8000_0007, 0, 0, 0, 0),
        // 40-bit physical, 48-bit virtual addresses.
        leaf(0x8000_0008, 0x3028, 0, 0, 0),
    ]
}

/// The feature names model `model` advertises on the interpreter.
pub fn model_features(model: CpuModel) -> Vec<&'static str> {
    match model {
        CpuModel::Host | CpuModel::Max => MAX.to_vec(),
        CpuModel::Qemu64 => MAX
            .iter()
            .copied()
            .filter(|f| {
                // By bit, so aliases (pni/sse3, lahf-lm/lahf_lm) match.
                let at = features::locate(f);
                PLATFORM.contains(f) || features::QEMU64.iter().any(|q| features::locate(q) == at)
            })
            .collect(),
    }
}

impl CpuidTable {
    /// vCPU `id`'s table for `model` with `adjustments` applied; also
    /// returns the adjustments that name an unknown feature or one the
    /// interpreter does not implement.
    pub fn new(
        model: CpuModel,
        id: u32,
        tsc_khz: u64,
        adjustments: &[(String, bool)],
    ) -> (Self, Vec<String>) {
        let supported = Self::entries_for(&model_features(CpuModel::Max), id, tsc_khz);
        let mut entries = Self::entries_for(&model_features(model), id, tsc_khz);
        let bad = features::apply(&mut entries, &supported, adjustments);
        (Self::from_entries(entries, id), bad)
    }

    fn entries_for(names: &[&str], id: u32, tsc_khz: u64) -> Vec<CpuidEntry> {
        let mut t = base(id, tsc_khz);
        for name in names {
            features::set(&mut t, name, true);
        }
        t
    }

    /// A table of `entries` for vCPU `id`.
    pub fn from_entries(entries: Vec<CpuidEntry>, id: u32) -> Self {
        CpuidTable {
            lzcnt: features::has(&entries, "abm"),
            bmi1: features::has(&entries, "bmi1"),
            entries,
            id,
        }
    }

    /// The entries (what `supported_cpuid` reports).
    pub fn entries(&self) -> &[CpuidEntry] {
        &self.entries
    }

    /// CPUID leaf `leaf`, subleaf `sub`: zeros for leaves not in the
    /// table, and an invalid level (ECX = subleaf, EDX = APIC ID) for
    /// leaf 0xB's subleaves past the first.
    pub fn lookup(&self, leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
        match crate::cpuid::lookup(&self.entries, leaf, sub) {
            Some(e) => (e.eax, e.ebx, e.ecx, e.edx),
            None if leaf == 0xb => (0, 0, sub & 0xff, self.id),
            None => (0, 0, 0, 0),
        }
    }
}

impl Cpu {
    /// CPUID leaf `leaf`, subleaf `sub`.
    ///
    /// Two answers follow the CPU's state when the model shows XSAVE:
    /// CPUID.1:ECX.OSXSAVE mirrors CR4.OSXSAVE, and leaf 0xD describes
    /// the XSAVE area for the current XCR0 (subleaf 1's feature bits only
    /// as far as the table keeps them: `-cpu max,-xsavec`).
    pub fn cpuid(&self, leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
        const XSAVE: u32 = 1 << 26;
        const OSXSAVE: u32 = 1 << 27;
        const CR4_OSXSAVE: u64 = 1 << 18;
        let xsave = self.cpuid_table.lookup(1, 0).2 & XSAVE != 0;
        match leaf {
            0xd if xsave => {
                let (mut a, b, c, d) = super::fpu::cpuid_leaf_d(sub, self.st.fpu.xcr0());
                if sub == 1 {
                    a &= self.cpuid_table.lookup(0xd, 1).0;
                }
                (a, b, c, d)
            }
            1 => {
                let (a, b, mut c, d) = self.cpuid_table.lookup(1, 0);
                c &= !OSXSAVE;
                if xsave && self.st.cr4 & CR4_OSXSAVE != 0 {
                    c |= OSXSAVE;
                }
                (a, b, c, d)
            }
            _ => self.cpuid_table.lookup(leaf, sub),
        }
    }

    /// Replace this CPU's CPUID table (the `-cpu` model).
    pub fn set_cpuid(&mut self, table: CpuidTable) {
        self.cpuid_table = table;
    }

    /// This CPU's CPUID table.
    pub fn cpuid_table(&self) -> &CpuidTable {
        &self.cpuid_table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(model: CpuModel, adj: &[(&str, bool)]) -> (CpuidTable, Vec<String>) {
        let adj: Vec<(String, bool)> = adj.iter().map(|(n, o)| (n.to_string(), *o)).collect();
        CpuidTable::new(model, 2, 2_000_000, &adj)
    }

    #[test]
    fn max_shows_every_implemented_feature() {
        let (t, bad) = table(CpuModel::Max, &[]);
        assert!(bad.is_empty());
        for name in MAX {
            assert!(features::has(t.entries(), name), "{name} missing");
        }
        let (_, _, ecx, _) = t.lookup(1, 0);
        assert_ne!(ecx & (1 << 23), 0, "popcnt");
        assert_ne!(ecx & (1 << 22), 0, "movbe");
        // sse3 pclmulqdq ssse3 fma cx16 sse4.1 sse4.2 movbe popcnt
        // tsc-deadline aes xsave avx f16c rdrand hypervisor; no OSXSAVE
        // in the table (it follows CR4).
        let ecx1 = [0, 1, 9, 12, 13, 19, 20, 22, 23, 24, 25, 26, 28, 29, 30, 31];
        assert_eq!(ecx, ecx1.iter().fold(0, |r, b| r | (1u32 << b)));
        let (_, ebx, ecx7, _) = t.lookup(7, 0);
        // fsgsbase bmi1 avx2 smep bmi2 rdseed adx smap sha-ni.
        let ebx7 = [0, 3, 5, 7, 8, 18, 19, 20, 29];
        assert_eq!(ebx, ebx7.iter().fold(0, |r, b| r | (1u32 << b)));
        assert_eq!(t.lookup(0xd, 1).0, 0b111, "xsaveopt xsavec xgetbv1");
        assert_eq!(ecx7, (1 << 22) | (1 << 2), "rdpid umip");
        assert_eq!(t.lookup(0x8000_0001, 0).2, 1 | (1 << 5));
        assert!(t.lzcnt && t.bmi1);
        // Host on tcg is max.
        assert_eq!(table(CpuModel::Host, &[]).0.entries(), t.entries());
    }

    #[test]
    fn base_leaves_are_as_linux_expects() {
        let (t, _) = table(CpuModel::Qemu64, &[]);
        assert_eq!(
            t.lookup(0, 0),
            (0x16, 0x756e_6547, 0x6c65_746e, 0x4965_6e69)
        );
        assert_eq!(t.lookup(1, 0).0, 0x0006_06a0);
        assert_eq!(t.lookup(1, 0).1 >> 24, 2);
        assert_eq!(t.lookup(0xb, 0), (0, 1, 0x100, 2));
        assert_eq!(t.lookup(0xb, 1), (0, 0, 1, 2));
        assert_eq!(t.lookup(0xb, 7), (0, 0, 7, 2));
        assert_eq!(t.lookup(0x15, 0), (1000, 2000, CRYSTAL_HZ, 0));
        assert_eq!(t.lookup(0x16, 0), (2000, 2000, 1000, 0));
        assert_eq!(t.lookup(7, 1), (0, 0, 0, 0));
        assert_eq!(t.lookup(0x8000_0008, 0).0, 0x3028);
    }

    #[test]
    fn qemu64_is_qemus_list_restricted_to_ours() {
        let (t, _) = table(CpuModel::Qemu64, &[]);
        let shown: Vec<&str> = MAX
            .iter()
            .copied()
            .filter(|n| features::has(t.entries(), n))
            .collect();
        assert_eq!(
            shown,
            [
                "fpu",
                "pse",
                "tsc",
                "msr",
                "pae",
                "cx8",
                "apic",
                "sep",
                "pge",
                "cmov",
                "pat",
                "clflush",
                "mmx",
                "fxsr",
                "sse",
                "sse2",
                "sse3",
                "cx16",
                "tsc-deadline",
                "hypervisor",
                "arat",
                "lahf_lm",
                "syscall",
                "nx",
                "lm",
                "invtsc",
                "kvmclock",
                "kvmclock-stable-bit",
            ]
        );
        assert!(!t.lzcnt && !t.bmi1);
        // qemu64's own names beyond what we implement stay off.
        for n in ["de", "mce", "mtrr", "mca", "pse36", "svm", "xsave", "avx"] {
            assert!(!features::has(t.entries(), n), "{n}");
        }
    }

    #[test]
    fn feature_lists_adjust_the_model() {
        let (t, bad) = table(
            CpuModel::Max,
            &[
                ("popcnt", false),
                ("bmi1", false),
                ("avx512f", true),
                ("foo", true),
            ],
        );
        assert_eq!(t.lookup(1, 0).2 & (1 << 23), 0);
        assert_eq!(t.lookup(7, 0).1 & (1 << 3), 0);
        assert!(!t.bmi1 && t.lzcnt);
        assert_eq!(bad, ["avx512f", "foo"]);
        // Turning XSAVE off takes the AVX family and leaf 0xD with it.
        let (t, bad) = table(CpuModel::Max, &[("xsave", false)]);
        assert!(bad.is_empty());
        for n in [
            "avx", "avx2", "fma", "f16c", "xsaveopt", "xsavec", "xgetbv1",
        ] {
            assert!(!features::has(t.entries(), n), "{n}");
        }
        assert!(features::has(t.entries(), "sse4.2"));
        let (t, bad) = table(CpuModel::Qemu64, &[("popcnt", true), ("abm", true)]);
        assert!(bad.is_empty());
        assert_ne!(t.lookup(1, 0).2 & (1 << 23), 0);
        assert!(t.lzcnt);
    }

    #[test]
    fn leaf_d_follows_xcr0_and_the_table() {
        use std::sync::Arc;
        use vm_memory::GuestAddress;
        let mem = Arc::new(
            crate::GuestMemory::from_ranges(&[(GuestAddress(0), 0x1000)]).expect("memory"),
        );
        let clock = Arc::new(crate::Clock::new(crate::ClockMode::Host, 1_000_000));
        let mut c = Cpu::new(0, mem, clock);
        c.set_cpuid(table(CpuModel::Max, &[]).0);
        // XCR0 = x87|SSE: 576 bytes; with AVX: 832. Subleaf 1 as XGETBV
        // ECX=1, XSAVEOPT and XSAVEC work.
        assert_eq!(c.cpuid(0xd, 0), (7, 576, 832, 0));
        c.st.fpu.set_xcr0(7).expect("x87|SSE|AVX");
        assert_eq!(c.cpuid(0xd, 0), (7, 832, 832, 0));
        assert_eq!(c.cpuid(0xd, 1).0, 0b111);
        assert_eq!(c.cpuid(0xd, 2), (256, 576, 0, 0));
        assert_eq!(c.cpuid(1, 0).2 & (1 << 27), 0, "OSXSAVE follows CR4");
        c.st.cr4 |= 1 << 18;
        assert_ne!(c.cpuid(1, 0).2 & (1 << 27), 0);
        // -xsavec hides its bit in subleaf 1; -xsave empties leaf 0xD.
        c.set_cpuid(table(CpuModel::Max, &[("xsavec", false)]).0);
        assert_eq!(c.cpuid(0xd, 1).0, 0b101);
        c.set_cpuid(table(CpuModel::Max, &[("xsave", false)]).0);
        assert_eq!(c.cpuid(0xd, 0), (0, 0, 0, 0));
        assert_eq!(c.cpuid(0xd, 1), (0, 0, 0, 0));
    }
}
