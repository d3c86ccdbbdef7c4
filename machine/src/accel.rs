//! Picking the accelerator: `-accel kvm`, `-accel tcg`, or a fallback list
//! (`accel=kvm:tcg`), with QEMU-style notices.

use std::sync::Arc;

use cpu::interp::TcgOptions;
use cpu::kvm::host::{self, KvmFlavor};
use cpu::kvm::KvmAccelerator;
use cpu::{Accelerator, Clock, GuestMemory};

use crate::config::AccelKind;
use crate::error::MachineError;

/// The chosen accelerator and which kind it is.
pub struct ChosenAccel {
    /// The backend.
    pub accel: Arc<dyn Accelerator>,
    /// Its kind.
    pub kind: AccelKind,
}

impl std::fmt::Debug for ChosenAccel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChosenAccel({})", self.kind.name())
    }
}

fn create(
    kind: AccelKind,
    mem: &Arc<GuestMemory>,
    clock: &Arc<Clock>,
    cpus: u32,
    ioapic_pins: u32,
    tcg: TcgOptions,
) -> Result<Arc<dyn Accelerator>, MachineError> {
    match kind {
        AccelKind::Kvm => {
            let k =
                KvmAccelerator::new(mem, ioapic_pins).map_err(|source| MachineError::Accel {
                    accel: "kvm",
                    source,
                })?;
            if cpus as usize > k.max_vcpus() {
                return Err(MachineError::Config(format!(
                    "Number of SMP CPUs requested ({cpus}) exceeds the maximum CPUs supported by KVM ({})",
                    k.max_vcpus()
                )));
            }
            Ok(Arc::new(k))
        }
        AccelKind::Tcg => crate::interp_accel::create(mem, clock, cpus, tcg),
    }
}

/// Try each accelerator in order; print QEMU's fallback notice when one
/// fails and another follows. `tcg`: the software CPU's options.
pub fn choose(
    kinds: &[AccelKind],
    mem: &Arc<GuestMemory>,
    clock: &Arc<Clock>,
    cpus: u32,
    ioapic_pins: u32,
    tcg: TcgOptions,
    prog: &str,
) -> Result<ChosenAccel, MachineError> {
    let mut last = None;
    for (i, kind) in kinds.iter().enumerate() {
        match create(*kind, mem, clock, cpus, ioapic_pins, tcg) {
            Ok(accel) => {
                if *kind == AccelKind::Kvm && host::flavor() == KvmFlavor::Pvm {
                    eprintln!("{prog}: {}", host::PVM_NOTICE);
                }
                return Ok(ChosenAccel { accel, kind: *kind });
            }
            Err(e) => {
                if let Some(next) = kinds.get(i + 1) {
                    eprintln!("{prog}: {e}");
                    eprintln!("{prog}: falling back to {}", next.name());
                }
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| MachineError::NoAccelerator("no accelerator found".into())))
}
