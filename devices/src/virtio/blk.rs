//! virtio-blk on a raw image file: read, write, flush (fdatasync before
//! completion), get-id, discard (hole punching) and write-zeroes; read-only
//! drives refuse every change with IOERR; image files are locked against a
//! second writer with QEMU's own OFD lock bytes, so Kindling and QEMU keep
//! each other out. Guest buffers are moved in bounded chunks, so no
//! descriptor length makes the VMM allocate more than a chunk.
//!
//! `cache=` follows QEMU: the write cache (VIRTIO_BLK_F_FLUSH, and the
//! `writeback` config byte the guest may toggle through
//! VIRTIO_BLK_F_CONFIG_WCE) is on for `writeback`, `none` and `unsafe`;
//! with it off every write is followed by fdatasync; `unsafe` makes flush
//! a no-op; `none`/`directsync` bypass the host page cache (O_DIRECT) when
//! the file system allows it.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

use cpu::GuestMemory;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress};

use super::qcow2;
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
/// VIRTIO_BLK_F_FLUSH (QEMU's VIRTIO_BLK_F_WCE).
const F_FLUSH: u64 = 1 << 9;
/// VIRTIO_BLK_F_CONFIG_WCE: the driver may switch the write cache.
const F_CONFIG_WCE: u64 = 1 << 11;
/// VIRTIO_BLK_F_DISCARD.
const F_DISCARD: u64 = 1 << 13;
/// VIRTIO_BLK_F_WRITE_ZEROES.
const F_WRITE_ZEROES: u64 = 1 << 14;
/// Largest discard / write-zeroes segment, in sectors (the config's limit).
const MAX_RANGE_SECTORS: u32 = 0x3f_ffff;
/// Largest piece of a guest buffer moved at once.
const CHUNK: usize = 64 << 10;
const QUEUE_SIZE: u16 = 256;
/// O_DIRECT buffer and offset alignment.
const DIRECT_ALIGN: usize = 4096;
/// QEMU's lock bytes (block/file-posix.c): a shared lock on
/// `PERM_BASE + p` means "I use permission p", on `SHARED_BASE + p` "I do
/// not let others use p".
const LOCK_PERM_BASE: i64 = 100;
const LOCK_SHARED_BASE: i64 = 200;
/// QEMU's BLK_PERM_CONSISTENT_READ and BLK_PERM_WRITE bit numbers.
const PERM_READ: i64 = 0;
const PERM_WRITE: i64 = 1;

/// `-drive cache=`, as QEMU spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// Write cache on, host page cache used (QEMU's default).
    #[default]
    Writeback,
    /// Write cache on, host page cache bypassed (O_DIRECT).
    None,
    /// Write cache on, flushes ignored.
    Unsafe,
    /// Write cache off: every write reaches the disk before completing.
    Writethrough,
    /// Write cache off and O_DIRECT.
    Directsync,
}

impl CacheMode {
    /// Parse QEMU's name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "writeback" => Self::Writeback,
            "none" => Self::None,
            "unsafe" => Self::Unsafe,
            "writethrough" => Self::Writethrough,
            "directsync" => Self::Directsync,
            _ => return Option::None,
        })
    }

    /// QEMU's `cache.writeback`.
    pub fn write_cache(self) -> bool {
        matches!(self, Self::Writeback | Self::None | Self::Unsafe)
    }

    /// QEMU's `cache.direct`.
    pub fn direct(self) -> bool {
        matches!(self, Self::None | Self::Directsync)
    }
}

/// How to open an image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockOptions {
    /// `readonly=on`.
    pub read_only: bool,
    /// `serial=` (up to 20 bytes reach the guest).
    pub serial: String,
    /// `cache=`.
    pub cache: CacheMode,
    /// `format=` (qcow2 only with `read_only`).
    pub format: ImageFormat,
}

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
    /// The image is not what `format=` says, or uses what Kindling
    /// cannot read.
    #[error("Could not open '{path}': {why}")]
    Format {
        /// The image.
        path: String,
        /// Why.
        why: String,
    },
    /// Another process holds the lock.
    #[error("Failed to get {kind} lock\nIs another process using the image [{path}]?")]
    Locked {
        /// `"write"` (we may not write) or `shared "write"` (we cannot keep
        /// others from writing), in QEMU's words.
        kind: &'static str,
        /// The image.
        path: String,
    },
}

/// A virtio block device on an image file.
pub struct Block {
    file: File,
    /// The same image opened with O_DIRECT (cache=none/directsync on a
    /// file system that allows it), for aligned transfers.
    direct: Option<File>,
    capacity_sectors: u64,
    /// The qcow2 mapping (`format=qcow2`, read-only).
    qcow2: Option<qcow2::Qcow2>,
    read_only: bool,
    cache: CacheMode,
    /// The write cache as the driver last set it (config `writeback`).
    write_cache: bool,
    serial: [u8; 20],
    warning: Option<String>,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("sectors", &self.capacity_sectors)
            .field("read_only", &self.read_only)
            .field("cache", &self.cache)
            .field("direct", &self.direct.is_some())
            .finish()
    }
}

impl Block {
    /// Open `path` (raw) with the default cache mode, locking it.
    pub fn open(path: &Path, read_only: bool, serial: &str) -> Result<Self, BlockError> {
        Self::open_with(
            path,
            &BlockOptions {
                read_only,
                serial: serial.to_string(),
                cache: CacheMode::default(),
                format: ImageFormat::Raw,
            },
        )
    }

    /// Open `path` (raw), locking it as QEMU does: a writer against any
    /// other user, a reader against writers.
    pub fn open_with(path: &Path, opts: &BlockOptions) -> Result<Self, BlockError> {
        let shown = path.display().to_string();
        if opts.format == ImageFormat::Qcow2 && !opts.read_only {
            return Err(BlockError::Format {
                path: shown,
                why: "Kindling opens qcow2 images read-only (add readonly=on)".into(),
            });
        }
        let read_only = opts.read_only;
        let open = |flags: libc::c_int| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(!read_only)
                .custom_flags(flags)
                .open(path)
                .map_err(|source| BlockError::Open {
                    path: shown.clone(),
                    source,
                })
        };
        let file = open(0)?;
        lock_like_qemu(&file, read_only).map_err(|kind| BlockError::Locked {
            kind,
            path: shown.clone(),
        })?;
        let mut warning = None;
        let qcow2 = match opts.format {
            ImageFormat::Raw => None,
            ImageFormat::Qcow2 => {
                Some(qcow2::Qcow2::open(&file).map_err(|why| BlockError::Format {
                    path: shown.clone(),
                    why,
                })?)
            }
        };
        let direct = if opts.cache.direct() && qcow2.is_none() {
            match open(libc::O_DIRECT) {
                Ok(f) => Some(f),
                Err(e) => {
                    warning = Some(format!(
                        "{shown}: the file system refuses O_DIRECT ({}); cache={} goes through the host page cache",
                        strip_os_error(&e),
                        if opts.cache == CacheMode::None { "none" } else { "directsync" }
                    ));
                    None
                }
            }
        } else {
            None
        };
        let len = match &qcow2 {
            Some(q) => q.size(),
            None => file
                .metadata()
                .map_err(|source| BlockError::Open {
                    path: shown.clone(),
                    source,
                })?
                .len(),
        };
        let mut s = [0u8; 20];
        for (d, b) in s.iter_mut().zip(opts.serial.bytes()) {
            *d = b;
        }
        Ok(Block {
            file,
            direct,
            capacity_sectors: len / SECTOR,
            qcow2,
            read_only,
            cache: opts.cache,
            write_cache: opts.cache.write_cache(),
            serial: s,
            warning,
        })
    }

    /// A warning from opening (O_DIRECT refused), to print once.
    pub fn take_warning(&mut self) -> Option<String> {
        self.warning.take()
    }

    /// Whether transfers bypass the host page cache.
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// fdatasync, unless cache=unsafe.
    fn sync(&self) -> bool {
        self.cache == CacheMode::Unsafe || self.file.sync_data().is_ok()
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
                // Write cache off: the data is on the disk before completion.
                if st == S_OK && !self.write_cache && !self.sync() {
                    st = S_IOERR;
                }
                st
            }
            T_FLUSH => {
                if self.read_only || self.sync() {
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
        let mut raw = vec![0u8; CHUNK.min(d.len() as usize) + DIRECT_ALIGN];
        let buf = aligned(&mut raw);
        let mut done = 0u64;
        while done < u64::from(d.len()) {
            let n = (u64::from(d.len()) - done).min(CHUNK as u64) as usize;
            if self.read_at(&mut buf[..n], off + done).is_err() {
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
        let mut raw = vec![0u8; CHUNK.min(d.len() as usize) + DIRECT_ALIGN];
        let buf = aligned(&mut raw);
        let mut done = 0u64;
        while done < u64::from(d.len()) {
            let n = (u64::from(d.len()) - done).min(CHUNK as u64) as usize;
            mem.read_slice(&mut buf[..n], GuestAddress(d.addr().0 + done))
                .map_err(Self::bad)?;
            if self.write_at(&buf[..n], off + done).is_err() {
                return Ok(false);
            }
            done += n as u64;
        }
        Ok(true)
    }

    /// Whether a transfer may use the O_DIRECT descriptor.
    fn direct_for(&self, buf: &[u8], off: u64) -> Option<&File> {
        let ok = buf.as_ptr() as usize % DIRECT_ALIGN == 0
            && buf.len() % SECTOR as usize == 0
            && off % SECTOR == 0;
        self.direct.as_ref().filter(|_| ok)
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> std::io::Result<()> {
        if let Some(q) = &self.qcow2 {
            return q.read_at(&self.file, buf, off);
        }
        if let Some(f) = self.direct_for(buf, off) {
            // EINVAL: the device wants a larger alignment; go buffered.
            match f.read_exact_at(buf, off) {
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                r => return r,
            }
        }
        self.file.read_exact_at(buf, off)
    }

    fn write_at(&self, buf: &[u8], off: u64) -> std::io::Result<()> {
        if let Some(f) = self.direct_for(buf, off) {
            match f.write_all_at(buf, off) {
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                r => return r,
            }
        }
        self.file.write_all_at(buf, off)
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
        if kind == T_WRITE_ZEROES && !self.write_cache && !self.sync() {
            return Ok(S_IOERR);
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
            | F_CONFIG_WCE
            | if self.cache.write_cache() { F_FLUSH } else { 0 }
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
        // write-zeroes ones at 48 (max sectors, max segments, may-unmap);
        // the write cache switch (`writeback`) at 32.
        let mut cfg = [0u8; 60];
        cfg[32] = u8::from(self.write_cache);
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

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        // Only `writeback` is writable (VIRTIO_BLK_F_CONFIG_WCE).
        if offset == 32 && data.len() == 1 {
            self.write_cache = data[0] != 0;
        }
    }

    fn reset(&mut self) {
        self.write_cache = self.cache.write_cache();
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

/// The `DIRECT_ALIGN`-aligned part of `raw` (which has that much slack).
fn aligned(raw: &mut [u8]) -> &mut [u8] {
    let skip = raw.as_ptr().align_offset(DIRECT_ALIGN).min(DIRECT_ALIGN);
    let len = raw.len() - DIRECT_ALIGN;
    &mut raw[skip..skip + len]
}

/// `std::io::Error`'s text without Rust's " (os error N)" suffix.
fn strip_os_error(e: &impl std::fmt::Display) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// One byte of an open file description lock: take it shared (`set`) or
/// ask whether another description holds it.
fn ofd_lock(file: &File, byte: i64, set: bool) -> bool {
    // SAFETY: flock is plain data; all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = if set { libc::F_RDLCK } else { libc::F_WRLCK } as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte;
    fl.l_len = 1;
    let cmd = if set {
        libc::F_OFD_SETLK
    } else {
        libc::F_OFD_GETLK
    };
    // SAFETY: fcntl on our own descriptor with a valid flock.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &mut fl) };
    if set {
        r == 0
    } else {
        r == 0 && fl.l_type == libc::F_UNLCK as libc::c_short
    }
}

/// QEMU's locking for a virtio-blk drive (share-rw=off): it uses
/// consistent-read (and write unless read-only) and lets nobody else
/// write. Returns the permission that conflicts, in QEMU's words.
fn lock_like_qemu(file: &File, read_only: bool) -> Result<(), &'static str> {
    let mut held = vec![LOCK_PERM_BASE + PERM_READ, LOCK_SHARED_BASE + PERM_WRITE];
    if !read_only {
        held.push(LOCK_PERM_BASE + PERM_WRITE);
    }
    // A file system without OFD locks (some network ones) is used unlocked,
    // as QEMU does with locking=auto.
    if !held.iter().all(|&b| ofd_lock(file, b, true)) {
        return Ok(());
    }
    // Permissions we use, against others who refuse to share them.
    if !ofd_lock(file, LOCK_SHARED_BASE + PERM_READ, false) {
        return Err("\"consistent read\"");
    }
    if !read_only && !ofd_lock(file, LOCK_SHARED_BASE + PERM_WRITE, false) {
        return Err("\"write\"");
    }
    // Permissions we refuse to share, against others who use them.
    if !ofd_lock(file, LOCK_PERM_BASE + PERM_WRITE, false) {
        return Err("shared \"write\"");
    }
    Ok(())
}

/// An image file's format (`-drive format=`, `-blockdev driver=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageFormat {
    /// The bytes are the disk.
    #[default]
    Raw,
    /// QEMU's qcow2 (versions 2 and 3), read-only: no backing files,
    /// encryption, external data files or extended L2 entries; compressed
    /// clusters read as I/O errors.
    Qcow2,
}
