//! COM1: a 16550A UART (vm-superio's `Serial`) on the port bus.
//!
//! vm-superio models the register file and FIFO; this wrapper puts it on
//! a [`Bus`](crate::bus::Bus), turns its interrupt trigger into a pulse on
//! the board's IRQ line (the ISA serial interrupt is edge-triggered), and
//! exposes input injection for the console.

use std::io::Write;

use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};

use crate::bus::{BusAccessInfo, BusDevice};
use crate::irq::Irq;

/// COM1's first port.
pub const COM1_BASE: u64 = 0x3f8;
/// Ports a UART occupies.
pub const UART_PORTS: u64 = 8;

/// vm-superio's interrupt trigger as a pulse on an IRQ line.
pub struct IrqTrigger(pub Irq);

impl std::fmt::Debug for IrqTrigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IrqTrigger")
    }
}

impl Trigger for IrqTrigger {
    type E = std::convert::Infallible;

    fn trigger(&self) -> Result<(), Self::E> {
        self.0.pulse();
        Ok(())
    }
}

/// A 16550A serial port.
pub struct SerialPort {
    uart: Serial<IrqTrigger, NoEvents, Box<dyn Write + Send>>,
}

impl std::fmt::Debug for SerialPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SerialPort")
    }
}

impl SerialPort {
    /// A UART raising `irq`, sending what the guest transmits to `out`.
    pub fn new(irq: Irq, out: Box<dyn Write + Send>) -> Self {
        SerialPort {
            uart: Serial::new(IrqTrigger(irq), out),
        }
    }

    /// Queue bytes for the guest to read; returns how many fit in the FIFO
    /// (the caller keeps the rest and retries once the guest drains it).
    pub fn enqueue_input(&mut self, bytes: &[u8]) -> usize {
        if bytes.is_empty() || self.uart.fifo_capacity() == 0 {
            return 0;
        }
        self.uart.enqueue_raw_bytes(bytes).unwrap_or(0)
    }
}

impl BusDevice for SerialPort {
    fn name(&self) -> &str {
        "serial"
    }

    fn read(&mut self, info: BusAccessInfo, data: &mut [u8]) {
        if let (Some(b), Ok(off)) = (data.first_mut(), u8::try_from(info.offset)) {
            *b = self.uart.read(off);
        }
    }

    fn write(&mut self, info: BusAccessInfo, data: &[u8]) {
        if let (Some(b), Ok(off)) = (data.first(), u8::try_from(info.offset)) {
            if let Err(e) = self.uart.write(off, *b) {
                log::debug!("serial: output lost: {e:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::RecordingIrq;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn at(offset: u64) -> BusAccessInfo {
        BusAccessInfo {
            address: COM1_BASE + offset,
            offset,
            vcpu: 0,
        }
    }

    #[test]
    fn transmitted_bytes_reach_the_backend() {
        let out = Shared::default();
        let mut s = SerialPort::new(Arc::new(RecordingIrq::default()), Box::new(out.clone()));
        for b in b"BOOT-OK" {
            s.write(at(0), &[*b]);
        }
        assert_eq!(*out.0.lock().unwrap(), b"BOOT-OK");
    }

    #[test]
    fn input_sets_data_ready_raises_the_irq_and_drains() {
        let irq = Arc::new(RecordingIrq::default());
        let mut s = SerialPort::new(irq.clone(), Box::new(std::io::sink()));
        s.write(at(1), &[0x01]); // IER: received-data interrupt
        assert_eq!(s.enqueue_input(b"ab"), 2);
        assert!(irq.rising_edges() >= 1);
        let mut lsr = [0u8];
        s.read(at(5), &mut lsr);
        assert_eq!(lsr[0] & 1, 1, "LSR data ready");
        let mut b = [0u8];
        s.read(at(0), &mut b);
        assert_eq!(b[0], b'a');
        s.read(at(0), &mut b);
        assert_eq!(b[0], b'b');
        s.read(at(5), &mut lsr);
        assert_eq!(lsr[0] & 1, 0, "drained");
    }

    #[test]
    fn a_full_fifo_takes_only_what_fits() {
        let mut s = SerialPort::new(Arc::new(RecordingIrq::default()), Box::new(std::io::sink()));
        let many = [b'x'; 100];
        let taken = s.enqueue_input(&many);
        assert!(taken > 0 && taken < 100);
        assert_eq!(s.enqueue_input(&many), 0);
    }
}
