//! The timer service: one thread that sleeps until the earliest device
//! deadline on the guest clock and advances the devices that expired.
//!
//! Guest writes that may reprogram a timer call [`TimerService::wake`] so
//! the thread re-reads the deadlines at once.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use cpu::Clock;
use devices::timer::Timed;

/// A timed device as the service holds it.
pub type SharedTimed = Arc<Mutex<dyn Timed>>;

#[derive(Debug, Default)]
struct State {
    woken: bool,
    stop: bool,
}

/// The timer thread's shared state.
pub struct TimerService {
    devices: Mutex<Vec<SharedTimed>>,
    clock: Arc<Clock>,
    state: Mutex<State>,
    cond: Condvar,
}

impl std::fmt::Debug for TimerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerService")
            .field("state", &self.state)
            .finish()
    }
}

/// Longest sleep between deadline checks (bounds the damage of a missed wake).
const MAX_SLEEP: Duration = Duration::from_millis(100);

impl TimerService {
    /// A service on `clock` with no devices yet.
    pub fn new(clock: Arc<Clock>) -> Arc<Self> {
        Arc::new(TimerService {
            devices: Mutex::new(Vec::new()),
            clock,
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
        })
    }

    /// Add a device.
    pub fn add(&self, dev: SharedTimed) {
        if let Ok(mut d) = self.devices.lock() {
            d.push(dev);
        }
        self.wake();
    }

    /// Re-read deadlines now.
    pub fn wake(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.woken = true;
            self.cond.notify_one();
        }
    }

    /// Stop the thread.
    pub fn stop(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.stop = true;
            self.cond.notify_one();
        }
    }

    /// Advance every device to now; return the earliest next deadline.
    pub fn service(&self) -> Option<u64> {
        let now = self.clock.now_ns();
        let devices = self.devices.lock().map(|d| d.clone()).unwrap_or_default();
        let mut next: Option<u64> = None;
        for d in devices {
            if let Ok(mut d) = d.lock() {
                if d.next_deadline().is_some_and(|t| t <= now) {
                    d.advance(now);
                }
                if let Some(t) = d.next_deadline() {
                    next = Some(next.map_or(t, |n| n.min(t)));
                }
            }
        }
        next
    }

    /// Spawn the service thread (host-time mode).
    pub fn spawn(self: &Arc<Self>) -> std::io::Result<std::thread::JoinHandle<()>> {
        let me = self.clone();
        std::thread::Builder::new()
            .name("timers".into())
            .spawn(move || {
                crate::sandbox::enter_or_exit(crate::sandbox::ThreadKind::Io);
                loop {
                    let next = me.service();
                    let now = me.clock.now_ns();
                    let sleep = next
                        .map(|t| Duration::from_nanos(t.saturating_sub(now)))
                        .unwrap_or(MAX_SLEEP)
                        .min(MAX_SLEEP);
                    let mut s = me.state.lock().unwrap_or_else(|p| p.into_inner());
                    if s.stop {
                        return;
                    }
                    if !s.woken && !sleep.is_zero() {
                        s = me
                            .cond
                            .wait_timeout(s, sleep)
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                    }
                    s.woken = false;
                    if s.stop {
                        return;
                    }
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpu::ClockMode;

    struct Periodic {
        next: u64,
        period: u64,
        fired: Vec<u64>,
    }

    impl Timed for Periodic {
        fn next_deadline(&self) -> Option<u64> {
            Some(self.next)
        }
        fn advance(&mut self, now: u64) {
            while self.next <= now {
                self.fired.push(self.next);
                self.next += self.period;
            }
        }
    }

    #[test]
    fn advances_expired_devices_and_reports_next_deadline() {
        let clock = Arc::new(Clock::new(
            ClockMode::InstructionCounted { shift: 0 },
            1_000_000,
        ));
        let svc = TimerService::new(clock.clone());
        let dev = Arc::new(Mutex::new(Periodic {
            next: 100,
            period: 100,
            fired: vec![],
        }));
        svc.add(dev.clone());
        assert_eq!(svc.service(), Some(100));
        clock.add_instructions(250);
        assert_eq!(svc.service(), Some(300));
        assert_eq!(dev.lock().unwrap().fired, vec![100, 200]);
    }

    #[test]
    fn thread_fires_on_host_time() {
        let clock = Arc::new(Clock::new(ClockMode::Host, 1_000_000));
        let svc = TimerService::new(clock.clone());
        let dev = Arc::new(Mutex::new(Periodic {
            next: clock.now_ns() + 1_000_000,
            period: 1_000_000,
            fired: vec![],
        }));
        svc.add(dev.clone());
        let t = svc.spawn().unwrap();
        let start = std::time::Instant::now();
        while dev.lock().unwrap().fired.len() < 3 && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
        svc.stop();
        t.join().unwrap();
        assert!(dev.lock().unwrap().fired.len() >= 3);
    }
}
