//! One KVM vCPU behind the backend-neutral [`Vcpu`] contract.

use std::os::unix::io::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use kvm_bindings::{
    kvm_fpu, kvm_interrupt, kvm_mp_state, kvm_msr_entry, CpuId, Msrs, KVM_MP_STATE_RUNNABLE,
    KVM_MP_STATE_UNINITIALIZED, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN,
};
use kvm_ioctls::{VcpuExit as KvmExit, VcpuFd};
use vmm_sys_util::{ioctl::ioctl_with_ref, ioctl_iow_nr};

use super::convert::{from_kvm_regs, from_kvm_sregs, to_kvm_regs, to_kvm_sregs};
use super::kick::{register_run_page, KvmKick};
use crate::{CpuError, CpuidEntry, IoBus, Regs, Sregs, Vcpu, VcpuExit, VcpuKick};

ioctl_iow_nr!(KVM_INTERRUPT, kvm_bindings::KVMIO, 0x86, kvm_interrupt);

/// LAPIC register offsets and delivery modes used to put LINT0/LINT1 in
/// virtual-wire mode, as a BIOS leaves them.
const APIC_LVT_LINT0: usize = 0x350;
const APIC_LVT_LINT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0x4;
const APIC_MODE_EXTINT: u32 = 0x7;

/// Boot-time MSR values (what firmware leaves behind).
const BOOT_MSRS: &[(u32, u64)] = &[
    (0x174, 0),             // IA32_SYSENTER_CS
    (0x175, 0),             // IA32_SYSENTER_ESP
    (0x176, 0),             // IA32_SYSENTER_EIP
    (0xc000_0081, 0),       // STAR
    (0xc000_0082, 0),       // LSTAR
    (0xc000_0083, 0),       // CSTAR
    (0xc000_0102, 0),       // KERNEL_GS_BASE
    (0xc000_0084, 0),       // SYSCALL_MASK
    (0x10, 0),              // TSC
    (0x1a0, 1),             // IA32_MISC_ENABLE: fast strings
    (0x2ff, (1 << 11) | 6), // MTRRdefType: enabled, write-back
];

/// A KVM vCPU.
#[derive(Debug)]
pub struct KvmVcpu {
    id: u32,
    fd: VcpuFd,
    kick: Arc<KvmKick>,
    /// This vCPU's mapped `kvm_run` page (owned by `fd`), for reading the
    /// interrupt-window flags through `&self`.
    run_page: *const kvm_bindings::kvm_run,
}

// SAFETY: `run_page` points into the mmap owned by `fd`, which moves with
// the vCPU; it is only read on the thread that owns the vCPU.
unsafe impl Send for KvmVcpu {}

fn set_lvt_mode(regs: &mut [std::os::raw::c_char; 1024], offset: usize, mode: u32) {
    let mut b = [0u8; 4];
    for (i, x) in b.iter_mut().enumerate() {
        *x = regs[offset + i] as u8;
    }
    let v = (u32::from_le_bytes(b) & !0x700) | (mode << 8);
    for (i, x) in v.to_le_bytes().iter().enumerate() {
        regs[offset + i] = *x as std::os::raw::c_char;
    }
}

impl KvmVcpu {
    /// Configure a freshly created vCPU: CPUID, LAPIC virtual wire, boot MSRs, FPU.
    pub fn new(id: u32, fd: VcpuFd, cpuid: &[CpuidEntry]) -> Result<Self, CpuError> {
        let mut fd = fd;
        let run_page: *const kvm_bindings::kvm_run = fd.get_kvm_run();
        let mut v = KvmVcpu {
            id,
            fd,
            kick: Arc::new(KvmKick::default()),
            run_page,
        };
        v.set_cpuid(cpuid)?;
        let mut lapic =
            v.fd.get_lapic()
                .map_err(|e| CpuError::kvm("KVM_GET_LAPIC", e))?;
        set_lvt_mode(&mut lapic.regs, APIC_LVT_LINT0, APIC_MODE_EXTINT);
        set_lvt_mode(&mut lapic.regs, APIC_LVT_LINT1, APIC_MODE_NMI);
        v.fd.set_lapic(&lapic)
            .map_err(|e| CpuError::kvm("KVM_SET_LAPIC", e))?;
        v.set_msrs(BOOT_MSRS)?;
        let fpu = kvm_fpu {
            fcw: 0x37f,
            mxcsr: 0x1f80,
            ..Default::default()
        };
        v.fd.set_fpu(&fpu)
            .map_err(|e| CpuError::kvm("KVM_SET_FPU", e))?;
        Ok(v)
    }

    fn internal(&self, reason: impl Into<String>) -> CpuError {
        CpuError::Internal {
            vcpu: self.id,
            reason: reason.into(),
        }
    }

    fn run_once(&mut self, io: &dyn IoBus) -> Result<VcpuExit, CpuError> {
        let id = self.id;
        let internal = |reason: String| CpuError::Internal { vcpu: id, reason };
        let result = match self.fd.run() {
            Ok(exit) => match exit {
                KvmExit::IoIn(port, data) => {
                    io.pio_read(id, port, data);
                    Ok(VcpuExit::Continue)
                }
                KvmExit::IoOut(port, data) => {
                    io.pio_write(id, port, data);
                    Ok(VcpuExit::Continue)
                }
                KvmExit::MmioRead(addr, data) => {
                    io.mmio_read(id, addr, data);
                    Ok(VcpuExit::Continue)
                }
                KvmExit::MmioWrite(addr, data) => {
                    io.mmio_write(id, addr, data);
                    Ok(VcpuExit::Continue)
                }
                KvmExit::Hlt => Ok(VcpuExit::Halted),
                KvmExit::IrqWindowOpen => Ok(VcpuExit::IrqWindowOpen),
                KvmExit::IoapicEoi(vector) => Ok(VcpuExit::IoapicEoi { vector }),
                KvmExit::Shutdown => Ok(VcpuExit::TripleFault),
                KvmExit::SystemEvent(kind, _) => match kind {
                    KVM_SYSTEM_EVENT_RESET => Ok(VcpuExit::Reset),
                    KVM_SYSTEM_EVENT_SHUTDOWN => Ok(VcpuExit::TripleFault),
                    other => Err(internal(format!("unexpected system event {other}"))),
                },
                KvmExit::Intr => Ok(VcpuExit::Kicked),
                KvmExit::InternalError => Err(internal(String::new())),
                KvmExit::FailEntry(reason, cpu) => Err(internal(format!(
                    "KVM_EXIT_FAIL_ENTRY: hardware entry failure reason {reason:#x} on host CPU {cpu}"
                ))),
                other => Err(internal(format!("unhandled KVM exit {other:?}"))),
            },
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                Ok(VcpuExit::Kicked)
            }
            Err(e) => Err(CpuError::kvm(
                "KVM_RUN",
                std::io::Error::from_raw_os_error(e.errno()),
            )),
        };
        match result {
            Err(CpuError::Internal { reason, .. }) if reason.is_empty() => {
                let run = self.fd.get_kvm_run();
                // SAFETY: exit_reason is KVM_EXIT_INTERNAL_ERROR, so the
                // `internal` union member is the one KVM filled in.
                let suberror = unsafe { run.__bindgen_anon_1.internal.suberror };
                let rip = self.fd.get_regs().map(|r| r.rip).unwrap_or_default();
                Err(internal(format!(
                    "KVM internal error. Suberror: {suberror} (emulation failure at RIP {rip:#x})"
                )))
            }
            other => other,
        }
    }
}

impl Vcpu for KvmVcpu {
    fn id(&self) -> u32 {
        self.id
    }

    fn run(&mut self, io: &dyn IoBus) -> Result<VcpuExit, CpuError> {
        self.kick.bind_current_thread();
        let run_page: *mut kvm_bindings::kvm_run = self.fd.get_kvm_run();
        register_run_page(run_page);
        if self.kick.pending.swap(false, Ordering::SeqCst) {
            return Ok(VcpuExit::Kicked);
        }
        let r = self.run_once(io);
        self.fd.set_kvm_immediate_exit(0);
        if self.kick.pending.swap(false, Ordering::SeqCst) {
            // The kick may have arrived while handling an I/O exit; report it.
            return r.map(|e| {
                if e == VcpuExit::Continue {
                    VcpuExit::Kicked
                } else {
                    e
                }
            });
        }
        r
    }

    fn kicker(&self) -> Arc<dyn VcpuKick> {
        self.kick.clone()
    }

    fn ready_for_interrupt(&self) -> bool {
        // SAFETY: `run_page` is the live kvm_run mapping of `fd` (see the
        // field); KVM updates it only while this thread is inside KVM_RUN.
        let run = unsafe { &*self.run_page };
        run.ready_for_interrupt_injection != 0 && run.if_flag != 0
    }

    fn inject_interrupt(&mut self, vector: u8) -> Result<(), CpuError> {
        if self.fd.get_kvm_run().ready_for_interrupt_injection == 0 {
            return Err(self.internal("interrupt injected while KVM is not ready"));
        }
        let irq = kvm_interrupt {
            irq: u32::from(vector),
        };
        // SAFETY: KVM_INTERRUPT reads one kvm_interrupt from the pointer,
        // which is valid for the duration of the call.
        let ret = unsafe { ioctl_with_ref(&self.fd, KVM_INTERRUPT(), &irq) };
        if ret < 0 {
            return Err(CpuError::kvm(
                "KVM_INTERRUPT",
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    fn inject_nmi(&mut self) -> Result<(), CpuError> {
        self.fd.nmi().map_err(|e| CpuError::kvm("KVM_NMI", e))
    }

    fn request_interrupt_window(&mut self, enable: bool) {
        self.fd.get_kvm_run().request_interrupt_window = u8::from(enable);
    }

    fn regs(&self) -> Result<Regs, CpuError> {
        self.fd
            .get_regs()
            .map(|r| from_kvm_regs(&r))
            .map_err(|e| CpuError::kvm("KVM_GET_REGS", e))
    }

    fn set_regs(&mut self, regs: &Regs) -> Result<(), CpuError> {
        self.fd
            .set_regs(&to_kvm_regs(regs))
            .map_err(|e| CpuError::kvm("KVM_SET_REGS", e))
    }

    fn sregs(&self) -> Result<Sregs, CpuError> {
        self.fd
            .get_sregs()
            .map(|s| from_kvm_sregs(&s))
            .map_err(|e| CpuError::kvm("KVM_GET_SREGS", e))
    }

    fn set_sregs(&mut self, sregs: &Sregs) -> Result<(), CpuError> {
        let mut k = self
            .fd
            .get_sregs()
            .map_err(|e| CpuError::kvm("KVM_GET_SREGS", e))?;
        to_kvm_sregs(sregs, &mut k);
        self.fd
            .set_sregs(&k)
            .map_err(|e| CpuError::kvm("KVM_SET_SREGS", e))
    }

    fn set_cpuid(&mut self, entries: &[CpuidEntry]) -> Result<(), CpuError> {
        let kvm_entries: Vec<kvm_bindings::kvm_cpuid_entry2> = entries
            .iter()
            .map(|e| kvm_bindings::kvm_cpuid_entry2 {
                function: e.function,
                index: e.index,
                flags: if e.significant_index {
                    kvm_bindings::KVM_CPUID_FLAG_SIGNIFCANT_INDEX
                } else {
                    0
                },
                eax: e.eax,
                ebx: e.ebx,
                ecx: e.ecx,
                edx: e.edx,
                ..Default::default()
            })
            .collect();
        let cpuid = CpuId::from_entries(&kvm_entries)
            .map_err(|_| self.internal("too many CPUID entries"))?;
        self.fd
            .set_cpuid2(&cpuid)
            .map_err(|e| CpuError::kvm("KVM_SET_CPUID2", e))
    }

    fn set_msrs(&mut self, msrs: &[(u32, u64)]) -> Result<(), CpuError> {
        let entries: Vec<kvm_msr_entry> = msrs
            .iter()
            .map(|(index, data)| kvm_msr_entry {
                index: *index,
                data: *data,
                ..Default::default()
            })
            .collect();
        let list = Msrs::from_entries(&entries).map_err(|_| self.internal("too many MSRs"))?;
        let n = self
            .fd
            .set_msrs(&list)
            .map_err(|e| CpuError::kvm("KVM_SET_MSRS", e))?;
        if n != entries.len() {
            return Err(self.internal(format!(
                "KVM_SET_MSRS set {n} of {} MSRs (first refused: {:#x})",
                entries.len(),
                entries[n].index
            )));
        }
        Ok(())
    }

    fn set_runnable(&mut self, runnable: bool) -> Result<(), CpuError> {
        let state = kvm_mp_state {
            mp_state: if runnable {
                KVM_MP_STATE_RUNNABLE
            } else {
                KVM_MP_STATE_UNINITIALIZED
            },
        };
        self.fd
            .set_mp_state(state)
            .map_err(|e| CpuError::kvm("KVM_SET_MP_STATE", e))
    }

    fn translate(&self, gva: u64) -> Option<u64> {
        let t = self.fd.translate_gva(gva).ok()?;
        (t.valid != 0).then_some(t.physical_address)
    }
}

impl Drop for KvmVcpu {
    fn drop(&mut self) {
        self.kick.unbind();
        register_run_page(std::ptr::null_mut());
        let _ = self.fd.as_raw_fd();
    }
}
