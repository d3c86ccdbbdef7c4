//! Guest I/O as callbacks from the vCPU thread.

/// Guest-visible I/O, implemented by the board on top of its buses.
///
/// Both backends call it synchronously on the vCPU thread while running
/// (Cloud Hypervisor's `VmOps` shape), so the interpreter can finish an
/// instruction that touches MMIO more than once without suspending.
pub trait IoBus: Send + Sync {
    /// `IN` from `port`; unclaimed ports read as all ones.
    fn pio_read(&self, vcpu: u32, port: u16, data: &mut [u8]);
    /// `OUT` to `port`.
    fn pio_write(&self, vcpu: u32, port: u16, data: &[u8]);
    /// Read from a guest-physical address that is not RAM.
    fn mmio_read(&self, vcpu: u32, gpa: u64, data: &mut [u8]);
    /// Write to a guest-physical address that is not RAM.
    fn mmio_write(&self, vcpu: u32, gpa: u64, data: &[u8]);
    /// RDMSR of an MSR the CPU model does not own itself (for the
    /// interpreter: the LAPIC's TSC-deadline register, x2APIC). `None` = #GP.
    fn msr_read(&self, _vcpu: u32, _msr: u32) -> Option<u64> {
        None
    }
    /// WRMSR of an MSR the CPU model does not own itself. `false` = #GP.
    fn msr_write(&self, _vcpu: u32, _msr: u32, _value: u64) -> bool {
        false
    }
}

/// Writes to guest RAM made behind the CPUs' backs (device DMA, the board
/// reloading the kernel), reported to a backend that caches decoded code
/// (the interpreter's block engine); KVM needs none.
pub trait GuestWrites: Send + Sync {
    /// Guest-physical `gpa..gpa + len` was written.
    fn written(&self, gpa: u64, len: u64);
    /// All of guest RAM may have changed.
    fn all_written(&self);
}
