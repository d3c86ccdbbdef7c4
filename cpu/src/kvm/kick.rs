//! Making a vCPU thread leave `KVM_RUN`.
//!
//! The kicker sets a flag and sends the vCPU thread a real-time signal. The
//! signal handler runs on the vCPU thread and sets `immediate_exit` in that
//! thread's `kvm_run`, so a kick that lands just before `KVM_RUN` is entered
//! is not lost (KVM returns EINTR at once).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

use kvm_bindings::kvm_run;

use crate::VcpuKick;

thread_local! {
    /// The `kvm_run` of the vCPU this thread runs, for the signal handler.
    static KVM_RUN: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

static HANDLER: Once = Once::new();

/// The signal used for kicks (SIGRTMIN, as Firecracker and Cloud Hypervisor).
pub fn kick_signal() -> libc::c_int {
    vmm_sys_util::signal::SIGRTMIN()
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    KVM_RUN.with(|p| {
        let run = p.get();
        if !run.is_null() {
            // SAFETY: `run` is this thread's mapped kvm_run page, registered by
            // `register_run_page` and cleared before it is unmapped; a volatile
            // byte store is async-signal-safe.
            unsafe { std::ptr::addr_of_mut!((*run).immediate_exit).write_volatile(1) };
        }
    });
}

/// Install the kick signal handler once per process.
pub fn install_handler() -> std::io::Result<()> {
    let mut result = Ok(());
    HANDLER.call_once(|| {
        if let Err(e) = vmm_sys_util::signal::register_signal_handler(kick_signal(), on_kick) {
            result = Err(std::io::Error::from_raw_os_error(e.errno()));
        }
    });
    result
}

/// Tell the handler which `kvm_run` page belongs to this thread (null to forget).
pub fn register_run_page(run: *mut kvm_run) {
    KVM_RUN.with(|p| p.set(run));
}

/// The cross-thread half: flag + signal.
#[derive(Debug, Default)]
pub struct KvmKick {
    /// Set by `kick`, cleared by the vCPU when it returns `Kicked`.
    pub pending: AtomicBool,
    /// `pthread_t` of the vCPU thread while it is bound (None otherwise).
    /// Held locked while signalling so the thread cannot unbind and exit
    /// in between.
    thread: Mutex<Option<libc::pthread_t>>,
}

impl KvmKick {
    /// Record the calling thread as the vCPU thread.
    pub fn bind_current_thread(&self) {
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        if let Ok(mut t) = self.thread.lock() {
            *t = Some(me);
        }
    }

    /// Forget the vCPU thread (before it exits).
    pub fn unbind(&self) {
        if let Ok(mut t) = self.thread.lock() {
            *t = None;
        }
    }
}

impl VcpuKick for KvmKick {
    fn kick(&self) {
        self.pending.store(true, Ordering::SeqCst);
        if let Ok(t) = self.thread.lock() {
            if let Some(t) = *t {
                // SAFETY: `t` is a live thread: it unbinds (under this lock)
                // before exiting. The handler is installed before any vCPU
                // is created.
                unsafe { libc::pthread_kill(t, kick_signal()) };
            }
        }
    }
}
