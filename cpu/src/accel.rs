//! Choosing and creating a backend.

use crate::{CpuError, CpuidEntry, Vcpu};

/// Where the local APIC lives for a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LapicLocation {
    /// KVM with `KVM_CAP_SPLIT_IRQCHIP`: LAPIC in the kernel; IOAPIC, PIC and PIT in userspace.
    InKernel,
    /// Interpreter: everything in userspace.
    Userspace,
}

/// A message-signalled interrupt as the IOAPIC produces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Msi {
    /// `0xFEEx_xxxx` address: destination ID and mode.
    pub address: u64,
    /// Vector, delivery mode and trigger mode.
    pub data: u32,
}

/// One accelerator per VM (QEMU's `-accel`).
pub trait Accelerator: Send + Sync {
    /// QEMU's name for it: `"kvm"` or `"tcg"`.
    fn name(&self) -> &'static str;
    /// Where the LAPICs live.
    fn lapic_location(&self) -> LapicLocation;
    /// Create vCPU `id` of `count`.
    fn create_vcpu(&self, id: u32, count: u32) -> Result<Box<dyn Vcpu>, CpuError>;
    /// Deliver an MSI to the in-kernel LAPICs. Userspace-LAPIC backends
    /// return [`CpuError::Unsupported`]: the board delivers those itself.
    fn signal_msi(&self, msi: Msi) -> Result<(), CpuError>;
    /// Route `gsi` to `msi` in the backend's interrupt routing table (None:
    /// unroute). In-kernel LAPICs need it to know which vectors are
    /// level-triggered and report their EOIs.
    fn set_msi_route(&self, gsi: u32, msi: Option<Msi>) -> Result<(), CpuError> {
        let _ = (gsi, msi);
        Err(CpuError::Unsupported(self.name()))
    }
    /// Drive a routed GSI (KVM_IRQ_LINE).
    fn set_irq_line(&self, gsi: u32, level: bool) -> Result<(), CpuError> {
        let _ = (gsi, level);
        Err(CpuError::Unsupported(self.name()))
    }
    /// Select the `-cpu` model for vCPUs created afterwards (before
    /// [`Accelerator::set_cpu_features`]). Backends without models keep
    /// their one table.
    fn set_cpu_model(&self, model: crate::features::CpuModel) {
        let _ = model;
    }
    /// Record `-cpu` feature adjustments (name, on) for vCPUs created
    /// afterwards; returns the names that are unknown or unsupported.
    fn set_cpu_features(&self, features: &[(String, bool)]) -> Vec<String> {
        features.iter().map(|(n, _)| n.clone()).collect()
    }
    /// The CPUID leaves this backend can honour for `-cpu` (the interpreter
    /// advertises only what it implements).
    fn supported_cpuid(&self) -> Vec<CpuidEntry>;
    /// Make `[start, start + len)` of guest RAM a ROM before any vCPU is
    /// created: the guest reads and executes it, its stores are dropped
    /// (they reach the I/O bus as MMIO writes, which nothing claims); the
    /// board still writes it through guest memory. Backends that cannot
    /// return [`CpuError::Unsupported`] and leave it writable RAM.
    fn protect_rom(&self, start: u64, len: u64) -> Result<(), CpuError> {
        let _ = (start, len);
        Err(CpuError::Unsupported(self.name()))
    }
    /// Where the board reports guest-RAM writes it makes itself (device
    /// DMA, kernel reload), for backends that cache decoded code.
    fn guest_writes(&self) -> Option<std::sync::Arc<dyn crate::GuestWrites>> {
        None
    }
}
