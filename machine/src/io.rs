//! The board's side of [`cpu::IoBus`]: port and MMIO accesses to the buses.

use std::sync::Arc;

use devices::bus::Bus;

/// Called after a guest write that may have reprogrammed a timer.
pub type TimerWake = Arc<dyn Fn() + Send + Sync>;

/// Port I/O and MMIO buses as the vCPUs see them.
pub struct BoardIo {
    /// Port I/O bus.
    pub pio: Bus,
    /// MMIO bus (everything that is not RAM).
    pub mmio: Bus,
    /// Ports and MMIO ranges whose writes must wake the timer service.
    timer_ports: Vec<(u64, u64)>,
    timer_mmio: Vec<(u64, u64)>,
    wake: Option<TimerWake>,
    /// MSR handler for MSRs the CPU model does not own (interpreter LAPIC).
    msrs: Option<Arc<dyn MsrHandler>>,
}

/// MSRs the board owns (the interpreter's LAPIC TSC-deadline register).
pub trait MsrHandler: Send + Sync {
    /// RDMSR; `None` = #GP.
    fn read(&self, vcpu: u32, msr: u32) -> Option<u64>;
    /// WRMSR; `false` = #GP.
    fn write(&self, vcpu: u32, msr: u32, value: u64) -> bool;
}

impl std::fmt::Debug for BoardIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoardIo")
            .field("pio", &self.pio)
            .field("mmio", &self.mmio)
            .finish()
    }
}

impl BoardIo {
    /// Buses with no timer hooks.
    pub fn new(pio: Bus, mmio: Bus) -> Self {
        BoardIo {
            pio,
            mmio,
            timer_ports: Vec::new(),
            timer_mmio: Vec::new(),
            wake: None,
            msrs: None,
        }
    }

    /// Wake the timer service after writes to these port and MMIO ranges.
    pub fn set_timer_hooks(
        &mut self,
        ports: Vec<(u64, u64)>,
        mmio: Vec<(u64, u64)>,
        wake: TimerWake,
    ) {
        self.timer_ports = ports;
        self.timer_mmio = mmio;
        self.wake = Some(wake);
    }

    /// Route MSRs the CPU does not own to `handler`.
    pub fn set_msr_handler(&mut self, handler: Arc<dyn MsrHandler>) {
        self.msrs = Some(handler);
    }

    fn maybe_wake(&self, ranges: &[(u64, u64)], addr: u64) {
        if let Some(w) = &self.wake {
            if ranges.iter().any(|(b, l)| addr >= *b && addr < b + l) {
                w();
            }
        }
    }
}

impl cpu::IoBus for BoardIo {
    fn pio_read(&self, vcpu: u32, port: u16, data: &mut [u8]) {
        if !self.pio.read(vcpu, u64::from(port), data) {
            data.fill(0xff);
        }
    }

    fn pio_write(&self, vcpu: u32, port: u16, data: &[u8]) {
        if self.pio.write(vcpu, u64::from(port), data) {
            self.maybe_wake(&self.timer_ports, u64::from(port));
        }
    }

    fn mmio_read(&self, vcpu: u32, gpa: u64, data: &mut [u8]) {
        if !self.mmio.read(vcpu, gpa, data) {
            // QEMU's unassigned memory reads as zero on x86.
            data.fill(0);
        }
    }

    fn mmio_write(&self, vcpu: u32, gpa: u64, data: &[u8]) {
        if self.mmio.write(vcpu, gpa, data) {
            self.maybe_wake(&self.timer_mmio, gpa);
        }
    }

    fn msr_read(&self, vcpu: u32, msr: u32) -> Option<u64> {
        self.msrs.as_ref()?.read(vcpu, msr)
    }

    fn msr_write(&self, vcpu: u32, msr: u32, value: u64) -> bool {
        match &self.msrs {
            Some(m) => {
                let ok = m.write(vcpu, msr, value);
                if ok {
                    if let Some(w) = &self.wake {
                        w();
                    }
                }
                ok
            }
            None => false,
        }
    }
}
