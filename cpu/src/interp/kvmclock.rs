//! KVM's paravirtual clock (kvmclock) on the software CPU.
//!
//! Linux prefers it to the TSC when CPUID leaf 0x40000001 shows it: the
//! guest names a page through MSR_KVM_SYSTEM_TIME(_NEW) and reads its
//! nanosecond clock from the `pvclock_vcpu_time_info` record written
//! there (`system_time + scale(tsc - tsc_timestamp)`), and its boot-time
//! wall clock from the `pvclock_wall_clock` record MSR_KVM_WALL_CLOCK(_NEW)
//! names. Here the TSC and the nanosecond clock are the same guest clock
//! (`Clock`) seen at two rates, so one record written when the guest
//! enables it stays exact for ever (flag PVCLOCK_TSC_STABLE_BIT): nothing
//! drifts, the clocksource watchdog has nothing to disagree about, and a
//! busy host delays the guest's timer interrupts but never its time. The
//! wall clock is the board's RTC epoch (`-rtc base=`), so instruction-
//! counted runs stay deterministic.

use super::cpu::Cpu;
use super::mem::Exception;

/// MSR_KVM_WALL_CLOCK_NEW.
const WALL_CLOCK_NEW: u32 = 0x4b56_4d00;
/// MSR_KVM_SYSTEM_TIME_NEW.
const SYSTEM_TIME_NEW: u32 = 0x4b56_4d01;
/// pvclock flags: the TSC runs at one rate on every vCPU.
const PVCLOCK_TSC_STABLE_BIT: u8 = 1;

/// The kvmclock MSR values of one vCPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvmClockMsrs {
    /// MSR_KVM_SYSTEM_TIME(_NEW): the record's address, bit 0 = enabled.
    pub system_time: u64,
    /// MSR_KVM_WALL_CLOCK(_NEW): the last address written.
    pub wall_clock: u64,
}

/// Whether `msr` is one of the kvmclock MSRs (the numbers that go with
/// KVM_FEATURE_CLOCKSOURCE2, the only kvmclock CPUID bit shown).
pub fn is_kvmclock_msr(msr: u32) -> bool {
    matches!(msr, WALL_CLOCK_NEW | SYSTEM_TIME_NEW)
}

/// The pvclock scale for a TSC of `tsc_khz`: (`mul`, `shift`) such that
/// nanoseconds = ((tsc << shift, or >> -shift) * mul) >> 32, with `mul`
/// as large as fits (best precision).
pub fn scale(tsc_khz: u64) -> (u32, i8) {
    let hz = u128::from(tsc_khz.max(1)) * 1000;
    let unit = 1_000_000_000u128 << 32;
    for shift in -31i32..=31 {
        let mul = if shift >= 0 {
            unit / (hz << shift)
        } else {
            (unit << -shift) / hz
        };
        if mul < 1 << 32 {
            return (mul as u32, shift as i8);
        }
    }
    (u32::MAX, 31)
}

/// What a guest computes from a record: nanoseconds for a TSC delta.
pub fn scaled_ns(delta: u64, mul: u32, shift: i8) -> u64 {
    let d = if shift >= 0 {
        u128::from(delta) << shift
    } else {
        u128::from(delta) >> -shift
    };
    ((d * u128::from(mul)) >> 32) as u64
}

impl Cpu {
    /// Whether this vCPU's CPUID shows kvmclock (its MSRs exist only then).
    pub(super) fn has_kvmclock(&self) -> bool {
        self.cpuid(0x4000_0001, 0).0 & (1 << 3) != 0
    }

    /// RDMSR of a kvmclock MSR (`None`: not one, or kvmclock hidden; the
    /// caller's #GP rules apply).
    pub(super) fn kvmclock_rdmsr(&self, msr: u32) -> Option<u64> {
        if !is_kvmclock_msr(msr) || !self.has_kvmclock() {
            return None;
        }
        let k = &self.st.kvmclock;
        Some(if msr == SYSTEM_TIME_NEW {
            k.system_time
        } else {
            k.wall_clock
        })
    }

    /// WRMSR of a kvmclock MSR: enabling the system time writes its
    /// record, a wall-clock write fills the wall-clock record at once.
    pub(super) fn kvmclock_wrmsr(&mut self, msr: u32, v: u64) -> Result<(), Exception> {
        match msr {
            SYSTEM_TIME_NEW => {
                self.st.kvmclock.system_time = v;
                if v & 1 != 0 {
                    self.write_time_info(v & !1);
                }
            }
            _ => {
                self.st.kvmclock.wall_clock = v;
                self.write_wall_clock(v);
            }
        }
        Ok(())
    }

    /// Write `pvclock_vcpu_time_info` at `gpa`: version, pad, tsc_timestamp,
    /// system_time, tsc_to_system_mul, tsc_shift, flags.
    fn write_time_info(&mut self, gpa: u64) {
        let ns = self.clock().now_ns();
        let tsc = (self.clock().tsc_at(ns) as i64).wrapping_add(self.st.msr.tsc_offset) as u64;
        let (mul, shift) = scale(self.clock().tsc_khz());
        let mut rec = [0u8; 32];
        rec[8..16].copy_from_slice(&tsc.to_le_bytes());
        rec[16..24].copy_from_slice(&ns.to_le_bytes());
        rec[24..28].copy_from_slice(&mul.to_le_bytes());
        rec[28] = shift as u8;
        rec[29] = PVCLOCK_TSC_STABLE_BIT;
        self.publish(gpa, &mut rec);
    }

    /// Write `pvclock_wall_clock` at `gpa`: version, seconds and
    /// nanoseconds of the wall-clock time at which system time was zero.
    fn write_wall_clock(&mut self, gpa: u64) {
        let boot = self.clock().wall_epoch_ns();
        let mut rec = [0u8; 12];
        rec[4..8].copy_from_slice(&((boot / 1_000_000_000) as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&((boot % 1_000_000_000) as u32).to_le_bytes());
        self.publish(gpa, &mut rec);
    }

    /// Write a pvclock record as the protocol wants: version odd while the
    /// body changes, then even.
    fn publish(&mut self, gpa: u64, rec: &mut [u8]) {
        let mmu = crate::interp_mmu!(self);
        let mut version = [0u8; 4];
        mmu.phys_read(gpa, &mut version);
        let v = u32::from_le_bytes(version) | 1;
        mmu.phys_write(gpa, &v.to_le_bytes());
        rec[..4].copy_from_slice(&v.wrapping_add(1).to_le_bytes());
        mmu.phys_write(gpa + 4, &rec[4..]);
        mmu.phys_write(gpa, &rec[..4]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_turns_tsc_ticks_into_nanoseconds() {
        for khz in [
            1_000_000u64,
            2_300_000,
            2_600_000,
            3_000_001,
            100_000,
            5_000_000,
        ] {
            let (mul, shift) = scale(khz);
            assert!(
                mul >= 1 << 31,
                "{khz} kHz: mul {mul:#x} not at full precision"
            );
            // One hour of ticks, and a few odd deltas.
            for secs in [1u64, 7, 3600] {
                let ticks = khz * 1000 * secs;
                let ns = scaled_ns(ticks, mul, shift);
                let want = secs * 1_000_000_000;
                assert!(
                    ns.abs_diff(want) <= secs,
                    "{khz} kHz, {secs} s: {ns} ns, want {want}"
                );
            }
        }
    }

    #[test]
    fn only_the_kvmclock2_msrs_are_claimed() {
        for m in [0x4b56_4d00, 0x4b56_4d01] {
            assert!(is_kvmclock_msr(m));
        }
        for m in [0x10, 0x11, 0x12, 0x4b56_4d02, 0x4b56_4cff] {
            assert!(!is_kvmclock_msr(m));
        }
    }
}
