//! The VMM's seccomp sandbox, on by default as in Cloud Hypervisor: every
//! thread Kindling starts installs the allowlist filter of its kind
//! ([`ThreadKind`]) before it touches guest or client input, and a call
//! outside the list ends the VM with one line naming the call.
//!
//! The filters are compiled with rust-vmm's `seccompiler` (the crate
//! Firecracker and Cloud Hypervisor use). A denied call is
//! `SECCOMP_RET_TRAP`: the kernel sends SIGSYS to the thread, and the
//! handler in `sigsys` writes the call's name and number and exits. TRAP
//! rather than `KILL_PROCESS` because a killed process can say nothing: the
//! user would see a bare "Bad system call" from the shell and have to dig
//! the number out of the audit log.
//!
//! QEMU's `-sandbox on|off[,obsolete=..,elevateprivileges=..,spawn=..,
//! resourcecontrol=..]` is accepted. QEMU's filter is a denylist that those
//! sub-options widen or narrow; Kindling's filters are allowlists that
//! never allow obsolete calls, set*id, fork/exec or scheduler and resource
//! limit changes, so `deny` (and `children`) is what they already do and
//! `allow` changes nothing: Kindling itself never needs those calls.

mod filters;
mod names;
mod sigsys;

use std::sync::OnceLock;

pub use filters::ThreadKind;

/// A QEMU `-sandbox` sub-option value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// QEMU's default for the sub-option.
    #[default]
    Default,
    /// `allow`.
    Allow,
    /// `deny`.
    Deny,
    /// `children` (`elevateprivileges` only).
    Children,
}

/// The `-sandbox` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxConfig {
    /// `on` (the default) or `off`.
    pub enabled: bool,
    /// `obsolete=`.
    pub obsolete: Policy,
    /// `elevateprivileges=`.
    pub elevate_privileges: Policy,
    /// `spawn=`.
    pub spawn: Policy,
    /// `resourcecontrol=`.
    pub resource_control: Policy,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            enabled: true,
            obsolete: Policy::Default,
            elevate_privileges: Policy::Default,
            spawn: Policy::Default,
            resource_control: Policy::Default,
        }
    }
}

/// Why a filter could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The filter did not compile (a bug in the rule tables).
    #[error("cannot build the {0:?} seccomp filter: {1}")]
    Build(ThreadKind, String),
    /// The kernel refused the filter.
    #[error("cannot install the {0:?} seccomp filter: {1}")]
    Install(ThreadKind, String),
    /// The SIGSYS handler could not be installed.
    #[error("cannot install the SIGSYS handler: {0}")]
    Handler(std::io::Error),
}

static CONFIG: OnceLock<SandboxConfig> = OnceLock::new();

/// Set the process's sandbox configuration and install the SIGSYS handler;
/// call once from the main thread before any other thread starts.
pub fn init(cfg: SandboxConfig) -> Result<(), SandboxError> {
    let cfg = *CONFIG.get_or_init(|| cfg);
    if cfg.enabled {
        sigsys::install().map_err(SandboxError::Handler)?;
    }
    Ok(())
}

/// True once [`init`] enabled the sandbox.
pub fn enabled() -> bool {
    CONFIG.get().is_some_and(|c| c.enabled)
}

/// Install the calling thread's filter (nothing with `-sandbox off` or
/// before [`init`]). Filters stack and are inherited: a thread started
/// later from this one keeps this filter under its own.
pub fn enter(kind: ThreadKind) -> Result<(), SandboxError> {
    if !enabled() {
        return Ok(());
    }
    let prog = filters::compile(kind)?;
    let open_denial = filters::compile_open_denial(kind)?;
    sigsys::set_thread_kind(kind.label());
    // The open-denial filter first: installing a filter is itself a
    // prctl, which the allowlist no longer permits once it is in place.
    for p in open_denial.iter().chain(std::iter::once(&prog)) {
        seccompiler::apply_filter(p).map_err(|e| SandboxError::Install(kind, e.to_string()))?;
    }
    selftest(kind);
    Ok(())
}

/// Install the thread's filter, or end the process with the reason: a
/// thread that cannot be confined must not go on unconfined.
pub fn enter_or_exit(kind: ThreadKind) {
    if let Err(e) = enter(kind) {
        let prog = std::env::args().next().unwrap_or_else(|| "kindling".into());
        eprintln!("{prog}: {e}");
        std::process::exit(1);
    }
}

/// The documented check hook: with `KINDLING_SANDBOX_SELFTEST=vcpu` a vCPU
/// thread makes a call no filter allows (`getpgid`) just after its filter
/// is installed, so tests can see the sandbox end the VM with the naming
/// line. It only ever asks the kernel for a process group id.
fn selftest(kind: ThreadKind) {
    if !matches!(kind, ThreadKind::Vcpu { .. }) {
        return;
    }
    if std::env::var_os("KINDLING_SANDBOX_SELFTEST").is_some_and(|v| v == "vcpu") {
        // SAFETY: getpgid(0) only reads the caller's process group id.
        unsafe { libc::syscall(libc::SYS_getpgid, 0) };
    }
}
