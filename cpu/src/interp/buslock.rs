//! The bus lock, for the LOCK'd instructions the host cannot make atomic
//! with one compare-and-swap (an operand split across cache lines or
//! pages, MMIO, CMPXCHG16B on hosts without a 16-byte swap).
//!
//! Such an instruction runs alone: it takes the lock exclusively and waits
//! until no other locked instruction is in flight. Swappable instructions
//! (the common case) only mark themselves in flight in a counter on their
//! vCPU's own cache line, so those of different vCPUs run in parallel and
//! share no line; they wait only while an exclusive holder runs. (Plain
//! stores of other vCPUs are not held off by an exclusive holder: the
//! hardware's split lock would; guests avoid split locks, and Linux warns
//! of them.)

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// In-flight counters (vCPU index modulo this).
const SLOTS: usize = 64;

/// A counter alone on its cache line (and the adjacent-line prefetch).
#[repr(align(128))]
struct Slot(AtomicU32);

/// Set while an exclusive holder runs (or waits for the counters).
static HELD: AtomicBool = AtomicBool::new(false);
/// Swappable locked instructions in flight, by vCPU.
static IN_FLIGHT: [Slot; SLOTS] = [const { Slot(AtomicU32::new(0)) }; SLOTS];

/// What a vCPU holds of the bus lock.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) enum Hold {
    /// Nothing.
    #[default]
    None,
    /// A swappable instruction in flight (its slot).
    Shared(usize),
    /// The whole bus.
    Exclusive,
}

impl Hold {
    /// Mark vCPU `vcpu`'s swappable locked instruction in flight (waits
    /// while an exclusive holder runs).
    pub(super) fn shared(vcpu: u32) -> Hold {
        let slot = vcpu as usize % SLOTS;
        let c = &IN_FLIGHT[slot].0;
        loop {
            // Dekker with `exclusive`: our increment, then its flag; its
            // flag, then our counters. SeqCst orders both pairs.
            c.fetch_add(1, Ordering::SeqCst);
            if !HELD.load(Ordering::SeqCst) {
                return Hold::Shared(slot);
            }
            c.fetch_sub(1, Ordering::SeqCst);
            while HELD.load(Ordering::Relaxed) {
                std::thread::yield_now();
            }
        }
    }

    /// Take the whole bus: no other locked instruction runs until
    /// [`Hold::release`].
    pub(super) fn exclusive() -> Hold {
        while HELD
            .compare_exchange_weak(false, true, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            std::thread::yield_now();
        }
        for s in &IN_FLIGHT {
            while s.0.load(Ordering::SeqCst) != 0 {
                std::hint::spin_loop();
            }
        }
        Hold::Exclusive
    }

    /// Give back what is held.
    pub(super) fn release(&mut self) {
        let held = std::mem::take(self);
        match held {
            Hold::None => {}
            Hold::Shared(slot) => {
                IN_FLIGHT[slot].0.fetch_sub(1, Ordering::SeqCst);
            }
            Hold::Exclusive => HELD.store(false, Ordering::SeqCst),
        }
        // Given back above: its own drop must not give it back again.
        std::mem::forget(held);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    #[test]
    fn exclusive_holders_see_no_shared_holder_and_no_other_exclusive() {
        // A non-atomic read-modify-write under the exclusive hold and
        // atomic ones under shared holds never lose an update.
        let v = Arc::new(AtomicU64::new(0));
        let inside = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let (v, inside) = (v.clone(), inside.clone());
                std::thread::spawn(move || {
                    for k in 0..20_000u32 {
                        if (k + t) % 8 == 0 {
                            let mut h = Hold::exclusive();
                            assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                            let x = v.load(Ordering::Relaxed);
                            std::hint::spin_loop();
                            v.store(x + 1, Ordering::Relaxed);
                            inside.fetch_sub(1, Ordering::SeqCst);
                            h.release();
                        } else {
                            let h = Hold::shared(t);
                            assert_eq!(inside.load(Ordering::SeqCst), 0);
                            v.fetch_add(1, Ordering::SeqCst);
                            drop(h);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(v.load(Ordering::SeqCst), 4 * 20_000);
    }
}
