//! Direct host access to guest RAM for the interpreter's hot paths.
//!
//! vm-memory's `read_slice`/`write_slice` walk a region iterator and
//! volatile-copy byte ranges on every call; on the interpreter's per-
//! instruction loads, stores and fetches that walk was half of all the
//! time spent. Guest RAM is a fixed set of host mappings for the whole
//! life of the machine, so the CPU keeps their host addresses and copies
//! directly (through `shared_ram`: guest RAM is shared with other vCPUs);
//! anything else (MMIO, holes) still goes through the slow path.
//! Every store through it is reported to the code-page tracker
//! ([`CodePages`]) once the bytes are written. A read-only range (the
//! board's ROM) refuses stores, which then take the slow path, where
//! nothing claims them.

use std::sync::Arc;

use vm_memory::{GuestMemoryBackend as _, GuestMemoryRegion as _};

use super::codemap::CodePages;
use super::shared_ram;
use crate::GuestMemory;

/// One RAM region: guest-physical start, length, host address and the
/// tracker's index of its first page.
#[derive(Debug, Clone, Copy)]
struct Region {
    start: u64,
    len: u64,
    host: *mut u8,
    first_page: usize,
}

/// A store's range, to report with [`RamMap::stored`] once written.
#[derive(Debug, Clone, Copy)]
#[must_use = "report the store once the bytes are written"]
pub struct Store {
    page: usize,
    off: usize,
    len: usize,
}

/// The host addresses of guest RAM (QEMU microvm has at most two regions:
/// below 3 GiB and from 4 GiB).
#[derive(Debug, Clone)]
pub struct RamMap {
    regions: Vec<Region>,
    /// The code-page tracker every store reports to.
    code: Arc<CodePages>,
    /// Guest-physical `[start, end)` that is read-only (a ROM; empty if none).
    rom: (u64, u64),
    /// Keeps the mappings alive as long as the pointers are.
    _mem: Arc<GuestMemory>,
}

// SAFETY: the pointers address mappings owned by `_mem`, which is `Send`
// and `Sync` and outlives the map; all accesses through them go through
// `shared_ram` (host atomics and `rep movsb`), never references.
unsafe impl Send for RamMap {}
// SAFETY: as above.
unsafe impl Sync for RamMap {}

impl RamMap {
    /// The RAM regions of `mem` (and its shared code-page tracker).
    pub fn new(mem: Arc<GuestMemory>) -> Self {
        let code = CodePages::of(&mem);
        let regions = mem
            .iter()
            .map(|r| Region {
                start: r.start_addr().0,
                len: r.len(),
                host: r.as_ptr(),
                first_page: code.page(r.start_addr().0).unwrap_or(0),
            })
            .collect();
        RamMap {
            regions,
            code,
            rom: (0, 0),
            _mem: mem,
        }
    }

    /// Make `[start, start + len)` read-only: stores to it are refused.
    pub fn set_read_only(&mut self, start: u64, len: u64) {
        self.rom = (start, start.saturating_add(len));
    }

    /// Whether any of `len` bytes at `gpa` are read-only.
    #[inline(always)]
    pub fn is_read_only(&self, gpa: u64, len: usize) -> bool {
        gpa < self.rom.1 && gpa.saturating_add(len as u64) > self.rom.0
    }

    /// The code-page tracker.
    #[inline]
    pub fn code(&self) -> &CodePages {
        &self.code
    }

    /// The host address of `len` (>= 1) bytes of RAM at `gpa` to store to,
    /// if they all lie in one region, and the store to report with
    /// [`RamMap::stored`] once the bytes are written.
    #[inline]
    pub fn host_for_store(&self, gpa: u64, len: usize) -> Option<(*mut u8, Store)> {
        if self.is_read_only(gpa, len) {
            return None;
        }
        for r in &self.regions {
            let off = gpa.wrapping_sub(r.start);
            if off < r.len && len as u64 <= r.len - off {
                let store = Store {
                    page: r.first_page + (off >> 12) as usize,
                    off: (off & 0xfff) as usize,
                    len,
                };
                // SAFETY: `off + len` lies within the region's mapping.
                return Some((unsafe { r.host.add(off as usize) }, store));
            }
        }
        None
    }

    /// Report a store's bytes as written (invalidates blocks decoded
    /// from them).
    #[inline(always)]
    pub fn stored(&self, s: Store) {
        if s.off + s.len <= 0x1000 {
            self.code.wrote(s.page, s.off, s.len);
        } else {
            self.stored_pages(s);
        }
    }

    #[cold]
    fn stored_pages(&self, s: Store) {
        let (mut page, mut off, mut left) = (s.page, s.off, s.len);
        while left > 0 {
            let n = (0x1000 - off).min(left);
            self.code.wrote(page, off, n);
            (page, off, left) = (page + 1, 0, left - n);
        }
    }

    /// The host address of `len` bytes of RAM at `gpa`, if they all lie in
    /// one region.
    #[inline]
    pub fn host(&self, gpa: u64, len: usize) -> Option<*mut u8> {
        for r in &self.regions {
            let off = gpa.wrapping_sub(r.start);
            if off < r.len && len as u64 <= r.len - off {
                // SAFETY: `off + len` lies within the region's mapping.
                return Some(unsafe { r.host.add(off as usize) });
            }
        }
        None
    }

    /// Copy RAM at `gpa` into `buf`; false if it is not all RAM.
    #[inline]
    pub fn read(&self, gpa: u64, buf: &mut [u8]) -> bool {
        match self.host(gpa, buf.len()) {
            Some(p) => {
                let n = buf.len();
                if matches!(n, 1 | 2 | 4 | 8) {
                    // One host access, as x86 makes such a load (SSE's
                    // MOVQ/MOVD and x87 loads come this way).
                    // SAFETY: `host` checked the range.
                    let v = unsafe { shared_ram::load(p, n) };
                    buf.copy_from_slice(&v.to_le_bytes()[..n]);
                } else {
                    // SAFETY: `host` checked the range; `buf` is a distinct
                    // Rust buffer; guest bytes are read by `shared_ram` only.
                    unsafe { shared_ram::copy(p, buf.as_mut_ptr(), n) };
                }
                true
            }
            None => false,
        }
    }

    /// Copy `buf` into RAM at `gpa`; false if it is not all RAM.
    #[inline]
    pub fn write(&self, gpa: u64, buf: &[u8]) -> bool {
        if buf.is_empty() {
            return self.host(gpa, 0).is_some();
        }
        match self.host_for_store(gpa, buf.len()) {
            Some((p, store)) => {
                let n = buf.len();
                if matches!(n, 1 | 2 | 4 | 8) {
                    let mut b = [0u8; 8];
                    b[..n].copy_from_slice(buf);
                    // SAFETY: `host_for_store` checked the range.
                    unsafe { shared_ram::store(p, u64::from_le_bytes(b), n) };
                } else {
                    // SAFETY: as in `read`, in the other direction.
                    unsafe { shared_ram::copy(buf.as_ptr(), p, n) };
                }
                self.stored(store);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{Bytes, GuestAddress};

    #[test]
    fn copies_within_regions_and_refuses_holes_and_straddles() {
        let mem = std::sync::Arc::new(
            GuestMemory::from_ranges(&[(GuestAddress(0), 0x2000), (GuestAddress(0x10000), 0x1000)])
                .unwrap(),
        );
        let ram = RamMap::new(mem.clone());
        assert!(ram.write(0x1ffe, &[1, 2]));
        assert_eq!(mem.read_obj::<u16>(GuestAddress(0x1ffe)).unwrap(), 0x0201);
        mem.write_obj(0xdead_beefu32, GuestAddress(0x10ffc))
            .unwrap();
        let mut b = [0u8; 4];
        assert!(ram.read(0x10ffc, &mut b));
        assert_eq!(u32::from_le_bytes(b), 0xdead_beef);
        assert!(!ram.read(0x1fff, &mut b), "straddles the end of RAM");
        assert!(!ram.read(0x8000, &mut b), "a hole");
        assert!(!ram.write(0x10ffd, &b), "past the last region");
    }

    #[test]
    fn refuses_stores_to_a_read_only_range_but_reads_it() {
        let mem =
            std::sync::Arc::new(GuestMemory::from_ranges(&[(GuestAddress(0), 0x4000)]).unwrap());
        let mut ram = RamMap::new(mem.clone());
        ram.set_read_only(0x2000, 0x1000);
        mem.write_obj(0x1234_5678u32, GuestAddress(0x2ffc)).unwrap();
        assert!(!ram.write(0x2ffc, &[0; 4]), "inside");
        assert!(!ram.write(0x1ffe, &[0; 4]), "straddles its start");
        assert!(ram.host_for_store(0x2ffe, 4).is_none(), "straddles its end");
        assert!(ram.write(0x1ffc, &[1; 4]) && ram.write(0x3000, &[1; 4]));
        let mut b = [0u8; 4];
        assert!(ram.read(0x2ffc, &mut b));
        assert_eq!(u32::from_le_bytes(b), 0x1234_5678);
    }
}
