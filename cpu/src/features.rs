//! `-cpu model,+feature,-feature`: QEMU's feature names mapped to CPUID bits.

use crate::CpuidEntry;

/// A CPUID output register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reg {
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
    ("tsc", 1, 0, Reg::Edx, 4),
    ("msr", 1, 0, Reg::Edx, 5),
    ("pae", 1, 0, Reg::Edx, 6),
    ("apic", 1, 0, Reg::Edx, 9),
    ("sep", 1, 0, Reg::Edx, 11),
    ("pge", 1, 0, Reg::Edx, 13),
    ("cmov", 1, 0, Reg::Edx, 15),
    ("pat", 1, 0, Reg::Edx, 16),
    ("clflush", 1, 0, Reg::Edx, 19),
    ("mmx", 1, 0, Reg::Edx, 23),
    ("fxsr", 1, 0, Reg::Edx, 24),
    ("sse", 1, 0, Reg::Edx, 25),
    ("sse2", 1, 0, Reg::Edx, 26),
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
    ("fsgsbase", 7, 0, Reg::Ebx, 0),
    ("bmi1", 7, 0, Reg::Ebx, 3),
    ("avx2", 7, 0, Reg::Ebx, 5),
    ("smep", 7, 0, Reg::Ebx, 7),
    ("bmi2", 7, 0, Reg::Ebx, 8),
    ("erms", 7, 0, Reg::Ebx, 9),
    ("invpcid", 7, 0, Reg::Ebx, 10),
    ("avx512f", 7, 0, Reg::Ebx, 16),
    ("rdseed", 7, 0, Reg::Ebx, 18),
    ("smap", 7, 0, Reg::Ebx, 20),
    ("umip", 7, 0, Reg::Ecx, 2),
    ("pku", 7, 0, Reg::Ecx, 3),
    ("la57", 7, 0, Reg::Ecx, 16),
    ("rdpid", 7, 0, Reg::Ecx, 22),
    ("spec-ctrl", 7, 0, Reg::Edx, 26),
    ("arch-capabilities", 7, 0, Reg::Edx, 29),
    ("ssbd", 7, 0, Reg::Edx, 31),
    ("lahf-lm", 0x8000_0001, 0, Reg::Ecx, 0),
    ("lahf_lm", 0x8000_0001, 0, Reg::Ecx, 0),
    ("abm", 0x8000_0001, 0, Reg::Ecx, 5),
    ("syscall", 0x8000_0001, 0, Reg::Edx, 11),
    ("nx", 0x8000_0001, 0, Reg::Edx, 20),
    ("pdpe1gb", 0x8000_0001, 0, Reg::Edx, 26),
    ("rdtscp", 0x8000_0001, 0, Reg::Edx, 27),
    ("lm", 0x8000_0001, 0, Reg::Edx, 29),
    ("invtsc", 0x8000_0007, 0, Reg::Edx, 8),
];

/// Apply `+name`/`-name` adjustments to a CPUID table. Turning a feature
/// on only works where the backend supports it (the bit must be in
/// `supported`); returns the names that were not recognised or could not
/// be enabled, for a QEMU-style warning.
pub fn apply(
    table: &mut [CpuidEntry],
    supported: &[CpuidEntry],
    adjustments: &[(String, bool)],
) -> Vec<String> {
    let mut unknown = Vec::new();
    for (name, on) in adjustments {
        let Some(&(_, leaf, sub, reg, bit)) = FEATURES.iter().find(|f| f.0 == name) else {
            unknown.push(name.clone());
            continue;
        };
        let mask = 1u32 << bit;
        let supported_bit = crate::cpuid::lookup(supported, leaf, sub)
            .map(|e| field(e, reg) & mask != 0)
            .unwrap_or(false);
        if *on && !supported_bit {
            unknown.push(name.clone());
            continue;
        }
        for e in table
            .iter_mut()
            .filter(|e| e.function == leaf && (!e.significant_index || e.index == sub))
        {
            let f = field_mut(e, reg);
            if *on {
                *f |= mask;
            } else {
                *f &= !mask;
            }
        }
    }
    unknown
}

fn field(e: &CpuidEntry, r: Reg) -> u32 {
    match r {
        Reg::Ebx => e.ebx,
        Reg::Ecx => e.ecx,
        Reg::Edx => e.edx,
    }
}

fn field_mut(e: &mut CpuidEntry, r: Reg) -> &mut u32 {
    match r {
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
}
