//! The CPUID table a KVM guest sees: KVM's supported set with this vCPU's
//! topology filled in (what QEMU's `-cpu host` gives).

use crate::CpuidEntry;

/// CPUID.1:ECX bit 31: running under a hypervisor.
const ECX_HYPERVISOR: u32 = 1 << 31;
/// CPUID.1:EDX bit 28: HTT (the logical-processor count in EBX is valid).
const EDX_HTT: u32 = 1 << 28;

/// What `-cpu qemu64` keeps on KVM: QEMU's qemu64 list, plus what QEMU
/// adds on KVM and this board relies on (hypervisor, x2apic,
/// tsc-deadline, ARAT, invariant TSC, HTT for `-smp`).
pub fn qemu64_features() -> Vec<&'static str> {
    let extra = [
        "hypervisor",
        "x2apic",
        "tsc-deadline",
        "arat",
        "invtsc",
        "ht",
    ];
    crate::features::QEMU64
        .iter()
        .copied()
        .chain(extra)
        .collect()
}

/// Build vCPU `id`'s CPUID table out of `count` vCPUs (one socket, one
/// thread per core, `count` cores).
pub fn guest_cpuid(supported: &[CpuidEntry], id: u32, count: u32) -> Vec<CpuidEntry> {
    let count = count.max(1);
    let mut out = Vec::with_capacity(supported.len());
    for e in supported {
        let mut e = *e;
        match e.function {
            1 => {
                // Initial APIC ID, logical processors per package, CLFLUSH size 8*8.
                e.ebx = (id << 24) | ((count.min(255)) << 16) | (8 << 8) | (e.ebx & 0xff);
                e.ecx |= ECX_HYPERVISOR;
                if count > 1 {
                    e.edx |= EDX_HTT;
                }
            }
            4 => {
                // Cores per package - 1 in EAX[31:26]; caches shared by one thread.
                let cache_level_bits = e.eax & 0x3ff;
                e.eax = cache_level_bits | ((count.saturating_sub(1).min(63)) << 26);
            }
            0xb | 0x1f => {
                // Level 0: SMT (1 thread); level 1: core (count cores).
                let shift = 32 - count.saturating_sub(1).leading_zeros();
                match e.index {
                    0 => {
                        e.eax = 0;
                        e.ebx = 1;
                        e.ecx = 1 << 8;
                    }
                    1 => {
                        e.eax = shift;
                        e.ebx = count;
                        e.ecx = (2 << 8) | 1;
                    }
                    n => {
                        e.eax = 0;
                        e.ebx = 0;
                        e.ecx = n & 0xff;
                    }
                }
                e.edx = id;
            }
            0x8000_0008 if e.ecx & 0xff != 0 => {
                // AMD: number of cores - 1.
                e.ecx = (e.ecx & !0xff) | count.saturating_sub(1).min(255);
            }
            _ => {}
        }
        out.push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_fields_follow_vcpu_index() {
        let sup = [
            CpuidEntry {
                function: 1,
                ebx: 0x0000_0800,
                ..Default::default()
            },
            CpuidEntry {
                function: 0xb,
                index: 1,
                significant_index: true,
                ..Default::default()
            },
        ];
        let t = guest_cpuid(&sup, 3, 4);
        assert_eq!(t[0].ebx >> 24, 3);
        assert_eq!((t[0].ebx >> 16) & 0xff, 4);
        assert_ne!(t[0].ecx & ECX_HYPERVISOR, 0);
        assert_ne!(t[0].edx & EDX_HTT, 0);
        assert_eq!(t[1].edx, 3);
        assert_eq!(t[1].ebx, 4);
        assert_eq!(t[1].eax, 2);
    }

    #[test]
    fn qemu64_keeps_only_its_list() {
        let sup = [
            CpuidEntry {
                function: 1,
                ecx: (1 << 23) | (1 << 26) | (1 << 13) | (1 << 21),
                edx: (1 << 25) | (1 << 26) | (1 << 28),
                ..Default::default()
            },
            CpuidEntry {
                function: 7,
                significant_index: true,
                ebx: 1 << 8,
                ..Default::default()
            },
            CpuidEntry {
                function: 0xd,
                eax: 7,
                ..Default::default()
            },
        ];
        let mut t = sup.to_vec();
        crate::features::restrict(&mut t, &qemu64_features());
        assert_eq!(t[0].ecx, (1 << 13) | (1 << 21), "cx16, x2apic");
        assert_eq!(t[0].edx, sup[0].edx);
        assert_eq!(t[1].ebx, 0);
        assert_eq!(t[2].eax, 0, "no xsave: no leaf 0xD");
    }
}
