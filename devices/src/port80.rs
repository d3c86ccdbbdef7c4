//! Port 0x80, the POST-code port. Linux writes it (`outb_p`, `io_delay`)
//! only to pause for an I/O cycle; Cloud Hypervisor guests write codes to it
//! to timestamp their own boot steps, in ranges Cloud Hypervisor assigns to
//! each stage (`devices/src/legacy/debug_port.rs` there). Each write goes
//! to an optional hook, so the board can report those codes.

use crate::bus::{BusAccessInfo, BusDevice};

/// The port, one byte wide.
pub const PORT80: u64 = 0x80;

/// Receives every byte written to the port.
pub type PostCodeHook = Box<dyn Fn(u8) + Send>;

/// Reads return zero; writes go to the hook, if any.
#[derive(Default)]
pub struct Port80 {
    hook: Option<PostCodeHook>,
}

impl std::fmt::Debug for Port80 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port80")
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl Port80 {
    /// A port whose writes are passed to `hook`.
    pub fn with_hook(hook: PostCodeHook) -> Self {
        Port80 { hook: Some(hook) }
    }
}

/// Cloud Hypervisor's name for the stage a debug-port code belongs to
/// (its `DebugIoPortRange`): firmware `0x00..=0x1f`, bootloader
/// `0x20..=0x3f`, kernel `0x40..=0x5f`, userspace `0x60..=0x7f`, custom
/// above.
pub fn debug_port_range(code: u8) -> &'static str {
    match code {
        0x00..=0x1f => "firmware",
        0x20..=0x3f => "bootloader",
        0x40..=0x5f => "kernel",
        0x60..=0x7f => "userspace",
        _ => "custom",
    }
}

impl BusDevice for Port80 {
    fn name(&self) -> &str {
        "port80"
    }

    fn read(&mut self, _info: BusAccessInfo, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, _info: BusAccessInfo, data: &[u8]) {
        // A wider OUT lands its low byte on port 0x80.
        if let (Some(hook), Some(&code)) = (&self.hook, data.first()) {
            hook(code);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    const INFO: BusAccessInfo = BusAccessInfo {
        address: PORT80,
        offset: 0,
        vcpu: 0,
    };

    #[test]
    fn reads_zero_whatever_was_written() {
        let mut p = Port80::default();
        p.write(INFO, &[0xaa]);
        let mut b = [0xffu8; 2];
        p.read(INFO, &mut b);
        assert_eq!(b, [0, 0]);
    }

    #[test]
    fn every_write_reaches_the_hook_in_order() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let mut p = Port80::with_hook(Box::new(move |c| s.lock().unwrap().push(c)));
        p.write(INFO, &[0x41]);
        p.write(INFO, &[0x61, 0x00]);
        assert_eq!(*seen.lock().unwrap(), vec![0x41, 0x61]);
    }

    #[test]
    fn cloud_hypervisor_code_ranges() {
        let r: Vec<_> = [0x00, 0x1f, 0x20, 0x3f, 0x40, 0x5f, 0x60, 0x7f, 0x80, 0xff]
            .iter()
            .map(|&c| debug_port_range(c))
            .collect();
        assert_eq!(
            r,
            [
                "firmware",
                "firmware",
                "bootloader",
                "bootloader",
                "kernel",
                "kernel",
                "userspace",
                "userspace",
                "custom",
                "custom"
            ]
        );
    }
}
