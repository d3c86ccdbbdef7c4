//! virtio-blk on a raw image file: read, write, flush (fdatasync before
//! completion), get-id, discard (hole punching) and write-zeroes; read-only
//! drives refuse every change with IOERR; image files are locked against a
//! second writer as QEMU does. Guest buffers are moved in bounded chunks,
//! so no descriptor length makes the VMM allocate more than a chunk.

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
const T_DISCARD: u32 = 11;
const T_WRITE_ZEROES: u32 = 13;
const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;
/// VIRTIO_BLK_F_SEG_MAX.
const F_SEG_MAX: u64 = 1 << 2;
/// VIRTIO_BLK_F_RO.
const F_RO: u64 = 1 << 5;
/// VIRTIO_BLK_F_FLUSH.
const F_FLUSH: u64 = 1 << 9;
/// VIRTIO_BLK_F_DISCARD.
const F_DISCARD: u64 = 1 << 13;
/// VIRTIO_BLK_F_WRITE_ZEROES.
const F_WRITE_ZEROES: u64 = 1 << 14;
/// Largest discard / write-zeroes segment, in sectors (the config's limit).
const MAX_RANGE_SECTORS: u32 = 0x3f_ffff;
/// Largest piece of a guest buffer moved at once.
const CHUNK: usize = 64 << 10;
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
                    if !self.read_into_guest(mem, d, off)? {
                        st = S_IOERR;
                        break;
                    }
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
                    if !self.write_from_guest(mem, d, off)? {
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
            T_DISCARD | T_WRITE_ZEROES if self.read_only => S_IOERR,
            T_DISCARD | T_WRITE_ZEROES => self.ranges(kind, data, mem)?,
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

impl Block {
    /// Copy image bytes at `off` into the guest buffer `d`, a chunk at a
    /// time; false on an I/O error.
    fn read_into_guest(
        &self,
        mem: &GuestMemory,
        d: &Descriptor,
        off: u64,
    ) -> Result<bool, DeviceError> {
        let mut buf = vec![0u8; CHUNK.min(d.len() as usize)];
        let mut done = 0u64;
        while done < u64::from(d.len()) {
            let n = (u64::from(d.len()) - done).min(CHUNK as u64) as usize;
            if self.file.read_exact_at(&mut buf[..n], off + done).is_err() {
                return Ok(false);
            }
            mem.write_slice(&buf[..n], GuestAddress(d.addr().0 + done))
                .map_err(Self::bad)?;
            done += n as u64;
        }
        Ok(true)
    }

    /// Copy the guest buffer `d` to the image at `off`, a chunk at a time.
    fn write_from_guest(
        &self,
        mem: &GuestMemory,
        d: &Descriptor,
        off: u64,
    ) -> Result<bool, DeviceError> {
        let mut buf = vec![0u8; CHUNK.min(d.len() as usize)];
        let mut done = 0u64;
        while done < u64::from(d.len()) {
            let n = (u64::from(d.len()) - done).min(CHUNK as u64) as usize;
            mem.read_slice(&mut buf[..n], GuestAddress(d.addr().0 + done))
                .map_err(Self::bad)?;
            if self.file.write_all_at(&buf[..n], off + done).is_err() {
                return Ok(false);
            }
            done += n as u64;
        }
        Ok(true)
    }

    /// DISCARD / WRITE_ZEROES: the data buffers hold 16-byte segments
    /// (sector, sector count, flags; flag bit 0 = may unmap).
    fn ranges(&self, kind: u32, data: &[Descriptor], mem: &GuestMemory) -> Result<u8, DeviceError> {
        for d in data {
            if d.is_write_only() || d.len() % 16 != 0 {
                return Err(Self::bad("discard/write-zeroes segments malformed"));
            }
            for k in 0..u64::from(d.len() / 16) {
                let mut seg = [0u8; 16];
                mem.read_slice(&mut seg, GuestAddress(d.addr().0 + k * 16))
                    .map_err(Self::bad)?;
                let sector = u64::from_le_bytes(seg[..8].try_into().unwrap_or([0; 8]));
                let count = u32::from_le_bytes(seg[8..12].try_into().unwrap_or([0; 4]));
                let flags = u32::from_le_bytes(seg[12..16].try_into().unwrap_or([0; 4]));
                let end = sector.checked_add(u64::from(count));
                if count > MAX_RANGE_SECTORS || end.is_none_or(|e| e > self.capacity_sectors) {
                    return Ok(S_IOERR);
                }
                if flags & !1 != 0 || (kind == T_DISCARD && flags != 0) {
                    return Ok(S_UNSUPP);
                }
                let (off, len) = (sector * SECTOR, u64::from(count) * SECTOR);
                let ok = if kind == T_DISCARD {
                    // Advisory: a file system without holes just keeps the data.
                    let _ = self.punch_hole(off, len);
                    true
                } else {
                    (flags & 1 != 0 && self.punch_hole(off, len))
                        || self.zero_range(off, len)
                        || self.write_zeroes(off, len)
                };
                if !ok {
                    return Ok(S_IOERR);
                }
            }
        }
        Ok(S_OK)
    }

    fn fallocate(&self, mode: libc::c_int, off: u64, len: u64) -> bool {
        let (Ok(off), Ok(len)) = (libc::off_t::try_from(off), libc::off_t::try_from(len)) else {
            return false;
        };
        // SAFETY: fallocate on our own open descriptor; no memory involved.
        unsafe { libc::fallocate(self.file.as_raw_fd(), mode, off, len) == 0 }
    }

    /// Deallocate a range; it reads back as zeros.
    fn punch_hole(&self, off: u64, len: u64) -> bool {
        self.fallocate(
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            off,
            len,
        )
    }

    /// Zero a range, keeping it allocated.
    fn zero_range(&self, off: u64, len: u64) -> bool {
        self.fallocate(
            libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
            off,
            len,
        )
    }

    /// Zero a range by writing zeros (file systems without fallocate modes).
    fn write_zeroes(&self, off: u64, len: u64) -> bool {
        let zeros = vec![0u8; CHUNK.min(len as usize)];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(CHUNK as u64) as usize;
            if self.file.write_all_at(&zeros[..n], off + done).is_err() {
                return false;
            }
            done += n as u64;
        }
        true
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
        F_SEG_MAX
            | F_FLUSH
            | if self.read_only {
                F_RO
            } else {
                F_DISCARD | F_WRITE_ZEROES
            }
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        // capacity (u64) at 0, size_max at 8, seg_max at 12; the discard
        // limits at 36 (max sectors, max segments, alignment) and the
        // write-zeroes ones at 48 (max sectors, max segments, may-unmap).
        let mut cfg = [0u8; 60];
        cfg[..8].copy_from_slice(&self.capacity_sectors.to_le_bytes());
        cfg[12..16].copy_from_slice(&u32::from(QUEUE_SIZE - 2).to_le_bytes());
        let u32s = [
            (36, MAX_RANGE_SECTORS),
            (40, 1),
            (44, 1),
            (48, MAX_RANGE_SECTORS),
            (52, 1),
        ];
        for (at, v) in u32s {
            cfg[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
        cfg[56] = 1;
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
