//! The microvm board: builds QEMU's microvm machine from a
//! [`config::MachineConfig`], runs its vCPUs on the chosen accelerator and
//! serves its control plane.

pub mod accel;
pub mod block_info;
pub mod board;
pub mod boot;
pub mod chardev;
pub mod config;
pub mod console_tap;
pub mod control;
pub mod error;
pub mod events;
pub mod hmp;
pub mod interp_accel;
pub mod io;
pub mod memdump;
pub mod memory;
pub mod milestones;
pub mod monitor;
pub mod mux;
pub mod platform;
pub mod platform_devices;
pub mod process;
pub mod reset_line;
pub mod runstate;
pub mod sandbox;
pub mod signals;
pub mod terminal;
pub mod timers;
pub mod vcpu_thread;
pub mod virtio_console;

/// The QEMU release whose command line and QMP behaviour Kindling follows.
pub const QEMU_COMPAT_VERSION: &str = "10.0.2";
