//! Direct host access to guest RAM for the interpreter's hot paths.
//!
//! vm-memory's `read_slice`/`write_slice` walk a region iterator and
//! volatile-copy byte ranges on every call; on the interpreter's per-
//! instruction loads, stores and fetches that walk was half of all the
//! time spent. Guest RAM is a fixed set of host mappings for the whole
//! life of the machine, so the CPU keeps their host addresses and copies
//! directly; anything else (MMIO, holes) still goes through the slow path.
//! Every store through it is reported to the code-page tracker
//! ([`CodePages`]) once the bytes are written.

use std::sync::Arc;

use vm_memory::{GuestMemoryBackend as _, GuestMemoryRegion as _};

use super::codemap::CodePages;
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
    /// Keeps the mappings alive as long as the pointers are.
    _mem: Arc<GuestMemory>,
}

// SAFETY: the pointers address mappings owned by `_mem`, which is `Send`
// and `Sync` and outlives the map; all accesses through them are raw
// copies of plain bytes (as vm-memory's own are), never references.
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
            _mem: mem,
        }
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
                // SAFETY: `host` checked the range; `buf` is a distinct
                // Rust buffer, so the ranges cannot overlap.
                unsafe { std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), buf.len()) };
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
                // SAFETY: as in `read`, in the other direction.
                unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), p, buf.len()) };
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
}
