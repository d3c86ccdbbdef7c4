//! The i8254 programmable interval timer (ports 0x40-0x43) and the
//! port 0x61 system control register that gates channel 2.
//!
//! Counters are computed from the guest [`Clock`] rather than ticked: each
//! channel remembers when it was loaded, and its count and output are
//! derived from the elapsed time at 1.193182 MHz — so Linux's PIT-based TSC
//! calibration sees exactly the rate the TSC runs at.

use std::sync::{Arc, Mutex};

use cpu::Clock;

use crate::bus::{BusAccessInfo, BusDevice};
use crate::irq::Irq;
use crate::timer::Timed;

/// The PIT's input clock.
pub const PIT_HZ: u64 = 1_193_182;
/// First PIT port.
pub const PIT_BASE: u64 = 0x40;
/// The system control port B (speaker and channel 2 gate).
pub const PORT_61: u64 = 0x61;

fn ticks_at(ns: u64) -> u64 {
    (u128::from(ns) * u128::from(PIT_HZ) / 1_000_000_000) as u64
}

fn ns_at(ticks: u64) -> u64 {
    (u128::from(ticks) * 1_000_000_000).div_ceil(u128::from(PIT_HZ)) as u64
}

#[derive(Debug, Clone, Copy, Default)]
struct Channel {
    mode: u8,
    /// Access mode: 1 = LSB, 2 = MSB, 3 = LSB then MSB.
    access: u8,
    bcd: bool,
    /// Reload value (0 means 65536).
    reload: u32,
    /// Guest time (ns) at which counting started; None until loaded.
    start: Option<u64>,
    gate: bool,
    latched: Option<u16>,
    status_latched: Option<u8>,
    read_msb_next: bool,
    write_msb_next: bool,
    write_lsb: u8,
    /// Channel 0: the next interrupt time (ns).
    next_irq: Option<u64>,
}

impl Channel {
    fn period(&self) -> u64 {
        if self.reload == 0 {
            0x1_0000
        } else {
            u64::from(self.reload)
        }
    }

    /// Ticks elapsed since loading.
    fn elapsed(&self, now: u64) -> Option<u64> {
        let start = self.start?;
        Some(ticks_at(now.saturating_sub(start)))
    }

    fn count(&self, now: u64) -> u16 {
        let Some(t) = self.elapsed(now) else {
            return 0;
        };
        let p = self.period();
        let c = match self.mode {
            0 | 1 | 4 | 5 => (p.wrapping_sub(t)) & 0xffff,
            2 => p - (t % p),
            3 => {
                // Square wave counts down by two, twice per period.
                let half = t % p;
                (p - (half * 2) % p) & 0xfffe
            }
            _ => 0,
        };
        c as u16
    }

    fn output(&self, now: u64) -> bool {
        let Some(t) = self.elapsed(now) else {
            return self.mode != 0;
        };
        let p = self.period();
        match self.mode {
            0 => t >= p,
            1 => t >= p,
            2 => t % p != p - 1,
            3 => (t % p) < p.div_ceil(2),
            4 | 5 => t != p,
            _ => true,
        }
    }

    /// Channel 0's next rising edge after `now` (modes 0, 2, 3).
    fn next_edge(&self, now: u64) -> Option<u64> {
        let start = self.start?;
        let p = self.period();
        match self.mode {
            0 => {
                let at = start + ns_at(p);
                (at > now).then_some(at)
            }
            2 | 3 => {
                let t = self.elapsed(now)?;
                let n = t / p + 1;
                Some(start + ns_at(n * p))
            }
            _ => None,
        }
    }
}

/// The PIT's state shared by its two bus devices.
pub struct PitState {
    channels: [Channel; 3],
    irq0: Irq,
    clock: Arc<Clock>,
    speaker_data: bool,
    refresh: bool,
}

impl std::fmt::Debug for PitState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PitState")
            .field("channels", &self.channels)
            .finish()
    }
}

/// The i8254 at ports 0x40-0x43.
#[derive(Debug, Clone)]
pub struct Pit {
    state: Arc<Mutex<PitState>>,
}

/// Port 0x61, sharing the PIT's channel 2.
#[derive(Debug, Clone)]
pub struct SystemControlPort {
    state: Arc<Mutex<PitState>>,
}

fn lock(m: &Mutex<PitState>) -> std::sync::MutexGuard<'_, PitState> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pit {
    /// A PIT whose channel 0 drives `irq0`, timed by `clock`.
    pub fn new(irq0: Irq, clock: Arc<Clock>) -> Self {
        let mut channels = [Channel::default(); 3];
        for c in channels.iter_mut() {
            c.gate = true;
            c.access = 3;
        }
        channels[2].gate = false;
        Pit {
            state: Arc::new(Mutex::new(PitState {
                channels,
                irq0,
                clock,
                speaker_data: false,
                refresh: false,
            })),
        }
    }

    /// The port 0x61 device for this PIT.
    pub fn port61(&self) -> SystemControlPort {
        SystemControlPort {
            state: self.state.clone(),
        }
    }

    /// Power-on state.
    pub fn reset(&self) {
        let mut s = lock(&self.state);
        for (i, c) in s.channels.iter_mut().enumerate() {
            *c = Channel {
                gate: i != 2,
                access: 3,
                ..Default::default()
            };
        }
    }
}

impl PitState {
    fn now(&self) -> u64 {
        self.clock.now_ns()
    }

    fn control(&mut self, v: u8) {
        let sel = (v >> 6) as usize;
        let now = self.now();
        if sel == 3 {
            // Read-back: bit 5 = don't latch count, bit 4 = don't latch status.
            for ch in 0..3 {
                if v & (2 << ch) == 0 {
                    continue;
                }
                let c = self.channels[ch];
                if v & 0x20 == 0 && self.channels[ch].latched.is_none() {
                    self.channels[ch].latched = Some(c.count(now));
                }
                if v & 0x10 == 0 && self.channels[ch].status_latched.is_none() {
                    let status = (u8::from(c.output(now)) << 7)
                        | (u8::from(c.start.is_none()) << 6)
                        | (c.access << 4)
                        | (c.mode << 1)
                        | u8::from(c.bcd);
                    self.channels[ch].status_latched = Some(status);
                }
            }
            return;
        }
        let access = (v >> 4) & 3;
        let c = &mut self.channels[sel];
        if access == 0 {
            if c.latched.is_none() {
                c.latched = Some(c.count(now));
                c.read_msb_next = false;
            }
            return;
        }
        c.access = access;
        c.mode = match (v >> 1) & 7 {
            6 => 2,
            7 => 3,
            m => m,
        };
        c.bcd = v & 1 != 0;
        c.start = None;
        c.read_msb_next = false;
        c.write_msb_next = false;
        c.latched = None;
        if sel == 0 {
            c.next_irq = None;
        }
    }

    fn write_counter(&mut self, ch: usize, v: u8) {
        let now = self.now();
        let c = &mut self.channels[ch];
        let value = match c.access {
            1 => Some(u32::from(v)),
            2 => Some(u32::from(v) << 8),
            _ => {
                if c.write_msb_next {
                    c.write_msb_next = false;
                    Some(u32::from(c.write_lsb) | (u32::from(v) << 8))
                } else {
                    c.write_lsb = v;
                    c.write_msb_next = true;
                    None
                }
            }
        };
        if let Some(reload) = value {
            c.reload = reload;
            // Counting starts one input clock after the load.
            c.start = Some(now + ns_at(1));
            if ch == 0 {
                c.next_irq = c.next_edge(now);
            }
        }
    }

    fn read_counter(&mut self, ch: usize) -> u8 {
        let now = self.now();
        let c = &mut self.channels[ch];
        if let Some(s) = c.status_latched.take() {
            return s;
        }
        let value = c.latched.unwrap_or_else(|| c.count(now));
        let (byte, done) = match c.access {
            1 => (value as u8, true),
            2 => ((value >> 8) as u8, true),
            _ => {
                if c.read_msb_next {
                    ((value >> 8) as u8, true)
                } else {
                    (value as u8, false)
                }
            }
        };
        if c.access == 3 {
            c.read_msb_next = !c.read_msb_next;
        }
        if done {
            c.latched = None;
        }
        byte
    }
}

impl BusDevice for Pit {
    fn name(&self) -> &str {
        "i8254"
    }

    fn read(&mut self, info: BusAccessInfo, data: &mut [u8]) {
        let mut s = lock(&self.state);
        let v = match info.offset {
            o @ 0..=2 => s.read_counter(o as usize),
            _ => 0xff,
        };
        if let Some(b) = data.first_mut() {
            *b = v;
        }
    }

    fn write(&mut self, info: BusAccessInfo, data: &[u8]) {
        let Some(&v) = data.first() else { return };
        let mut s = lock(&self.state);
        match info.offset {
            o @ 0..=2 => s.write_counter(o as usize, v),
            3 => s.control(v),
            _ => {}
        }
    }
}

impl BusDevice for SystemControlPort {
    fn name(&self) -> &str {
        "port61"
    }

    fn read(&mut self, _info: BusAccessInfo, data: &mut [u8]) {
        let mut s = lock(&self.state);
        let now = s.now();
        s.refresh = !s.refresh;
        let c2 = s.channels[2];
        let v = u8::from(c2.gate)
            | (u8::from(s.speaker_data) << 1)
            | (u8::from(s.refresh) << 4)
            | (u8::from(c2.output(now)) << 5);
        if let Some(b) = data.first_mut() {
            *b = v;
        }
    }

    fn write(&mut self, _info: BusAccessInfo, data: &[u8]) {
        let Some(&v) = data.first() else { return };
        let mut s = lock(&self.state);
        let now = s.now();
        let gate = v & 1 != 0;
        s.speaker_data = v & 2 != 0;
        let c = &mut s.channels[2];
        if gate && !c.gate && c.start.is_some() {
            // A rising gate restarts modes 1 and 5 and reloads 2 and 3.
            if matches!(c.mode, 1 | 2 | 3 | 5) {
                c.start = Some(now + ns_at(1));
            }
        }
        c.gate = gate;
    }
}

impl Timed for Pit {
    fn next_deadline(&self) -> Option<u64> {
        lock(&self.state).channels[0].next_irq
    }

    fn advance(&mut self, now_ns: u64) {
        let mut s = lock(&self.state);
        let Some(at) = s.channels[0].next_irq else {
            return;
        };
        if at > now_ns {
            return;
        }
        // Missed periods are coalesced into one interrupt (QEMU's
        // behaviour for a host that fell behind).
        let next = match s.channels[0].mode {
            2 | 3 => s.channels[0].next_edge(now_ns),
            _ => None,
        };
        s.channels[0].next_irq = next;
        s.irq0.pulse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::RecordingIrq;
    use cpu::ClockMode;

    fn setup() -> (Pit, Arc<Clock>, Arc<RecordingIrq>) {
        let clock = Arc::new(Clock::new(
            ClockMode::InstructionCounted { shift: 0 },
            1_000_000,
        ));
        let irq = Arc::new(RecordingIrq::default());
        (Pit::new(irq.clone(), clock.clone()), clock, irq)
    }

    fn at(port: u64) -> BusAccessInfo {
        BusAccessInfo {
            address: port,
            offset: port & 3,
            vcpu: 0,
        }
    }

    #[test]
    fn channel0_mode2_fires_at_the_programmed_rate() {
        let (mut pit, clock, irq) = setup();
        pit.write(at(0x43), &[0x34]);
        pit.write(at(0x40), &[(11932 & 0xff) as u8]);
        pit.write(at(0x40), &[(11932 >> 8) as u8]);
        let first = pit.next_deadline().unwrap();
        // 11932 ticks at 1.193182 MHz is 10 ms.
        assert!((first as i64 - 10_000_000).abs() < 2_000, "{first}");
        clock.add_instructions(first);
        pit.advance(clock.now_ns());
        assert_eq!(irq.rising_edges(), 1);
        let second = pit.next_deadline().unwrap();
        assert!((second as i64 - 20_000_000).abs() < 2_000, "{second}");
        // A host that falls behind gets one interrupt, not a burst.
        clock.add_instructions(55_000_000);
        pit.advance(clock.now_ns());
        assert_eq!(irq.rising_edges(), 2);
        assert!(pit.next_deadline().unwrap() > clock.now_ns());
    }

    #[test]
    fn latched_count_decreases_at_pit_rate() {
        let (mut pit, clock, _) = setup();
        pit.write(at(0x43), &[0x34]);
        pit.write(at(0x40), &[0xff]);
        pit.write(at(0x40), &[0xff]);
        clock.add_instructions(1_000_000); // 1 ms = ~1193 ticks
        pit.write(at(0x43), &[0x00]); // latch channel 0
        let mut lo = [0u8];
        let mut hi = [0u8];
        pit.read(at(0x40), &mut lo);
        pit.read(at(0x40), &mut hi);
        let count = u16::from_le_bytes([lo[0], hi[0]]);
        let elapsed = 0xffff - u32::from(count);
        assert!((1190..=1196).contains(&elapsed), "{elapsed}");
    }

    #[test]
    fn quick_pit_calibrate_sees_channel2_count_down_and_out2() {
        // What Linux's quick_pit_calibrate does: gate on, speaker off,
        // channel 2 mode 0 with 0xffff, then poll the MSB.
        let (mut pit, clock, _) = setup();
        let mut p61 = pit.port61();
        let p61_at = BusAccessInfo {
            address: 0x61,
            offset: 0,
            vcpu: 0,
        };
        p61.write(p61_at, &[0x01]);
        pit.write(at(0x43), &[0xb0]);
        pit.write(at(0x42), &[0xff]);
        pit.write(at(0x42), &[0xff]);
        let count = |pit: &mut Pit| {
            let mut lo = [0u8];
            let mut hi = [0u8];
            pit.read(at(0x42), &mut lo);
            pit.read(at(0x42), &mut hi);
            u16::from_le_bytes([lo[0], hi[0]])
        };
        let loaded_at = clock.now_ns();
        for _ in 0..50 {
            clock.add_instructions(1_000_000);
            let elapsed_ticks = (clock.now_ns() - loaded_at) * PIT_HZ / 1_000_000_000;
            let want = 0xffff - elapsed_ticks as i64;
            let got = i64::from(count(&mut pit));
            assert!((got - want).abs() <= 2, "count {got} vs {want}");
        }
        let mut v = [0u8];
        p61.read(p61_at, &mut v);
        assert_eq!(v[0] & 0x20, 0, "OUT2 low while counting");
        clock.add_instructions(60_000_000); // past 65535 ticks (~55 ms)
        p61.read(p61_at, &mut v);
        assert_eq!(v[0] & 0x20, 0x20, "OUT2 high at terminal count");
    }

    #[test]
    fn read_back_status_reports_mode_and_access() {
        let (mut pit, _, _) = setup();
        pit.write(at(0x43), &[0x36]); // ch0, lohi, mode 3
        pit.write(at(0x40), &[0x00]);
        pit.write(at(0x40), &[0x10]);
        pit.write(at(0x43), &[0xe2]); // read-back status of ch0
        let mut s = [0u8];
        pit.read(at(0x40), &mut s);
        assert_eq!(s[0] & 0x3f, (3 << 4) | (3 << 1));
    }
}
