//! What interrupt controllers say to local APICs: the APIC-bus message, and
//! the two hooks the board provides (where messages go, whom to wake).

use cpu::Msi;

/// How the target local APIC handles a message (the 3-bit delivery mode of
/// IOAPIC redirection entries, MSIs and the LAPIC's ICR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryMode {
    /// Vector to the destination(s).
    Fixed,
    /// Vector to the lowest-priority CPU among the destinations.
    LowestPriority,
    /// System management interrupt (not emulated: dropped).
    Smi,
    /// Non-maskable interrupt; the vector is ignored.
    Nmi,
    /// INIT: reset the target into wait-for-SIPI.
    Init,
    /// STARTUP (SIPI): start the target at `vector << 12`.
    Startup,
    /// The vector comes from the 8259 PIC's INTA cycle.
    ExtInt,
    /// The reserved encoding 3.
    Reserved,
}

impl DeliveryMode {
    /// Decode the 3-bit field.
    pub fn from_bits(bits: u32) -> Self {
        match bits & 7 {
            0 => DeliveryMode::Fixed,
            1 => DeliveryMode::LowestPriority,
            2 => DeliveryMode::Smi,
            4 => DeliveryMode::Nmi,
            5 => DeliveryMode::Init,
            6 => DeliveryMode::Startup,
            7 => DeliveryMode::ExtInt,
            _ => DeliveryMode::Reserved,
        }
    }

    /// The 3-bit field.
    pub fn bits(self) -> u32 {
        match self {
            DeliveryMode::Fixed => 0,
            DeliveryMode::LowestPriority => 1,
            DeliveryMode::Smi => 2,
            DeliveryMode::Reserved => 3,
            DeliveryMode::Nmi => 4,
            DeliveryMode::Init => 5,
            DeliveryMode::Startup => 6,
            DeliveryMode::ExtInt => 7,
        }
    }
}

/// How the destination field is matched against local APICs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationMode {
    /// Against the APIC ID (0xFF broadcasts).
    Physical,
    /// Against the logical destination (LDR/DFR: flat or cluster model).
    Logical,
}

/// One interrupt message on the APIC bus, as an IOAPIC, an MSI or an IPI
/// produces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterruptMessage {
    /// Destination: an APIC ID (physical) or a logical mask (logical).
    pub destination: u32,
    /// How `destination` is matched.
    pub dest_mode: DestinationMode,
    /// What the target does with it.
    pub delivery_mode: DeliveryMode,
    /// The vector (ignored for NMI/INIT; the start page for STARTUP).
    pub vector: u8,
    /// Level-triggered: the target records it in its TMR and its EOI must
    /// reach the IOAPICs.
    pub level_triggered: bool,
}

/// The architectural MSI address window.
pub const MSI_ADDRESS_BASE: u64 = 0xfee0_0000;

impl InterruptMessage {
    /// A fixed, edge-triggered, physically addressed message.
    pub fn fixed(destination: u32, vector: u8) -> Self {
        InterruptMessage {
            destination,
            dest_mode: DestinationMode::Physical,
            delivery_mode: DeliveryMode::Fixed,
            vector,
            level_triggered: false,
        }
    }

    /// The x86 MSI encoding of this message, for in-kernel LAPICs
    /// (`Accelerator::signal_msi`).
    ///
    /// Address: `0xFEE0_0000 | dest[7:0] << 12 | dest_mode << 2`.
    /// Data: `vector | delivery_mode << 8 | assert << 14 | trigger << 15`.
    pub fn to_msi(&self) -> Msi {
        let logical = matches!(self.dest_mode, DestinationMode::Logical);
        let address = MSI_ADDRESS_BASE
            | (u64::from(self.destination & 0xff) << 12)
            | (u64::from(logical) << 2);
        let mut data = u32::from(self.vector) | (self.delivery_mode.bits() << 8);
        if self.level_triggered {
            data |= (1 << 14) | (1 << 15);
        }
        Msi { address, data }
    }

    /// Decode an x86 MSI (the inverse of [`InterruptMessage::to_msi`]), e.g.
    /// for a userspace-LAPIC board receiving device MSIs. `None` if the
    /// address is outside the `0xFEEx_xxxx` window.
    pub fn from_msi(msi: Msi) -> Option<Self> {
        if msi.address & 0xfff0_0000 != MSI_ADDRESS_BASE {
            return None;
        }
        Some(InterruptMessage {
            destination: ((msi.address >> 12) & 0xff) as u32,
            dest_mode: if msi.address & (1 << 2) != 0 {
                DestinationMode::Logical
            } else {
                DestinationMode::Physical
            },
            delivery_mode: DeliveryMode::from_bits(msi.data >> 8),
            vector: (msi.data & 0xff) as u8,
            level_triggered: msi.data & (1 << 15) != 0,
        })
    }
}

/// Where an interrupt controller's messages go: the board's KVM MSI path,
/// or the userspace LAPICs.
///
/// IOAPICs call the GSI-aware methods. A KVM split-irqchip board should use
/// them: KVM learns which vectors are level-triggered (and so need
/// `KVM_EXIT_IOAPIC_EOI`) only from its GSI routing table, not from
/// `KVM_SIGNAL_MSI`. Such a board mirrors each redirection entry as an MSI
/// route for its GSI ([`InterruptSink::route_changed`]) and fires pins with
/// `KVM_IRQ_LINE` ([`InterruptSink::deliver_from_gsi`]), as QEMU does.
pub trait InterruptSink: Send + Sync {
    /// Deliver one message. Must not block for long and must not call back
    /// into the controller that sent it.
    fn deliver(&self, msg: InterruptMessage);

    /// Deliver a message an IOAPIC sends for pin `gsi`. Defaults to
    /// [`InterruptSink::deliver`].
    fn deliver_from_gsi(&self, gsi: u32, msg: InterruptMessage) {
        let _ = gsi;
        self.deliver(msg);
    }

    /// The redirection entry of `gsi` changed: it now sends `route`, or
    /// nothing while masked (`None`). Defaults to ignoring it.
    fn route_changed(&self, gsi: u32, route: Option<InterruptMessage>) {
        let _ = (gsi, route);
    }
}

/// Wakes a vCPU that has something new to look at (an interrupt became
/// pending, an INIT/SIPI arrived): the board kicks it out of `run` or out
/// of its halt sleep.
pub trait VcpuNotifier: Send + Sync {
    /// Something changed for vCPU `vcpu`. Idempotent; never blocks.
    fn notify(&self, vcpu: u32);
}

/// A notifier that wakes nobody (tests, single-threaded setups).
#[derive(Debug, Default)]
pub struct NoNotifier;

impl VcpuNotifier for NoNotifier {
    fn notify(&self, _vcpu: u32) {}
}

#[cfg(test)]
pub(crate) mod testing {
    //! Recording sink and notifier shared by the irqchip tests.
    use super::*;
    use std::sync::Mutex;

    /// Records every delivered message, and GSIs and route updates.
    #[derive(Debug, Default)]
    pub struct RecordingSink {
        pub messages: Mutex<Vec<InterruptMessage>>,
        pub gsis: Mutex<Vec<u32>>,
        pub routes: Mutex<Vec<(u32, Option<InterruptMessage>)>>,
    }

    impl RecordingSink {
        pub fn take_gsis(&self) -> Vec<u32> {
            self.gsis
                .lock()
                .map(|mut v| std::mem::take(&mut *v))
                .unwrap_or_default()
        }

        pub fn take_routes(&self) -> Vec<(u32, Option<InterruptMessage>)> {
            self.routes
                .lock()
                .map(|mut v| std::mem::take(&mut *v))
                .unwrap_or_default()
        }

        pub fn take(&self) -> Vec<InterruptMessage> {
            self.messages
                .lock()
                .map(|mut v| std::mem::take(&mut *v))
                .unwrap_or_default()
        }
    }

    impl InterruptSink for RecordingSink {
        fn deliver(&self, msg: InterruptMessage) {
            if let Ok(mut v) = self.messages.lock() {
                v.push(msg);
            }
        }

        fn deliver_from_gsi(&self, gsi: u32, msg: InterruptMessage) {
            if let Ok(mut v) = self.gsis.lock() {
                v.push(gsi);
            }
            self.deliver(msg);
        }

        fn route_changed(&self, gsi: u32, route: Option<InterruptMessage>) {
            if let Ok(mut v) = self.routes.lock() {
                v.push((gsi, route));
            }
        }
    }

    /// Records every notified vCPU.
    #[derive(Debug, Default)]
    pub struct RecordingNotifier {
        pub vcpus: Mutex<Vec<u32>>,
    }

    impl RecordingNotifier {
        pub fn take(&self) -> Vec<u32> {
            self.vcpus
                .lock()
                .map(|mut v| std::mem::take(&mut *v))
                .unwrap_or_default()
        }
    }

    impl VcpuNotifier for RecordingNotifier {
        fn notify(&self, vcpu: u32) {
            if let Ok(mut v) = self.vcpus.lock() {
                v.push(vcpu);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msi_encoding_of_level_logical_message() {
        let m = InterruptMessage {
            destination: 0x03,
            dest_mode: DestinationMode::Logical,
            delivery_mode: DeliveryMode::LowestPriority,
            vector: 0x31,
            level_triggered: true,
        };
        let msi = m.to_msi();
        assert_eq!(msi.address, 0xfee0_3004);
        assert_eq!(msi.data, 0x31 | 0x100 | 0x4000 | 0x8000);
        assert_eq!(InterruptMessage::from_msi(msi), Some(m));
    }

    #[test]
    fn msi_encoding_of_fixed_edge_message() {
        let m = InterruptMessage::fixed(1, 0x24);
        assert_eq!(
            m.to_msi(),
            Msi {
                address: 0xfee0_1000,
                data: 0x24
            }
        );
        assert_eq!(
            InterruptMessage::from_msi(Msi {
                address: 0xfec0_0000,
                data: 0
            }),
            None
        );
    }

    #[test]
    fn delivery_mode_round_trips() {
        for bits in 0..8 {
            assert_eq!(DeliveryMode::from_bits(bits).bits(), bits);
        }
    }
}
