//! The software CPU as an accelerator (`-accel tcg`).

use std::sync::Arc;

use cpu::interp::InterpAccelerator;
use cpu::{Accelerator, Clock, GuestMemory};

use crate::error::MachineError;

/// Create the interpreter accelerator.
pub fn create(
    mem: &Arc<GuestMemory>,
    clock: &Arc<Clock>,
    _cpus: u32,
) -> Result<Arc<dyn Accelerator>, MachineError> {
    Ok(Arc::new(InterpAccelerator::new(mem.clone(), clock.clone())))
}
