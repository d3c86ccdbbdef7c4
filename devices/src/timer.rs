//! Devices that act at points in guest time (PIT, RTC, LAPIC timer).

/// A device with deadlines on the guest [`cpu::Clock`].
///
/// The board's timer service asks every `Timed` device for its next
/// deadline, sleeps (or, in instruction-counted mode, runs guest code) until
/// then, and calls [`Timed::advance`] with the current guest time. Devices
/// raise their interrupts from `advance`.
pub trait Timed: Send {
    /// The earliest guest time (ns) at which this device needs `advance`,
    /// or `None` if nothing is scheduled.
    fn next_deadline(&self) -> Option<u64>;
    /// Bring the device up to guest time `now_ns`, firing whatever expired.
    fn advance(&mut self, now_ns: u64);
}
