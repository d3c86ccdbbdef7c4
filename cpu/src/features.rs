//! `-cpu model,+feature,-feature`: QEMU's feature names mapped to CPUID bits.

use crate::CpuidEntry;

/// A `-cpu` model, as QEMU names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CpuModel {
    /// `host`: everything the accelerator supports (on tcg: `max`).
    Host,
    /// `max`: everything the accelerator supports.
    #[default]
    Max,
    /// `qemu64`: QEMU's baseline x86-64 model.
    Qemu64,
}

/// A CPUID output register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reg {
    /// EAX.
    Eax,
    /// EBX.
    Ebx,
    /// ECX.
    Ecx,
    /// EDX.
    Edx,
}

/// (QEMU name, leaf, subleaf, register, bit).
const FEATURES: &[(&str, u32, u32, Reg, u32)] = &[
    ("fpu", 1, 0, Reg::Edx, 0),
    ("vme", 1, 0, Reg::Edx, 1),
    ("de", 1, 0, Reg::Edx, 2),
    ("pse", 1, 0, Reg::Edx, 3),
    ("tsc", 1, 0, Reg::Edx, 4),
    ("msr", 1, 0, Reg::Edx, 5),
    ("pae", 1, 0, Reg::Edx, 6),
    ("mce", 1, 0, Reg::Edx, 7),
    ("cx8", 1, 0, Reg::Edx, 8),
    ("apic", 1, 0, Reg::Edx, 9),
    ("sep", 1, 0, Reg::Edx, 11),
    ("mtrr", 1, 0, Reg::Edx, 12),
    ("pge", 1, 0, Reg::Edx, 13),
    ("mca", 1, 0, Reg::Edx, 14),
    ("cmov", 1, 0, Reg::Edx, 15),
    ("pat", 1, 0, Reg::Edx, 16),
    ("pse36", 1, 0, Reg::Edx, 17),
    ("clflush", 1, 0, Reg::Edx, 19),
    ("mmx", 1, 0, Reg::Edx, 23),
    ("fxsr", 1, 0, Reg::Edx, 24),
    ("sse", 1, 0, Reg::Edx, 25),
    ("sse2", 1, 0, Reg::Edx, 26),
    ("ht", 1, 0, Reg::Edx, 28),
    ("pni", 1, 0, Reg::Ecx, 0),
    ("sse3", 1, 0, Reg::Ecx, 0),
    ("pclmulqdq", 1, 0, Reg::Ecx, 1),
    ("monitor", 1, 0, Reg::Ecx, 3),
    ("vmx", 1, 0, Reg::Ecx, 5),
    ("ssse3", 1, 0, Reg::Ecx, 9),
    ("fma", 1, 0, Reg::Ecx, 12),
    ("cx16", 1, 0, Reg::Ecx, 13),
    ("pcid", 1, 0, Reg::Ecx, 17),
    ("sse4.1", 1, 0, Reg::Ecx, 19),
    ("sse4_1", 1, 0, Reg::Ecx, 19),
    ("sse4.2", 1, 0, Reg::Ecx, 20),
    ("sse4_2", 1, 0, Reg::Ecx, 20),
    ("x2apic", 1, 0, Reg::Ecx, 21),
    ("movbe", 1, 0, Reg::Ecx, 22),
    ("popcnt", 1, 0, Reg::Ecx, 23),
    ("tsc-deadline", 1, 0, Reg::Ecx, 24),
    ("aes", 1, 0, Reg::Ecx, 25),
    ("xsave", 1, 0, Reg::Ecx, 26),
    ("avx", 1, 0, Reg::Ecx, 28),
    ("f16c", 1, 0, Reg::Ecx, 29),
    ("rdrand", 1, 0, Reg::Ecx, 30),
    ("hypervisor", 1, 0, Reg::Ecx, 31),
    ("arat", 6, 0, Reg::Eax, 2),
    ("fsgsbase", 7, 0, Reg::Ebx, 0),
    ("bmi1", 7, 0, Reg::Ebx, 3),
    ("avx2", 7, 0, Reg::Ebx, 5),
    ("smep", 7, 0, Reg::Ebx, 7),
    ("bmi2", 7, 0, Reg::Ebx, 8),
    ("erms", 7, 0, Reg::Ebx, 9),
    ("invpcid", 7, 0, Reg::Ebx, 10),
    ("avx512f", 7, 0, Reg::Ebx, 16),
    ("rdseed", 7, 0, Reg::Ebx, 18),
    ("adx", 7, 0, Reg::Ebx, 19),
    ("smap", 7, 0, Reg::Ebx, 20),
    ("sha-ni", 7, 0, Reg::Ebx, 29),
    ("umip", 7, 0, Reg::Ecx, 2),
    ("pku", 7, 0, Reg::Ecx, 3),
    ("la57", 7, 0, Reg::Ecx, 16),
    ("rdpid", 7, 0, Reg::Ecx, 22),
    ("spec-ctrl", 7, 0, Reg::Edx, 26),
    ("arch-capabilities", 7, 0, Reg::Edx, 29),
    ("ssbd", 7, 0, Reg::Edx, 31),
    ("xsaveopt", 0xd, 1, Reg::Eax, 0),
    ("xsavec", 0xd, 1, Reg::Eax, 1),
    ("xgetbv1", 0xd, 1, Reg::Eax, 2),
    ("lahf-lm", 0x8000_0001, 0, Reg::Ecx, 0),
    ("lahf_lm", 0x8000_0001, 0, Reg::Ecx, 0),
    ("svm", 0x8000_0001, 0, Reg::Ecx, 2),
    ("abm", 0x8000_0001, 0, Reg::Ecx, 5),
    ("syscall", 0x8000_0001, 0, Reg::Edx, 11),
    ("nx", 0x8000_0001, 0, Reg::Edx, 20),
    ("pdpe1gb", 0x8000_0001, 0, Reg::Edx, 26),
    ("rdtscp", 0x8000_0001, 0, Reg::Edx, 27),
    ("lm", 0x8000_0001, 0, Reg::Edx, 29),
    ("invtsc", 0x8000_0007, 0, Reg::Edx, 8),
    ("kvmclock", 0x4000_0001, 0, Reg::Eax, 3),
    ("kvmclock-stable-bit", 0x4000_0001, 0, Reg::Eax, 24),
];

/// QEMU's `qemu64` (target/i386/cpu.c: PPRO_FEATURES | mtrr clflush mca
/// pse36; sse3 cx16; lm syscall nx; lahf_lm svm), before restriction.
pub const QEMU64: &[&str] = &[
    "fpu", "de", "pse", "tsc", "msr", "mce", "cx8", "pge", "cmov", "pat", "fxsr", "mmx", "sse",
    "sse2", "pae", "sep", "apic", "mtrr", "clflush", "mca", "pse36", "sse3", "cx16", "lm",
    "syscall", "nx", "lahf_lm", "svm",
];

/// The registers that hold feature flags: (leaf, subleaf, register).
const FEATURE_REGS: &[(u32, u32, Reg)] = &[
    (1, 0, Reg::Ecx),
    (1, 0, Reg::Edx),
    (7, 0, Reg::Ebx),
    (7, 0, Reg::Ecx),
    (7, 0, Reg::Edx),
    (0x8000_0001, 0, Reg::Ecx),
    (0x8000_0001, 0, Reg::Edx),
];

/// Features that cannot stay on once `name` is off, as QEMU's
/// `feature_dependencies` and Linux's `cpuid-deps.c` have it. Turning
/// XSAVE off also empties leaf 0xD (see [`apply`]).
const DEPENDENTS: &[(&str, &[&str])] = &[
    (
        "xsave",
        &[
            "avx", "fma", "f16c", "avx2", "avx512f", "pku", "xsaveopt", "xsavec", "xgetbv1",
        ],
    ),
    ("avx", &["fma", "f16c", "avx2", "avx512f"]),
    ("avx2", &["avx512f"]),
    ("kvmclock", &["kvmclock-stable-bit"]),
];

/// Where feature `name` lives: (leaf, subleaf, register, bit).
pub fn locate(name: &str) -> Option<(u32, u32, Reg, u32)> {
    FEATURES
        .iter()
        .find(|f| f.0 == name)
        .map(|&(_, leaf, sub, reg, bit)| (leaf, sub, reg, bit))
}

/// QEMU's description of feature `name` in warnings:
/// `CPUID.07H:EBX.avx512f [bit 16]`.
pub fn describe(name: &str) -> Option<String> {
    let (leaf, sub, reg, bit) = locate(name)?;
    let leaf = if leaf >= 0x8000_0000 {
        format!("{leaf:08X}H")
    } else {
        format!("{leaf:02X}H")
    };
    let sub = if sub != 0 {
        format!(".{sub:02X}H")
    } else {
        String::new()
    };
    let reg = match reg {
        Reg::Eax => "EAX",
        Reg::Ebx => "EBX",
        Reg::Ecx => "ECX",
        Reg::Edx => "EDX",
    };
    Some(format!("CPUID.{leaf}{sub}:{reg}.{name} [bit {bit}]"))
}

/// Whether `table` has feature `name` on.
pub fn has(table: &[CpuidEntry], name: &str) -> bool {
    locate(name).is_some_and(|(leaf, sub, reg, bit)| {
        crate::cpuid::lookup(table, leaf, sub).is_some_and(|e| field(e, reg) & (1 << bit) != 0)
    })
}

/// Turn feature `name` on or off in every matching entry of `table`
/// (an unknown name changes nothing). Returns whether the name is known.
pub fn set(table: &mut [CpuidEntry], name: &str, on: bool) -> bool {
    let Some((leaf, sub, reg, bit)) = locate(name) else {
        return false;
    };
    for e in table
        .iter_mut()
        .filter(|e| e.function == leaf && (!e.significant_index || e.index == sub))
    {
        let f = field_mut(e, reg);
        if on {
            *f |= 1 << bit;
        } else {
            *f &= !(1 << bit);
        }
    }
    if !on {
        for (_, deps) in DEPENDENTS.iter().filter(|d| d.0 == name) {
            for d in *deps {
                set(table, d, false);
            }
        }
        if name == "xsave" {
            for e in table.iter_mut().filter(|e| e.function == 0xd) {
                (e.eax, e.ebx, e.ecx, e.edx) = (0, 0, 0, 0);
            }
        }
    }
    true
}

/// Keep only the features named in `keep` (those `table` has) in its
/// feature registers; leaf 0xD goes too unless XSAVE stays.
pub fn restrict(table: &mut [CpuidEntry], keep: &[&str]) {
    let before = table.to_vec();
    for &(leaf, sub, reg) in FEATURE_REGS {
        for e in table
            .iter_mut()
            .filter(|e| e.function == leaf && (!e.significant_index || e.index == sub))
        {
            *field_mut(e, reg) = 0;
        }
    }
    for name in keep.iter().filter(|n| has(&before, n)) {
        set(table, name, true);
    }
    if !has(table, "xsave") {
        set(table, "xsave", false);
    }
}

/// Apply `+name`/`-name` adjustments to a CPUID table. Turning a feature
/// on only works where the backend supports it (the bit must be in
/// `supported`); turning one off also turns off what depends on it.
/// Returns the names that were not recognised or could not be enabled,
/// for a QEMU-style warning (see [`describe`]).
pub fn apply(
    table: &mut [CpuidEntry],
    supported: &[CpuidEntry],
    adjustments: &[(String, bool)],
) -> Vec<String> {
    let mut unknown = Vec::new();
    for (name, on) in adjustments {
        if locate(name).is_none() || (*on && !has(supported, name)) {
            unknown.push(name.clone());
            continue;
        }
        set(table, name, *on);
    }
    unknown
}

fn field(e: &CpuidEntry, r: Reg) -> u32 {
    match r {
        Reg::Eax => e.eax,
        Reg::Ebx => e.ebx,
        Reg::Ecx => e.ecx,
        Reg::Edx => e.edx,
    }
}

fn field_mut(e: &mut CpuidEntry, r: Reg) -> &mut u32 {
    match r {
        Reg::Eax => &mut e.eax,
        Reg::Ebx => &mut e.ebx,
        Reg::Ecx => &mut e.ecx,
        Reg::Edx => &mut e.edx,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_and_adds_supported_bits_only() {
        let supported = vec![CpuidEntry {
            function: 1,
            ecx: (1 << 21) | (1 << 23),
            ..Default::default()
        }];
        let mut t = supported.clone();
        t[0].ecx = 1 << 23;
        let bad = apply(
            &mut t,
            &supported,
            &[
                ("popcnt".into(), false),
                ("x2apic".into(), true),
                ("avx".into(), true),
                ("no-such".into(), true),
            ],
        );
        assert_eq!(t[0].ecx, 1 << 21);
        assert_eq!(bad, vec!["avx".to_string(), "no-such".to_string()]);
    }

    #[test]
    fn xsave_off_takes_its_dependents_and_leaf_0xd() {
        let supported = vec![
            CpuidEntry {
                function: 1,
                ecx: (1 << 26) | (1 << 28) | (1 << 12),
                ..Default::default()
            },
            CpuidEntry {
                function: 7,
                significant_index: true,
                ebx: 1 << 5,
                ..Default::default()
            },
            CpuidEntry {
                function: 0xd,
                index: 1,
                significant_index: true,
                eax: 0xf,
                ..Default::default()
            },
        ];
        let mut t = supported.clone();
        assert!(apply(&mut t, &supported, &[("xsave".into(), false)]).is_empty());
        assert_eq!(t[0].ecx, 0);
        assert_eq!(t[1].ebx, 0);
        assert_eq!(t[2].eax, 0);
    }

    #[test]
    fn descriptions_as_qemu_prints_them() {
        assert_eq!(
            describe("avx512f").as_deref(),
            Some("CPUID.07H:EBX.avx512f [bit 16]")
        );
        assert_eq!(
            describe("abm").as_deref(),
            Some("CPUID.80000001H:ECX.abm [bit 5]")
        );
        assert_eq!(describe("no-such"), None);
    }
}
