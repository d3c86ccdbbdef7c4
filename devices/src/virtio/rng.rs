//! virtio-rng: fills the driver's buffers from the host's getrandom(2).

use cpu::GuestMemory;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::Bytes;

use super::{DeviceError, VirtioDevice};

/// The entropy device.
#[derive(Debug, Default)]
pub struct Rng;

fn getrandom(buf: &mut [u8]) -> bool {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: writing into the unfilled tail of a valid buffer.
        let n = unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, 0) };
        if n <= 0 {
            return false;
        }
        done += n as usize;
    }
    true
}

impl VirtioDevice for Rng {
    fn device_type(&self) -> u32 {
        4
    }

    fn name(&self) -> &str {
        "rng"
    }

    fn features(&self) -> u64 {
        0
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[256]
    }

    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn process_queue(
        &mut self,
        _index: usize,
        queue: &mut Queue,
        mem: &GuestMemory,
    ) -> Result<bool, DeviceError> {
        let mut used = false;
        let chains: Vec<_> = queue
            .iter(mem)
            .map_err(|e| DeviceError::BadChain(e.to_string()))?
            .collect();
        for chain in chains {
            let head = chain.head_index();
            let mut written = 0u32;
            for d in chain {
                if !d.is_write_only() {
                    return Err(DeviceError::BadChain(
                        "read-only buffer on the rng queue".into(),
                    ));
                }
                let mut buf = vec![0u8; d.len().min(1 << 16) as usize];
                if !getrandom(&mut buf) {
                    break;
                }
                mem.write_slice(&buf, d.addr())
                    .map_err(|e| DeviceError::BadChain(e.to_string()))?;
                written += buf.len() as u32;
            }
            queue
                .add_used(mem, head, written)
                .map_err(|e| DeviceError::BadChain(e.to_string()))?;
            used = true;
        }
        Ok(used)
    }
}
