//! Executable memory for compiled blocks: one mmap'd arena per vCPU,
//! filled by bumping a pointer and kept W^X (pages are writable only
//! while new code is copied in, executable otherwise). When the arena is
//! full it is flushed whole: its generation changes, so every block that
//! still holds an entry from the old generation sees it as gone and runs
//! in the interpreter until it is compiled again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Host page size assumed for protection changes.
const PAGE: usize = 4096;

/// Why code could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    /// The arena could not be mapped.
    #[error("cannot map {0} bytes for compiled code")]
    Map(usize),
    /// A protection change failed.
    #[error("cannot change the protection of compiled code")]
    Protect,
    /// One function is larger than the whole arena.
    #[error("compiled block of {0} bytes does not fit the code arena")]
    TooBig(usize),
}

/// A compiled block's entry point, valid while the arena's generation is
/// `generation`.
#[derive(Debug)]
pub struct CodeHandle {
    /// Host address of the function.
    pub entry: usize,
    /// The arena generation the code belongs to.
    pub generation: u64,
    len: usize,
    freed: Arc<AtomicUsize>,
}

impl Drop for CodeHandle {
    fn drop(&mut self) {
        // The bytes stay mapped until the next flush; they only count as
        // free from now on.
        self.freed.fetch_add(self.len, Ordering::Relaxed);
    }
}

/// The code arena.
#[derive(Debug)]
pub struct CodeArena {
    base: *mut u8,
    size: usize,
    used: usize,
    generation: u64,
    freed: Arc<AtomicUsize>,
    /// Flushes so far.
    pub flushes: u64,
}

impl CodeArena {
    /// Map an arena of `size` bytes (rounded up to pages).
    pub fn new(size: usize) -> Result<Self, CodeError> {
        let size = size.div_ceil(PAGE) * PAGE;
        // SAFETY: an anonymous private mapping with no address hint; the
        // result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_EXEC,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(CodeError::Map(size));
        }
        Ok(CodeArena {
            base: p as *mut u8,
            size,
            used: 0,
            generation: 1,
            freed: Arc::new(AtomicUsize::new(0)),
            flushes: 0,
        })
    }

    /// The current generation (entries of older ones are stale).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Bytes in use, and bytes of them whose block is gone.
    pub fn usage(&self) -> (usize, usize) {
        (self.used, self.freed.load(Ordering::Relaxed).min(self.used))
    }

    /// Drop every compiled block at once.
    pub fn flush(&mut self) {
        self.used = 0;
        self.generation += 1;
        self.flushes += 1;
        self.freed = Arc::new(AtomicUsize::new(0));
    }

    /// Copy `code` in (flushing first if it does not fit) and return its
    /// handle.
    pub fn place(&mut self, code: &[u8]) -> Result<CodeHandle, CodeError> {
        let len = code.len().div_ceil(16) * 16;
        if len > self.size {
            return Err(CodeError::TooBig(code.len()));
        }
        if self.used + len > self.size {
            self.flush();
        }
        let start = self.used;
        let first = start / PAGE * PAGE;
        let end = (start + len).div_ceil(PAGE) * PAGE;
        // SAFETY: `first..end` lies inside the mapping (`start + len <=
        // size`, and `size` is a whole number of pages). No compiled code
        // runs while this vCPU compiles, so making these pages briefly
        // non-executable cannot fault a running block.
        let rw = unsafe {
            libc::mprotect(
                self.base.add(first) as *mut libc::c_void,
                end - first,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if rw != 0 {
            return Err(CodeError::Protect);
        }
        // SAFETY: the destination is inside the mapping, writable now, and
        // disjoint from `code` (a Rust buffer).
        unsafe {
            std::ptr::copy_nonoverlapping(code.as_ptr(), self.base.add(start), code.len());
        }
        // SAFETY: as above; back to read + execute.
        let rx = unsafe {
            libc::mprotect(
                self.base.add(first) as *mut libc::c_void,
                end - first,
                libc::PROT_READ | libc::PROT_EXEC,
            )
        };
        if rx != 0 {
            return Err(CodeError::Protect);
        }
        self.used = start + len;
        Ok(CodeHandle {
            entry: self.base as usize + start,
            generation: self.generation,
            len,
            freed: self.freed.clone(),
        })
    }
}

impl Drop for CodeArena {
    fn drop(&mut self) {
        // SAFETY: `base`/`size` are the mapping made in `new`; no compiled
        // code can run once the arena (owned by the vCPU) is dropped.
        unsafe {
            libc::munmap(self.base as *mut libc::c_void, self.size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placed_code_runs_and_a_full_arena_flushes() {
        let mut a = CodeArena::new(PAGE).expect("arena");
        // mov eax, 42; ret
        let code = [0xb8, 42, 0, 0, 0, 0xc3];
        let h = a.place(&code).expect("place");
        // SAFETY: `h.entry` holds the function above, executable.
        let f: extern "C" fn() -> u32 = unsafe { std::mem::transmute(h.entry) };
        assert_eq!(f(), 42);
        let g0 = a.generation();
        for _ in 0..PAGE / 16 {
            a.place(&code).expect("place");
        }
        assert_eq!(a.flushes, 1);
        assert_ne!(a.generation(), g0);
        drop(h);
        assert!(a.usage().0 > 0);
    }
}
