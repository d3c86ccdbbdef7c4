//! virtio-blk on a raw image file: read, write, flush (fdatasync before
//! completion), get-id; read-only drives refuse writes with IOERR; image
//! files are locked against a second writer as QEMU does.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use cpu::GuestMemory;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress};

use super::{DeviceError, VirtioDevice};

const SECTOR: u64 = 512;
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_GET_ID: u32 = 8;
const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;
/// VIRTIO_BLK_F_SEG_MAX.
const F_SEG_MAX: u64 = 1 << 2;
/// VIRTIO_BLK_F_RO.
const F_RO: u64 = 1 << 5;
/// VIRTIO_BLK_F_FLUSH.
const F_FLUSH: u64 = 1 << 9;
const QUEUE_SIZE: u16 = 256;

/// Why an image could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// open(2) failed.
    #[error("Could not open '{path}': {source}")]
    Open {
        /// The image.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the lock.
    #[error("Failed to get \"{kind}\" lock\nIs another process using the image [{path}]?")]
    Locked {
        /// "write" or "shared".
        kind: &'static str,
        /// The image.
        path: String,
    },
}

/// A virtio block device on an image file.
pub struct Block {
    file: File,
    capacity_sectors: u64,
    read_only: bool,
    serial: [u8; 20],
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("sectors", &self.capacity_sectors)
            .field("read_only", &self.read_only)
            .finish()
    }
}

impl Block {
    /// Open `path` (raw), locking it: exclusively for writing, shared for
    /// read-only drives.
    pub fn open(path: &Path, read_only: bool, serial: &str) -> Result<Self, BlockError> {
        let shown = path.display().to_string();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(|source| BlockError::Open {
                path: shown.clone(),
                source,
            })?;
        let op = if read_only {
            libc::LOCK_SH
        } else {
            libc::LOCK_EX
        };
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) } != 0 {
            return Err(BlockError::Locked {
                kind: if read_only { "shared" } else { "write" },
                path: shown,
            });
        }
        let len = file
            .metadata()
            .map_err(|source| BlockError::Open {
                path: shown.clone(),
                source,
            })?
            .len();
        let mut s = [0u8; 20];
        for (d, b) in s.iter_mut().zip(serial.bytes()) {
            *d = b;
        }
        Ok(Block {
            file,
            capacity_sectors: len / SECTOR,
            read_only,
            serial: s,
        })
    }

    fn bad(e: impl std::fmt::Display) -> DeviceError {
        DeviceError::BadChain(e.to_string())
    }

    /// Serve one request; returns the bytes written to the driver's buffers.
    fn request(&mut self, descs: &[Descriptor], mem: &GuestMemory) -> Result<u32, DeviceError> {
        let (Some(first), Some(last)) = (descs.first(), descs.last()) else {
            return Err(Self::bad("empty chain"));
        };
        if descs.len() < 2 || first.is_write_only() || first.len() < 16 {
            return Err(Self::bad("request header missing or writable"));
        }
        if !last.is_write_only() || last.len() < 1 {
            return Err(Self::bad("status byte missing or read-only"));
        }
        let mut hdr = [0u8; 16];
        mem.read_slice(&mut hdr, first.addr()).map_err(Self::bad)?;
        let kind = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let sector = u64::from_le_bytes(hdr[8..16].try_into().unwrap_or([0; 8]));
        let data = &descs[1..descs.len() - 1];
        let status_addr = GuestAddress(last.addr().0 + u64::from(last.len()) - 1);
        let total: u64 = data.iter().map(|d| u64::from(d.len())).sum();
        let in_range = sector
            .checked_mul(SECTOR)
            .and_then(|o| o.checked_add(total))
            .is_some_and(|end| end <= self.capacity_sectors * SECTOR);
        let mut written = 0u32;
        let status = match kind {
            T_IN | T_OUT if !in_range => S_IOERR,
            T_IN => {
                let mut off = sector * SECTOR;
                let mut st = S_OK;
                for d in data {
                    if !d.is_write_only() {
                        return Err(Self::bad("read request into a read-only buffer"));
                    }
                    let mut buf = vec![0u8; d.len() as usize];
                    if self.file.read_exact_at(&mut buf, off).is_err() {
                        st = S_IOERR;
                        break;
                    }
                    mem.write_slice(&buf, d.addr()).map_err(Self::bad)?;
                    written += d.len();
                    off += u64::from(d.len());
                }
                st
            }
            T_OUT if self.read_only => S_IOERR,
            T_OUT => {
                let mut off = sector * SECTOR;
                let mut st = S_OK;
                for d in data {
                    if d.is_write_only() {
                        return Err(Self::bad("write request from a write-only buffer"));
                    }
                    let mut buf = vec![0u8; d.len() as usize];
                    mem.read_slice(&mut buf, d.addr()).map_err(Self::bad)?;
                    if self.file.write_all_at(&buf, off).is_err() {
                        st = S_IOERR;
                        break;
                    }
                    off += u64::from(d.len());
                }
                st
            }
            T_FLUSH => {
                if self.read_only || self.file.sync_data().is_ok() {
                    S_OK
                } else {
                    S_IOERR
                }
            }
            T_GET_ID => match data.first() {
                Some(d) if d.is_write_only() => {
                    let n = (d.len() as usize).min(self.serial.len());
                    mem.write_slice(&self.serial[..n], d.addr())
                        .map_err(Self::bad)?;
                    written += n as u32;
                    S_OK
                }
                _ => return Err(Self::bad("get-id without a writable buffer")),
            },
            _ => S_UNSUPP,
        };
        mem.write_obj(status, status_addr).map_err(Self::bad)?;
        Ok(written + 1)
    }
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        2
    }

    fn name(&self) -> &str {
        "blk"
    }

    fn features(&self) -> u64 {
        F_SEG_MAX | F_FLUSH | if self.read_only { F_RO } else { 0 }
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        // capacity (u64) at 0, size_max (u32) at 8, seg_max (u32) at 12.
        let mut cfg = [0u8; 16];
        cfg[..8].copy_from_slice(&self.capacity_sectors.to_le_bytes());
        cfg[12..16].copy_from_slice(&u32::from(QUEUE_SIZE - 2).to_le_bytes());
        for (i, b) in data.iter_mut().enumerate() {
            *b = cfg.get(offset as usize + i).copied().unwrap_or(0);
        }
    }

    fn process_queue(
        &mut self,
        _index: usize,
        queue: &mut Queue,
        mem: &GuestMemory,
    ) -> Result<bool, DeviceError> {
        let mut used = false;
        while let Some(chain) = queue.iter(mem).map_err(Self::bad)?.next() {
            let head = chain.head_index();
            let descs: Vec<Descriptor> = chain.collect();
            let len = self.request(&descs, mem)?;
            queue.add_used(mem, head, len).map_err(Self::bad)?;
            used = true;
        }
        Ok(used)
    }
}
