//! The local APIC timer's counting: one-shot, periodic and TSC-deadline
//! modes on the shared guest clock.
//!
//! The timer counts at [`LAPIC_BUS_HZ`] divided by the divide configuration
//! register. The interpreter advertises this rate as the CPUID leaf 0x15
//! crystal clock, and Linux sets `lapic_timer_period = crystal_hz / HZ`
//! from it, so the divide-by-1 rate here must equal that crystal rate.
//! State is computed lazily from guest time: the current count is derived
//! from when the count was loaded, so nothing needs to tick.

use cpu::Clock;

/// The LAPIC timer's input clock (divide-by-1 rate), in Hz: 1 GHz, like
/// QEMU's and KVM's APIC timers, so one tick is one guest nanosecond.
/// Advertise it as CPUID 0x15 ECX (crystal Hz).
pub const LAPIC_BUS_HZ: u64 = 1_000_000_000;

/// Guest nanoseconds per input tick.
const NS_PER_TICK: u64 = 1_000_000_000 / LAPIC_BUS_HZ;
const _: () = assert!(
    NS_PER_TICK * LAPIC_BUS_HZ == 1_000_000_000,
    "the bus rate must divide 1 GHz"
);

/// The LVT timer's mode field (bits 17-18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimerMode {
    /// Count down once from the initial count.
    #[default]
    OneShot,
    /// Count down and reload from the initial count.
    Periodic,
    /// Fire when the TSC reaches IA32_TSC_DEADLINE.
    TscDeadline,
}

impl TimerMode {
    /// Decode the LVT timer register (the reserved mode 3 acts as one-shot).
    pub fn from_lvt(lvt: u32) -> Self {
        match (lvt >> 17) & 3 {
            1 => TimerMode::Periodic,
            2 => TimerMode::TscDeadline,
            _ => TimerMode::OneShot,
        }
    }
}

/// Counting state of one LAPIC timer.
#[derive(Debug, Clone, Default)]
pub struct LapicTimer {
    mode: TimerMode,
    initial: u32,
    divide_conf: u32,
    /// Next expiry in guest ns (one-shot/periodic); `None` when not counting.
    expires_ns: Option<u64>,
    /// IA32_TSC_DEADLINE; 0 = disarmed.
    tsc_deadline: u64,
}

impl LapicTimer {
    /// log2 of the divisor selected by the divide configuration register.
    fn shift(&self) -> u32 {
        let v = (self.divide_conf & 3) | ((self.divide_conf >> 1) & 4);
        (v + 1) & 7
    }

    /// Length of `ticks` counts at the current divisor, in guest ns.
    fn ticks_ns(&self, ticks: u64) -> u64 {
        (ticks << self.shift()).saturating_mul(NS_PER_TICK)
    }

    /// The mode in force.
    pub fn mode(&self) -> TimerMode {
        self.mode
    }

    /// The LVT timer register was written with a (possibly new) mode.
    /// Moving into or out of TSC-deadline mode disarms the timer.
    pub fn set_mode(&mut self, mode: TimerMode) {
        if mode != self.mode
            && (mode == TimerMode::TscDeadline || self.mode == TimerMode::TscDeadline)
        {
            self.expires_ns = None;
            self.tsc_deadline = 0;
            self.initial = 0;
        }
        self.mode = mode;
    }

    /// The initial count register.
    pub fn initial(&self) -> u32 {
        self.initial
    }

    /// Write the initial count at guest time `now`: (re)starts counting; 0
    /// stops. Ignored in TSC-deadline mode.
    pub fn write_initial(&mut self, val: u32, now: u64) {
        if self.mode == TimerMode::TscDeadline {
            return;
        }
        self.initial = val;
        self.expires_ns = (val != 0).then(|| now.saturating_add(self.ticks_ns(u64::from(val))));
    }

    /// The divide configuration register.
    pub fn divide_conf(&self) -> u32 {
        self.divide_conf
    }

    /// Write the divide configuration at `now`; a running count continues
    /// from its current value at the new rate.
    pub fn write_divide(&mut self, val: u32, now: u64) {
        let remaining = self.current_count(now);
        self.divide_conf = val & 0xb;
        if self.expires_ns.is_some() {
            self.expires_ns = Some(now.saturating_add(self.ticks_ns(u64::from(remaining))));
        }
    }

    /// The current count register at guest time `now`.
    pub fn current_count(&self, now: u64) -> u32 {
        let Some(expires) = self.expires_ns else {
            return 0;
        };
        let period = self.ticks_ns(u64::from(self.initial));
        if self.mode == TimerMode::TscDeadline || period == 0 {
            return 0;
        }
        // Time left until the count reaches zero; a periodic count nobody
        // advanced past its expiry has reloaded meanwhile.
        let left_ns = match self.mode {
            TimerMode::Periodic if now >= expires => period - (now - expires) % period,
            _ => expires.saturating_sub(now),
        };
        let tick_ns = NS_PER_TICK << self.shift();
        u32::try_from(left_ns.div_ceil(tick_ns)).unwrap_or(u32::MAX)
    }

    /// IA32_TSC_DEADLINE as RDMSR sees it (0 outside TSC-deadline mode).
    pub fn tsc_deadline(&self) -> u64 {
        if self.mode == TimerMode::TscDeadline {
            self.tsc_deadline
        } else {
            0
        }
    }

    /// WRMSR IA32_TSC_DEADLINE: arms (or with 0 disarms) the timer in
    /// TSC-deadline mode; ignored in the other modes.
    pub fn write_tsc_deadline(&mut self, val: u64) {
        if self.mode == TimerMode::TscDeadline {
            self.tsc_deadline = val;
        }
    }

    /// Guest time of the next expiry, if armed.
    pub fn deadline_ns(&self, clock: &Clock) -> Option<u64> {
        match self.mode {
            TimerMode::TscDeadline => {
                (self.tsc_deadline != 0).then(|| clock.ns_at_tsc(self.tsc_deadline))
            }
            _ => self.expires_ns,
        }
    }

    /// Bring the timer to guest time `now`; true if it expired (periods
    /// missed while nobody looked are coalesced into one expiry).
    pub fn advance(&mut self, now: u64, clock: &Clock) -> bool {
        match self.mode {
            TimerMode::TscDeadline => {
                if self.tsc_deadline != 0 && now >= clock.ns_at_tsc(self.tsc_deadline) {
                    self.tsc_deadline = 0;
                    return true;
                }
                false
            }
            mode => {
                let Some(expires) = self.expires_ns.filter(|e| now >= *e) else {
                    return false;
                };
                let period = self.ticks_ns(u64::from(self.initial));
                if mode == TimerMode::Periodic && period > 0 {
                    let missed = (now - expires) / period;
                    let next = expires.saturating_add((missed + 1).saturating_mul(period));
                    self.expires_ns = Some(next);
                } else {
                    self.expires_ns = None;
                }
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpu::ClockMode;

    #[test]
    fn divide_configuration_encodings() {
        let mut t = LapicTimer::default();
        for (conf, shift) in [(0x0, 1), (0x1, 2), (0x2, 3), (0x3, 4), (0x8, 5), (0xb, 0)] {
            t.write_divide(conf, 0);
            assert_eq!(t.shift(), shift, "conf {conf:#x}");
        }
    }

    #[test]
    fn one_shot_counts_down_and_expires_once() {
        let clock = Clock::new(ClockMode::InstructionCounted { shift: 0 }, 1_000_000);
        let mut t = LapicTimer::default();
        t.write_divide(0x0, 0); // divide by 2
        t.write_initial(1000, 100);
        assert_eq!(t.deadline_ns(&clock), Some(2100));
        assert_eq!(t.current_count(600), 750);
        assert!(!t.advance(2099, &clock));
        assert!(t.advance(2100, &clock));
        assert_eq!(t.current_count(2100), 0);
        assert_eq!(t.deadline_ns(&clock), None);
        assert!(!t.advance(5000, &clock));
    }

    #[test]
    fn divide_change_keeps_the_current_count() {
        let mut t = LapicTimer::default();
        t.write_divide(0xb, 0);
        t.write_initial(1000, 0);
        t.write_divide(0x0, 400); // 600 left, now at /2
        assert_eq!(t.current_count(400), 600);
        assert_eq!(t.current_count(600), 500);
    }

    #[test]
    fn mode_change_to_tsc_deadline_disarms() {
        let clock = Clock::new(ClockMode::InstructionCounted { shift: 0 }, 1_000_000);
        let mut t = LapicTimer::default();
        t.write_initial(10, 0);
        t.set_mode(TimerMode::TscDeadline);
        assert_eq!(t.deadline_ns(&clock), None);
        t.write_initial(10, 0);
        assert_eq!(t.initial(), 0, "initial count ignored in TSC-deadline mode");
        t.write_tsc_deadline(77);
        t.set_mode(TimerMode::OneShot);
        assert_eq!(t.tsc_deadline(), 0);
    }
}
