//! The one guest clock behind the TSC, the LAPIC timer, the PIT and the RTC.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// How guest time advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockMode {
    /// Follow the host's monotonic clock.
    Host,
    /// Deterministic: each executed instruction advances time by `2^shift` ns
    /// (QEMU's `-icount shift=N`).
    InstructionCounted {
        /// log2 of nanoseconds per instruction.
        shift: u32,
    },
}

/// Guest time in nanoseconds since the machine was created.
#[derive(Debug)]
pub struct Clock {
    mode: ClockMode,
    start: Instant,
    /// Instructions retired (instruction-counted mode), summed over vCPUs.
    icount: AtomicU64,
    /// Guest time skipped while every vCPU was idle (instruction-counted
    /// mode): the clock jumps to the next timer deadline instead of
    /// waiting for instructions that never come.
    warp_ns: AtomicU64,
    /// The next timer deadline (instruction-counted mode; `u64::MAX`:
    /// none): vCPUs stop executing exactly there, so timers fire at the
    /// same instruction on every run.
    deadline_ns: AtomicU64,
    /// TSC frequency in kHz the guest is told about.
    tsc_khz: u64,
    /// Wall-clock time (Unix nanoseconds) at guest time zero: the board's
    /// RTC epoch, told to the guest through kvmclock.
    wall_epoch_ns: AtomicU64,
}

impl Clock {
    /// A clock in `mode`, whose TSC runs at `tsc_khz`.
    pub fn new(mode: ClockMode, tsc_khz: u64) -> Self {
        Clock {
            mode,
            start: Instant::now(),
            icount: AtomicU64::new(0),
            warp_ns: AtomicU64::new(0),
            deadline_ns: AtomicU64::new(u64::MAX),
            tsc_khz,
            wall_epoch_ns: AtomicU64::new(0),
        }
    }

    /// Set the wall-clock time that guest time `now_ns()` corresponds to,
    /// as Unix seconds (the RTC's starting time).
    pub fn set_wall_clock(&self, unix_secs_now: u64) {
        let epoch = (unix_secs_now.saturating_mul(1_000_000_000)).saturating_sub(self.now_ns());
        self.wall_epoch_ns.store(epoch, Ordering::Relaxed);
    }

    /// Wall-clock time (Unix nanoseconds) at guest time zero.
    pub fn wall_epoch_ns(&self) -> u64 {
        self.wall_epoch_ns.load(Ordering::Relaxed)
    }

    /// How this clock advances.
    pub fn mode(&self) -> ClockMode {
        self.mode
    }

    /// Nanoseconds of guest time since creation.
    pub fn now_ns(&self) -> u64 {
        match self.mode {
            ClockMode::Host => u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX),
            ClockMode::InstructionCounted { shift } => (self.icount.load(Ordering::Relaxed)
                << shift)
                .saturating_add(self.warp_ns.load(Ordering::Relaxed)),
        }
    }

    /// True when time advances with executed instructions.
    pub fn is_instruction_counted(&self) -> bool {
        matches!(self.mode, ClockMode::InstructionCounted { .. })
    }

    /// Record the next timer deadline (instruction-counted mode).
    pub fn set_deadline(&self, ns: Option<u64>) {
        self.deadline_ns
            .store(ns.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The next timer deadline recorded with [`Clock::set_deadline`].
    pub fn deadline(&self) -> Option<u64> {
        Some(self.deadline_ns.load(Ordering::Relaxed)).filter(|&d| d != u64::MAX)
    }

    /// How many instructions may run before the next deadline (at least
    /// one); unlimited on the host clock or without a deadline.
    pub fn instruction_budget(&self) -> u64 {
        let ClockMode::InstructionCounted { shift } = self.mode else {
            return u64::MAX;
        };
        match self.deadline() {
            None => u64::MAX,
            Some(d) => {
                let left = d.saturating_sub(self.now_ns());
                // Round up: the deadline is reached after the last one.
                left.div_ceil(1 << shift).max(1)
            }
        }
    }

    /// Jump guest time forward to `ns` (instruction-counted mode, when
    /// every vCPU is idle); never backwards.
    pub fn warp_to(&self, ns: u64) {
        if self.is_instruction_counted() {
            let now = self.now_ns();
            if ns > now {
                self.warp_ns.fetch_add(ns - now, Ordering::Relaxed);
            }
        }
    }

    /// Account `n` executed instructions (instruction-counted mode only).
    pub fn add_instructions(&self, n: u64) {
        if matches!(self.mode, ClockMode::InstructionCounted { .. }) {
            self.icount.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Instructions accounted so far.
    pub fn instructions(&self) -> u64 {
        self.icount.load(Ordering::Relaxed)
    }

    /// TSC frequency in kHz.
    pub fn tsc_khz(&self) -> u64 {
        self.tsc_khz
    }

    /// The TSC value at guest time `ns`.
    pub fn tsc_at(&self, ns: u64) -> u64 {
        // ns * khz / 1e6, without overflow for centuries of uptime.
        let v = u128::from(ns) * u128::from(self.tsc_khz) / 1_000_000;
        u64::try_from(v).unwrap_or(u64::MAX)
    }

    /// The current TSC value.
    pub fn tsc(&self) -> u64 {
        self.tsc_at(self.now_ns())
    }

    /// Guest time at which the TSC reaches `tsc`.
    pub fn ns_at_tsc(&self, tsc: u64) -> u64 {
        if self.tsc_khz == 0 {
            return u64::MAX;
        }
        let v = u128::from(tsc) * 1_000_000 / u128::from(self.tsc_khz);
        u64::try_from(v).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsc_conversions_round_trip() {
        let c = Clock::new(ClockMode::InstructionCounted { shift: 0 }, 2_600_000);
        assert_eq!(c.tsc_at(1_000_000_000), 2_600_000_000);
        assert_eq!(c.ns_at_tsc(2_600_000_000), 1_000_000_000);
    }

    #[test]
    fn instruction_counted_clock_advances_with_instructions_only() {
        let c = Clock::new(ClockMode::InstructionCounted { shift: 2 }, 1_000_000);
        assert_eq!(c.now_ns(), 0);
        c.add_instructions(10);
        assert_eq!(c.now_ns(), 40);
        assert_eq!(c.tsc(), 40);
    }

    #[test]
    fn budget_reaches_the_deadline_and_warp_jumps_to_it() {
        let c = Clock::new(ClockMode::InstructionCounted { shift: 3 }, 1_000_000);
        assert_eq!(c.instruction_budget(), u64::MAX);
        c.add_instructions(2);
        c.set_deadline(Some(100));
        // 16 ns done, 84 left at 8 ns each: 11 instructions (rounded up).
        assert_eq!(c.instruction_budget(), 11);
        c.warp_to(100);
        assert_eq!(c.now_ns(), 100);
        assert_eq!(c.instruction_budget(), 1);
        c.warp_to(50);
        assert_eq!(c.now_ns(), 100, "never backwards");
        assert_eq!(c.instructions(), 2);
        let h = Clock::new(ClockMode::Host, 1_000_000);
        h.set_deadline(Some(1));
        assert_eq!(h.instruction_budget(), u64::MAX);
    }
}
