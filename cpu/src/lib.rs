//! The CPU backends behind one contract.
//!
//! Nothing above this crate knows which backend runs: the board talks to a
//! [`Vcpu`] through [`IoBus`] callbacks and a small [`VcpuExit`] set.
//! Two backends implement it: [`kvm`] (hardware virtualization through
//! `/dev/kvm`) and [`interp`] (a software x86-64 CPU built on iced-x86).

pub mod accel;
pub mod clock;
pub mod cpuid;
pub mod error;
pub mod features;
pub mod interp;
pub mod io;
pub mod kvm;
pub mod regs;
pub mod snippet;
pub mod vcpu;

pub use accel::{Accelerator, LapicLocation, Msi};
pub use clock::{Clock, ClockMode};
pub use cpuid::CpuidEntry;
pub use error::CpuError;
pub use io::{GuestWrites, IoBus};
pub use regs::{DescriptorTable, Regs, Segment, Sregs};
pub use vcpu::{Vcpu, VcpuExit, VcpuKick};

/// Guest physical memory as every backend and device sees it.
pub type GuestMemory = vm_memory::GuestMemoryMmap<()>;
