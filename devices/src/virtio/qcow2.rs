//! A read-only qcow2 reader: maps guest offsets to host offsets through
//! the L1/L2 tables (versions 2 and 3; no backing files, encryption,
//! external data files or extended L2 entries; compressed clusters read as
//! I/O errors). It reads through the same file descriptor that carries
//! QEMU's lock bytes. The `imago` crate is the well-kept implementation to
//! move to once writable images, backing files or compressed clusters are
//! needed; this reader covers reading existing images in a page of code.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

/// L1/L2 entry bits 9..=55: a host offset.
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const COMPRESSED: u64 = 1 << 62;
const ZERO: u64 = 1;
/// Incompatible features a reader may ignore: dirty (1) and corrupt (2).
const IGNORABLE: u64 = 0b11;
/// L2 tables kept in memory.
const L2_CACHE: usize = 64;

/// An open qcow2 image.
#[derive(Debug)]
pub struct Qcow2 {
    cluster_bits: u32,
    size: u64,
    l1: Vec<u64>,
    l2_cache: Mutex<HashMap<u64, Vec<u64>>>,
    /// Whether the guest was told about compressed clusters (logged once).
    warned: std::sync::atomic::AtomicBool,
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap_or([0; 4]))
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]))
}

impl Qcow2 {
    /// Read the header and L1 table; the error is QEMU's wording where
    /// QEMU has one.
    pub fn open(file: &File) -> Result<Self, String> {
        let mut h = [0u8; 104];
        file.read_exact_at(&mut h[..72], 0)
            .map_err(|_| "Image is not in qcow2 format".to_string())?;
        if &h[..4] != b"QFI\xfb" {
            return Err("Image is not in qcow2 format".into());
        }
        let version = be32(&h, 4);
        if !(2..=3).contains(&version) {
            return Err(format!("Unsupported qcow2 version {version}"));
        }
        if version == 3 {
            file.read_exact_at(&mut h[72..104], 72)
                .map_err(|e| e.to_string())?;
            let incompatible = be64(&h, 72);
            if incompatible & !IGNORABLE != 0 {
                return Err(format!(
                    "Unsupported qcow2 feature(s): incompatible bits {:#x} (Kindling reads plain qcow2 images)",
                    incompatible & !IGNORABLE
                ));
            }
        }
        if be64(&h, 8) != 0 {
            return Err(
                "qcow2 images with a backing file are not supported (Kindling reads standalone images; qemu-img convert makes one)".into(),
            );
        }
        let cluster_bits = be32(&h, 20);
        if !(9..=21).contains(&cluster_bits) {
            return Err(format!("Unsupported cluster size: 2^{cluster_bits}"));
        }
        if be32(&h, 32) != 0 {
            return Err("Use of AES-CBC encrypted qcow2 images is not supported".into());
        }
        let size = be64(&h, 24);
        let l1_size = be32(&h, 36) as usize;
        let l1_offset = be64(&h, 40);
        // Each L1 entry covers cluster_size / 8 clusters.
        let per_l1 = 1u64 << (2 * cluster_bits - 3);
        if l1_size as u64 > (32 << 20) / 8 || (l1_size as u64) < size.div_ceil(per_l1) {
            return Err("Active L1 table too large or too small".into());
        }
        let mut raw = vec![0u8; l1_size * 8];
        file.read_exact_at(&mut raw, l1_offset)
            .map_err(|_| "Could not read L1 table".to_string())?;
        let l1 = raw.chunks_exact(8).map(|c| be64(c, 0)).collect();
        Ok(Qcow2 {
            cluster_bits,
            size,
            l1,
            l2_cache: Mutex::new(HashMap::new()),
            warned: Default::default(),
        })
    }

    /// The virtual disk size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The cluster size in bytes.
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// Where guest byte `off` lives: `Ok(Some(host))`, `Ok(None)` for
    /// zeros, `Err` for what cannot be read (compressed clusters, I/O).
    fn map(&self, file: &File, off: u64) -> std::io::Result<Option<u64>> {
        let cb = self.cluster_bits;
        let l2_bits = cb - 3;
        let l1_index = (off >> (cb + l2_bits)) as usize;
        let l2_index = ((off >> cb) & ((1 << l2_bits) - 1)) as usize;
        let l2_offset = self.l1.get(l1_index).copied().unwrap_or(0) & OFFSET_MASK;
        if l2_offset == 0 {
            return Ok(None);
        }
        let mut cache = self.l2_cache.lock().unwrap_or_else(|p| p.into_inner());
        if !cache.contains_key(&l2_offset) {
            let mut raw = vec![0u8; 1 << cb];
            file.read_exact_at(&mut raw, l2_offset)?;
            if cache.len() >= L2_CACHE {
                cache.clear();
            }
            cache.insert(l2_offset, raw.chunks_exact(8).map(|c| be64(c, 0)).collect());
        }
        let entry = cache
            .get(&l2_offset)
            .and_then(|t| t.get(l2_index))
            .copied()
            .unwrap_or(0);
        if entry & COMPRESSED != 0 {
            if !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                log::warn!(
                    "virtio-blk: qcow2 compressed clusters are not supported; reads of them fail"
                );
            }
            return Err(std::io::Error::other("compressed qcow2 cluster"));
        }
        let host = entry & OFFSET_MASK;
        if entry & ZERO != 0 || host == 0 {
            return Ok(None);
        }
        Ok(Some(host + (off & ((1 << cb) - 1))))
    }

    /// Read guest bytes at `off` into `buf`, cluster by cluster.
    pub fn read_at(&self, file: &File, buf: &mut [u8], off: u64) -> std::io::Result<()> {
        let cluster = 1u64 << self.cluster_bits;
        let mut done = 0usize;
        while done < buf.len() {
            let at = off + done as u64;
            let n = ((cluster - at % cluster) as usize).min(buf.len() - done);
            let piece = &mut buf[done..done + n];
            match self.map(file, at)? {
                Some(host) => file.read_exact_at(piece, host)?,
                None => piece.fill(0),
            }
            done += n;
        }
        Ok(())
    }
}
