//! QEMU microvm's ACPI Generic Event Device: the event selector at
//! 0xFEA00000 and the hardware-reduced sleep/reset registers at
//! 0xFEA00200, on IRQ 9.

use crate::bus::{BusAccessInfo, BusDevice};
use crate::irq::Irq;

/// The event selector's MMIO base.
pub const GED_EVT_BASE: u64 = 0xfea0_0000;
/// The event selector's size.
pub const GED_EVT_LEN: u64 = 4;
/// The sleep/reset register block's base.
pub const GED_REGS_BASE: u64 = 0xfea0_0200;
/// The register block's size.
pub const GED_REGS_LEN: u64 = 3;
/// Event bit: the power button was pressed.
pub const EVENT_POWER_DOWN: u32 = 0x2;
/// SLEEP_CTL: SLP_EN.
const SLP_EN: u8 = 0x20;
/// SLEEP_CTL: SLP_TYP field.
const SLP_TYP_SHIFT: u8 = 2;
/// The S5 (soft-off) sleep type in QEMU's `\_S5` package.
const SLP_TYP_S5: u8 = 5;
/// The FADT's reset value.
const RESET_VALUE: u8 = 0x42;

/// What the guest asked the board to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestPowerRequest {
    /// S5: power off.
    PowerOff,
    /// The reset register was written.
    Reset,
}

/// The GED: one device for both MMIO ranges (it decodes the address).
pub struct Ged {
    irq: Irq,
    pending: u32,
    sleep_sts: u8,
    on_request: Box<dyn Fn(GuestPowerRequest) + Send>,
}

impl std::fmt::Debug for Ged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ged")
            .field("pending", &self.pending)
            .finish()
    }
}

impl Ged {
    /// A GED raising `irq` (level) and reporting guest requests.
    pub fn new(irq: Irq, on_request: Box<dyn Fn(GuestPowerRequest) + Send>) -> Self {
        Ged {
            irq,
            pending: 0,
            sleep_sts: 0,
            on_request,
        }
    }

    /// QMP `system_powerdown`: latch the power-down event and raise IRQ 9.
    pub fn power_button(&mut self) {
        self.pending |= EVENT_POWER_DOWN;
        self.irq.set_level(true);
    }

    /// Machine reset.
    pub fn reset(&mut self) {
        self.pending = 0;
        self.sleep_sts = 0;
        self.irq.set_level(false);
    }
}

impl BusDevice for Ged {
    fn name(&self) -> &str {
        "acpi-ged"
    }

    fn read(&mut self, info: BusAccessInfo, data: &mut [u8]) {
        if info.address >= GED_REGS_BASE {
            if info.address - GED_REGS_BASE == 1 {
                if let Some(b) = data.first_mut() {
                    *b = self.sleep_sts;
                }
            }
            return;
        }
        // Reading the selector returns and acknowledges the pending events.
        let v = self.pending.to_le_bytes();
        for (i, b) in data.iter_mut().enumerate() {
            *b = v.get(info.offset as usize + i).copied().unwrap_or(0);
        }
        self.pending = 0;
        self.irq.set_level(false);
    }

    fn write(&mut self, info: BusAccessInfo, data: &[u8]) {
        if info.address < GED_REGS_BASE {
            return;
        }
        let Some(&v) = data.first() else { return };
        match info.address - GED_REGS_BASE {
            0 if v & SLP_EN != 0 && (v >> SLP_TYP_SHIFT) & 7 == SLP_TYP_S5 => {
                (self.on_request)(GuestPowerRequest::PowerOff)
            }
            1 => self.sleep_sts &= !v,
            2 if v == RESET_VALUE => (self.on_request)(GuestPowerRequest::Reset),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::RecordingIrq;
    use std::sync::{Arc, Mutex};

    fn ged() -> (Ged, Arc<RecordingIrq>, Arc<Mutex<Vec<GuestPowerRequest>>>) {
        let irq = Arc::new(RecordingIrq::default());
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let dev = Ged::new(irq.clone(), Box::new(move |r| g.lock().unwrap().push(r)));
        (dev, irq, got)
    }

    fn at(address: u64) -> BusAccessInfo {
        let base = if address >= GED_REGS_BASE {
            GED_REGS_BASE
        } else {
            GED_EVT_BASE
        };
        BusAccessInfo {
            address,
            offset: address - base,
            vcpu: 0,
        }
    }

    #[test]
    fn power_button_raises_irq_until_the_selector_is_read() {
        let (mut g, irq, _) = ged();
        g.power_button();
        assert!(irq.level());
        let mut sel = [0u8; 4];
        g.read(at(GED_EVT_BASE), &mut sel);
        assert_eq!(u32::from_le_bytes(sel), EVENT_POWER_DOWN);
        assert!(!irq.level());
        g.read(at(GED_EVT_BASE), &mut sel);
        assert_eq!(u32::from_le_bytes(sel), 0);
    }

    #[test]
    fn s5_powers_off_and_0x42_resets() {
        let (mut g, _, got) = ged();
        g.write(at(GED_REGS_BASE), &[(5 << 2) | 0x20]);
        g.write(at(GED_REGS_BASE), &[(1 << 2) | 0x20]); // S1: ignored
        g.write(at(GED_REGS_BASE + 2), &[0x41]);
        g.write(at(GED_REGS_BASE + 2), &[0x42]);
        assert_eq!(
            *got.lock().unwrap(),
            vec![GuestPowerRequest::PowerOff, GuestPowerRequest::Reset]
        );
    }
}
