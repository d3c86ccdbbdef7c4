//! The i8254 programmable interval timer (ports 0x40-0x43) and the PC's
//! system control port B (0x61), which gates channel 2 and reads its output.
//!
//! Counting is derived from the shared guest [`Clock`]: a channel records
//! when it started counting and how many input ticks (at [`PIT_HZ`]) had
//! already elapsed, so a read computes the counter value at the current
//! guest time and nothing needs to tick. Linux's TSC calibration
//! (`quick_pit_calibrate`, `pit_calibrate_tsc`) polls channel 2 this way
//! and so measures the TSC against the same clock the TSC is derived from.
//!
//! Channel 0's output drives IRQ 0 as pulses: one per period in modes 2
//! and 3, one at terminal count in modes 0, 1, 4 and 5. If the timer
//! service is late by several periods, [`Timed::advance`] fires a single
//! interrupt and drops the periods missed entirely (QEMU's userspace PIT
//! behaves the same way); the period phase is kept.
//!
//! Following QEMU rather than the data sheet: counting starts at the load,
//! not one input clock later, and modes 1 and 5 also start at the load
//! (a rising gate retriggers them); a count written while counting takes
//! effect at once in every mode; odd counts in mode 3 use QEMU's
//! arithmetic. Port 0x61 bits 2-3 and 6-7 (parity and I/O check) read
//! zero, and no sound is produced.
//!
//! # Registering on the board
//!
//! [`Pit`] is a cloneable handle to state it shares with its
//! [`SystemControlPort`] (from [`Pit::port61`]). Put the `Pit` on the port
//! bus at `[PIT_BASE, PIT_BASE + PIT_PORTS)`, the `SystemControlPort` at
//! `[PORT_61, PORT_61 + 1)`, and a clone of the `Pit` in the timer
//! service as a [`Timed`] device.

use std::sync::{Arc, Mutex, MutexGuard};

use cpu::Clock;

use crate::bus::{BusAccessInfo, BusDevice};
use crate::irq::Irq;
use crate::timer::Timed;

/// The PIT's input clock, in Hz.
pub const PIT_HZ: u64 = 1_193_182;
/// First PIT port (channel 0 data).
pub const PIT_BASE: u64 = 0x40;
/// Ports the PIT occupies: three channel data ports and the control word.
pub const PIT_PORTS: u64 = 4;
/// System control port B: channel 2 gate, speaker data, refresh, OUT2.
pub const PORT_61: u64 = 0x61;

const NS_PER_SEC: u128 = 1_000_000_000;

/// Port 0x61 bits.
const PORT61_GATE2: u8 = 0x01;
const PORT61_SPEAKER_DATA: u8 = 0x02;
const PORT61_REFRESH: u8 = 0x10;
const PORT61_OUT2: u8 = 0x20;

/// Whole input ticks in `ns` guest nanoseconds.
fn ns_to_ticks(ns: u64) -> u64 {
    let t = u128::from(ns) * u128::from(PIT_HZ) / NS_PER_SEC;
    u64::try_from(t).unwrap_or(u64::MAX)
}

/// Guest nanoseconds until `ticks` input ticks have elapsed (rounded up, so
/// that `ns_to_ticks(ticks_to_ns(t)) >= t`).
fn ticks_to_ns(ticks: u64) -> u64 {
    let n = u128::from(ticks) * NS_PER_SEC;
    let ns = n.div_ceil(u128::from(PIT_HZ));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

fn to_bcd(v: u64) -> u16 {
    let mut out = 0u16;
    let mut v = v % 10_000;
    for shift in [0, 4, 8, 12] {
        out |= ((v % 10) as u16) << shift;
        v /= 10;
    }
    out
}

fn from_bcd(v: u16) -> u64 {
    let mut out = 0u64;
    for shift in [12, 8, 4, 0] {
        out = out * 10 + u64::from((v >> shift) & 0xf);
    }
    out
}

/// How a channel's data port reads and writes the 16-bit count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Low byte only.
    Lsb,
    /// High byte only.
    Msb,
    /// Low byte then high byte.
    Word,
}

impl Access {
    /// Decode bits 4-5 of a control word (0 is the latch command, not an access mode).
    fn from_bits(bits: u8) -> Option<Self> {
        match bits & 3 {
            1 => Some(Access::Lsb),
            2 => Some(Access::Msb),
            3 => Some(Access::Word),
            _ => None,
        }
    }

    fn bits(self) -> u8 {
        match self {
            Access::Lsb => 1,
            Access::Msb => 2,
            Access::Word => 3,
        }
    }
}

/// A latched count on its way out through the data port.
#[derive(Debug, Clone, Copy)]
struct CountLatch {
    value: u16,
    /// The next read returns the high byte (word access).
    high_next: bool,
}

/// One counter of the 8254.
#[derive(Debug, Clone)]
struct Channel {
    /// Counting mode, 0-5.
    mode: u8,
    access: Access,
    bcd: bool,
    /// Reload value in input ticks: 1..=0x10000 (1..=10000 in BCD).
    reload: u64,
    /// A count was written since the last control word.
    loaded: bool,
    gate: bool,
    /// Guest time counting (re)started at; `None` while stopped by the gate.
    running_since: Option<u64>,
    /// Ticks already counted before `running_since`.
    elapsed_before: u64,
    /// Word access: the low byte written, waiting for the high byte.
    write_low: Option<u8>,
    /// Word access, live reads: the next read returns the high byte.
    read_high_next: bool,
    count_latch: Option<CountLatch>,
    status_latch: Option<u8>,
    /// A control word was written and no count loaded since.
    null_count: bool,
    /// Elapsed ticks at the last output event reported to the IRQ.
    fired_at: u64,
}

impl Channel {
    /// The state QEMU resets a channel to: mode 3, count 0x10000, running
    /// if its gate is high.
    fn reset(gate: bool, now: u64) -> Self {
        let mut c = Channel {
            mode: 3,
            access: Access::Word,
            bcd: false,
            reload: 0x10000,
            loaded: false,
            gate,
            running_since: None,
            elapsed_before: 0,
            write_low: None,
            read_high_next: false,
            count_latch: None,
            status_latch: None,
            null_count: true,
            fired_at: 0,
        };
        c.start(now);
        c
    }

    /// The gate stops counting in this mode while low.
    fn gate_holds_count(&self) -> bool {
        matches!(self.mode, 0 | 2 | 3 | 4)
    }

    /// Begin counting the reload value from zero elapsed ticks.
    fn start(&mut self, now: u64) {
        self.loaded = true;
        self.null_count = false;
        self.elapsed_before = 0;
        self.fired_at = 0;
        self.running_since = (self.gate || !self.gate_holds_count()).then_some(now);
    }

    /// Input ticks counted since the count was loaded.
    fn elapsed(&self, now: u64) -> u64 {
        let running = self
            .running_since
            .map_or(0, |since| ns_to_ticks(now.saturating_sub(since)));
        self.elapsed_before.saturating_add(running)
    }

    fn modulus(&self) -> u64 {
        if self.bcd {
            10_000
        } else {
            0x10000
        }
    }

    /// The counter value as the guest reads it (BCD-encoded in BCD mode).
    fn count(&self, now: u64) -> u16 {
        let m = self.modulus();
        let n = self.reload;
        let v = if !self.loaded {
            n % m
        } else {
            let d = self.elapsed(now);
            match self.mode {
                2 => (n - d % n) % m,
                3 => (n - (d.wrapping_mul(2)) % n) % m,
                _ => (n + m - d % m) % m,
            }
        };
        if self.bcd {
            to_bcd(v)
        } else {
            v as u16
        }
    }

    /// The OUT pin.
    fn out(&self, now: u64) -> bool {
        if !self.loaded {
            // After a control word OUT is low in mode 0 and high otherwise.
            return self.mode != 0;
        }
        let d = self.elapsed(now);
        let n = self.reload;
        match self.mode {
            0 | 1 => d >= n,
            2 => !self.gate || n == 1 || d % n != n - 1,
            3 => !self.gate || d % n < n.div_ceil(2),
            _ => d != n,
        }
    }

    /// The status byte of the read-back command.
    fn status(&self, now: u64) -> u8 {
        (u8::from(self.out(now)) << 7)
            | (u8::from(self.null_count) << 6)
            | (self.access.bits() << 4)
            | (self.mode << 1)
            | u8::from(self.bcd)
    }

    /// Elapsed-tick value of the next output event that interrupts, if
    /// counting: every period in modes 2 and 3, terminal count otherwise.
    fn next_event_tick(&self) -> Option<u64> {
        if !self.loaded || self.running_since.is_none() {
            return None;
        }
        let n = self.reload;
        match self.mode {
            2 | 3 => Some((self.fired_at / n + 1) * n),
            _ => (self.fired_at < n).then_some(n),
        }
    }

    /// Guest time of the next interrupting output event.
    fn next_event_ns(&self) -> Option<u64> {
        let tick = self.next_event_tick()?;
        let since = self.running_since?;
        Some(since.saturating_add(ticks_to_ns(tick.saturating_sub(self.elapsed_before))))
    }

    /// Write a control word selecting this channel (not a latch or read-back).
    fn control(&mut self, access: Access, mode: u8, bcd: bool) {
        self.access = access;
        self.mode = if mode > 5 { mode & 3 } else { mode };
        self.bcd = bcd;
        self.loaded = false;
        self.null_count = true;
        self.running_since = None;
        self.elapsed_before = 0;
        self.fired_at = 0;
        self.write_low = None;
        self.read_high_next = false;
        self.count_latch = None;
    }

    /// Latch the current count (ignored while a latched count is unread).
    fn latch_count(&mut self, now: u64) {
        if self.count_latch.is_none() {
            self.count_latch = Some(CountLatch {
                value: self.count(now),
                high_next: self.access == Access::Msb,
            });
        }
    }

    /// Latch the status byte (ignored while a latched status is unread).
    fn latch_status(&mut self, now: u64) {
        if self.status_latch.is_none() {
            self.status_latch = Some(self.status(now));
        }
    }

    fn load(&mut self, raw: u16, now: u64) {
        let n = if self.bcd {
            from_bcd(raw)
        } else {
            u64::from(raw)
        };
        self.reload = if n == 0 { self.modulus() } else { n };
        self.start(now);
    }

    fn write_data(&mut self, val: u8, now: u64) {
        match self.access {
            Access::Lsb => self.load(u16::from(val), now),
            Access::Msb => self.load(u16::from(val) << 8, now),
            Access::Word => match self.write_low.take() {
                None => self.write_low = Some(val),
                Some(lo) => self.load(u16::from_le_bytes([lo, val]), now),
            },
        }
    }

    fn read_data(&mut self, now: u64) -> u8 {
        if let Some(s) = self.status_latch.take() {
            return s;
        }
        if let Some(mut latch) = self.count_latch {
            let [lo, hi] = latch.value.to_le_bytes();
            return if latch.high_next {
                self.count_latch = None;
                hi
            } else {
                if self.access == Access::Word {
                    latch.high_next = true;
                    self.count_latch = Some(latch);
                } else {
                    self.count_latch = None;
                }
                lo
            };
        }
        let [lo, hi] = self.count(now).to_le_bytes();
        match self.access {
            Access::Lsb => lo,
            Access::Msb => hi,
            Access::Word => {
                self.read_high_next = !self.read_high_next;
                if self.read_high_next {
                    lo
                } else {
                    hi
                }
            }
        }
    }

    fn set_gate(&mut self, high: bool, now: u64) {
        if high == self.gate {
            return;
        }
        self.gate = high;
        if !self.loaded {
            return;
        }
        match (self.mode, high) {
            // Modes 0 and 4 suspend counting while the gate is low.
            (0 | 4, false) | (2 | 3, false) => {
                self.elapsed_before = self.elapsed(now);
                self.running_since = None;
            }
            (0 | 4, true) => self.running_since = Some(now),
            // A rising gate retriggers modes 1 and 5 and reloads modes 2 and 3.
            (_, true) => self.start(now),
            (_, false) => {}
        }
    }
}

/// The PIT's state, shared by its two bus devices and the timer service.
struct PitState {
    channels: [Channel; 3],
    irq0: Irq,
    clock: Arc<Clock>,
    speaker_data: bool,
    refresh: bool,
}

impl PitState {
    fn reset_channels(now: u64) -> [Channel; 3] {
        [
            Channel::reset(true, now),
            Channel::reset(true, now),
            Channel::reset(false, now),
        ]
    }

    fn write_control(&mut self, val: u8, now: u64) {
        let select = val >> 6;
        if select == 3 {
            // Read-back: bit 5 low latches counts, bit 4 low latches status,
            // bits 1-3 select channels 0-2.
            for (i, ch) in self.channels.iter_mut().enumerate() {
                if val & (2 << i) == 0 {
                    continue;
                }
                if val & 0x20 == 0 {
                    ch.latch_count(now);
                }
                if val & 0x10 == 0 {
                    ch.latch_status(now);
                }
            }
            return;
        }
        let ch = &mut self.channels[usize::from(select)];
        match Access::from_bits(val >> 4) {
            None => ch.latch_count(now),
            Some(access) => ch.control(access, (val >> 1) & 7, val & 1 != 0),
        }
    }

    fn read_port61(&mut self, now: u64) -> u8 {
        // The DRAM refresh bit toggles on every read, which is enough for
        // code that waits for it to change.
        self.refresh = !self.refresh;
        let ch2 = &self.channels[2];
        let mut v = 0;
        if ch2.gate {
            v |= PORT61_GATE2;
        }
        if self.speaker_data {
            v |= PORT61_SPEAKER_DATA;
        }
        if self.refresh {
            v |= PORT61_REFRESH;
        }
        if ch2.out(now) {
            v |= PORT61_OUT2;
        }
        v
    }

    fn write_port61(&mut self, val: u8, now: u64) {
        self.speaker_data = val & PORT61_SPEAKER_DATA != 0;
        self.channels[2].set_gate(val & PORT61_GATE2 != 0, now);
    }
}

fn lock(m: &Mutex<PitState>) -> MutexGuard<'_, PitState> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The 8254 at ports 0x40-0x43: a cloneable handle to state shared with
/// its [`SystemControlPort`].
#[derive(Clone)]
pub struct Pit {
    state: Arc<Mutex<PitState>>,
}

/// Port 0x61, sharing the PIT's channel 2: bit 0 gates channel 2, bit 1 is
/// the speaker data, bit 4 toggles on each read (refresh), bit 5 is OUT2.
#[derive(Clone)]
pub struct SystemControlPort {
    state: Arc<Mutex<PitState>>,
}

impl std::fmt::Debug for Pit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // try_lock: formatting must not deadlock inside a PIT method.
        match self.state.try_lock() {
            Ok(s) => f
                .debug_struct("Pit")
                .field("channels", &s.channels)
                .field("speaker_data", &s.speaker_data)
                .finish(),
            Err(_) => f.write_str("Pit { <busy> }"),
        }
    }
}

impl std::fmt::Debug for SystemControlPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SystemControlPort")
    }
}

impl Pit {
    /// A PIT whose channel 0 drives `irq0`, counting on `clock`, in its
    /// reset state.
    pub fn new(irq0: Irq, clock: Arc<Clock>) -> Self {
        let now = clock.now_ns();
        Pit {
            state: Arc::new(Mutex::new(PitState {
                channels: PitState::reset_channels(now),
                irq0,
                clock,
                speaker_data: false,
                refresh: false,
            })),
        }
    }

    /// The port 0x61 device of this PIT.
    pub fn port61(&self) -> SystemControlPort {
        SystemControlPort {
            state: self.state.clone(),
        }
    }

    /// Machine reset: every channel in mode 3 counting 0x10000 (channel 0
    /// therefore interrupts at about 18.2 Hz, as QEMU's does), channel 2's
    /// gate and the speaker off.
    pub fn reset(&self) {
        let mut s = lock(&self.state);
        let now = s.clock.now_ns();
        s.channels = PitState::reset_channels(now);
        s.speaker_data = false;
        s.refresh = false;
    }
}

impl BusDevice for Pit {
    fn name(&self) -> &str {
        "i8254"
    }

    fn read(&mut self, info: BusAccessInfo, data: &mut [u8]) {
        let mut s = lock(&self.state);
        let now = s.clock.now_ns();
        let val = match info.offset {
            o @ 0..=2 => s.channels[o as usize].read_data(now),
            // The control word register is write-only.
            _ => 0,
        };
        if let Some(b) = data.first_mut() {
            *b = val;
        }
    }

    fn write(&mut self, info: BusAccessInfo, data: &[u8]) {
        let Some(&val) = data.first() else {
            return;
        };
        let mut s = lock(&self.state);
        let now = s.clock.now_ns();
        match info.offset {
            o @ 0..=2 => s.channels[o as usize].write_data(val, now),
            3 => s.write_control(val, now),
            o => log::debug!("i8254: write {val:#x} at offset {o:#x} ignored"),
        }
    }
}

impl BusDevice for SystemControlPort {
    fn name(&self) -> &str {
        "port61"
    }

    fn read(&mut self, _info: BusAccessInfo, data: &mut [u8]) {
        let mut s = lock(&self.state);
        let now = s.clock.now_ns();
        let val = s.read_port61(now);
        if let Some(b) = data.first_mut() {
            *b = val;
        }
    }

    fn write(&mut self, _info: BusAccessInfo, data: &[u8]) {
        let Some(&val) = data.first() else {
            return;
        };
        let mut s = lock(&self.state);
        let now = s.clock.now_ns();
        s.write_port61(val, now);
    }
}

impl Timed for Pit {
    fn next_deadline(&self) -> Option<u64> {
        lock(&self.state).channels[0].next_event_ns()
    }

    fn advance(&mut self, now_ns: u64) {
        let mut s = lock(&self.state);
        let ch0 = &mut s.channels[0];
        let Some(tick) = ch0.next_event_tick() else {
            return;
        };
        let d = ch0.elapsed(now_ns);
        if d >= tick {
            // One interrupt however many periods were missed; the next
            // deadline stays on the period grid.
            ch0.fired_at = d;
            s.irq0.pulse();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::RecordingIrq;
    use cpu::ClockMode;

    /// The TSC rate of the fake clock: 3 GHz.
    const TSC_KHZ: u64 = 3_000_000;

    struct Rig {
        pit: Pit,
        port61: SystemControlPort,
        clock: Arc<Clock>,
        irq: Arc<RecordingIrq>,
    }

    fn rig() -> Rig {
        // One instruction = 1 ns, so `add_instructions(ns)` advances time.
        let clock = Arc::new(Clock::new(
            ClockMode::InstructionCounted { shift: 0 },
            TSC_KHZ,
        ));
        let irq = Arc::new(RecordingIrq::default());
        let pit = Pit::new(irq.clone(), clock.clone());
        let port61 = pit.port61();
        Rig {
            pit,
            port61,
            clock,
            irq,
        }
    }

    fn at(port: u64) -> BusAccessInfo {
        let base = if port == PORT_61 { PORT_61 } else { PIT_BASE };
        BusAccessInfo {
            address: port,
            offset: port - base,
            vcpu: 0,
        }
    }

    impl Rig {
        fn outb(&mut self, port: u64, v: u8) {
            if port == PORT_61 {
                self.port61.write(at(port), &[v]);
            } else {
                self.pit.write(at(port), &[v]);
            }
        }
        fn inb(&mut self, port: u64) -> u8 {
            let mut b = [0u8];
            if port == PORT_61 {
                self.port61.read(at(port), &mut b);
            } else {
                self.pit.read(at(port), &mut b);
            }
            b[0]
        }
        fn advance_to(&self, ns: u64) {
            let now = self.clock.now_ns();
            assert!(ns >= now);
            self.clock.add_instructions(ns - now);
        }
        /// What the board's timer service does: advance at each deadline
        /// up to `until`.
        fn run_timers_until(&mut self, until: u64) {
            while let Some(t) = self.pit.next_deadline().filter(|&t| t <= until) {
                self.advance_to(t);
                self.pit.advance(t);
            }
            self.advance_to(until);
        }
        fn read_word(&mut self, port: u64) -> u16 {
            let lo = self.inb(port);
            let hi = self.inb(port);
            u16::from_le_bytes([lo, hi])
        }
    }

    #[test]
    fn quick_pit_calibrate_sees_channel2_msb_fall_at_pit_rate_and_out2_at_terminal_count() {
        let mut r = rig();
        // As Linux's quick_pit_calibrate: gate on, speaker off, mode 0, 0xffff.
        let v = r.inb(PORT_61);
        r.outb(PORT_61, (v & !0x02) | 0x01);
        r.outb(0x43, 0xb0);
        r.outb(0x42, 0xff);
        r.outb(0x42, 0xff);
        let t0 = r.clock.now_ns();
        assert_eq!(r.inb(PORT_61) & PORT61_OUT2, 0, "OUT2 low while counting");
        // Sample the MSB every microsecond; record when each value first shows.
        let mut first_seen = Vec::new();
        let mut prev_msb = 0x100u16;
        for us in 0..=10_000u64 {
            r.advance_to(t0 + us * 1000);
            let _lsb = r.inb(0x42);
            let msb = u16::from(r.inb(0x42));
            assert!(msb <= prev_msb, "MSB never rises while counting down");
            if msb < prev_msb {
                first_seen.push((msb, us));
                prev_msb = msb;
            }
        }
        assert_eq!(first_seen[0], (0xff, 0));
        // Each MSB step is 256 input ticks: 214.55 us at 1.193182 MHz.
        for w in first_seen.windows(2) {
            let ((m0, t_a), (m1, t_b)) = (w[0], w[1]);
            assert_eq!(m1, m0 - 1, "the MSB steps by one");
            if m0 != 0xff {
                let dt = t_b - t_a;
                assert!((214..=215).contains(&dt), "MSB step took {dt} us");
            }
        }
        // After 10 ms: 11931 ticks counted, so the count is 0xffff - 11931.
        let msb_at_10ms = first_seen.last().map(|&(m, _)| m).unwrap_or(0);
        assert_eq!(msb_at_10ms, (0xffff - 11_931) >> 8);
        // OUT2 rises at terminal count: 0xffff ticks = 54.9246 ms.
        let tc = t0 + ticks_to_ns(0xffff);
        r.advance_to(tc - 1000);
        assert_eq!(r.inb(PORT_61) & PORT61_OUT2, 0);
        r.advance_to(tc);
        assert_eq!(r.inb(PORT_61) & PORT61_OUT2, PORT61_OUT2);
        // No interrupt: channel 2 has no IRQ.
        assert_eq!(r.irq.rising_edges(), 0);
    }

    #[test]
    fn pit_calibrate_tsc_measures_the_clock_tsc_rate() {
        let mut r = rig();
        // Linux's pit_calibrate_tsc: 50 ms one-shot on channel 2, poll OUT2.
        let latch: u16 = (PIT_HZ / 20) as u16;
        let v = r.inb(PORT_61);
        r.outb(PORT_61, (v & !0x02) | 0x01);
        r.outb(0x43, 0xb0);
        r.outb(0x42, latch as u8);
        r.outb(0x42, (latch >> 8) as u8);
        let tsc_start = r.clock.tsc();
        let mut polls = 0u64;
        while r.inb(PORT_61) & PORT61_OUT2 == 0 {
            // Each poll costs about a microsecond of guest time.
            r.clock.add_instructions(1000);
            polls += 1;
            assert!(polls < 1_000_000, "OUT2 never rose");
        }
        let delta = r.clock.tsc() - tsc_start;
        // Linux: tsc_khz = delta / ms; ms = 50.
        let khz = delta / 50;
        let err = khz.abs_diff(TSC_KHZ);
        assert!(err * 10_000 < TSC_KHZ, "measured {khz} kHz vs {TSC_KHZ}");
    }

    #[test]
    fn channel0_mode2_pulses_irq0_every_period() {
        let mut r = rig();
        r.outb(0x43, 0x34); // channel 0, lo/hi, mode 2
        let latch = 1193u16; // ~1 ms, Linux's LATCH at HZ=1000
        r.outb(0x40, latch as u8);
        r.outb(0x40, (latch >> 8) as u8);
        let t0 = r.clock.now_ns();
        let period = ticks_to_ns(u64::from(latch));
        assert_eq!(r.pit.next_deadline(), Some(t0 + period));
        r.run_timers_until(t0 + 10 * ticks_to_ns(u64::from(latch)) + 10);
        assert_eq!(r.irq.rising_edges(), 10);
        assert!(!r.irq.level(), "edge pulses leave the line low");
    }

    #[test]
    fn late_timer_service_coalesces_missed_periods_and_keeps_the_phase() {
        let mut r = rig();
        r.outb(0x43, 0x34);
        r.outb(0x40, 0xa9); // 1193
        r.outb(0x40, 0x04);
        let t0 = r.clock.now_ns();
        // The service oversleeps by 100 periods.
        let late = t0 + ticks_to_ns(100 * 1193 + 500);
        r.advance_to(late);
        r.pit.advance(late);
        assert_eq!(r.irq.rising_edges(), 1, "one interrupt, not a burst");
        let next = r.pit.next_deadline().expect("still periodic");
        assert_eq!(next, t0 + ticks_to_ns(101 * 1193));
        r.pit.advance(late);
        assert_eq!(
            r.irq.rising_edges(),
            1,
            "nothing more before the next period"
        );
    }

    #[test]
    fn mode0_fires_once_at_terminal_count() {
        let mut r = rig();
        r.outb(0x43, 0x30); // channel 0, lo/hi, mode 0
        r.outb(0x40, 100);
        assert_eq!(r.pit.next_deadline(), None, "not armed until both bytes");
        r.outb(0x40, 0);
        let t0 = r.clock.now_ns();
        let tc = t0 + ticks_to_ns(100);
        assert_eq!(r.pit.next_deadline(), Some(tc));
        r.advance_to(tc - 1);
        r.pit.advance(tc - 1);
        assert_eq!(r.irq.rising_edges(), 0);
        r.run_timers_until(tc);
        assert_eq!(r.irq.rising_edges(), 1);
        assert_eq!(r.pit.next_deadline(), None);
        // The counter wraps past zero and keeps counting down.
        r.advance_to(t0 + ticks_to_ns(105));
        assert_eq!(r.read_word(0x40), 0xffff - 4);
    }

    #[test]
    fn mode4_one_shot_as_linux_clockevents_uses_it() {
        let mut r = rig();
        r.outb(0x43, 0x38); // channel 0, lo/hi, mode 4
        r.outb(0x40, 0x10);
        r.outb(0x40, 0x00);
        let t0 = r.clock.now_ns();
        r.run_timers_until(t0 + ticks_to_ns(1000));
        assert_eq!(r.irq.rising_edges(), 1);
        // A new count re-arms it.
        r.outb(0x40, 0x20);
        r.outb(0x40, 0x00);
        let t1 = r.clock.now_ns();
        assert_eq!(r.pit.next_deadline(), Some(t1 + ticks_to_ns(0x20)));
        r.run_timers_until(t1 + ticks_to_ns(1000));
        assert_eq!(r.irq.rising_edges(), 2);
    }

    #[test]
    fn control_word_stops_channel0_until_a_count_is_written() {
        let mut r = rig();
        assert!(
            r.pit.next_deadline().is_some(),
            "reset state runs at 18.2 Hz"
        );
        r.outb(0x43, 0x30);
        assert_eq!(r.pit.next_deadline(), None);
    }

    #[test]
    fn reset_state_is_mode3_full_count_with_channel0_interrupting() {
        let mut r = rig();
        r.outb(0x43, 0x34);
        r.outb(0x40, 5);
        r.outb(0x40, 0);
        r.outb(PORT_61, 0x03);
        r.pit.reset();
        let t0 = r.clock.now_ns();
        assert_eq!(r.pit.next_deadline(), Some(t0 + ticks_to_ns(0x10000)));
        assert_eq!(r.inb(PORT_61) & 0x03, 0, "gate and speaker off");
        r.run_timers_until(t0 + 3 * ticks_to_ns(0x10000));
        assert_eq!(r.irq.rising_edges(), 3);
    }

    #[test]
    fn mode3_square_wave_on_out2() {
        let mut r = rig();
        r.outb(0x43, 0xb6); // channel 2, lo/hi, mode 3
        r.outb(0x42, 100);
        r.outb(0x42, 0);
        r.outb(PORT_61, 0x01); // gate rising edge starts the wave
        let t0 = r.clock.now_ns();
        let out2 = |r: &mut Rig| r.inb(PORT_61) & PORT61_OUT2 != 0;
        assert!(out2(&mut r), "high for the first half");
        r.advance_to(t0 + ticks_to_ns(49));
        assert!(out2(&mut r));
        r.advance_to(t0 + ticks_to_ns(50));
        assert!(!out2(&mut r), "low for the second half");
        r.advance_to(t0 + ticks_to_ns(99));
        assert!(!out2(&mut r));
        r.advance_to(t0 + ticks_to_ns(100));
        assert!(out2(&mut r), "high again at the next period");
        // The count decrements by two in mode 3.
        r.advance_to(t0 + ticks_to_ns(110));
        assert_eq!(r.read_word(0x42), 80);
    }

    #[test]
    fn out2_in_modes_1_2_and_5_with_gate_retrigger() {
        let mut r = rig();
        let out2 = |r: &mut Rig| r.inb(PORT_61) & PORT61_OUT2 != 0;
        // Mode 1 (hardware one-shot): low while counting, high at TC.
        r.outb(PORT_61, 0x01);
        r.outb(0x43, 0x92); // channel 2, LSB only, mode 1
        r.outb(0x42, 10);
        let t0 = r.clock.now_ns();
        assert!(!out2(&mut r));
        r.advance_to(t0 + ticks_to_ns(10));
        assert!(out2(&mut r));
        // A rising gate retriggers the count.
        r.outb(PORT_61, 0x00);
        r.outb(PORT_61, 0x01);
        let t1 = r.clock.now_ns();
        assert!(!out2(&mut r));
        assert_eq!(r.inb(0x42), 10);
        r.advance_to(t1 + ticks_to_ns(10));
        assert!(out2(&mut r));
        // Mode 5: high, one tick low at TC, high again.
        r.outb(0x43, 0x9a); // channel 2, LSB only, mode 5
        r.outb(0x42, 4);
        let t2 = r.clock.now_ns();
        r.advance_to(t2 + ticks_to_ns(3));
        assert!(out2(&mut r));
        r.advance_to(t2 + ticks_to_ns(4));
        assert!(!out2(&mut r));
        r.advance_to(t2 + ticks_to_ns(5));
        assert!(out2(&mut r));
        // Mode 2: low for the one tick before each reload.
        r.outb(0x43, 0x94); // channel 2, LSB only, mode 2
        r.outb(0x42, 5);
        let t3 = r.clock.now_ns();
        let lows: Vec<u64> = (0..15)
            .filter(|&k| {
                r.advance_to(t3 + ticks_to_ns(k));
                !out2(&mut r)
            })
            .collect();
        assert_eq!(lows, vec![4, 9, 14]);
        // Gate low forces OUT high in mode 2.
        r.advance_to(t3 + ticks_to_ns(19));
        r.outb(PORT_61, 0x00);
        assert!(out2(&mut r));
    }

    #[test]
    fn gate_low_suspends_mode0_counting() {
        let mut r = rig();
        r.outb(PORT_61, 0x01);
        r.outb(0x43, 0xb0);
        r.outb(0x42, 0x00);
        r.outb(0x42, 0x10); // 0x1000
        let t0 = r.clock.now_ns();
        r.advance_to(t0 + ticks_to_ns(0x100));
        r.outb(PORT_61, 0x00);
        assert_eq!(r.read_word(0x42), 0x0f00);
        r.advance_to(t0 + ticks_to_ns(0x800));
        assert_eq!(r.read_word(0x42), 0x0f00, "held while the gate is low");
        let t1 = r.clock.now_ns();
        r.outb(PORT_61, 0x01);
        r.advance_to(t1 + ticks_to_ns(0x10));
        assert_eq!(r.read_word(0x42), 0x0ef0, "resumes where it stopped");
    }

    #[test]
    fn latch_command_freezes_the_value_until_read() {
        let mut r = rig();
        r.outb(0x43, 0x34);
        r.outb(0x40, 0x00);
        r.outb(0x40, 0x80); // 0x8000
        let t0 = r.clock.now_ns();
        r.advance_to(t0 + ticks_to_ns(0x123));
        r.outb(0x43, 0x00); // latch channel 0
        r.advance_to(t0 + ticks_to_ns(0x456));
        r.outb(0x43, 0x00); // a second latch before reading is ignored
        assert_eq!(r.read_word(0x40), 0x8000 - 0x123);
        // After the latch is read, reads follow the live count.
        assert_eq!(r.read_word(0x40), 0x8000 - 0x456);
    }

    #[test]
    fn lobyte_and_hibyte_access_modes() {
        let mut r = rig();
        r.outb(0x43, 0x50); // channel 1, LSB only, mode 0
        r.outb(0x41, 0x80);
        let t0 = r.clock.now_ns();
        r.advance_to(t0 + ticks_to_ns(0x10));
        assert_eq!(r.inb(0x41), 0x70);
        assert_eq!(r.inb(0x41), 0x70, "every read is the low byte");
        r.outb(0x43, 0x60); // channel 1, MSB only, mode 0
        r.outb(0x41, 0x02); // count 0x0200
        let t1 = r.clock.now_ns();
        r.advance_to(t1 + ticks_to_ns(0x101));
        assert_eq!(r.inb(0x41), 0x00, "0x200 - 0x101 = 0x0ff: MSB 0");
        assert_eq!(r.inb(0x41), 0x00);
        // A latched count in LSB-only mode is one read.
        r.outb(0x43, 0x40);
        r.outb(0x43, 0x50);
        r.outb(0x41, 0x30);
        r.outb(0x43, 0x40);
        assert_eq!(r.inb(0x41), 0x30);
    }

    #[test]
    fn read_back_latches_status_then_count() {
        let mut r = rig();
        r.outb(0x43, 0xb4); // channel 2, lo/hi, mode 2, binary
                            // Status before a count is loaded: OUT high, null count, rw=3, mode 2.
        r.outb(0x43, 0xe8); // read-back status only, channel 2
        assert_eq!(r.inb(0x42), 0x80 | 0x40 | 0x30 | 0x04);
        r.outb(0x42, 0x34);
        r.outb(0x42, 0x12);
        r.outb(PORT_61, 0x01);
        let t0 = r.clock.now_ns();
        r.advance_to(t0 + ticks_to_ns(4));
        r.outb(0x43, 0xc8); // read-back count and status, channel 2
        r.advance_to(t0 + ticks_to_ns(100));
        assert_eq!(r.inb(0x42), 0x80 | 0x30 | 0x04, "status first");
        assert_eq!(r.read_word(0x42), 0x1234 - 4, "then the latched count");
        // BCD flag is reported in status bit 0.
        r.outb(0x43, 0x71); // channel 1, lo/hi, mode 0, BCD
        r.outb(0x43, 0xe4); // status of channel 1
        assert_eq!(r.inb(0x41) & 0x3f, 0x31);
    }

    #[test]
    fn bcd_counting() {
        let mut r = rig();
        r.outb(0x43, 0x71); // channel 1, lo/hi, mode 0, BCD
        r.outb(0x41, 0x00);
        r.outb(0x41, 0x10); // 1000 decimal
        let t0 = r.clock.now_ns();
        r.advance_to(t0 + ticks_to_ns(1));
        assert_eq!(r.read_word(0x41), 0x0999);
        r.advance_to(t0 + ticks_to_ns(1000 + 3));
        assert_eq!(r.read_word(0x41), 0x9997, "wraps modulo 10000");
    }

    #[test]
    fn port61_speaker_bit_refresh_toggle_and_control_port_read() {
        let mut r = rig();
        r.outb(PORT_61, 0x02);
        let a = r.inb(PORT_61);
        let b = r.inb(PORT_61);
        assert_eq!(a & 0x03, 0x02);
        assert_ne!(a & PORT61_REFRESH, b & PORT61_REFRESH);
        assert_eq!(r.inb(0x43), 0);
    }

    #[test]
    fn works_through_a_bus_registered_as_the_board_does() {
        let r = rig();
        let mut bus = crate::bus::Bus::new();
        bus.insert(Arc::new(Mutex::new(r.pit.clone())), PIT_BASE, PIT_PORTS)
            .unwrap();
        bus.insert(Arc::new(Mutex::new(r.pit.port61())), PORT_61, 1)
            .unwrap();
        assert!(bus.write(0, PORT_61, &[0x01]));
        assert!(bus.write(0, 0x43, &[0xb0]));
        assert!(bus.write(0, 0x42, &[0x00]));
        assert!(bus.write(0, 0x42, &[0x20])); // 0x2000
        r.clock.add_instructions(ticks_to_ns(0x100));
        let mut b = [0u8];
        bus.read(0, 0x42, &mut b);
        assert_eq!(b[0], 0x00);
        bus.read(0, 0x42, &mut b);
        assert_eq!(b[0], 0x1f);
        bus.read(0, PORT_61, &mut b);
        assert_eq!(b[0] & (PORT61_GATE2 | PORT61_OUT2), PORT61_GATE2);
        assert!(!bus.read(0, 0x44, &mut b));
    }

    #[test]
    fn tick_conversions_round_up_to_whole_ticks() {
        for t in [0u64, 1, 2, 255, 256, 1193, 0xffff, 0x10000, 1_193_182] {
            assert_eq!(ns_to_ticks(ticks_to_ns(t)), t);
            assert_eq!(
                ns_to_ticks(ticks_to_ns(t).saturating_sub(1)),
                t.saturating_sub(1)
            );
        }
        assert_eq!(to_bcd(1234), 0x1234);
        assert_eq!(from_bcd(0x9876), 9876);
    }
}
