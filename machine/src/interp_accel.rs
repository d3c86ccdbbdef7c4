//! The software CPU as an accelerator (`-accel tcg`).

use std::sync::Arc;

use cpu::interp::{InterpAccelerator, TcgOptions};
use cpu::{Accelerator, Clock, GuestMemory};

use crate::error::MachineError;

/// Create the interpreter accelerator with the `-accel tcg` options.
pub fn create(
    mem: &Arc<GuestMemory>,
    clock: &Arc<Clock>,
    _cpus: u32,
    options: TcgOptions,
) -> Result<Arc<dyn Accelerator>, MachineError> {
    Ok(Arc::new(InterpAccelerator::with_options(
        mem.clone(),
        clock.clone(),
        options,
    )))
}
