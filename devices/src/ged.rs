//! QEMU microvm's ACPI Generic Event Device (GED): the event selector at
//! 0xFEA00000 and the hardware-reduced sleep/reset registers at
//! 0xFEA00200, interrupting on IRQ 9.
//!
//! The DSDT's `_EVT` method reads the 32-bit selector `ESEL` to learn which
//! events are pending (bit 0x2: power button) and the read clears them.
//! The interrupt line is high while events are pending and drops when the
//! selector is read; each new event also makes a fresh rising edge, so a
//! guest that missed one (its pin was still masked) sees the next, as with
//! QEMU's pulse per event. The DSDT declares the interrupt edge-triggered.
//!
//! Only the power-down event exists (no memory or NVDIMM hotplug), only S5
//! is honoured in SLEEP_CTL, and SLEEP_STS always reads zero, as in QEMU's
//! microvm.
//!
//! # Registering on the board
//!
//! One `Arc<Mutex<Ged>>` goes on the MMIO bus twice:
//! `[GED_EVT_BASE, GED_EVT_BASE + GED_EVT_LEN)` and
//! `[GED_REGS_BASE, GED_REGS_BASE + GED_REGS_LEN)`. The device tells the
//! two apart by absolute address, so it must sit at these bases.

use crate::bus::{BusAccessInfo, BusDevice};
use crate::irq::Irq;

/// The event selector's MMIO base.
pub const GED_EVT_BASE: u64 = 0xfea0_0000;
/// The event selector's size.
pub const GED_EVT_LEN: u64 = 4;
/// The hardware-reduced register block's MMIO base.
pub const GED_REGS_BASE: u64 = 0xfea0_0200;
/// The register block's size: SLEEP_CTL, SLEEP_STS, RESET.
pub const GED_REGS_LEN: u64 = 3;
/// Event bit: the power button was pressed (QEMU `ACPI_GED_PWR_DOWN_EVT`).
pub const EVENT_POWER_DOWN: u32 = 0x2;

const REG_SLEEP_CTL: u64 = 0;
const REG_RESET: u64 = 2;
/// SLEEP_CTL: SLP_EN.
const SLP_EN: u8 = 0x20;
/// SLEEP_CTL: the SLP_TYP field, bits 2-4.
const SLP_TYP_SHIFT: u8 = 2;
const SLP_TYP_MASK: u8 = 0x7;
/// The soft-off sleep type of the DSDT's `\_S5` package.
const SLP_TYP_S5: u8 = 5;
/// The value the FADT tells the guest to write to the reset register.
pub const RESET_VALUE: u8 = 0x42;

/// What the guest asked the board to do through the GED registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestPowerRequest {
    /// SLEEP_CTL was written with SLP_EN and the S5 sleep type.
    PowerOff,
    /// The reset register was written with [`RESET_VALUE`].
    Reset,
}

/// The GED, one device for both of its MMIO ranges.
pub struct Ged {
    irq: Irq,
    irq_high: bool,
    /// Events latched and not yet read through the selector.
    pending: u32,
    on_request: Box<dyn Fn(GuestPowerRequest) + Send>,
}

impl std::fmt::Debug for Ged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ged")
            .field("pending", &self.pending)
            .field("irq_high", &self.irq_high)
            .finish()
    }
}

impl Ged {
    /// A GED interrupting on `irq9` and reporting the guest's power-off
    /// and reset requests to `on_request`.
    pub fn new(irq9: Irq, on_request: Box<dyn Fn(GuestPowerRequest) + Send>) -> Self {
        Ged {
            irq: irq9,
            irq_high: false,
            pending: 0,
            on_request,
        }
    }

    /// Press the ACPI power button (QMP `system_powerdown`): latch the
    /// power-down event and interrupt.
    pub fn power_button(&mut self) {
        self.raise(EVENT_POWER_DOWN);
    }

    /// Events latched and not yet read by the guest.
    pub fn pending_events(&self) -> u32 {
        self.pending
    }

    /// Machine reset: no events pending, the line low.
    pub fn reset(&mut self) {
        self.pending = 0;
        self.set_line(false);
    }

    fn raise(&mut self, event: u32) {
        self.pending |= event;
        if self.irq_high {
            // A fresh edge for the new event.
            self.irq.set_level(false);
        }
        self.irq_high = true;
        self.irq.set_level(true);
    }

    fn set_line(&mut self, high: bool) {
        if high != self.irq_high {
            self.irq_high = high;
            self.irq.set_level(high);
        }
    }

    fn read_selector(&mut self, offset: u64, data: &mut [u8]) {
        if offset != 0 || data.len() != 4 {
            log::debug!(
                "acpi-ged: {}-byte selector read at +{offset:#x} ignored",
                data.len()
            );
            return;
        }
        data.copy_from_slice(&self.pending.to_le_bytes());
        self.pending = 0;
        self.set_line(false);
    }

    fn write_register(&mut self, offset: u64, val: u8) {
        match offset {
            REG_SLEEP_CTL => {
                let slp_typ = (val >> SLP_TYP_SHIFT) & SLP_TYP_MASK;
                if val & SLP_EN != 0 && slp_typ == SLP_TYP_S5 {
                    (self.on_request)(GuestPowerRequest::PowerOff);
                } else if val & SLP_EN != 0 {
                    log::debug!("acpi-ged: sleep type {slp_typ} not supported");
                }
            }
            REG_RESET if val == RESET_VALUE => (self.on_request)(GuestPowerRequest::Reset),
            // SLEEP_STS has nothing to clear; other reset values do nothing.
            _ => {}
        }
    }
}

impl BusDevice for Ged {
    fn name(&self) -> &str {
        "acpi-ged"
    }

    fn read(&mut self, info: BusAccessInfo, data: &mut [u8]) {
        data.fill(0);
        if info.address < GED_REGS_BASE {
            self.read_selector(info.offset, data);
        }
        // The sleep and reset registers read as zero.
    }

    fn write(&mut self, info: BusAccessInfo, data: &[u8]) {
        if info.address < GED_REGS_BASE {
            // The selector is read-only.
            return;
        }
        match data {
            [val] => self.write_register(info.offset, *val),
            _ => log::debug!(
                "acpi-ged: {}-byte register write at +{:#x} ignored",
                data.len(),
                info.offset
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::RecordingIrq;
    use std::sync::{Arc, Mutex};

    struct Rig {
        ged: Ged,
        irq: Arc<RecordingIrq>,
        requests: Arc<Mutex<Vec<GuestPowerRequest>>>,
    }

    fn rig() -> Rig {
        let irq = Arc::new(RecordingIrq::default());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let sink = requests.clone();
        let ged = Ged::new(irq.clone(), Box::new(move |r| sink.lock().unwrap().push(r)));
        Rig { ged, irq, requests }
    }

    fn evt(offset: u64) -> BusAccessInfo {
        BusAccessInfo {
            address: GED_EVT_BASE + offset,
            offset,
            vcpu: 0,
        }
    }

    fn reg(offset: u64) -> BusAccessInfo {
        BusAccessInfo {
            address: GED_REGS_BASE + offset,
            offset,
            vcpu: 0,
        }
    }

    impl Rig {
        fn read_esel(&mut self) -> u32 {
            let mut b = [0u8; 4];
            self.ged.read(evt(0), &mut b);
            u32::from_le_bytes(b)
        }
        fn requests(&self) -> Vec<GuestPowerRequest> {
            self.requests.lock().unwrap().clone()
        }
    }

    #[test]
    fn power_button_raises_irq9_until_the_selector_is_read() {
        let mut r = rig();
        assert_eq!(r.read_esel(), 0);
        r.ged.power_button();
        assert!(r.irq.level());
        assert_eq!(r.irq.rising_edges(), 1);
        assert_eq!(r.ged.pending_events(), EVENT_POWER_DOWN);
        assert_eq!(r.read_esel(), EVENT_POWER_DOWN);
        assert!(!r.irq.level(), "reading ESEL lowers the line");
        assert_eq!(r.read_esel(), 0, "and clears the events");
        assert!(r.requests().is_empty());
    }

    #[test]
    fn each_press_makes_a_new_edge_even_if_unread() {
        let mut r = rig();
        r.ged.power_button();
        r.ged.power_button();
        assert_eq!(r.irq.rising_edges(), 2);
        assert!(r.irq.level());
        assert_eq!(r.read_esel(), EVENT_POWER_DOWN);
        assert!(!r.irq.level());
    }

    #[test]
    fn selector_needs_a_dword_read_at_offset_0_and_ignores_writes() {
        let mut r = rig();
        r.ged.power_button();
        let mut b = [0u8; 1];
        r.ged.read(evt(0), &mut b);
        assert_eq!(b, [0]);
        let mut w = [0u8; 4];
        r.ged.write(evt(0), &[0, 0, 0, 0]);
        r.ged.read(evt(0), &mut w);
        assert_eq!(u32::from_le_bytes(w), EVENT_POWER_DOWN, "still pending");
    }

    #[test]
    fn s5_sleep_control_requests_power_off() {
        let mut r = rig();
        r.ged.write(reg(0), &[0x14]); // S5 type without SLP_EN
        r.ged.write(reg(0), &[0x20]); // SLP_EN with type 0
        assert!(r.requests().is_empty());
        r.ged
            .write(reg(0), &[(SLP_TYP_S5 << SLP_TYP_SHIFT) | SLP_EN]);
        assert_eq!(r.requests(), vec![GuestPowerRequest::PowerOff]);
        assert_eq!((SLP_TYP_S5 << SLP_TYP_SHIFT) | SLP_EN, 0x34);
    }

    #[test]
    fn reset_register_requests_reset_only_with_0x42() {
        let mut r = rig();
        r.ged.write(reg(2), &[0x41]);
        r.ged.write(reg(2), &[0x42, 0x00]); // wrong width
        assert!(r.requests().is_empty());
        r.ged.write(reg(2), &[0x42]);
        assert_eq!(r.requests(), vec![GuestPowerRequest::Reset]);
    }

    #[test]
    fn registers_read_zero_and_sleep_status_write_is_harmless() {
        let mut r = rig();
        r.ged.write(reg(1), &[0x80]);
        for o in 0..GED_REGS_LEN {
            let mut b = [0xffu8];
            r.ged.read(reg(o), &mut b);
            assert_eq!(b, [0]);
        }
        assert!(r.requests().is_empty());
    }

    #[test]
    fn machine_reset_drops_pending_events() {
        let mut r = rig();
        r.ged.power_button();
        r.ged.reset();
        assert!(!r.irq.level());
        assert_eq!(r.read_esel(), 0);
    }
}
