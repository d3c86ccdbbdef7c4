//! The board's interrupt controllers, shared by both CPU backends (QEMU's
//! `kernel-irqchip=split` model): the 8259A PIC pair, one or two IOAPICs,
//! and, for the interpreter, userspace local APICs, tied together by
//! [`IrqChip`].

pub mod chip;
pub mod ioapic;
pub mod lapic;
pub mod lapic_timer;
pub mod message;
pub mod pic;

pub use chip::{
    Injection, IrqChip, IrqChipConfig, IrqChipError, LapicMode, LapicTimers, PendingInterrupt,
};
pub use ioapic::Ioapic;
pub use lapic::{InitSipi, Lapic};
pub use lapic_timer::LAPIC_BUS_HZ;
pub use message::{DeliveryMode, DestinationMode, InterruptMessage, InterruptSink, VcpuNotifier};
pub use pic::Pic;
