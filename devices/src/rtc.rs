//! The MC146818 real-time clock and CMOS RAM at ports 0x70-0x71, on IRQ 8.
//!
//! Time is the wall-clock second the machine started at plus guest-clock
//! time since, so an instruction-counted guest sees a deterministic clock.

use std::sync::Arc;

use cpu::Clock;

use crate::bus::{BusAccessInfo, BusDevice};
use crate::irq::Irq;
use crate::timer::Timed;

/// First RTC port.
pub const RTC_BASE: u64 = 0x70;

const REG_A: usize = 0x0a;
const REG_B: usize = 0x0b;
const REG_C: usize = 0x0c;
const REG_D: usize = 0x0d;
const REG_CENTURY: usize = 0x32;
const A_UIP: u8 = 0x80;
const B_SET: u8 = 0x80;
const B_PIE: u8 = 0x40;
const B_AIE: u8 = 0x20;
const B_UIE: u8 = 0x10;
const B_BINARY: u8 = 0x04;
const B_24H: u8 = 0x02;
const C_IRQF: u8 = 0x80;
const C_PF: u8 = 0x40;
const C_AF: u8 = 0x20;
const C_UF: u8 = 0x10;
/// The update cycle lasts 244 µs before each second boundary; UIP is set then.
const UIP_NS: u64 = 244_000;
const NS: u64 = 1_000_000_000;

/// A broken-down date and time (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tm {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    min: u32,
    sec: u32,
    wday: u32,
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn to_tm(secs: u64) -> Tm {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    Tm {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        min: (rem / 60 % 60) as u32,
        sec: (rem % 60) as u32,
        wday: ((days + 4).rem_euclid(7) + 1) as u32,
    }
}

fn from_tm(t: &Tm) -> u64 {
    let days = days_from_civil(t.year, t.month, t.day);
    (days * 86_400 + i64::from(t.hour) * 3600 + i64::from(t.min) * 60 + i64::from(t.sec)).max(0)
        as u64
}

/// The RTC with its 128 bytes of CMOS.
pub struct Rtc {
    cmos: [u8; 128],
    index: usize,
    irq: Irq,
    clock: Arc<Clock>,
    /// Wall-clock seconds at guest time `base_ns`.
    base_secs: u64,
    base_ns: u64,
    next_periodic: Option<u64>,
    next_second: Option<u64>,
}

impl std::fmt::Debug for Rtc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rtc")
            .field("base_secs", &self.base_secs)
            .finish()
    }
}

impl Rtc {
    /// An RTC raising `irq8`, reading `start_unix_secs` at guest time 0.
    pub fn new(irq8: Irq, clock: Arc<Clock>, start_unix_secs: u64) -> Self {
        let mut r = Rtc {
            cmos: [0; 128],
            index: 0,
            irq: irq8,
            base_secs: start_unix_secs,
            base_ns: clock.now_ns(),
            clock,
            next_periodic: None,
            next_second: None,
        };
        r.reset();
        r
    }

    /// Power-on register state (the time keeps running, as on hardware).
    pub fn reset(&mut self) {
        self.cmos[REG_A] = 0x26;
        self.cmos[REG_B] = B_24H;
        self.cmos[REG_C] = 0;
        self.cmos[REG_D] = 0x80;
        self.next_periodic = None;
        self.next_second = None;
        self.irq.set_level(false);
    }

    fn now_secs(&self, now: u64) -> u64 {
        self.base_secs + now.saturating_sub(self.base_ns) / NS
    }

    fn encode(&self, v: u32) -> u8 {
        if self.cmos[REG_B] & B_BINARY != 0 {
            v as u8
        } else {
            (((v / 10) << 4) | (v % 10)) as u8
        }
    }

    fn decode(&self, v: u8) -> u32 {
        if self.cmos[REG_B] & B_BINARY != 0 {
            u32::from(v)
        } else {
            u32::from(v >> 4) * 10 + u32::from(v & 0xf)
        }
    }

    fn encode_hour(&self, h: u32) -> u8 {
        if self.cmos[REG_B] & B_24H != 0 {
            self.encode(h)
        } else {
            let pm = h >= 12;
            let h12 = if h % 12 == 0 { 12 } else { h % 12 };
            self.encode(h12) | if pm { 0x80 } else { 0 }
        }
    }

    fn decode_hour(&self, v: u8) -> u32 {
        if self.cmos[REG_B] & B_24H != 0 {
            self.decode(v)
        } else {
            let h = self.decode(v & 0x7f) % 12;
            if v & 0x80 != 0 {
                h + 12
            } else {
                h
            }
        }
    }

    /// Refresh the time registers from the clock (not while SET is held).
    fn latch_time(&mut self, now: u64) {
        if self.cmos[REG_B] & B_SET != 0 {
            return;
        }
        let t = to_tm(self.now_secs(now));
        self.cmos[0] = self.encode(t.sec);
        self.cmos[2] = self.encode(t.min);
        self.cmos[4] = self.encode_hour(t.hour);
        self.cmos[6] = self.encode(t.wday);
        self.cmos[7] = self.encode(t.day);
        self.cmos[8] = self.encode(t.month);
        self.cmos[9] = self.encode((t.year % 100) as u32);
        self.cmos[REG_CENTURY] = self.encode((t.year / 100) as u32);
    }

    /// Take the time the guest wrote while SET was held.
    fn commit_time(&mut self, now: u64) {
        let t = Tm {
            sec: self.decode(self.cmos[0]) % 60,
            min: self.decode(self.cmos[2]) % 60,
            hour: self.decode_hour(self.cmos[4]) % 24,
            day: self.decode(self.cmos[7]).clamp(1, 31),
            month: self.decode(self.cmos[8]).clamp(1, 12),
            year: i64::from(self.decode(self.cmos[REG_CENTURY])) * 100
                + i64::from(self.decode(self.cmos[9])),
            wday: 0,
        };
        self.base_secs = from_tm(&t);
        self.base_ns = now;
    }

    fn periodic_ns(&self) -> Option<u64> {
        let rate = self.cmos[REG_A] & 0x0f;
        if rate == 0 || self.cmos[REG_A] & 0x70 != 0x20 {
            return None;
        }
        let rate = if rate <= 2 { rate + 7 } else { rate };
        // 32768 Hz >> (rate - 1).
        Some((NS << (rate - 1)) / 32_768)
    }

    fn schedule(&mut self, now: u64) {
        self.next_periodic = if self.cmos[REG_B] & B_PIE != 0 {
            self.periodic_ns().map(|p| now + p)
        } else {
            None
        };
        self.next_second = if self.cmos[REG_B] & (B_UIE | B_AIE) != 0 {
            let into = now.saturating_sub(self.base_ns) % NS;
            Some(now + (NS - into))
        } else {
            None
        };
    }

    fn raise(&mut self, flag: u8) {
        self.cmos[REG_C] |= flag;
        let enabled = (flag == C_PF && self.cmos[REG_B] & B_PIE != 0)
            || (flag == C_UF && self.cmos[REG_B] & B_UIE != 0)
            || (flag == C_AF && self.cmos[REG_B] & B_AIE != 0);
        if enabled && self.cmos[REG_C] & C_IRQF == 0 {
            self.cmos[REG_C] |= C_IRQF;
            self.irq.set_level(true);
        }
    }

    fn alarm_matches(&self, t: &Tm) -> bool {
        let m = |reg: usize, v: u32, hour: bool| {
            let a = self.cmos[reg];
            a & 0xc0 == 0xc0
                || if hour {
                    self.decode_hour(a) == v
                } else {
                    self.decode(a) == v
                }
        };
        m(1, t.sec, false) && m(3, t.min, false) && m(5, t.hour, true)
    }
}

impl BusDevice for Rtc {
    fn name(&self) -> &str {
        "mc146818rtc"
    }

    fn read(&mut self, info: BusAccessInfo, data: &mut [u8]) {
        let Some(b) = data.first_mut() else { return };
        if info.offset == 0 {
            *b = 0xff;
            return;
        }
        let now = self.clock.now_ns();
        *b = match self.index {
            0..=9 | REG_CENTURY => {
                self.latch_time(now);
                self.cmos[self.index]
            }
            REG_A => {
                let into = now.saturating_sub(self.base_ns) % NS;
                let uip = self.cmos[REG_B] & B_SET == 0 && into >= NS - UIP_NS;
                (self.cmos[REG_A] & 0x7f) | if uip { A_UIP } else { 0 }
            }
            REG_C => {
                let v = self.cmos[REG_C];
                self.cmos[REG_C] = 0;
                self.irq.set_level(false);
                v
            }
            i => self.cmos[i],
        };
    }

    fn write(&mut self, info: BusAccessInfo, data: &[u8]) {
        let Some(&v) = data.first() else { return };
        if info.offset == 0 {
            // Bit 7 is the NMI mask; the index is 7 bits.
            self.index = usize::from(v & 0x7f);
            return;
        }
        let now = self.clock.now_ns();
        match self.index {
            REG_A => self.cmos[REG_A] = v & 0x7f,
            REG_B => {
                let was_set = self.cmos[REG_B] & B_SET != 0;
                if v & B_SET != 0 && !was_set {
                    // Freeze the current time in the new format.
                    self.cmos[REG_B] = v & !B_SET;
                    self.latch_time(now);
                }
                self.cmos[REG_B] = v;
                if was_set && v & B_SET == 0 {
                    self.commit_time(now);
                }
            }
            REG_C | REG_D => {}
            i => self.cmos[i] = v,
        }
        self.schedule(now);
    }
}

impl Timed for Rtc {
    fn next_deadline(&self) -> Option<u64> {
        match (self.next_periodic, self.next_second) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn advance(&mut self, now_ns: u64) {
        if self.next_periodic.is_some_and(|t| t <= now_ns) {
            self.raise(C_PF);
            self.next_periodic = self.periodic_ns().map(|p| now_ns + p);
        }
        if self.next_second.is_some_and(|t| t <= now_ns) {
            self.raise(C_UF);
            let t = to_tm(self.now_secs(now_ns));
            if self.alarm_matches(&t) {
                self.raise(C_AF);
            }
            let into = now_ns.saturating_sub(self.base_ns) % NS;
            self.next_second = Some(now_ns + (NS - into));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::RecordingIrq;
    use cpu::ClockMode;

    // 2026-11-22 14:05:09 UTC, a Sunday.
    const START: u64 = 1_795_356_309;

    fn rtc() -> (Rtc, Arc<Clock>, Arc<RecordingIrq>) {
        let clock = Arc::new(Clock::new(
            ClockMode::InstructionCounted { shift: 0 },
            1_000_000,
        ));
        let irq = Arc::new(RecordingIrq::default());
        (Rtc::new(irq.clone(), clock.clone(), START), clock, irq)
    }

    fn rd(r: &mut Rtc, reg: u8) -> u8 {
        let idx = BusAccessInfo {
            address: 0x70,
            offset: 0,
            vcpu: 0,
        };
        let dat = BusAccessInfo {
            address: 0x71,
            offset: 1,
            vcpu: 0,
        };
        r.write(idx, &[reg]);
        let mut b = [0u8];
        r.read(dat, &mut b);
        b[0]
    }

    fn wr(r: &mut Rtc, reg: u8, v: u8) {
        let idx = BusAccessInfo {
            address: 0x70,
            offset: 0,
            vcpu: 0,
        };
        let dat = BusAccessInfo {
            address: 0x71,
            offset: 1,
            vcpu: 0,
        };
        r.write(idx, &[reg]);
        r.write(dat, &[v]);
    }

    #[test]
    fn reads_bcd_time_and_advances_with_the_guest_clock() {
        let (mut r, clock, _) = rtc();
        assert_eq!(
            [
                rd(&mut r, 9),
                rd(&mut r, 8),
                rd(&mut r, 7),
                rd(&mut r, 4),
                rd(&mut r, 2),
                rd(&mut r, 0)
            ],
            [0x26, 0x11, 0x22, 0x14, 0x05, 0x09]
        );
        assert_eq!(rd(&mut r, 6), 1, "Sunday");
        assert_eq!(rd(&mut r, 0x32), 0x20);
        clock.add_instructions(61 * NS);
        assert_eq!((rd(&mut r, 2), rd(&mut r, 0)), (0x06, 0x10));
    }

    #[test]
    fn binary_mode_and_setting_the_time() {
        let (mut r, clock, _) = rtc();
        wr(&mut r, 0x0b, B_SET | B_24H | B_BINARY);
        wr(&mut r, 4, 23);
        wr(&mut r, 2, 59);
        wr(&mut r, 0, 58);
        wr(&mut r, 0x0b, B_24H | B_BINARY);
        clock.add_instructions(3 * NS);
        assert_eq!((rd(&mut r, 4), rd(&mut r, 2), rd(&mut r, 0)), (0, 0, 1));
        assert_eq!(rd(&mut r, 7), 23, "rolled over to the next day");
    }

    #[test]
    fn uip_is_set_just_before_each_second() {
        let (mut r, clock, _) = rtc();
        assert_eq!(rd(&mut r, 0x0a) & A_UIP, 0);
        clock.add_instructions(NS - 100_000);
        assert_eq!(rd(&mut r, 0x0a) & A_UIP, A_UIP);
        clock.add_instructions(200_000);
        assert_eq!(rd(&mut r, 0x0a) & A_UIP, 0);
    }

    #[test]
    fn periodic_and_update_interrupts_set_c_and_irq8() {
        let (mut r, clock, irq) = rtc();
        wr(&mut r, 0x0a, 0x26); // 1024 Hz
        wr(&mut r, 0x0b, B_24H | B_PIE);
        let d = r.next_deadline().unwrap();
        assert_eq!(d, 976_562);
        clock.add_instructions(d);
        r.advance(clock.now_ns());
        assert!(irq.level());
        let c = rd(&mut r, 0x0c);
        assert_eq!(c & (C_IRQF | C_PF), C_IRQF | C_PF);
        assert!(!irq.level(), "reading C lowers IRQ 8");
        wr(&mut r, 0x0b, B_24H | B_UIE);
        let d = r.next_deadline().unwrap();
        clock.add_instructions(d - clock.now_ns());
        r.advance(clock.now_ns());
        assert_eq!(rd(&mut r, 0x0c) & C_UF, C_UF);
    }

    #[test]
    fn date_conversion_round_trips() {
        for s in [0u64, 951_782_400, START, 4_102_444_800] {
            assert_eq!(from_tm(&to_tm(s)), s);
        }
        assert_eq!(to_tm(951_782_400).day, 29, "2000-02-29");
    }
}
