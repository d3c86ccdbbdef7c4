//! The board's reset line: pulled by whatever restarts the machine (the
//! GED's reset register, the keyboard controller, a vCPU's triple fault),
//! released by the machine reset.
//!
//! The first pull notes the `reset` boot milestone and reports one
//! [`BoardEvent::GuestReset`]; a guest that
//! keeps pulling until the board stops it (Linux writes the i8042 command
//! ten times, then tries the next method) adds none, so the machine resets
//! once, not once per attempt.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use crate::milestones::Milestones;
use crate::runstate::BoardEvent;

/// A handle on the one reset line (clones share it).
#[derive(Debug, Clone)]
pub struct ResetLine {
    pulled: Arc<AtomicBool>,
    events: Arc<Mutex<Sender<BoardEvent>>>,
    milestones: Arc<Milestones>,
}

impl ResetLine {
    /// A released line reporting to the board's `events` and
    /// `milestones`.
    pub fn new(events: Sender<BoardEvent>, milestones: Arc<Milestones>) -> Self {
        ResetLine {
            pulled: Arc::new(AtomicBool::new(false)),
            events: Arc::new(Mutex::new(events)),
            milestones,
        }
    }

    /// Request a machine reset (reported once until [`ResetLine::release`]).
    pub fn pull(&self) {
        if !self.pulled.swap(true, Ordering::SeqCst) {
            // Noted here, on the vCPU, at the guest's exact instruction.
            self.milestones.reset("guest-reset");
            if let Ok(tx) = self.events.lock() {
                let _ = tx.send(BoardEvent::GuestReset);
            }
        }
    }

    /// The machine has reset (every vCPU stopped meanwhile).
    pub fn release(&self) {
        self.pulled.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_once_per_reset() {
        let (tx, rx) = std::sync::mpsc::channel();
        let cfg = crate::milestones::BootReportConfig::default();
        let clock = Arc::new(cpu::Clock::new(cpu::ClockMode::Host, 1_000_000));
        let events = Arc::new(crate::events::Events::default());
        let ms = Milestones::new(clock, "tcg", true, &cfg, events).unwrap();
        let ms = Arc::new(ms);
        let line = ResetLine::new(tx, ms.clone());
        let other = line.clone();
        line.pull();
        other.pull();
        line.pull();
        assert!(matches!(rx.try_recv(), Ok(BoardEvent::GuestReset)));
        assert!(rx.try_recv().is_err(), "one event for three pulls");
        let report = ms.report();
        let resets = report["milestones"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["name"] == "reset")
            .count();
        assert_eq!(resets, 1, "one reset milestone: {report}");
        line.release();
        other.pull();
        assert!(matches!(rx.try_recv(), Ok(BoardEvent::GuestReset)));
    }
}
