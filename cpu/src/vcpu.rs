//! The per-vCPU contract shared by both backends.

use std::sync::Arc;

use crate::{CpuError, CpuidEntry, IoBus, Regs, Sregs};

/// Why [`Vcpu::run`] returned. Guest I/O never appears here: it is a
/// callback on [`IoBus`] during `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VcpuExit {
    /// A time slice ended or an I/O was serviced: check control messages, loop.
    Continue,
    /// HLT with nothing to do: sleep until an interrupt or the next timer.
    Halted,
    /// The window requested with [`Vcpu::request_interrupt_window`] opened.
    IrqWindowOpen,
    /// An in-kernel LAPIC EOI'd a level-triggered vector (KVM split irqchip).
    IoapicEoi {
        /// The vector that was acknowledged.
        vector: u8,
    },
    /// [`VcpuKick::kick`] was called (pause, shutdown, pending interrupt).
    Kicked,
    /// The guest triple-faulted: the machine resets (or exits under `-no-reboot`).
    TripleFault,
    /// The backend reports a guest-requested reset.
    Reset,
}

/// A thread-safe "leave `run` soon" handle for one vCPU.
pub trait VcpuKick: Send + Sync {
    /// Make the vCPU return from [`Vcpu::run`] with [`VcpuExit::Kicked`]
    /// (or any exit) as soon as possible. Idempotent; never blocks.
    fn kick(&self);
}

/// One virtual CPU. Owned by its vCPU thread.
pub trait Vcpu: Send {
    /// Index of this vCPU (also its initial APIC ID).
    fn id(&self) -> u32;
    /// Run guest code until something needs the board's attention.
    fn run(&mut self, io: &dyn IoBus) -> Result<VcpuExit, CpuError>;
    /// A handle other threads use to interrupt [`Vcpu::run`].
    fn kicker(&self) -> Arc<dyn VcpuKick>;

    /// True if an external interrupt can be injected now (IF=1, no
    /// interrupt shadow, nothing already pending injection).
    fn ready_for_interrupt(&self) -> bool;
    /// Deliver external interrupt `vector` through the IDT before the next
    /// instruction (PIC ExtINT on KVM; any LAPIC vector on the interpreter).
    fn inject_interrupt(&mut self, vector: u8) -> Result<(), CpuError>;
    /// Deliver an NMI.
    fn inject_nmi(&mut self) -> Result<(), CpuError>;
    /// Ask for [`VcpuExit::IrqWindowOpen`] once interrupts can be injected.
    fn request_interrupt_window(&mut self, enable: bool);

    /// General-purpose registers, RIP and RFLAGS.
    fn regs(&self) -> Result<Regs, CpuError>;
    /// Replace general-purpose registers, RIP and RFLAGS.
    fn set_regs(&mut self, regs: &Regs) -> Result<(), CpuError>;
    /// Segment, control and descriptor-table registers, EFER.
    fn sregs(&self) -> Result<Sregs, CpuError>;
    /// Replace segment, control and descriptor-table registers, EFER.
    fn set_sregs(&mut self, sregs: &Sregs) -> Result<(), CpuError>;
    /// Install the CPUID table the guest sees.
    fn set_cpuid(&mut self, entries: &[CpuidEntry]) -> Result<(), CpuError>;
    /// Write model-specific registers (index, value).
    fn set_msrs(&mut self, msrs: &[(u32, u64)]) -> Result<(), CpuError>;
    /// Put the vCPU in its power-on state waiting for INIT/SIPI (an
    /// application processor under `-smp N`), or runnable (the BSP).
    fn set_runnable(&mut self, runnable: bool) -> Result<(), CpuError>;
    /// INIT IPI: reset to the wait-for-SIPI state (userspace-LAPIC backends;
    /// an in-kernel LAPIC handles INIT itself).
    fn deliver_init(&mut self) -> Result<(), CpuError> {
        Err(CpuError::Unsupported("this"))
    }
    /// STARTUP IPI: if waiting for SIPI, start in real mode at
    /// `vector << 12` (CS = vector << 8, IP = 0).
    fn deliver_sipi(&mut self, vector: u8) -> Result<(), CpuError> {
        let _ = vector;
        Err(CpuError::Unsupported("this"))
    }
    /// Translate a guest-virtual address with the vCPU's current paging
    /// (QMP `memsave`). `None` if unmapped.
    fn translate(&self, gva: u64) -> Option<u64>;
}
