//! KVM backend: hardware virtualization through `/dev/kvm` (kvm-ioctls),
//! with QEMU's split irqchip (LAPIC in the kernel; IOAPIC, PIC and PIT in
//! userspace, shared with the software CPU).

mod convert;
mod cpuid;
pub mod host;
mod kick;
mod memslots;
mod vcpu;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kvm_bindings::{
    kvm_enable_cap, kvm_irq_routing_entry, kvm_irq_routing_msi, kvm_msi, KvmIrqRouting,
    KVM_IRQ_ROUTING_MSI, KVM_MAX_CPUID_ENTRIES,
};
use kvm_ioctls::{Cap, Kvm, VmFd};

pub use vcpu::KvmVcpu;

use crate::features::CpuModel;
use crate::{Accelerator, CpuError, CpuidEntry, GuestMemory, LapicLocation, Msi, Vcpu};

/// Where KVM's real-mode TSS lives (three pages just below the BIOS area, as QEMU).
const TSS_ADDRESS: usize = 0xfffb_d000;

/// The KVM accelerator for one VM.
#[derive(Debug)]
pub struct KvmAccelerator {
    kvm: Kvm,
    vm: Arc<VmFd>,
    supported_cpuid: Vec<CpuidEntry>,
    /// GSI → MSI routes mirrored into KVM's routing table.
    routes: Mutex<BTreeMap<u32, Msi>>,
    /// `-cpu` feature adjustments applied to every new vCPU.
    features: Mutex<Vec<(String, bool)>>,
    /// The `-cpu` model of new vCPUs.
    model: Mutex<CpuModel>,
    /// Guest RAM's memory slots.
    slots: Mutex<memslots::MemSlots>,
}

impl KvmAccelerator {
    /// Open `/dev/kvm`, create a VM with a split irqchip whose userspace
    /// IOAPICs have `ioapic_pins` inputs in all, and map `mem` into it.
    pub fn new(mem: &GuestMemory, ioapic_pins: u32) -> Result<Self, CpuError> {
        let kvm = Kvm::new().map_err(|e| CpuError::KvmUnavailable(strerror(e.errno())))?;
        if kvm.get_api_version() != 12 {
            return Err(CpuError::KvmUnavailable(format!(
                "unsupported KVM API version {}",
                kvm.get_api_version()
            )));
        }
        for cap in [
            Cap::Irqchip,
            Cap::UserMemory,
            Cap::SetTssAddr,
            Cap::ExtCpuid,
        ] {
            if !kvm.check_extension(cap) {
                return Err(CpuError::KvmUnavailable(format!(
                    "missing capability {cap:?}"
                )));
            }
        }
        let vm = kvm
            .create_vm()
            .map_err(|e| CpuError::kvm("KVM_CREATE_VM", e))?;
        vm.set_tss_address(TSS_ADDRESS)
            .map_err(|e| CpuError::kvm("KVM_SET_TSS_ADDR", e))?;
        let mut cap = kvm_enable_cap {
            cap: kvm_bindings::KVM_CAP_SPLIT_IRQCHIP,
            ..Default::default()
        };
        cap.args[0] = u64::from(ioapic_pins);
        vm.enable_cap(&cap)
            .map_err(|e| CpuError::kvm("KVM_ENABLE_CAP(SPLIT_IRQCHIP)", e))?;
        let slots = memslots::MemSlots::map(&vm, mem)?;
        let supported = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(|e| CpuError::kvm("KVM_GET_SUPPORTED_CPUID", e))?;
        let supported_cpuid = supported
            .as_slice()
            .iter()
            .map(|e| CpuidEntry {
                function: e.function,
                index: e.index,
                significant_index: e.flags & kvm_bindings::KVM_CPUID_FLAG_SIGNIFCANT_INDEX != 0,
                eax: e.eax,
                ebx: e.ebx,
                ecx: e.ecx,
                edx: e.edx,
            })
            .collect();
        kick::install_handler().map_err(|e| CpuError::kvm("sigaction(kick signal)", e))?;
        Ok(KvmAccelerator {
            kvm,
            vm: Arc::new(vm),
            supported_cpuid,
            routes: Mutex::new(BTreeMap::new()),
            features: Mutex::new(Vec::new()),
            model: Mutex::new(CpuModel::Host),
            slots: Mutex::new(slots),
        })
    }

    /// The most vCPUs this host's KVM allows.
    pub fn max_vcpus(&self) -> usize {
        self.kvm.get_max_vcpus()
    }
}

/// C's strerror text for `errno`, without Rust's "(os error N)".
fn strerror(errno: i32) -> String {
    let s = std::io::Error::from_raw_os_error(errno).to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

impl Accelerator for KvmAccelerator {
    fn name(&self) -> &'static str {
        "kvm"
    }

    fn lapic_location(&self) -> LapicLocation {
        LapicLocation::InKernel
    }

    fn create_vcpu(&self, id: u32, count: u32) -> Result<Box<dyn Vcpu>, CpuError> {
        let fd = self
            .vm
            .create_vcpu(u64::from(id))
            .map_err(|e| CpuError::kvm("KVM_CREATE_VCPU", e))?;
        let mut table = cpuid::guest_cpuid(&self.supported_cpuid, id, count);
        if self.model.lock().is_ok_and(|m| *m == CpuModel::Qemu64) {
            crate::features::restrict(&mut table, &cpuid::qemu64_features());
        }
        if let Ok(f) = self.features.lock() {
            crate::features::apply(&mut table, &self.supported_cpuid, &f);
        }
        let v = KvmVcpu::new(id, fd, &table)?;
        Ok(Box::new(v))
    }

    fn protect_rom(&self, start: u64, len: u64) -> Result<(), CpuError> {
        if !self.kvm.check_extension(Cap::ReadonlyMem) {
            return Err(CpuError::Unsupported("kvm"));
        }
        let mut slots = self
            .slots
            .lock()
            .map_err(|_| CpuError::Unsupported("kvm"))?;
        slots.protect(&self.vm, start, len)
    }

    fn signal_msi(&self, msi: Msi) -> Result<(), CpuError> {
        let m = kvm_msi {
            address_lo: msi.address as u32,
            address_hi: (msi.address >> 32) as u32,
            data: msi.data,
            ..Default::default()
        };
        self.vm
            .signal_msi(m)
            .map(|_| ())
            .map_err(|e| CpuError::kvm("KVM_SIGNAL_MSI", e))
    }

    fn set_msi_route(&self, gsi: u32, msi: Option<Msi>) -> Result<(), CpuError> {
        let mut routes = self
            .routes
            .lock()
            .map_err(|_| CpuError::Unsupported("kvm"))?;
        match msi {
            Some(m) => routes.insert(gsi, m),
            None => routes.remove(&gsi),
        };
        let entries: Vec<kvm_irq_routing_entry> = routes
            .iter()
            .map(|(gsi, m)| {
                let mut e = kvm_irq_routing_entry {
                    gsi: *gsi,
                    type_: KVM_IRQ_ROUTING_MSI,
                    ..Default::default()
                };
                e.u.msi = kvm_irq_routing_msi {
                    address_lo: m.address as u32,
                    address_hi: (m.address >> 32) as u32,
                    data: m.data,
                    ..Default::default()
                };
                e
            })
            .collect();
        let table =
            KvmIrqRouting::from_entries(&entries).map_err(|_| CpuError::Unsupported("kvm"))?;
        self.vm
            .set_gsi_routing(&table)
            .map_err(|e| CpuError::kvm("KVM_SET_GSI_ROUTING", e))
    }

    fn set_irq_line(&self, gsi: u32, level: bool) -> Result<(), CpuError> {
        let routed = self
            .routes
            .lock()
            .map(|r| r.contains_key(&gsi))
            .unwrap_or(false);
        if !routed {
            return Err(CpuError::Unsupported("kvm"));
        }
        self.vm
            .set_irq_line(gsi, level)
            .map_err(|e| CpuError::kvm("KVM_IRQ_LINE", e))
    }

    fn set_cpu_model(&self, model: CpuModel) {
        if let Ok(mut m) = self.model.lock() {
            *m = model;
        }
    }

    fn set_cpu_features(&self, features: &[(String, bool)]) -> Vec<String> {
        let mut probe = self.supported_cpuid.clone();
        let bad = crate::features::apply(&mut probe, &self.supported_cpuid, features);
        if let Ok(mut f) = self.features.lock() {
            *f = features.to_vec();
        }
        bad
    }

    fn supported_cpuid(&self) -> Vec<CpuidEntry> {
        self.supported_cpuid.clone()
    }
}
