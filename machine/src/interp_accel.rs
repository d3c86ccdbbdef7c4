//! The software CPU as an accelerator (`-accel tcg`).

use std::sync::Arc;

use cpu::{Accelerator, Clock, GuestMemory};

use crate::error::MachineError;

/// Create the interpreter accelerator.
pub fn create(
    _mem: &Arc<GuestMemory>,
    _clock: &Arc<Clock>,
    _cpus: u32,
) -> Result<Arc<dyn Accelerator>, MachineError> {
    Err(MachineError::NoAccelerator(
        "-accel tcg: Kindling's software CPU is not built yet; use -accel kvm".into(),
    ))
}
