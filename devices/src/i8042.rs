//! The reset line of a PC keyboard controller (i8042) at ports 0x60 and
//! 0x64, and nothing else: no keyboard, no mouse, no command set.
//!
//! QEMU's microvm has no i8042, so a guest that restarts the PC way
//! (Linux's `reboot=k`, and the keyboard step of its default order)
//! writes the "pulse output lines" command into the void and the machine
//! never restarts. This stub answers exactly that command: a write of
//! 0xF0..=0xFF to the command port with bit 0 clear pulses the CPU reset
//! line (as QEMU's full i8042 does), which the board turns into a machine
//! reset. The shape follows crosvm's `devices/src/i8042.rs`.
//!
//! Reads keep telling a guest there is no controller: the data port reads
//! all ones, and the status port reads 0xFD, "output buffer full, input
//! buffer empty". Linux's i8042 driver drains the output buffer at probe,
//! never sees it empty and reports "No controller found", as it does with
//! nothing at these ports; its restart path (`kb_wait`) sees the input
//! buffer empty and sends the reset command at once instead of timing out.

use crate::bus::{BusAccessInfo, BusDevice};

/// The data port.
pub const I8042_DATA: u64 = 0x60;
/// The status (read) and command (write) port.
pub const I8042_COMMAND: u64 = 0x64;
/// What the status port reads: every bit set but "input buffer full".
pub const STATUS: u8 = 0xfd;
/// The command that pulses only the reset line (output port bit 0 low).
pub const CMD_RESET: u8 = 0xfe;

/// The stub; `on_reset` is called for each reset pulse.
pub struct KeyboardController {
    on_reset: Box<dyn Fn() + Send>,
}

impl std::fmt::Debug for KeyboardController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyboardController")
    }
}

impl KeyboardController {
    /// A controller whose reset line calls `on_reset`. Put it on the port
    /// bus at [`I8042_DATA`] and at [`I8042_COMMAND`], one port each.
    pub fn new(on_reset: Box<dyn Fn() + Send>) -> Self {
        KeyboardController { on_reset }
    }
}

/// Whether `cmd` written to the command port pulses the reset line: the
/// "pulse output lines" commands (0xF0..=0xFF) pulse the lines whose
/// mask bit is clear, and bit 0 is the CPU reset line.
fn pulses_reset(cmd: u8) -> bool {
    cmd & 0xf0 == 0xf0 && cmd & 1 == 0
}

impl BusDevice for KeyboardController {
    fn name(&self) -> &str {
        "i8042"
    }

    fn read(&mut self, info: BusAccessInfo, data: &mut [u8]) {
        let v = if info.address == I8042_COMMAND {
            STATUS
        } else {
            0xff
        };
        data.fill(v);
    }

    fn write(&mut self, info: BusAccessInfo, data: &[u8]) {
        if info.address == I8042_COMMAND && data.first().copied().is_some_and(pulses_reset) {
            (self.on_reset)();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn at(address: u64) -> BusAccessInfo {
        BusAccessInfo {
            address,
            offset: 0,
            vcpu: 0,
        }
    }

    fn counted() -> (KeyboardController, Arc<AtomicUsize>) {
        let n = Arc::new(AtomicUsize::new(0));
        let c = n.clone();
        let kbc = KeyboardController::new(Box::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        }));
        (kbc, n)
    }

    #[test]
    fn fe_to_the_command_port_pulses_reset() {
        let (mut kbc, n) = counted();
        kbc.write(at(I8042_COMMAND), &[CMD_RESET]);
        assert_eq!(n.load(Ordering::SeqCst), 1);
        // 0xF0 pulses every line, reset included.
        kbc.write(at(I8042_COMMAND), &[0xf0]);
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn other_commands_and_data_writes_do_nothing() {
        let (mut kbc, n) = counted();
        for cmd in [0xff, 0xfd, 0xaa, 0xad, 0x60, 0xd1] {
            kbc.write(at(I8042_COMMAND), &[cmd]);
        }
        kbc.write(at(I8042_DATA), &[CMD_RESET]);
        assert_eq!(n.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn reads_say_no_controller_but_input_buffer_empty() {
        let (mut kbc, _) = counted();
        let mut b = [0u8; 1];
        kbc.read(at(I8042_COMMAND), &mut b);
        assert_eq!(
            b[0] & 0x01,
            0x01,
            "output buffer full: a probe never drains it"
        );
        assert_eq!(
            b[0] & 0x02,
            0,
            "input buffer empty: kb_wait does not time out"
        );
        kbc.read(at(I8042_DATA), &mut b);
        assert_eq!(b[0], 0xff);
    }
}
