//! Errors building or running the board.

use thiserror::Error;

/// Why the machine could not be built or stopped abnormally.
#[derive(Debug, Error)]
pub enum MachineError {
    /// Guest RAM could not be allocated.
    #[error("cannot set up guest memory 'microvm.ram': {0}")]
    Memory(String),
    /// The accelerator could not be set up.
    #[error("-accel {accel}: {source}")]
    Accel {
        /// `kvm` or `tcg`.
        accel: &'static str,
        /// What failed.
        #[source]
        source: cpu::CpuError,
    },
    /// None of the requested accelerators works.
    #[error("{0}")]
    NoAccelerator(String),
    /// A vCPU failed.
    #[error(transparent)]
    Cpu(#[from] cpu::CpuError),
    /// Kernel loading or boot structures failed.
    #[error("{0}")]
    Firmware(String),
    /// A device could not be placed on a bus.
    #[error("device setup: {0}")]
    Bus(#[from] devices::bus::BusError),
    /// A host resource (file, thread, terminal) failed.
    #[error("{what}: {source}")]
    Host {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration asks for something impossible.
    #[error("{0}")]
    Config(String),
}

impl MachineError {
    /// Wrap a host I/O error with what was being done.
    pub fn host(what: impl Into<String>, source: std::io::Error) -> Self {
        MachineError::Host {
            what: what.into(),
            source,
        }
    }
}
