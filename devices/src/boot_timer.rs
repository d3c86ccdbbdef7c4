//! Firecracker's boot-timer pseudo device: a guest that writes the byte 123
//! at offset 0 of its MMIO page says "boot complete" (Firecracker's
//! `devices/pseudo/boot_timer.rs`, enabled there with `--boot-timer`; init
//! programs built for Firecracker write it through `/dev/mem`). Other
//! writes are ignored and reads return zero, as on unassigned memory, so
//! the page is invisible to guests that don't use it.

use crate::bus::{BusAccessInfo, BusDevice};

/// Where older Firecracker releases put the device (the start of their
/// MMIO gap, `0xd000_0000`); most guest init programs use this address.
pub const BOOT_TIMER_ADDR: u64 = 0xd000_0000;
/// Where newer Firecracker releases put it (`MMIO32_MEM_START`).
pub const BOOT_TIMER_ADDR_MMIO32: u64 = 0xc000_0000;
/// The device's window (Firecracker's `MMIO_LEN`).
pub const BOOT_TIMER_LEN: u64 = 0x1000;
/// Firecracker's `MAGIC_VALUE_SIGNAL_GUEST_BOOT_COMPLETE`.
pub const BOOT_COMPLETE: u8 = 123;

/// Receives the absolute address of each "boot complete" write.
pub type BootCompleteHook = Box<dyn Fn(u64) + Send>;

/// The boot timer.
pub struct BootTimer {
    hook: BootCompleteHook,
}

impl std::fmt::Debug for BootTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BootTimer")
    }
}

impl BootTimer {
    /// A boot timer reporting to `hook`.
    pub fn new(hook: BootCompleteHook) -> Self {
        BootTimer { hook }
    }
}

impl BusDevice for BootTimer {
    fn name(&self) -> &str {
        "boot-timer"
    }

    fn read(&mut self, _info: BusAccessInfo, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, info: BusAccessInfo, data: &[u8]) {
        // Firecracker only takes byte writes at offset 0.
        if info.offset == 0 && data == [BOOT_COMPLETE] {
            (self.hook)(info.address);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn at(offset: u64) -> BusAccessInfo {
        BusAccessInfo {
            address: BOOT_TIMER_ADDR + offset,
            offset,
            vcpu: 0,
        }
    }

    #[test]
    fn only_a_byte_of_123_at_offset_0_signals() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let mut t = BootTimer::new(Box::new(move |a| s.lock().unwrap().push(a)));
        t.write(at(0), &[122]);
        t.write(at(1), &[BOOT_COMPLETE]);
        t.write(at(0), &[BOOT_COMPLETE, 0, 0, 0]);
        assert!(seen.lock().unwrap().is_empty());
        t.write(at(0), &[BOOT_COMPLETE]);
        assert_eq!(*seen.lock().unwrap(), vec![BOOT_TIMER_ADDR]);
        let mut b = [0xffu8; 4];
        t.read(at(0), &mut b);
        assert_eq!(b, [0; 4]);
    }
}
