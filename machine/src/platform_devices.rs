//! The ISA and platform devices of the microvm board: COM1, PIT, RTC,
//! ACPI GED, the keyboard controller's reset line and isa-debug-exit,
//! created per the machine options, and the boot-marker devices (port
//! 0x80, the boot timer).

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use cpu::Clock;
use devices::boot_timer::{BootTimer, BOOT_TIMER_ADDR, BOOT_TIMER_ADDR_MMIO32, BOOT_TIMER_LEN};
use devices::bus::Bus;
use devices::debug_exit::DebugExit;
use devices::ged::{
    Ged, GuestPowerRequest, GED_EVT_BASE, GED_EVT_LEN, GED_REGS_BASE, GED_REGS_LEN,
};
use devices::i8042::{KeyboardController, I8042_COMMAND, I8042_DATA};
use devices::irqchip::IrqChip;
use devices::pit::{Pit, PIT_BASE, PORT_61};
use devices::port80::{Port80, PORT80};
use devices::rtc::{Rtc, RTC_BASE};
use devices::serial::{SerialPort, COM1_BASE, UART_PORTS};

use crate::chardev;
use crate::config::{AccelKind, MachineConfig};
use crate::console_tap::ConsoleTap;
use crate::error::MachineError;
use crate::milestones::Milestones;
use crate::reset_line::ResetLine;
use crate::runstate::BoardEvent;
use crate::timers::TimerService;

/// Handles to the devices the board talks to after creation.
#[derive(Clone)]
pub struct PlatformDevices {
    serial: Option<Arc<Mutex<SerialPort>>>,
    pit: Option<Pit>,
    rtc: Option<Arc<Mutex<Rtc>>>,
    ged: Option<Arc<Mutex<Ged>>>,
    reset_line: ResetLine,
}

impl std::fmt::Debug for PlatformDevices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformDevices")
            .field("serial", &self.serial.is_some())
            .field("pit", &self.pit.is_some())
            .field("rtc", &self.rtc.is_some())
            .field("ged", &self.ged.is_some())
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
        accel: AccelKind,
        chip: &IrqChip,
        clock: &Arc<Clock>,
        timers: &Arc<TimerService>,
        events: &Sender<BoardEvent>,
        milestones: &Arc<Milestones>,
        pio: &mut Bus,
        mmio: &mut Bus,
    ) -> Result<Self, MachineError> {
        let reset_line = ResetLine::new(events.clone(), milestones.clone());
        let mut devs = PlatformDevices {
            serial: None,
            pit: None,
            rtc: None,
            ged: None,
            reset_line: reset_line.clone(),
        };
        add_marker_devices(milestones, pio, mmio)?;
        let line = reset_line.clone();
        let kbc = Arc::new(Mutex::new(KeyboardController::new(Box::new(move || {
            line.pull()
        }))));
        pio.insert(kbc.clone(), I8042_DATA, 1)?;
        pio.insert(kbc, I8042_COMMAND, 1)?;
        if cfg.pit_enabled() {
            let pit = Pit::new(irq(chip, crate::platform::PIT_GSI)?, clock.clone());
            pio.insert(Arc::new(Mutex::new(pit.clone())), PIT_BASE, 4)?;
            pio.insert(Arc::new(Mutex::new(pit.port61())), PORT_61, 1)?;
            timers.add(Arc::new(Mutex::new(pit.clone())));
            devs.pit = Some(pit);
        }
        // The wall clock (-rtc base=, else now): the RTC's calendar, and
        // kvmclock's boot time on the software CPU.
        let start = cfg.rtc_base.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
        clock.set_wall_clock(start);
        if cfg.rtc_enabled(accel) {
            let rtc = Arc::new(Mutex::new(Rtc::new(
                irq(chip, crate::platform::RTC_GSI)?,
                clock.clone(),
                start,
            )));
            pio.insert(rtc.clone(), RTC_BASE, 2)?;
            timers.add(rtc.clone());
            devs.rtc = Some(rtc);
        }
        if cfg.acpi_enabled() {
            let line = reset_line.clone();
            let tx = Mutex::new(events.clone());
            let ms = milestones.clone();
            let ged = Arc::new(Mutex::new(Ged::new(
                irq(chip, crate::platform::GED_GSI)?,
                Box::new(move |r| match r {
                    GuestPowerRequest::PowerOff => {
                        // Noted here, on the vCPU, at the guest's exact
                        // instruction.
                        ms.power_off();
                        if let Ok(tx) = tx.lock() {
                            let _ = tx.send(BoardEvent::GuestPowerOff);
                        }
                    }
                    GuestPowerRequest::Reset => line.pull(),
                }),
            )));
            mmio.insert(ged.clone(), GED_EVT_BASE, GED_EVT_LEN)?;
            mmio.insert(ged.clone(), GED_REGS_BASE, GED_REGS_LEN)?;
            devs.ged = Some(ged);
        }
        if let Some(backend) = &cfg.serial {
            let out = chardev::open_output(backend)?;
            let out = Box::new(ConsoleTap::new(out, "serial0", milestones.clone()));
            let port = Arc::new(Mutex::new(SerialPort::new(
                irq(chip, crate::platform::SERIAL_GSI)?,
                out,
            )));
            pio.insert(port.clone(), COM1_BASE, UART_PORTS)?;
            devs.serial = Some(port);
        }
        if let Some(d) = cfg.debug_exit {
            // QEMU exits on the spot: no further guest instruction runs.
            let dev = DebugExit::new(Box::new(|status| crate::process::exit_now(status)));
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

    /// The board's reset line.
    pub fn reset_line(&self) -> ResetLine {
        self.reset_line.clone()
    }

    /// Whether an RTC exists (for the DSDT).
    pub fn has_rtc(&self) -> bool {
        self.rtc.is_some()
    }

    /// Machine reset (with every vCPU stopped).
    pub fn reset(&self) {
        self.reset_line.release();
        if let Some(p) = &self.pit {
            p.reset();
        }
        if let Some(r) = &self.rtc {
            if let Ok(mut r) = r.lock() {
                r.reset();
            }
        }
        if let Some(g) = &self.ged {
            if let Ok(mut g) = g.lock() {
                g.reset();
            }
        }
    }

    /// Press the ACPI power button (without ACPI: nothing, as QEMU).
    pub fn power_button(&self) {
        if let Some(g) = &self.ged {
            if let Ok(mut g) = g.lock() {
                g.power_button();
            }
        }
    }

    /// Console input for COM1; returns how many bytes were taken.
    pub fn serial_input(&self, bytes: &[u8]) -> usize {
        match &self.serial {
            Some(s) => s.lock().map(|mut s| s.enqueue_input(bytes)).unwrap_or(0),
            // No COM1: the input goes nowhere; consume it.
            None => bytes.len(),
        }
    }
}

/// The devices guests write boot markers to: port 0x80 (Cloud
/// Hypervisor's debug port) and Firecracker's boot timer, at both
/// addresses Firecracker has used. Both read as zero, like the unassigned
/// space they sit in (RAM below 4 GiB ends at `0xc000_0000`; microvm's
/// next MMIO is the virtio-mmio windows at `0xfeb0_0000`).
fn add_marker_devices(
    milestones: &Arc<Milestones>,
    pio: &mut Bus,
    mmio: &mut Bus,
) -> Result<(), MachineError> {
    let ms = milestones.clone();
    let port = Port80::with_hook(Box::new(move |code| ms.debug_port(code)));
    pio.insert(Arc::new(Mutex::new(port)), PORT80, 1)?;
    for base in [BOOT_TIMER_ADDR, BOOT_TIMER_ADDR_MMIO32] {
        let ms = milestones.clone();
        let timer = BootTimer::new(Box::new(move |addr| ms.boot_timer(addr)));
        mmio.insert(Arc::new(Mutex::new(timer)), base, BOOT_TIMER_LEN)?;
    }
    Ok(())
}
