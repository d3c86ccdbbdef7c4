//! virtio-net on a host backend (`-device virtio-net-device,netdev=ID`).
//!
//! Queue 1 (transmitq): each chain is a 12-byte `virtio_net_hdr_v1` and an
//! Ethernet frame, sent to the backend. Queue 0 (receiveq): frames from the
//! backend's receiving thread wait in a bounded queue ([`NetInput`]) until
//! the driver has posted buffers. Features: MAC and link STATUS only — no
//! checksum or segmentation offloads, so every frame is complete.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use cpu::GuestMemory;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress};

use super::{DeviceError, VirtioDevice};

/// VIRTIO_NET_F_MAC.
const F_MAC: u64 = 1 << 5;
/// VIRTIO_NET_F_STATUS.
const F_STATUS: u64 = 1 << 16;
/// VIRTIO_NET_S_LINK_UP.
const LINK_UP: u16 = 1;
/// Size of `virtio_net_hdr_v1` (a VERSION_1 device always uses it).
const HDR: usize = 12;
/// Largest frame accepted from the guest (64 KiB, as with GSO off plus room).
const MAX_FRAME: usize = 65_550;
/// Frames kept waiting for receive buffers before new ones are dropped.
const RX_BACKLOG: usize = 256;

/// Where transmitted frames go.
pub trait NetBackend: Send {
    /// Send one Ethernet frame (errors drop the frame, as a real NIC would).
    fn send(&mut self, frame: &[u8]);
}

/// Frames received from the backend, waiting for the guest's buffers.
#[derive(Debug, Default)]
pub struct NetInput(Mutex<VecDeque<Vec<u8>>>);

impl NetInput {
    /// Queue one received frame; false if the backlog is full (dropped).
    pub fn push(&self, frame: Vec<u8>) -> bool {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= RX_BACKLOG {
            return false;
        }
        q.push_back(frame);
        true
    }

    fn pop(&self) -> Option<Vec<u8>> {
        self.0.lock().ok()?.pop_front()
    }

    fn unpop(&self, frame: Vec<u8>) {
        if let Ok(mut q) = self.0.lock() {
            q.push_front(frame);
        }
    }
}

/// The network device.
pub struct Net {
    mac: [u8; 6],
    backend: Box<dyn NetBackend>,
    input: Arc<NetInput>,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net")
            .field("mac", &self.mac)
            .finish_non_exhaustive()
    }
}

impl Net {
    /// A NIC with address `mac` sending to `backend`; received frames are
    /// handed in through the returned [`NetInput`].
    pub fn new(mac: [u8; 6], backend: Box<dyn NetBackend>) -> (Self, Arc<NetInput>) {
        let input = Arc::new(NetInput::default());
        (
            Net {
                mac,
                backend,
                input: input.clone(),
            },
            input,
        )
    }

    fn bad(e: impl std::fmt::Display) -> DeviceError {
        DeviceError::BadChain(e.to_string())
    }

    /// Copy waiting frames into posted receive buffers.
    fn receive(&mut self, queue: &mut Queue, mem: &GuestMemory) -> Result<bool, DeviceError> {
        let mut used = false;
        while let Some(frame) = self.input.pop() {
            let Some(chain) = queue.pop_descriptor_chain(mem) else {
                self.input.unpop(frame);
                break;
            };
            let head = chain.head_index();
            // Header: no flags, no GSO, num_buffers = 1.
            let mut hdr = [0u8; HDR];
            hdr[10] = 1;
            let mut packet = Vec::with_capacity(HDR + frame.len());
            packet.extend_from_slice(&hdr);
            packet.extend_from_slice(&frame);
            let descs: Vec<_> = chain.collect();
            if descs.iter().any(|d| !d.is_write_only()) {
                return Err(Self::bad("read-only buffer on the receive queue"));
            }
            let room: u64 = descs.iter().map(|d| u64::from(d.len())).sum();
            if room < packet.len() as u64 {
                // As QEMU without mergeable buffers: the frame is dropped
                // and the buffer stays available for the next one.
                log::warn!(
                    "virtio-net: receive buffer of {room} bytes too small for a {}-byte frame",
                    frame.len()
                );
                queue.go_to_previous_position();
                continue;
            }
            let mut done = 0usize;
            for d in descs {
                let n = (d.len() as usize).min(packet.len() - done);
                mem.write_slice(&packet[done..done + n], d.addr())
                    .map_err(Self::bad)?;
                done += n;
                if done == packet.len() {
                    break;
                }
            }
            queue.add_used(mem, head, done as u32).map_err(Self::bad)?;
            used = true;
        }
        Ok(used)
    }

    /// Send every posted frame to the backend.
    fn transmit(&mut self, queue: &mut Queue, mem: &GuestMemory) -> Result<bool, DeviceError> {
        let mut used = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let mut packet = Vec::new();
            for d in chain {
                if d.is_write_only() {
                    return Err(Self::bad("write-only buffer on the transmit queue"));
                }
                let n = d.len() as usize;
                if packet.len() + n > HDR + MAX_FRAME {
                    return Err(Self::bad("oversized frame on the transmit queue"));
                }
                let at = packet.len();
                packet.resize(at + n, 0);
                mem.read_slice(&mut packet[at..], GuestAddress(d.addr().0))
                    .map_err(Self::bad)?;
            }
            if packet.len() > HDR {
                self.backend.send(&packet[HDR..]);
            }
            queue.add_used(mem, head, 0).map_err(Self::bad)?;
            used = true;
        }
        Ok(used)
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        1
    }

    fn name(&self) -> &str {
        "net"
    }

    fn features(&self) -> u64 {
        F_MAC | F_STATUS
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[256, 256]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        // mac[6], status (u16).
        let mut cfg = [0u8; 8];
        cfg[..6].copy_from_slice(&self.mac);
        cfg[6..8].copy_from_slice(&LINK_UP.to_le_bytes());
        for (i, b) in data.iter_mut().enumerate() {
            *b = cfg.get(offset as usize + i).copied().unwrap_or(0);
        }
    }

    fn process_queue(
        &mut self,
        index: usize,
        queue: &mut Queue,
        mem: &GuestMemory,
    ) -> Result<bool, DeviceError> {
        match index {
            0 => self.receive(queue, mem),
            _ => self.transmit(queue, mem),
        }
    }
}

/// Parse `52:54:00:12:34:56`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in mac.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
#[path = "net_tests.rs"]
mod net_tests;

#[cfg(test)]
mod tests {
    use super::parse_mac;

    #[test]
    fn macs_in_qemus_spelling() {
        assert_eq!(
            parse_mac("52:54:00:12:34:56"),
            Some([0x52, 0x54, 0, 0x12, 0x34, 0x56])
        );
        assert_eq!(parse_mac("52:54:00:12:34"), None);
        assert_eq!(parse_mac("52:54:00:12:34:56:78"), None);
        assert_eq!(parse_mac("52-54-00-12-34-56"), None);
        assert_eq!(parse_mac("5:54:00:12:34:56"), None);
    }
}
