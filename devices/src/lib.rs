//! The microvm board's devices: buses, interrupt controllers, timers,
//! serial, power and debug devices, and virtio-mmio.
//!
//! Devices never see KVM types: they are reached through [`bus::Bus`] and
//! raise interrupts through [`irq::IrqLine`].

pub mod boot_timer;
pub mod bus;
pub mod debug_exit;
pub mod ged;
pub mod i8042;
pub mod irq;
pub mod irqchip;
pub mod pit;
pub mod port80;
pub mod rtc;
pub mod serial;
pub mod timer;
pub mod virtio;
