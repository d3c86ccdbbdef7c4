//! virtio over MMIO (the modern, version 2 register layout) and the
//! devices behind it.
//!
//! The transport ([`mmio::MmioTransport`]) owns the queues and the
//! interrupt; a device ([`VirtioDevice`]) only sees descriptor chains.
//! QueueNotify is handled synchronously on the vCPU thread that wrote it.

pub mod blk;
pub mod console;
mod dma_report;
pub mod mmio;
pub mod net;
pub mod qcow2;
pub mod rng;
pub mod slirp;
pub mod tap;

#[cfg(test)]
mod tests;

use cpu::GuestMemory;
use virtio_queue::Queue;

/// Feature bit 32: VIRTIO_F_VERSION_1 (modern device).
pub const F_VERSION_1: u64 = 1 << 32;

/// Why a device stopped processing a queue.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    /// The driver posted a descriptor chain the device cannot use
    /// (addresses outside RAM, wrong directions, too short, loops).
    #[error("malformed descriptor chain: {0}")]
    BadChain(String),
}

/// A virtio device model.
pub trait VirtioDevice: Send {
    /// Virtio device type (2 = block, 4 = entropy, ...).
    fn device_type(&self) -> u32;
    /// Short name for logs.
    fn name(&self) -> &str;
    /// Feature bits offered (include [`F_VERSION_1`]).
    fn features(&self) -> u64;
    /// Maximum size of each queue.
    fn queue_max_sizes(&self) -> &[u16];
    /// Read the device-specific configuration space.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Write the device-specific configuration space.
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}
    /// Handle buffers the driver made available on queue `index`; returns
    /// whether used buffers were added (so the driver must be interrupted).
    fn process_queue(
        &mut self,
        index: usize,
        queue: &mut Queue,
        mem: &GuestMemory,
    ) -> Result<bool, DeviceError>;
    /// The driver reset the device.
    fn reset(&mut self) {}
}
