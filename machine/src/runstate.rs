//! QEMU's run states and the reasons a machine shuts down or resets.

/// QEMU's `RunState` values that a microvm can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Created, not started yet (`-S`).
    Prelaunch,
    /// vCPUs running.
    Running,
    /// Stopped by the monitor.
    Paused,
    /// The guest shut down and `-no-shutdown` keeps the process alive.
    Shutdown,
    /// A vCPU hit an error the backend can't handle.
    InternalError,
}

impl RunState {
    /// QEMU's spelling in `query-status`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Prelaunch => "prelaunch",
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Shutdown => "shutdown",
            RunState::InternalError => "internal-error",
        }
    }
}

/// QEMU's `ShutdownCause`, for the SHUTDOWN and RESET events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownCause {
    /// The monitor's `quit`.
    HostQmpQuit,
    /// The monitor's `system_reset`.
    HostQmpSystemReset,
    /// SIGINT, SIGTERM, SIGHUP.
    HostSignal,
    /// The console's Ctrl-A X.
    HostUi,
    /// The guest powered off (ACPI S5).
    GuestShutdown,
    /// The guest reset (triple fault, ACPI reset register).
    GuestReset,
    /// The guest panicked.
    GuestPanic,
    /// A host-side error.
    HostError,
}

impl ShutdownCause {
    /// QEMU's spelling in event data.
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownCause::HostQmpQuit => "host-qmp-quit",
            ShutdownCause::HostQmpSystemReset => "host-qmp-system-reset",
            ShutdownCause::HostSignal => "host-signal",
            ShutdownCause::HostUi => "host-ui",
            ShutdownCause::GuestShutdown => "guest-shutdown",
            ShutdownCause::GuestReset => "guest-reset",
            ShutdownCause::GuestPanic => "guest-panic",
            ShutdownCause::HostError => "host-error",
        }
    }

    /// Whether the guest caused it (the `guest` member of the event).
    pub fn is_guest(self) -> bool {
        matches!(
            self,
            ShutdownCause::GuestShutdown | ShutdownCause::GuestReset | ShutdownCause::GuestPanic
        )
    }
}

/// Something the board's control loop must act on.
#[derive(Debug)]
pub enum BoardEvent {
    /// The guest asked for a reset (triple fault, ACPI reset register).
    GuestReset,
    /// The guest powered off (ACPI sleep control S5).
    GuestPowerOff,
    /// `isa-debug-exit` was written: exit with this status.
    DebugExit(i32),
    /// A termination signal arrived.
    Signal {
        /// Signal number.
        signo: i32,
        /// Sender's pid (0 if unknown).
        pid: i32,
    },
    /// Ctrl-A X on the console.
    ConsoleQuit,
    /// A vCPU stopped with an error.
    VcpuFailed {
        /// Which vCPU.
        vcpu: u32,
        /// What happened.
        error: String,
    },
    /// Monitor request (quit, reset, stop, cont, powerdown); `done` is
    /// signalled once the board has carried it out.
    Monitor {
        /// What to do.
        request: MonitorRequest,
        /// Completion signal.
        done: Option<std::sync::mpsc::SyncSender<()>>,
    },
}

/// What a monitor asks the board to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorRequest {
    /// `quit`.
    Quit,
    /// `system_reset`.
    Reset,
    /// `system_powerdown`.
    Powerdown,
    /// `stop`.
    Stop,
    /// `cont`.
    Cont,
    /// `inject-nmi`.
    Nmi,
    /// Pause briefly so every vCPU publishes its registers, then resume.
    Snapshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_spellings() {
        assert_eq!(RunState::Prelaunch.as_str(), "prelaunch");
        assert_eq!(RunState::InternalError.as_str(), "internal-error");
        assert_eq!(ShutdownCause::HostQmpQuit.as_str(), "host-qmp-quit");
        assert!(ShutdownCause::GuestReset.is_guest());
        assert!(!ShutdownCause::HostSignal.is_guest());
    }
}
