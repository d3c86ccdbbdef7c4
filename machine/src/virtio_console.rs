//! The host side of virtio consoles: which backend each one uses, and how
//! host input reaches the guest's receive queue.

use std::sync::{Arc, Mutex};

use devices::virtio::console::ConsoleInput;
use devices::virtio::mmio::MmioTransport;

use crate::config::CharBackend;

/// One `virtconsole` port on its transport.
#[derive(Clone)]
pub struct VirtioConsolePort {
    /// Pending host input.
    pub input: Arc<ConsoleInput>,
    /// The transport, to process the receive queue when input arrives.
    pub transport: Arc<Mutex<MmioTransport>>,
    /// The port's backend (`None`: no `virtconsole` attached).
    pub backend: Option<CharBackend>,
}

impl std::fmt::Debug for VirtioConsolePort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtioConsolePort")
            .field("backend", &self.backend)
            .finish()
    }
}

impl VirtioConsolePort {
    /// Hand host bytes to the guest; returns how many were taken (the rest
    /// must be offered again later).
    pub fn feed(&self, bytes: &[u8]) -> usize {
        let n = self.input.push(bytes);
        // Fill whatever receive buffers the driver has posted; the rest
        // waits for the driver's next notification.
        if let Ok(mut t) = self.transport.lock() {
            t.process(0);
        }
        n
    }
}

/// The console, among `ports`, that reads the process's stdin.
pub fn stdio_port(ports: &[VirtioConsolePort]) -> Option<VirtioConsolePort> {
    ports
        .iter()
        .find(|p| p.backend == Some(CharBackend::Stdio))
        .cloned()
}
