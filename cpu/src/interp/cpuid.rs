//! CPUID of the software CPU: it advertises only what it implements.

use super::cpu::{Cpu, CRYSTAL_HZ};

impl Cpu {
    /// CPUID leaf `leaf`, subleaf `sub`.
    pub fn cpuid(&self, leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
        let tsc_khz = self.clock_tsc_khz();
        match leaf {
            // Max leaf 0x16; "GenuineIntel" (Linux reads 0x15/0x16 only on Intel).
            0 => (0x16, 0x756e_6547, 0x6c65_746e, 0x4965_6e69),
            1 => {
                let eax = 0x0006_06a0; // family 6
                let ebx = (self.id << 24) | (1 << 16) | (8 << 8);
                // ECX: TSC-deadline (24), hypervisor (31); cx16 (13).
                let ecx = (1 << 24) | (1 << 31) | (1 << 13);
                // EDX: FPU PSE TSC MSR PAE CX8 APIC SEP PGE CMOV PAT CLFSH MMX FXSR
                // SSE SSE2 (PSE: Linux's AP trampoline requires it).
                let edx = 1
                    | (1 << 3)
                    | (1 << 4)
                    | (1 << 5)
                    | (1 << 6)
                    | (1 << 8)
                    | (1 << 9)
                    | (1 << 11)
                    | (1 << 13)
                    | (1 << 15)
                    | (1 << 16)
                    | (1 << 19)
                    | (1 << 23)
                    | (1 << 24)
                    | (1 << 25)
                    | (1 << 26);
                (eax, ebx, ecx, edx)
            }
            6 => (1 << 2, 0, 0, 0), // ARAT
            // Leaf 7.0: SMEP (EBX 7), SMAP (EBX 20); UMIP (ECX 2).
            7 if sub == 0 => (0, (1 << 7) | (1 << 20), 1 << 2, 0),
            7 => (0, 0, 0, 0),
            0xb => match sub {
                0 => (0, 1, 0x100, self.id),
                _ => (0, 0, sub & 0xff, self.id),
            },
            // TSC/crystal ratio and the crystal rate (= the LAPIC timer's).
            // Linux computes crystal_khz * EBX / EAX in 32 bits, so the
            // ratio is given in MHz/1000 (the board rounds the software
            // CPU's TSC rate to whole MHz).
            0x15 => (1000, (tsc_khz / 1000) as u32, CRYSTAL_HZ, 0),
            0x16 => (
                (tsc_khz / 1000) as u32,
                (tsc_khz / 1000) as u32,
                (CRYSTAL_HZ / 1_000_000),
                0,
            ),
            0x8000_0000 => (0x8000_0008, 0, 0, 0),
            // LAHF in long mode; SYSCALL, NX, RDTSCP, LM.
            0x8000_0001 => (0, 0, 1, (1 << 11) | (1 << 20) | (1 << 27) | (1 << 29)),
            0x8000_0002 => (0x646e_694b, 0x676e_696c, 0x6f73_2020, 0x6177_7466),
            0x8000_0003 => (0x4320_6572, 0x5550, 0, 0),
            0x8000_0004 => (0, 0, 0, 0),
            0x8000_0007 => (0, 0, 0, 1 << 8), // invariant TSC
            0x8000_0008 => (0x3028, 0, 0, 0), // 40-bit physical, 48-bit virtual
            _ => (0, 0, 0, 0),
        }
    }
}
