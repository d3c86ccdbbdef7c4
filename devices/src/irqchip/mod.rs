//! The board's interrupt controllers, shared by both CPU backends (QEMU's
//! `kernel-irqchip=split` model): the 8259A PIC pair ([`Pic`]), one or two
//! IOAPICs ([`Ioapic`]) and, for the interpreter, userspace local APICs
//! ([`Lapic`]), tied together by [`IrqChip`].
//!
//! How a board uses it:
//!
//! 1. Build an [`IrqChip`] from an [`IrqChipConfig`]: `pic` on or off, one
//!    or two IOAPICs, and a [`LapicMode`]: `InKernel { sink }` for KVM (the
//!    sink mirrors IOAPIC routes into KVM and fires them, see
//!    [`InterruptSink`]) or `Userspace { vcpus, clock }` for the
//!    interpreter. A [`VcpuNotifier`] kicks vCPUs that got something.
//! 2. `register_pio` / `register_mmio` put the controllers on the buses;
//!    `irq_line(gsi)` gives each device its [`crate::irq::Irq`].
//! 3. KVM vCPU loop: `pic_has_interrupt()` / `pic_acknowledge()` for
//!    ExtINT (`KVM_INTERRUPT` on the BSP), `end_of_interrupt(vector)` on
//!    `VcpuExit::IoapicEoi`.
//! 4. Interpreter vCPU loop: `take_init_sipi(vcpu)`, then
//!    `pending_interrupt(vcpu)` and, when the CPU can take it,
//!    `acknowledge(vcpu, pending)` gives the [`Injection`]; `msr_read` /
//!    `msr_write` serve IA32_APIC_BASE and IA32_TSC_DEADLINE;
//!    `lapic_timers()` is the [`crate::timer::Timed`] device for the timer
//!    service and `next_timer_deadline(vcpu)` bounds a halted vCPU's sleep.
//!    The LAPIC timer counts at [`LAPIC_BUS_HZ`], which CPUID leaf 0x15
//!    must advertise as the crystal clock.
//! 5. `reset()` on machine reset.

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
