//! virtio-console with one port and no multiport support (QEMU's
//! `virtio-serial-device` + `virtconsole`): the guest's `/dev/hvc0`.
//!
//! Queue 0 (receiveq) carries host input to the guest: bytes queued with
//! [`ConsoleInput::push`] fill the driver's buffers when the transport is
//! asked to process the queue. Queue 1 (transmitq) carries guest output to
//! the character backend.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};

use cpu::GuestMemory;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};

use super::{DeviceError, VirtioDevice};

/// Largest amount of pending input kept (older bytes are kept, newer
/// ones dropped, as a full UART FIFO would).
const INPUT_LIMIT: usize = 64 << 10;
/// Largest piece of a transmit buffer moved at once.
const CHUNK: usize = 4096;

/// Input waiting for the guest's receive buffers, shared with the thread
/// that reads the backend.
#[derive(Debug, Default)]
pub struct ConsoleInput(Mutex<VecDeque<u8>>);

impl ConsoleInput {
    /// Queue host bytes for the guest; returns how many were taken.
    pub fn push(&self, bytes: &[u8]) -> usize {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = bytes.len().min(INPUT_LIMIT.saturating_sub(q.len()));
        q.extend(&bytes[..n]);
        n
    }

    fn is_empty(&self) -> bool {
        self.0.lock().map(|q| q.is_empty()).unwrap_or(true)
    }
}

/// The console device.
pub struct Console {
    out: Box<dyn Write + Send>,
    input: Arc<ConsoleInput>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").finish_non_exhaustive()
    }
}

impl Console {
    /// A console writing guest output to `out`; host input arrives through
    /// the returned [`ConsoleInput`].
    pub fn new(out: Box<dyn Write + Send>) -> (Self, Arc<ConsoleInput>) {
        let input = Arc::new(ConsoleInput::default());
        (
            Console {
                out,
                input: input.clone(),
            },
            input,
        )
    }

    fn bad(e: impl std::fmt::Display) -> DeviceError {
        DeviceError::BadChain(e.to_string())
    }

    /// Fill receive buffers from pending input.
    fn receive(&mut self, queue: &mut Queue, mem: &GuestMemory) -> Result<bool, DeviceError> {
        let mut used = false;
        while !self.input.is_empty() {
            let Some(chain) = queue.pop_descriptor_chain(mem) else {
                break;
            };
            let head = chain.head_index();
            let mut written = 0u32;
            for d in chain {
                if !d.is_write_only() {
                    return Err(Self::bad("read-only buffer on the receive queue"));
                }
                let bytes: Vec<u8> = {
                    let mut q = self.input.0.lock().unwrap_or_else(|p| p.into_inner());
                    let n = (d.len() as usize).min(q.len());
                    q.drain(..n).collect()
                };
                mem.write_slice(&bytes, d.addr()).map_err(Self::bad)?;
                written += bytes.len() as u32;
                if self.input.is_empty() {
                    break;
                }
            }
            queue.add_used(mem, head, written).map_err(Self::bad)?;
            used = true;
        }
        Ok(used)
    }

    /// Send transmit buffers to the backend.
    fn transmit(&mut self, queue: &mut Queue, mem: &GuestMemory) -> Result<bool, DeviceError> {
        let mut used = false;
        let mut buf = vec![0u8; CHUNK];
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            for d in chain {
                if d.is_write_only() {
                    return Err(Self::bad("write-only buffer on the transmit queue"));
                }
                let mut done = 0u64;
                while done < u64::from(d.len()) {
                    let n = (u64::from(d.len()) - done).min(CHUNK as u64) as usize;
                    mem.read_slice(&mut buf[..n], GuestAddress(d.addr().0 + done))
                        .map_err(Self::bad)?;
                    // A closed backend must not stop the guest.
                    let _ = self.out.write_all(&buf[..n]);
                    done += n as u64;
                }
            }
            let _ = self.out.flush();
            queue.add_used(mem, head, 0).map_err(Self::bad)?;
            used = true;
        }
        Ok(used)
    }
}

impl VirtioDevice for Console {
    fn device_type(&self) -> u32 {
        3
    }

    fn name(&self) -> &str {
        "console"
    }

    fn features(&self) -> u64 {
        0
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[128, 128]
    }

    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        // cols, rows, max_nr_ports, emerg_wr: none of their features offered.
        data.fill(0);
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
