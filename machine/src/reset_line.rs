//! The board's reset line: pulled by whatever restarts the machine (the
//! GED's reset register, the keyboard controller, a vCPU's triple fault),
//! released by the machine reset.
//!
//! The first pull reports one [`BoardEvent::GuestReset`]; a guest that
//! keeps pulling until the board stops it (Linux writes the i8042 command
//! ten times, then tries the next method) adds none, so the machine resets
//! once, not once per attempt.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use crate::runstate::BoardEvent;

/// A handle on the one reset line (clones share it).
#[derive(Debug, Clone)]
pub struct ResetLine {
    pulled: Arc<AtomicBool>,
    events: Arc<Mutex<Sender<BoardEvent>>>,
}

impl ResetLine {
    /// A released line reporting to the board's `events`.
    pub fn new(events: Sender<BoardEvent>) -> Self {
        ResetLine {
            pulled: Arc::new(AtomicBool::new(false)),
            events: Arc::new(Mutex::new(events)),
        }
    }

    /// Request a machine reset (reported once until [`ResetLine::release`]).
    pub fn pull(&self) {
        if !self.pulled.swap(true, Ordering::SeqCst) {
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
        let line = ResetLine::new(tx);
        let other = line.clone();
        line.pull();
        other.pull();
        line.pull();
        assert!(matches!(rx.try_recv(), Ok(BoardEvent::GuestReset)));
        assert!(rx.try_recv().is_err(), "one event for three pulls");
        line.release();
        other.pull();
        assert!(matches!(rx.try_recv(), Ok(BoardEvent::GuestReset)));
    }
}
