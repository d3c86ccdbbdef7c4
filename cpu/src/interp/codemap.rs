//! Code-page write tracking: how the block engine sees self-modifying
//! code without re-reading code bytes on every block entry.
//!
//! Every 4 KiB page of guest RAM has one atomic word, shared by all vCPUs
//! of a machine (and by the board, for device DMA): the low 16 bits mark
//! which 256-byte chunks of the page hold decoded blocks, the upper 48
//! bits are the page's generation. Building a block sets its chunks' bits
//! and records the generation (its *stamp*); a block runs only while its
//! page's generation still equals its stamp (one load per block entry).
//! Every store to RAM — the interpreter's generic and fast stores, the
//! software TLB's direct host-pointer path, bulk REP MOVS/STOS, LOCK'd
//! read-modify-writes, x87/SSE stores (FXSAVE ...), page-table A/D bit
//! updates, and device DMA reported through [`crate::GuestWrites`] —
//! reports its range after the bytes are written; a range that touches a
//! marked chunk bumps the generation and clears the marks in one atomic
//! step, which invalidates every block of the page (a store to a chunk
//! without code costs one load and no invalidation). This is QEMU's TCG
//! scheme (code pages' dirty tracking) at Bochs's finer granularity.
//!
//! Semantics kept from byte-checking blocks: a store into the running
//! block's own code ends the block after the storing instruction, so the
//! next instruction is decoded afresh (Linux's `text_poke_early` patches
//! the instruction after its own REP MOVSB); another vCPU's store is seen
//! at the next block entry (including the re-run of a self-looping block).
//! A store racing with another vCPU's *first decode* of the same page is
//! cross-modifying code the guest must serialize (SDM vol. 3, 8.1.3); to
//! also cover a racing store still in the writer's store buffer, a block
//! compares its code bytes once more on its second entry (see `block`).
//!
//! Memory the board writes behind the CPU's back (device DMA, kernel
//! reload at reset, the snippet runner's code) must be reported with
//! [`CodePages::written`]. One tracker exists per guest memory (looked up
//! by [`CodePages::of`]), so CPUs created on the same memory share it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use vm_memory::{GuestMemoryBackend as _, GuestMemoryRegion as _};

use crate::GuestMemory;

/// Bits of a page word that mark code chunks (the generation sits above).
pub const MARK_BITS: u32 = 16;
/// log2 of the chunk size (bytes) one mark bit stands for.
pub const CHUNK_SHIFT: u32 = 12 - MARK_BITS.trailing_zeros();
/// The mark bits of a page word.
pub const MARKS: u64 = (1 << MARK_BITS) - 1;

/// One RAM region's pages in the flat page array.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u64,
    len: u64,
    first: usize,
}

/// The code-page tracker of one guest memory (see the module doc).
#[derive(Debug)]
pub struct CodePages {
    spans: Vec<Span>,
    pages: Box<[AtomicU64]>,
}

/// The mark bits of bytes `off..off + len` of a page (`len` >= 1, within
/// the page).
#[inline]
fn chunk_bits(off: usize, len: usize) -> u64 {
    let first = off >> CHUNK_SHIFT;
    let last = (off + len - 1) >> CHUNK_SHIFT;
    ((2u64 << last) - 1) & !((1u64 << first) - 1)
}

impl CodePages {
    /// A tracker for `mem`'s RAM regions (every page clean, generation 0).
    pub fn new(mem: &GuestMemory) -> Self {
        let mut spans = Vec::new();
        let mut n = 0usize;
        for r in mem.iter() {
            let len = r.len();
            spans.push(Span {
                start: r.start_addr().0,
                len,
                first: n,
            });
            n += len.div_ceil(0x1000) as usize;
        }
        CodePages {
            spans,
            pages: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The tracker shared by everything on `mem` (created on first use).
    pub fn of(mem: &Arc<GuestMemory>) -> Arc<CodePages> {
        type Registry = Vec<(Weak<GuestMemory>, Weak<CodePages>)>;
        static REGISTRY: Mutex<Registry> = Mutex::new(Vec::new());
        let mut reg = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        reg.retain(|(m, c)| m.strong_count() > 0 && c.strong_count() > 0);
        for (m, c) in reg.iter() {
            if std::ptr::eq(m.as_ptr(), Arc::as_ptr(mem)) {
                if let Some(c) = c.upgrade() {
                    return c;
                }
            }
        }
        let c = Arc::new(CodePages::new(mem));
        reg.push((Arc::downgrade(mem), Arc::downgrade(&c)));
        c
    }

    /// The index of the page holding `gpa`, if it is RAM.
    #[inline]
    pub fn page(&self, gpa: u64) -> Option<usize> {
        self.spans.iter().find_map(|s| {
            let off = gpa.wrapping_sub(s.start);
            (off < s.len).then(|| s.first + (off >> 12) as usize)
        })
    }

    /// Mark bytes `off..off + len` of page `page` as holding a block and
    /// return the page's generation (the block's stamp). Call before
    /// reading the code bytes.
    pub fn stamp(&self, page: usize, off: usize, len: usize) -> u64 {
        let v = self.pages[page].fetch_or(chunk_bits(off, len.max(1)), Ordering::SeqCst);
        v >> MARK_BITS
    }

    /// The current generation of page `page` (compare with a stamp).
    #[inline(always)]
    pub fn generation(&self, page: usize) -> u64 {
        self.pages[page].load(Ordering::Acquire) >> MARK_BITS
    }

    /// Whether some chunk of page `page` holds code now.
    #[inline]
    pub fn has_code(&self, page: usize) -> bool {
        self.pages[page].load(Ordering::Acquire) & MARKS != 0
    }

    /// The address of page `page`'s word, for compiled code that reads it
    /// in place (valid as long as this tracker lives).
    pub fn word_addr(&self, page: usize) -> usize {
        &self.pages[page] as *const AtomicU64 as usize
    }

    /// Bytes `off..off + len` of page `page` were written (`len` >= 1,
    /// within the page): invalidate the page's blocks if they hold code.
    #[inline(always)]
    pub fn wrote(&self, page: usize, off: usize, len: usize) {
        let w = &self.pages[page];
        let bits = chunk_bits(off, len);
        if w.load(Ordering::Relaxed) & bits != 0 {
            Self::bump(w, bits);
        }
    }

    #[cold]
    #[inline(never)]
    fn bump(w: &AtomicU64, bits: u64) {
        let _ = w.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| {
            (v & bits != 0).then_some(((v >> MARK_BITS) + 1) << MARK_BITS)
        });
    }

    /// Guest-physical `gpa..gpa + len` was written by something other than
    /// a CPU store (device DMA, the board): invalidate the blocks there.
    pub fn written(&self, gpa: u64, len: u64) {
        let mut at = gpa;
        let end = gpa.saturating_add(len);
        while at < end {
            let off = (at & 0xfff) as usize;
            let n = (0x1000 - off as u64).min(end - at) as usize;
            if let Some(p) = self.page(at) {
                self.wrote(p, off, n);
            }
            at += n as u64;
        }
    }

    /// Invalidate every block on every page (a whole-RAM reload).
    pub fn invalidate_all(&self) {
        for w in self.pages.iter() {
            if w.load(Ordering::Relaxed) & MARKS != 0 {
                Self::bump(w, MARKS);
            }
        }
    }
}

impl crate::GuestWrites for CodePages {
    fn written(&self, gpa: u64, len: u64) {
        CodePages::written(self, gpa, len);
    }

    fn all_written(&self) {
        self.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestAddress;

    fn mem() -> Arc<GuestMemory> {
        Arc::new(
            GuestMemory::from_ranges(&[(GuestAddress(0), 0x4000), (GuestAddress(0x10000), 0x2000)])
                .unwrap(),
        )
    }

    #[test]
    fn chunk_bits_cover_the_range() {
        assert_eq!(chunk_bits(0, 1), 1);
        assert_eq!(chunk_bits(255, 2), 0b11);
        assert_eq!(chunk_bits(256, 256), 0b10);
        assert_eq!(chunk_bits(0, 4096), 0xffff);
        assert_eq!(chunk_bits(4095, 1), 0x8000);
    }

    #[test]
    fn a_store_to_a_code_chunk_bumps_the_generation_once() {
        let c = CodePages::new(&mem());
        let p = c.page(0x11000).unwrap();
        assert_eq!(p, 5, "pages of the second region follow the first's");
        let s = c.stamp(p, 0x100, 0x20);
        assert_eq!(c.generation(p), s);
        c.wrote(p, 0x000, 8); // another chunk: no invalidation
        assert_eq!(c.generation(p), s);
        c.wrote(p, 0x11c, 8);
        assert_eq!(c.generation(p), s + 1);
        // The marks are cleared: the next store costs nothing.
        c.wrote(p, 0x11c, 8);
        assert_eq!(c.generation(p), s + 1);
        // A new block is stamped with the new generation.
        assert_eq!(c.stamp(p, 0x100, 1), s + 1);
    }

    #[test]
    fn ranges_spanning_pages_and_holes_are_reported_per_page() {
        let m = mem();
        let c = CodePages::of(&m);
        assert!(
            Arc::ptr_eq(&c, &CodePages::of(&m)),
            "one tracker per memory"
        );
        let (a, b) = (c.page(0x1000).unwrap(), c.page(0x2000).unwrap());
        let (sa, sb) = (c.stamp(a, 0xff0, 16), c.stamp(b, 0, 16));
        c.written(0x1ff8, 0x10);
        assert_eq!((c.generation(a), c.generation(b)), (sa + 1, sb + 1));
        assert!(c.page(0x8000).is_none(), "a hole");
        c.written(0x3000, 0x10000); // runs through the hole
        let q = c.page(0x10000).unwrap();
        let sq = c.stamp(q, 0, 1);
        c.invalidate_all();
        assert_eq!(c.generation(q), sq + 1);
    }
}
