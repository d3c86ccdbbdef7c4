//! The I/O APIC (82093AA-style, version 0x20 with an EOI register): 24
//! input pins, each with a redirection entry that turns an asserted pin into
//! an [`InterruptMessage`] for the local APICs.
//!
//! MMIO layout (one 4 KiB page): IOREGSEL at 0x00, IOWIN at 0x10, EOI at
//! 0x40; 32-bit accesses only. Indirect registers: 0x00 ID, 0x01 version,
//! 0x02 arbitration, 0x10 + 2n / 0x11 + 2n redirection entry n (low/high).
//!
//! Pin levels are logical ("asserted"): the polarity bit is stored and read
//! back but the board's lines are already active-high, as in QEMU.

use std::sync::Arc;

use super::message::{DeliveryMode, DestinationMode, InterruptMessage, InterruptSink};
use crate::bus::{BusAccessInfo, BusDevice};

/// Guest-physical base of the first IOAPIC.
pub const IOAPIC_BASE: u64 = 0xfec0_0000;
/// Guest-physical base of microvm's second IOAPIC (GSI 24-47, ACPI only).
pub const IOAPIC2_BASE: u64 = 0xfec1_0000;
/// Size of each IOAPIC's MMIO window.
pub const IOAPIC_SIZE: u64 = 0x1000;
/// Input pins per IOAPIC.
pub const IOAPIC_PINS: usize = 24;
/// The version register's version field (0x20: has the EOI register).
pub const IOAPIC_VERSION: u32 = 0x20;

const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
const EOI: u64 = 0x40;

const REG_ID: u32 = 0x00;
const REG_VERSION: u32 = 0x01;
const REG_ARBITRATION: u32 = 0x02;
const REG_REDIRECTION: u32 = 0x10;

const RTE_VECTOR: u64 = 0xff;
const RTE_DELIVERY_MODE_SHIFT: u32 = 8;
const RTE_DEST_LOGICAL: u64 = 1 << 11;
const RTE_REMOTE_IRR: u64 = 1 << 14;
const RTE_LEVEL: u64 = 1 << 15;
const RTE_MASKED: u64 = 1 << 16;
const RTE_DEST_SHIFT: u32 = 56;
/// Bits software can write: vector, delivery and destination mode,
/// polarity, trigger mode, mask and the destination byte with the extended
/// destination byte below it. Delivery status and remote IRR are read-only.
const RTE_WRITABLE: u64 = 0xffff_0000_0001_afff;

/// One I/O APIC.
pub struct Ioapic {
    id: u8,
    gsi_base: u32,
    ioregsel: u32,
    /// Redirection table.
    redirection: [u64; IOAPIC_PINS],
    /// Pins requesting service (level: line high; edge: edge not yet sent).
    irr: u32,
    sink: Arc<dyn InterruptSink>,
}

impl std::fmt::Debug for Ioapic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ioapic")
            .field("id", &self.id)
            .field("gsi_base", &self.gsi_base)
            .field("irr", &format_args!("{:#08x}", self.irr))
            .finish()
    }
}

impl Ioapic {
    /// An IOAPIC with APIC ID `id` serving GSIs `gsi_base..gsi_base+24`,
    /// whose messages go to `sink`. All pins start masked.
    pub fn new(id: u8, gsi_base: u32, sink: Arc<dyn InterruptSink>) -> Self {
        Ioapic {
            id: id & 0x0f,
            gsi_base,
            ioregsel: 0,
            redirection: [RTE_MASKED; IOAPIC_PINS],
            irr: 0,
            sink,
        }
    }

    /// First GSI this IOAPIC serves (pin 0).
    pub fn gsi_base(&self) -> u32 {
        self.gsi_base
    }

    /// The APIC ID, the selected register (IOREGSEL) and the pins
    /// requesting service (IRR), for a monitor's `info pic`.
    pub fn debug_state(&self) -> (u8, u32, u32) {
        (self.id, self.ioregsel, self.irr)
    }

    /// Machine reset: all entries masked, nothing pending; the ID is kept.
    pub fn reset(&mut self) {
        self.ioregsel = 0;
        self.redirection = [RTE_MASKED; IOAPIC_PINS];
        self.irr = 0;
        for pin in 0..IOAPIC_PINS {
            self.sink.route_changed(self.gsi_base + pin as u32, None);
        }
    }

    /// What pin `pin` sends when asserted, or `None` while masked (or for a
    /// pin that doesn't exist).
    pub fn route(&self, pin: usize) -> Option<InterruptMessage> {
        let entry = *self.redirection.get(pin)?;
        (entry & RTE_MASKED == 0).then(|| Self::message(entry))
    }

    /// The 64-bit redirection entry of `pin` (0 for a pin that doesn't exist).
    pub fn redirection_entry(&self, pin: usize) -> u64 {
        self.redirection.get(pin).copied().unwrap_or(0)
    }

    /// Drive input `pin` to `level` (asserted = true).
    pub fn set_irq(&mut self, pin: usize, level: bool) {
        let Some(&entry) = self.redirection.get(pin) else {
            log::warn!("ioapic: no input pin {pin}");
            return;
        };
        let bit = 1u32 << pin;
        if entry & RTE_LEVEL != 0 {
            if level {
                self.irr |= bit;
                if entry & RTE_REMOTE_IRR == 0 {
                    self.service();
                }
            } else {
                self.irr &= !bit;
            }
        } else if level && entry & RTE_MASKED == 0 {
            // Edges on a masked pin are dropped (82093AA datasheet).
            self.irr |= bit;
            self.service();
        }
    }

    /// A level-triggered `vector` was EOI'd by a local APIC: clear remote
    /// IRR of the entries using it and re-deliver those whose line is still
    /// asserted.
    pub fn end_of_interrupt(&mut self, vector: u8) {
        let mut redeliver = false;
        for (pin, entry) in self.redirection.iter_mut().enumerate() {
            if *entry & RTE_VECTOR != u64::from(vector)
                || *entry & RTE_LEVEL == 0
                || *entry & RTE_REMOTE_IRR == 0
            {
                continue;
            }
            *entry &= !RTE_REMOTE_IRR;
            if *entry & RTE_MASKED == 0 && self.irr & (1 << pin) != 0 {
                redeliver = true;
            }
        }
        if redeliver {
            self.service();
        }
    }

    /// The message redirection entry `entry` describes.
    fn message(entry: u64) -> InterruptMessage {
        InterruptMessage {
            destination: (entry >> RTE_DEST_SHIFT) as u32,
            dest_mode: if entry & RTE_DEST_LOGICAL != 0 {
                DestinationMode::Logical
            } else {
                DestinationMode::Physical
            },
            delivery_mode: DeliveryMode::from_bits((entry >> RTE_DELIVERY_MODE_SHIFT) as u32),
            vector: (entry & RTE_VECTOR) as u8,
            level_triggered: entry & RTE_LEVEL != 0,
        }
    }

    /// Send a message for every unmasked requesting pin that may send.
    fn service(&mut self) {
        for pin in 0..IOAPIC_PINS {
            let bit = 1u32 << pin;
            let entry = self.redirection[pin];
            if self.irr & bit == 0 || entry & RTE_MASKED != 0 {
                continue;
            }
            if entry & RTE_LEVEL != 0 {
                if entry & RTE_REMOTE_IRR != 0 {
                    // The CPU is still handling the previous one.
                    continue;
                }
                self.redirection[pin] |= RTE_REMOTE_IRR;
            } else {
                self.irr &= !bit;
            }
            self.sink
                .deliver_from_gsi(self.gsi_base + pin as u32, Self::message(entry));
        }
    }

    fn read_register(&self) -> u32 {
        match self.ioregsel {
            REG_ID | REG_ARBITRATION => u32::from(self.id) << 24,
            REG_VERSION => IOAPIC_VERSION | ((IOAPIC_PINS as u32 - 1) << 16),
            r if r >= REG_REDIRECTION => {
                let index = ((r - REG_REDIRECTION) / 2) as usize;
                let Some(&entry) = self.redirection.get(index) else {
                    return 0;
                };
                if r & 1 != 0 {
                    (entry >> 32) as u32
                } else {
                    entry as u32
                }
            }
            _ => 0,
        }
    }

    fn write_register(&mut self, val: u32) {
        match self.ioregsel {
            REG_ID => self.id = ((val >> 24) & 0x0f) as u8,
            REG_VERSION | REG_ARBITRATION => {}
            r if r >= REG_REDIRECTION => {
                let index = ((r - REG_REDIRECTION) / 2) as usize;
                let Some(&old) = self.redirection.get(index) else {
                    log::debug!("ioapic: write to missing register {r:#x}");
                    return;
                };
                let mut entry = if r & 1 != 0 {
                    (old & 0xffff_ffff) | (u64::from(val) << 32)
                } else {
                    (old & !0xffff_ffff) | u64::from(val)
                };
                entry = (entry & RTE_WRITABLE) | (old & RTE_REMOTE_IRR);
                if entry & RTE_LEVEL == 0 {
                    // Linux's "EOI by edge toggle" relies on this.
                    entry &= !RTE_REMOTE_IRR;
                }
                self.redirection[index] = entry;
                self.sink
                    .route_changed(self.gsi_base + index as u32, self.route(index));
                self.service();
            }
            r => log::debug!("ioapic: write to missing register {r:#x}"),
        }
    }

    /// A 32-bit read at `offset` in the MMIO page.
    pub fn read_mmio(&self, offset: u64) -> u32 {
        match offset {
            IOREGSEL => self.ioregsel,
            IOWIN => self.read_register(),
            _ => 0,
        }
    }

    /// A 32-bit write at `offset` in the MMIO page.
    pub fn write_mmio(&mut self, offset: u64, val: u32) {
        match offset {
            IOREGSEL => self.ioregsel = val & 0xff,
            IOWIN => self.write_register(val),
            EOI => self.end_of_interrupt(val as u8),
            _ => log::debug!("ioapic: write to offset {offset:#x} ignored"),
        }
    }
}

impl BusDevice for Ioapic {
    fn name(&self) -> &str {
        "ioapic"
    }

    fn read(&mut self, info: BusAccessInfo, data: &mut [u8]) {
        if data.len() != 4 {
            log::debug!(
                "ioapic: {}-byte read at {:#x} ignored",
                data.len(),
                info.offset
            );
            return;
        }
        data.copy_from_slice(&self.read_mmio(info.offset).to_le_bytes());
    }

    fn write(&mut self, info: BusAccessInfo, data: &[u8]) {
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            log::debug!(
                "ioapic: {}-byte write at {:#x} ignored",
                data.len(),
                info.offset
            );
            return;
        };
        self.write_mmio(info.offset, u32::from_le_bytes(bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::super::message::testing::RecordingSink;
    use super::*;

    fn ioapic() -> (Ioapic, Arc<RecordingSink>) {
        let sink = Arc::new(RecordingSink::default());
        (Ioapic::new(1, 0, sink.clone()), sink)
    }

    fn program(io: &mut Ioapic, pin: u32, low: u32, dest: u8) {
        io.write_mmio(IOREGSEL, REG_REDIRECTION + 2 * pin + 1);
        io.write_mmio(IOWIN, u32::from(dest) << 24);
        io.write_mmio(IOREGSEL, REG_REDIRECTION + 2 * pin);
        io.write_mmio(IOWIN, low);
    }

    fn read_low(io: &mut Ioapic, pin: u32) -> u32 {
        io.write_mmio(IOREGSEL, REG_REDIRECTION + 2 * pin);
        io.read_mmio(IOWIN)
    }

    #[test]
    fn id_version_and_arbitration_registers() {
        let (mut io, _) = ioapic();
        io.write_mmio(IOREGSEL, REG_VERSION);
        assert_eq!(io.read_mmio(IOWIN), 0x0017_0020);
        io.write_mmio(IOREGSEL, REG_ID);
        assert_eq!(io.read_mmio(IOWIN), 1 << 24);
        io.write_mmio(IOWIN, 0x0500_0000);
        io.write_mmio(IOREGSEL, REG_ARBITRATION);
        assert_eq!(io.read_mmio(IOWIN), 0x0500_0000);
        assert_eq!(io.read_mmio(IOREGSEL), REG_ARBITRATION);
        // Entries start masked.
        assert_eq!(read_low(&mut io, 7), 1 << 16);
    }

    #[test]
    fn programmed_edge_pin_fires_one_message_per_edge() {
        let (mut io, sink) = ioapic();
        program(&mut io, 4, 0x0000_0024, 0); // fixed, physical, edge, vector 0x24
        io.set_irq(4, true);
        io.set_irq(4, false);
        io.set_irq(4, true);
        let msgs = sink.take();
        assert_eq!(msgs, vec![InterruptMessage::fixed(0, 0x24); 2]);
    }

    #[test]
    fn masked_pins_send_nothing() {
        let (mut io, sink) = ioapic();
        program(&mut io, 4, 0x0001_0024, 0);
        io.set_irq(4, true);
        io.set_irq(4, false);
        assert!(sink.take().is_empty());
        // A masked level pin is held and sent when unmasked.
        program(&mut io, 9, 0x0001_8031, 0);
        io.set_irq(9, true);
        assert!(sink.take().is_empty());
        program(&mut io, 9, 0x0000_8031, 0);
        let msgs = sink.take();
        assert_eq!(msgs.len(), 1);
        assert!(msgs[0].level_triggered);
    }

    #[test]
    fn level_pin_sets_remote_irr_and_reasserts_after_eoi() {
        let (mut io, sink) = ioapic();
        // Level, logical dest 0x01, lowest priority, vector 0x41.
        program(&mut io, 10, 0x0000_8941, 0x01);
        io.set_irq(10, true);
        let msgs = sink.take();
        assert_eq!(
            msgs,
            vec![InterruptMessage {
                destination: 1,
                dest_mode: DestinationMode::Logical,
                delivery_mode: DeliveryMode::LowestPriority,
                vector: 0x41,
                level_triggered: true,
            }]
        );
        assert_ne!(read_low(&mut io, 10) & (1 << 14), 0, "remote IRR set");
        // Asserting again while remote IRR is set sends nothing.
        io.set_irq(10, true);
        assert!(sink.take().is_empty());
        // EOI of another vector changes nothing.
        io.end_of_interrupt(0x42);
        assert!(sink.take().is_empty());
        // EOI while still high: re-delivered.
        io.end_of_interrupt(0x41);
        assert_eq!(sink.take().len(), 1);
        assert_ne!(read_low(&mut io, 10) & (1 << 14), 0);
        // Line drops, EOI through the EOI register: remote IRR clears, no message.
        io.set_irq(10, false);
        io.write_mmio(EOI, 0x41);
        assert!(sink.take().is_empty());
        assert_eq!(read_low(&mut io, 10) & (1 << 14), 0);
    }

    #[test]
    fn remote_irr_is_read_only_and_cleared_by_edge_mode() {
        let (mut io, sink) = ioapic();
        program(&mut io, 3, 0x0000_8050, 0);
        io.set_irq(3, true);
        assert_eq!(sink.take().len(), 1);
        // Rewriting the entry (still level) keeps remote IRR.
        program(&mut io, 3, 0x0001_8050, 0);
        assert_ne!(read_low(&mut io, 3) & (1 << 14), 0);
        // Linux's edge/level toggle clears it.
        program(&mut io, 3, 0x0001_0050, 0);
        assert_eq!(read_low(&mut io, 3) & (1 << 14), 0);
        program(&mut io, 3, 0x0000_8050, 0);
        assert_eq!(sink.take().len(), 1, "still high: sent again");
    }

    #[test]
    fn route_updates_and_gsis_reach_the_sink() {
        let sink = Arc::new(RecordingSink::default());
        let mut io = Ioapic::new(2, 24, sink.clone());
        program(&mut io, 5, 0x0000_8033, 0);
        let level = InterruptMessage {
            level_triggered: true,
            ..InterruptMessage::fixed(0, 0x33)
        };
        // High dword then low dword: two updates, the last one unmasked.
        assert_eq!(sink.take_routes(), vec![(29, None), (29, Some(level))]);
        assert_eq!(io.route(5), Some(level));
        io.set_irq(5, true);
        assert_eq!(sink.take_gsis(), vec![29]);
        io.reset();
        let routes = sink.take_routes();
        assert_eq!(routes.len(), IOAPIC_PINS);
        assert!(routes.iter().all(|(_, r)| r.is_none()));
        assert_eq!(io.route(5), None);
    }

    #[test]
    fn destination_and_mmio_widths() {
        let (mut io, sink) = ioapic();
        program(&mut io, 1, 0x0000_0430, 3); // NMI to APIC 3
        io.set_irq(1, true);
        let m = sink.take()[0];
        assert_eq!((m.destination, m.delivery_mode), (3, DeliveryMode::Nmi));
        let info = BusAccessInfo {
            address: IOAPIC_BASE,
            offset: 0,
            vcpu: 0,
        };
        io.write(info, &[0x01]); // wrong width: ignored
        assert_eq!(io.read_mmio(IOREGSEL), REG_REDIRECTION + 2);
        io.write(info, &1u32.to_le_bytes());
        let mut d = [0u8; 4];
        io.read(
            BusAccessInfo {
                offset: 0x10,
                ..info
            },
            &mut d,
        );
        assert_eq!(u32::from_le_bytes(d), 0x0017_0020);
        io.set_irq(24, true); // no such pin: contained
        assert!(sink.take().is_empty());
    }
}
