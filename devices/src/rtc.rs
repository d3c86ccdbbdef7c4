//! The MC146818 real-time clock and CMOS RAM at ports 0x70-0x71, on IRQ 8.
//!
//! The RTC's time is a Unix time in nanoseconds kept as an offset from the
//! guest [`Clock`]: the wall-clock second given at creation plus guest time
//! since, so an instruction-counted guest sees a deterministic calendar.
//! Nothing ticks: the time registers, the update-in-progress bit and the
//! register C flags are derived from the clock whenever the guest looks,
//! and [`Timed`] deadlines exist only for the interrupts the guest enabled.
//!
//! What the guest sees follows the data sheet and QEMU's `mc146818rtc`:
//! BCD or binary and 12- or 24-hour formats per register B; UIP set for the
//! 244 µs before each second boundary; periodic (rate from register A),
//! alarm and update-ended flags in register C, IRQF and a high IRQ line
//! while an enabled flag is pending, both cleared by reading register C;
//! the SET bit and the divider-reset values of register A hold the time
//! while the guest writes it. Periodic interrupts stay on the 32.768 kHz
//! divider's grid; if the timer service falls behind, the missed periods
//! collapse into the one pending flag, as on hardware.
//!
//! Not modelled: the square-wave pin (SQWE is stored only), daylight
//! saving (DSE), time bases other than 32.768 kHz (divider values 0 and 1
//! run as 2), and a free-running weekday counter (the weekday follows the
//! date). Register 0x32 is the century and moves with the time.
//!
//! # Registering on the board
//!
//! Put one `Arc<Mutex<Rtc>>` on the port bus at `[RTC_BASE, RTC_BASE +
//! RTC_PORTS)` and the same handle in the timer service.

use std::sync::Arc;

use cpu::Clock;

use crate::bus::{BusAccessInfo, BusDevice};
use crate::irq::Irq;
use crate::timer::Timed;

/// First RTC port (the index register; the data port follows).
pub const RTC_BASE: u64 = 0x70;
/// Ports the RTC occupies.
pub const RTC_PORTS: u64 = 2;

const REG_SECONDS: usize = 0x00;
const REG_SECONDS_ALARM: usize = 0x01;
const REG_MINUTES: usize = 0x02;
const REG_MINUTES_ALARM: usize = 0x03;
const REG_HOURS: usize = 0x04;
const REG_HOURS_ALARM: usize = 0x05;
const REG_WEEKDAY: usize = 0x06;
const REG_DAY: usize = 0x07;
const REG_MONTH: usize = 0x08;
const REG_YEAR: usize = 0x09;
const REG_A: usize = 0x0a;
const REG_B: usize = 0x0b;
const REG_C: usize = 0x0c;
const REG_D: usize = 0x0d;
/// Where QEMU (and the ACPI FADT century field, when set) keep the century.
const REG_CENTURY: usize = 0x32;

const A_UIP: u8 = 0x80;
const A_DIVIDER: u8 = 0x70;
/// Divider values above this (0x30-0x70) stop the chain.
const A_DIVIDER_RUNNING_MAX: u8 = 0x20;
const A_RATE: u8 = 0x0f;
const B_SET: u8 = 0x80;
const B_PIE: u8 = 0x40;
const B_AIE: u8 = 0x20;
const B_UIE: u8 = 0x10;
const B_SQWE: u8 = 0x08;
const B_BINARY: u8 = 0x04;
const B_24H: u8 = 0x02;
const C_IRQF: u8 = 0x80;
const C_PF: u8 = 0x40;
const C_AF: u8 = 0x20;
const C_UF: u8 = 0x10;
/// The interrupt flags of C and their enables in B share bit positions.
const INTERRUPT_FLAGS: u8 = C_PF | C_AF | C_UF;
const D_VRT: u8 = 0x80;
/// Alarm register values with both top bits set match any value.
const ALARM_DONT_CARE: u8 = 0xc0;

const NS_PER_SEC: i128 = 1_000_000_000;
/// The divider chain's input: 32.768 kHz.
const DIVIDER_HZ: i128 = 32_768;
/// UIP is set this long before each update (8 cycles of 32.768 kHz).
pub const UIP_NS: u64 = 244_140;
/// After the divider leaves reset, the first update comes half a second later.
const HALF_SECOND_NS: i128 = 500_000_000;
/// Alarm matching looks back at most one day of missed seconds (every
/// alarm pattern matches within a day).
const ALARM_LOOKBACK_SECS: i64 = 86_400;

/// A broken-down UTC date and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DateTime {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    /// 1 = Sunday ... 7 = Saturday, as the RTC counts.
    weekday: i64,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (any month/day
/// values are accepted and carried over arithmetically).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    // Shift the year to start in March so the leap day is last.
    let m = (month - 1).rem_euclid(12) + 1;
    let y = year + (month - 1).div_euclid(12) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The calendar date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl DateTime {
    fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        DateTime {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
            // 1970-01-01 was a Thursday (5).
            weekday: (days + 4).rem_euclid(7) + 1,
        }
    }

    fn to_unix(self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * 86_400
            + self.hour * 3600
            + self.minute * 60
            + self.second
    }
}

/// The register encodings selected by register B.
#[derive(Debug, Clone, Copy)]
struct Format {
    binary: bool,
    hours24: bool,
}

impl Format {
    fn of(reg_b: u8) -> Self {
        Format {
            binary: reg_b & B_BINARY != 0,
            hours24: reg_b & B_24H != 0,
        }
    }

    fn encode(self, v: i64) -> u8 {
        let v = v.rem_euclid(100) as u8;
        if self.binary {
            v
        } else {
            ((v / 10) << 4) | (v % 10)
        }
    }

    fn decode(self, v: u8) -> i64 {
        if self.binary {
            i64::from(v)
        } else {
            i64::from(v >> 4) * 10 + i64::from(v & 0xf)
        }
    }

    fn encode_hour(self, hour: i64) -> u8 {
        if self.hours24 {
            return self.encode(hour);
        }
        let h12 = match hour % 12 {
            0 => 12,
            h => h,
        };
        self.encode(h12) | if hour >= 12 { 0x80 } else { 0 }
    }

    fn decode_hour(self, v: u8) -> i64 {
        if self.hours24 {
            return self.decode(v);
        }
        let h = self.decode(v & 0x7f) % 12;
        if v & 0x80 != 0 {
            h + 12
        } else {
            h
        }
    }

    /// The register image of a time: (register, value) pairs.
    fn time_registers(self, t: &DateTime) -> [(usize, u8); 8] {
        [
            (REG_SECONDS, self.encode(t.second)),
            (REG_MINUTES, self.encode(t.minute)),
            (REG_HOURS, self.encode_hour(t.hour)),
            (REG_WEEKDAY, self.encode(t.weekday)),
            (REG_DAY, self.encode(t.day)),
            (REG_MONTH, self.encode(t.month)),
            (REG_YEAR, self.encode(t.year)),
            (REG_CENTURY, self.encode(t.year.div_euclid(100))),
        ]
    }
}

fn is_time_register(index: usize) -> bool {
    matches!(
        index,
        REG_SECONDS
            | REG_MINUTES
            | REG_HOURS
            | REG_WEEKDAY
            | REG_DAY
            | REG_MONTH
            | REG_YEAR
            | REG_CENTURY
    )
}

/// The RTC with its 128 bytes of CMOS.
pub struct Rtc {
    /// Register file; the time registers are only authoritative while the
    /// time is held (SET or divider reset).
    cmos: [u8; 128],
    index: usize,
    nmi_masked: bool,
    irq: Irq,
    irq_high: bool,
    clock: Arc<Clock>,
    /// RTC time in Unix nanoseconds = guest ns + `offset_ns`.
    offset_ns: i128,
    /// The last RTC second whose update cycle was accounted.
    last_second: i64,
    /// The last periodic interval (in periods since the epoch) accounted.
    last_period: i128,
}

impl std::fmt::Debug for Rtc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rtc")
            .field("index", &self.index)
            .field("reg_a", &self.cmos[REG_A])
            .field("reg_b", &self.cmos[REG_B])
            .field("reg_c", &self.cmos[REG_C])
            .field("offset_ns", &self.offset_ns)
            .finish()
    }
}

impl Rtc {
    /// An RTC raising `irq8`, whose calendar reads `start_unix_secs` now
    /// and advances with `clock`.
    pub fn new(irq8: Irq, clock: Arc<Clock>, start_unix_secs: u64) -> Self {
        let now = clock.now_ns();
        let offset_ns = i128::from(start_unix_secs) * NS_PER_SEC - i128::from(now);
        let mut cmos = [0u8; 128];
        // Power-on: 32.768 kHz divider, 1024 Hz periodic rate, 24-hour BCD.
        cmos[REG_A] = 0x26;
        cmos[REG_B] = B_24H;
        cmos[REG_D] = D_VRT;
        let mut rtc = Rtc {
            cmos,
            index: 0,
            nmi_masked: false,
            irq: irq8,
            irq_high: false,
            clock,
            offset_ns,
            last_second: 0,
            last_period: 0,
        };
        rtc.resync(now);
        rtc
    }

    /// Machine reset: interrupts disabled and flags cleared, as QEMU's
    /// reset does; the time keeps running.
    pub fn reset(&mut self) {
        let now = self.clock.now_ns();
        self.cmos[REG_B] &= !(B_PIE | B_AIE | B_SQWE);
        self.cmos[REG_C] = 0;
        self.resync(now);
        self.update_irq();
    }

    /// Whether the guest set the NMI-disable bit (bit 7 of port 0x70).
    pub fn nmi_masked(&self) -> bool {
        self.nmi_masked
    }

    fn format(&self) -> Format {
        Format::of(self.cmos[REG_B])
    }

    fn divider_running(&self) -> bool {
        self.cmos[REG_A] & A_DIVIDER <= A_DIVIDER_RUNNING_MAX
    }

    /// Updates are inhibited and the time registers hold their values.
    fn held(&self) -> bool {
        self.cmos[REG_B] & B_SET != 0 || !self.divider_running()
    }

    fn rtc_ns(&self, now: u64) -> i128 {
        i128::from(now) + self.offset_ns
    }

    fn rtc_second(&self, now: u64) -> i64 {
        let s = self.rtc_ns(now).div_euclid(NS_PER_SEC);
        i64::try_from(s).unwrap_or(if s < 0 { i64::MIN } else { i64::MAX })
    }

    /// The periodic interval in 32.768 kHz cycles, if a rate is selected.
    fn period_cycles(&self) -> Option<i128> {
        match self.cmos[REG_A] & A_RATE {
            0 => None,
            // Rates 1 and 2 alias 8 and 9 with a 32.768 kHz time base.
            r @ 1..=2 => Some(1 << (r + 6)),
            r => Some(1 << (r - 1)),
        }
    }

    fn period_index(&self, now: u64, period: i128) -> i128 {
        let cycles = (self.rtc_ns(now) * DIVIDER_HZ).div_euclid(NS_PER_SEC);
        cycles.div_euclid(period)
    }

    /// Forget flag history up to `now` (after the time base or the rate
    /// changed), so that only future boundaries count.
    fn resync(&mut self, now: u64) {
        self.last_second = self.rtc_second(now);
        if let Some(p) = self.period_cycles() {
            self.last_period = self.period_index(now, p);
        }
    }

    fn alarm_matches(&self, t: &DateTime) -> bool {
        let f = self.format();
        let matches = |reg: usize, actual: u8| {
            let alarm = self.cmos[reg];
            alarm & ALARM_DONT_CARE == ALARM_DONT_CARE || alarm == actual
        };
        matches(REG_SECONDS_ALARM, f.encode(t.second))
            && matches(REG_MINUTES_ALARM, f.encode(t.minute))
            && matches(REG_HOURS_ALARM, f.encode_hour(t.hour))
    }

    /// Account the periodic and update cycles between the last call and
    /// `now` in register C, then drive IRQF and the line.
    fn catch_up(&mut self, now: u64) {
        if self.divider_running() {
            if let Some(p) = self.period_cycles() {
                let idx = self.period_index(now, p);
                if idx > self.last_period {
                    self.cmos[REG_C] |= C_PF;
                    self.last_period = idx;
                }
            }
        }
        if !self.held() {
            let second = self.rtc_second(now);
            if second > self.last_second {
                self.cmos[REG_C] |= C_UF;
                if self.cmos[REG_C] & C_AF == 0 {
                    let first = self
                        .last_second
                        .saturating_add(1)
                        .max(second.saturating_sub(ALARM_LOOKBACK_SECS - 1));
                    if (first..=second).any(|s| self.alarm_matches(&DateTime::from_unix(s))) {
                        self.cmos[REG_C] |= C_AF;
                    }
                }
                self.last_second = second;
            }
        }
        self.update_irq();
    }

    fn update_irq(&mut self) {
        if self.cmos[REG_C] & self.cmos[REG_B] & INTERRUPT_FLAGS != 0 {
            self.cmos[REG_C] |= C_IRQF;
        } else {
            self.cmos[REG_C] &= !C_IRQF;
        }
        let high = self.cmos[REG_C] & C_IRQF != 0;
        if high != self.irq_high {
            self.irq_high = high;
            self.irq.set_level(high);
        }
    }

    /// Copy the running time into the time registers.
    fn snapshot_time(&mut self, now: u64) {
        let t = DateTime::from_unix(self.rtc_second(now));
        for (reg, v) in self.format().time_registers(&t) {
            self.cmos[reg] = v;
        }
    }

    /// Make the time registers the running time. The sub-second phase is
    /// kept, or, when the divider just left reset, set so that the first
    /// update comes half a second from now.
    fn load_time(&mut self, now: u64, divider_restarted: bool) {
        let f = self.format();
        let year = f.decode(self.cmos[REG_YEAR]) + 100 * f.decode(self.cmos[REG_CENTURY]);
        let t = DateTime {
            year,
            month: f.decode(self.cmos[REG_MONTH]),
            day: f.decode(self.cmos[REG_DAY]),
            hour: f.decode_hour(self.cmos[REG_HOURS]),
            minute: f.decode(self.cmos[REG_MINUTES]),
            second: f.decode(self.cmos[REG_SECONDS]),
            weekday: 0,
        };
        let phase = if divider_restarted {
            HALF_SECOND_NS
        } else {
            self.rtc_ns(now).rem_euclid(NS_PER_SEC)
        };
        self.offset_ns = i128::from(t.to_unix()) * NS_PER_SEC + phase - i128::from(now);
        self.resync(now);
    }

    fn read_register(&mut self, now: u64) -> u8 {
        self.catch_up(now);
        let i = self.index;
        match i {
            _ if is_time_register(i) && !self.held() => {
                let t = DateTime::from_unix(self.rtc_second(now));
                self.format()
                    .time_registers(&t)
                    .iter()
                    .find(|(reg, _)| *reg == i)
                    .map_or(0, |(_, v)| *v)
            }
            REG_A => {
                let sub = self.rtc_ns(now).rem_euclid(NS_PER_SEC);
                let uip = !self.held() && sub >= NS_PER_SEC - i128::from(UIP_NS);
                (self.cmos[REG_A] & !A_UIP) | if uip { A_UIP } else { 0 }
            }
            REG_C => {
                let v = self.cmos[REG_C];
                self.cmos[REG_C] = 0;
                self.update_irq();
                v
            }
            REG_D => D_VRT,
            _ => self.cmos[i],
        }
    }

    fn write_register(&mut self, v: u8, now: u64) {
        self.catch_up(now);
        let i = self.index;
        let was_held = self.held();
        let was_running = self.divider_running();
        match i {
            _ if is_time_register(i) => {
                if was_held {
                    self.cmos[i] = v;
                } else {
                    // Outside SET, a write takes effect at once (QEMU).
                    self.snapshot_time(now);
                    self.cmos[i] = v;
                    self.load_time(now, false);
                }
                return;
            }
            REG_A => {
                let old_rate = self.cmos[REG_A] & A_RATE;
                self.cmos[REG_A] = v & !A_UIP;
                if v & A_RATE != old_rate || !was_running {
                    if let Some(p) = self.period_cycles() {
                        self.last_period = self.period_index(now, p);
                    }
                }
            }
            REG_B => {
                // Setting SET clears UIE.
                self.cmos[REG_B] = if v & B_SET != 0 { v & !B_UIE } else { v };
                self.update_irq();
            }
            REG_C | REG_D => {}
            _ => self.cmos[i] = v,
        }
        let held = self.held();
        if was_held && !held {
            self.load_time(now, !was_running);
        } else if !was_held && held {
            self.snapshot_time(now);
        }
    }
}

impl BusDevice for Rtc {
    fn name(&self) -> &str {
        "mc146818rtc"
    }

    fn read(&mut self, info: BusAccessInfo, data: &mut [u8]) {
        let Some(b) = data.first_mut() else {
            return;
        };
        *b = if info.offset == 0 {
            // The index register is write-only.
            0xff
        } else {
            let now = self.clock.now_ns();
            self.read_register(now)
        };
    }

    fn write(&mut self, info: BusAccessInfo, data: &[u8]) {
        let Some(&v) = data.first() else {
            return;
        };
        if info.offset == 0 {
            self.nmi_masked = v & 0x80 != 0;
            self.index = usize::from(v & 0x7f);
        } else {
            let now = self.clock.now_ns();
            self.write_register(v, now);
        }
    }
}

impl Timed for Rtc {
    fn next_deadline(&self) -> Option<u64> {
        let b = self.cmos[REG_B];
        let periodic = (b & B_PIE != 0 && self.divider_running())
            .then(|| self.period_cycles())
            .flatten()
            .map(|p| {
                // Start of the period after the last one accounted.
                let cycles = (self.last_period + 1) * p;
                let rtc_ns = (cycles * NS_PER_SEC + DIVIDER_HZ - 1).div_euclid(DIVIDER_HZ);
                rtc_ns - self.offset_ns
            });
        let update = (b & (B_UIE | B_AIE) != 0 && !self.held())
            .then(|| (i128::from(self.last_second) + 1) * NS_PER_SEC - self.offset_ns);
        let next = match (periodic, update) {
            (Some(p), Some(u)) => Some(p.min(u)),
            (p, u) => p.or(u),
        }?;
        Some(u64::try_from(next.max(0)).unwrap_or(u64::MAX))
    }

    fn advance(&mut self, now_ns: u64) {
        self.catch_up(now_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::RecordingIrq;
    use cpu::ClockMode;

    /// 2026-11-22 14:05:09 UTC, a Sunday.
    const START: u64 = 1_795_356_309;
    const SEC: u64 = 1_000_000_000;

    struct Rig {
        rtc: Rtc,
        clock: Arc<Clock>,
        irq: Arc<RecordingIrq>,
    }

    fn rig() -> Rig {
        let clock = Arc::new(Clock::new(
            ClockMode::InstructionCounted { shift: 0 },
            1_000_000,
        ));
        let irq = Arc::new(RecordingIrq::default());
        let rtc = Rtc::new(irq.clone(), clock.clone(), START);
        Rig { rtc, clock, irq }
    }

    fn port(offset: u64) -> BusAccessInfo {
        BusAccessInfo {
            address: RTC_BASE + offset,
            offset,
            vcpu: 0,
        }
    }

    impl Rig {
        fn read(&mut self, reg: u8) -> u8 {
            self.rtc.write(port(0), &[reg]);
            let mut b = [0u8];
            self.rtc.read(port(1), &mut b);
            b[0]
        }
        fn write(&mut self, reg: u8, v: u8) {
            self.rtc.write(port(0), &[reg]);
            self.rtc.write(port(1), &[v]);
        }
        fn advance_to(&self, ns: u64) {
            let now = self.clock.now_ns();
            assert!(ns >= now, "time goes forward");
            self.clock.add_instructions(ns - now);
        }
        fn advance_by(&self, ns: u64) {
            self.clock.add_instructions(ns);
        }
        /// The timer service up to `until`; `handler` plays the guest's
        /// interrupt handler whenever IRQ 8 is high.
        fn run_until(&mut self, until: u64, handler: &mut dyn FnMut(&mut Rig)) {
            while let Some(t) = self.rtc.next_deadline().filter(|&t| t <= until) {
                self.advance_to(t.max(self.clock.now_ns()));
                self.rtc.advance(t);
                if self.irq.level() {
                    handler(self);
                }
            }
            self.advance_to(until);
        }
        /// (sec, min, hour, weekday, day, month, year, century) registers.
        fn time_regs(&mut self) -> [u8; 8] {
            [0, 2, 4, 6, 7, 8, 9, 0x32].map(|r| self.read(r))
        }
    }

    #[test]
    fn power_on_time_is_the_start_second_in_bcd_24h() {
        let mut r = rig();
        assert_eq!(
            r.time_regs(),
            [0x09, 0x05, 0x14, 0x01, 0x22, 0x11, 0x26, 0x20]
        );
        assert_eq!(r.read(0x0a), 0x26);
        assert_eq!(r.read(0x0b), 0x02);
        assert_eq!(r.read(0x0d), 0x80);
    }

    #[test]
    fn time_follows_the_guest_clock() {
        let mut r = rig();
        r.advance_by(50 * SEC + SEC / 2);
        assert_eq!(r.read(0), 0x59);
        r.advance_by(SEC / 2);
        assert_eq!((r.read(0), r.read(2)), (0x00, 0x06));
        // To midnight, rolling the date and the weekday.
        r.advance_by((9 * 3600 + 54 * 60) * SEC);
        assert_eq!(
            r.time_regs(),
            [0x00, 0x00, 0x00, 0x02, 0x23, 0x11, 0x26, 0x20]
        );
    }

    #[test]
    fn binary_and_12_hour_formats() {
        let mut r = rig();
        r.write(0x0b, B_BINARY); // binary, 12-hour
        assert_eq!(r.read(4), 0x80 | 2, "14h is 2 PM");
        assert_eq!((r.read(0), r.read(9), r.read(0x32)), (9, 26, 20));
        r.write(0x0b, 0); // BCD, 12-hour
        assert_eq!(r.read(4), 0x82);
        r.advance_by(10 * 3600 * SEC); // 00:05:09
        assert_eq!(r.read(4), 0x12, "midnight hour is 12 AM");
        r.advance_by(12 * 3600 * SEC); // 12:05:09
        assert_eq!(r.read(4), 0x92, "noon hour is 12 PM");
    }

    #[test]
    fn uip_is_set_in_the_244us_before_each_second() {
        let mut r = rig();
        let edge = SEC - UIP_NS;
        r.advance_to(edge - 1);
        assert_eq!(r.read(0x0a) & A_UIP, 0);
        r.advance_to(edge);
        assert_eq!(r.read(0x0a) & A_UIP, A_UIP);
        assert_eq!(r.read(0), 0x09, "the update has not happened yet");
        r.advance_to(SEC - 1);
        assert_eq!(r.read(0x0a) & A_UIP, A_UIP);
        r.advance_to(SEC);
        assert_eq!(r.read(0x0a) & A_UIP, 0);
        assert_eq!(r.read(0), 0x10);
        // Writes cannot set UIP.
        r.write(0x0a, 0xa6);
        assert_eq!(r.read(0x0a), 0x26);
    }

    #[test]
    fn linux_set_time_sequence_with_set_and_divider_reset() {
        let mut r = rig();
        r.advance_by(SEC / 4);
        // As Linux's mc146818_set_time: SET, divider reset, registers,
        // restore B, restore A.
        let b = r.read(0x0b);
        r.write(0x0b, b | B_SET);
        let a = r.read(0x0a);
        r.write(0x0a, a | 0x70);
        // Writing 2000-02-29 23:59:58, BCD.
        for (reg, v) in [
            (0, 0x58),
            (2, 0x59),
            (4, 0x23),
            (7, 0x29),
            (8, 0x02),
            (9, 0x00),
        ] {
            r.write(reg, v);
        }
        r.write(0x32, 0x20);
        r.advance_by(3 * SEC);
        assert_eq!(r.read(0), 0x58, "held while SET");
        assert_eq!(r.read(0x0a) & A_UIP, 0, "no UIP while held");
        r.write(0x0b, b);
        r.advance_by(3 * SEC);
        assert_eq!(r.read(0), 0x58, "still held by the divider reset");
        r.write(0x0a, a);
        // The first update comes half a second after the divider restarts.
        r.advance_by(SEC / 2 - 1);
        assert_eq!(r.read(0), 0x58);
        r.advance_by(1);
        assert_eq!(r.read(0), 0x59);
        r.advance_by(SEC);
        assert_eq!(
            r.time_regs(),
            [0x00, 0x00, 0x00, 0x04, 0x01, 0x03, 0x00, 0x20],
            "2000-03-01 00:00:00, a Wednesday"
        );
    }

    #[test]
    fn set_bit_alone_keeps_the_sub_second_phase_and_clears_uie() {
        let mut r = rig();
        r.advance_by(SEC / 4);
        r.write(0x0b, B_24H | B_UIE);
        r.write(0x0b, B_24H | B_UIE | B_SET);
        assert_eq!(r.read(0x0b), B_24H | B_SET, "SET clears UIE");
        r.write(2, 0x30);
        r.write(0x0b, B_24H);
        assert_eq!((r.read(0), r.read(2)), (0x09, 0x30));
        r.advance_by(3 * SEC / 4 - 1);
        assert_eq!(r.read(0), 0x09);
        r.advance_by(1);
        assert_eq!(r.read(0), 0x10);
    }

    #[test]
    fn time_register_write_without_set_takes_effect_at_once() {
        let mut r = rig();
        r.write(4, 0x03);
        assert_eq!(r.time_regs()[..3], [0x09, 0x05, 0x03]);
        r.advance_by(SEC);
        assert_eq!(r.time_regs()[..3], [0x10, 0x05, 0x03]);
    }

    #[test]
    fn periodic_interrupt_at_1024hz_on_the_divider_grid() {
        let mut r = rig();
        r.write(0x0b, B_24H | B_PIE);
        // 1024 Hz: 32 cycles of 32.768 kHz = 976562.5 ns, rounded up.
        assert_eq!(r.rtc.next_deadline(), Some(976_563));
        let mut handled = 0;
        r.run_until(SEC / 10, &mut |r| {
            assert_eq!(r.read(0x0c), C_IRQF | C_PF);
            handled += 1;
        });
        // 100 ms holds 102 whole periods (102.4).
        assert_eq!(handled, 102);
        assert_eq!(r.irq.rising_edges(), 102);
        assert!(!r.irq.level());
    }

    #[test]
    fn periodic_rate_from_register_a_and_unread_flags_coalesce() {
        let mut r = rig();
        r.write(0x0a, 0x2f); // rate 15: 2 Hz
        r.write(0x0b, B_24H | B_PIE);
        assert_eq!(r.rtc.next_deadline(), Some(SEC / 2));
        // Nobody reads C: the line rises once and stays high.
        r.run_until(3 * SEC, &mut |_| {});
        assert_eq!(r.irq.rising_edges(), 1);
        assert!(r.irq.level());
        // Update cycles happened too; UF is flagged though UIE is off.
        assert_eq!(r.read(0x0c), C_IRQF | C_PF | C_UF);
        assert!(!r.irq.level());
        assert_eq!(r.read(0x0c), 0, "reading C cleared it");
        // Rates 1 and 2 are 256 Hz and 128 Hz.
        r.write(0x0a, 0x21);
        let now = r.clock.now_ns();
        let next = r.rtc.next_deadline().unwrap_or(0);
        assert!(next > now && next - now <= SEC / 256 + 1);
    }

    #[test]
    fn periodic_flag_without_pie_sets_pf_but_not_irqf() {
        let mut r = rig();
        assert_eq!(r.rtc.next_deadline(), None, "no interrupts enabled");
        r.advance_by(SEC / 100);
        assert_eq!(r.read(0x0c), C_PF);
        assert_eq!(r.irq.rising_edges(), 0);
        // Enabling PIE with PF pending raises the line at once.
        r.advance_by(SEC / 100);
        r.write(0x0b, B_24H | B_PIE);
        assert!(r.irq.level());
    }

    #[test]
    fn update_ended_interrupt_each_second() {
        let mut r = rig();
        r.advance_by(SEC / 3);
        r.write(0x0a, 0x20); // no periodic rate
        r.read(0x0c); // drop the periodic flag of the power-on 1024 Hz rate
        r.write(0x0b, B_24H | B_UIE);
        assert_eq!(r.rtc.next_deadline(), Some(SEC));
        let mut seconds = Vec::new();
        r.run_until(5 * SEC + SEC / 2, &mut |r| {
            assert_eq!(r.read(0x0c), C_IRQF | C_UF);
            seconds.push(r.read(0));
        });
        assert_eq!(seconds, vec![0x10, 0x11, 0x12, 0x13, 0x14]);
    }

    #[test]
    fn alarm_interrupt_matches_time_and_dont_care_bytes() {
        let mut r = rig();
        r.write(0x0a, 0x20);
        // Alarm at 14:05:12.
        r.write(1, 0x12);
        r.write(3, 0x05);
        r.write(5, 0x14);
        r.write(0x0b, B_24H | B_AIE);
        let mut fired_at = Vec::new();
        r.run_until(6 * SEC, &mut |r| {
            let c = r.read(0x0c);
            assert_eq!(c & (C_IRQF | C_AF), C_IRQF | C_AF);
            fired_at.push(r.read(0));
        });
        assert_eq!(fired_at, vec![0x12]);
        // "Any hour, any minute, second 20" in don't-care form.
        r.write(5, 0xc0);
        r.write(3, 0xff);
        r.write(1, 0x20);
        r.run_until(20 * SEC, &mut |r| {
            r.read(0x0c);
            fired_at.push(r.read(0));
        });
        assert_eq!(fired_at, vec![0x12, 0x20]);
    }

    #[test]
    fn alarm_missed_while_nobody_advanced_is_still_flagged() {
        let mut r = rig();
        r.write(1, 0x30);
        r.write(3, 0xc0);
        r.write(5, 0xc0);
        r.advance_by(60 * SEC);
        let c = r.read(0x0c);
        assert_eq!(c & (C_AF | C_UF), C_AF | C_UF);
        assert_eq!(c & C_IRQF, 0, "AIE is off");
    }

    #[test]
    fn cmos_ram_index_and_read_only_registers() {
        let mut r = rig();
        for i in 0x0e..=0x7fu8 {
            r.write(i, i ^ 0x5a);
        }
        for i in 0x0e..=0x7fu8 {
            if i != 0x32 {
                assert_eq!(r.read(i), i ^ 0x5a);
            }
        }
        r.write(0x0c, 0xff);
        r.write(0x0d, 0x00);
        assert_eq!(r.read(0x0d), 0x80);
        // Bit 7 of the index is the NMI mask, not part of the index.
        r.rtc.write(port(0), &[0x80 | 0x20]);
        assert!(r.rtc.nmi_masked());
        let mut b = [0u8];
        r.rtc.read(port(1), &mut b);
        assert_eq!(b[0], 0x20 ^ 0x5a);
        r.rtc.read(port(0), &mut b);
        assert_eq!(b[0], 0xff);
    }

    #[test]
    fn reset_disables_interrupts_and_lowers_irq8() {
        let mut r = rig();
        r.write(0x0b, B_24H | B_PIE);
        r.run_until(SEC / 100, &mut |_| {});
        assert!(r.irq.level());
        r.rtc.reset();
        assert!(!r.irq.level());
        assert_eq!(r.read(0x0b), B_24H);
        assert_eq!(r.rtc.next_deadline(), None);
        assert_eq!(r.read(0), 0x09, "the time survives reset");
    }

    #[test]
    fn calendar_conversions() {
        for (secs, expect) in [
            (START as i64, (2026, 11, 22, 14, 5, 9, 1)),
            (951_868_799, (2000, 2, 29, 23, 59, 59, 3)),
            (0, (1970, 1, 1, 0, 0, 0, 5)),
            (-1, (1969, 12, 31, 23, 59, 59, 4)),
            (1_709_164_800, (2024, 2, 29, 0, 0, 0, 5)),
        ] {
            let t = DateTime::from_unix(secs);
            assert_eq!(
                (t.year, t.month, t.day, t.hour, t.minute, t.second, t.weekday),
                expect
            );
            assert_eq!(t.to_unix(), secs);
        }
        // Out-of-range fields carry arithmetically instead of failing.
        assert_eq!(days_from_civil(2023, 13, 1), days_from_civil(2024, 1, 1));
        assert_eq!(days_from_civil(2024, 3, 0), days_from_civil(2024, 2, 29));
    }

    #[test]
    fn garbage_time_registers_do_not_panic() {
        let mut r = rig();
        r.write(0x0b, B_24H | B_SET);
        for reg in [0u8, 2, 4, 6, 7, 8, 9, 0x32] {
            r.write(reg, 0xff);
        }
        r.write(0x0b, B_24H);
        r.advance_by(SEC);
        let regs = r.time_regs();
        assert!(regs.iter().all(|&v| v & 0x0f <= 9), "BCD digits: {regs:x?}");
    }
}
