//! Errors a CPU backend reports to the board.

use thiserror::Error;

/// What can go wrong creating or running a vCPU.
#[derive(Debug, Error)]
pub enum CpuError {
    /// The backend cannot do this (e.g. MSI delivery on a backend with a userspace LAPIC).
    #[error("operation not supported by the {0} accelerator")]
    Unsupported(&'static str),
    /// `/dev/kvm` is missing or cannot be opened.
    #[error("Could not access KVM kernel module: {0}")]
    KvmUnavailable(String),
    /// A KVM ioctl failed.
    #[error("KVM: {what} failed: {source}")]
    Kvm {
        /// Which ioctl.
        what: &'static str,
        /// The errno it returned.
        #[source]
        source: std::io::Error,
    },
    /// The guest hit something the backend cannot emulate.
    #[error("vCPU {vcpu}: internal error: {reason}")]
    Internal {
        /// vCPU index.
        vcpu: u32,
        /// What happened, in one line.
        reason: String,
    },
}

impl CpuError {
    /// Wrap a KVM ioctl error.
    pub fn kvm(what: &'static str, e: impl Into<std::io::Error>) -> Self {
        CpuError::Kvm {
            what,
            source: e.into(),
        }
    }
}
