//! Interrupt lines as devices see them.

use std::sync::Arc;

/// One interrupt input of the board's interrupt controllers (a GSI).
///
/// What a device holds instead of an irqfd: raising it reaches the PIC and
/// the IOAPIC pin of that GSI, on either CPU backend.
pub trait IrqLine: Send + Sync {
    /// Drive the line high or low (level-triggered devices).
    fn set_level(&self, high: bool);
    /// Raise then lower the line (edge-triggered devices).
    fn pulse(&self) {
        self.set_level(true);
        self.set_level(false);
    }
}

/// A line that goes nowhere (a device whose IRQ is not wired).
#[derive(Debug, Default)]
pub struct NoIrq;

impl IrqLine for NoIrq {
    fn set_level(&self, _high: bool) {}
}

/// Shared handle to an interrupt line.
pub type Irq = Arc<dyn IrqLine>;

/// A line that records every level change, for device unit tests.
#[derive(Debug, Default)]
pub struct RecordingIrq {
    levels: std::sync::Mutex<Vec<bool>>,
}

impl RecordingIrq {
    /// Every level the line was driven to, oldest first.
    pub fn history(&self) -> Vec<bool> {
        self.levels.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// The current level (low if never driven).
    pub fn level(&self) -> bool {
        self.history().last().copied().unwrap_or(false)
    }

    /// Number of low-to-high transitions seen.
    pub fn rising_edges(&self) -> usize {
        let h = self.history();
        let mut prev = false;
        let mut n = 0;
        for l in h {
            if l && !prev {
                n += 1;
            }
            prev = l;
        }
        n
    }
}

impl IrqLine for RecordingIrq {
    fn set_level(&self, high: bool) {
        if let Ok(mut v) = self.levels.lock() {
            v.push(high);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_irq_counts_edges() {
        let irq = RecordingIrq::default();
        irq.pulse();
        irq.set_level(true);
        irq.set_level(true);
        irq.set_level(false);
        assert_eq!(irq.rising_edges(), 2);
        assert!(!irq.level());
    }
}
