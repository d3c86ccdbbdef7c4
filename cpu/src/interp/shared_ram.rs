//! How the software CPU touches the bytes of guest RAM, which other vCPU
//! threads and devices read and write at the same time, and how x86's
//! memory-ordering model (x86-TSO) maps onto the host's.
//!
//! Every guest load and store goes through [`load`] / [`store`]: an aligned
//! access of 1, 2, 4 or 8 bytes is one host atomic access (x86 guarantees
//! those are never torn), an unaligned one is one host `mov` on x86-64
//! hosts (atomic within a cache line, as on the hardware) and bytewise
//! atomics elsewhere. Bulk copies ([`copy`], [`fill`]) are `rep movsb` /
//! `rep stosb` on x86-64 hosts and bytewise atomics elsewhere. None of
//! them forms a Rust reference or slice over guest RAM, so a concurrent
//! store by another thread is never a data race in Rust's model.
//!
//! The ordering mapping (x86-TSO → host):
//! - a guest load is an `Acquire` load and a guest store a `Release` store:
//!   TSO orders load→load, load→store and store→store, which is exactly
//!   what acquire/release give (plain `mov`s on an x86 host, so free);
//! - MFENCE and the serializing instructions (CPUID, IRET, WRMSR, MOV to
//!   CR, LGDT/LIDT/LLDT/LTR, INVD/WBINVD, INVLPG) are a `SeqCst` fence
//!   ([`full_fence`]): the only order TSO adds, store→load;
//! - LFENCE and SFENCE only order against weakly-ordered accesses
//!   (non-temporal stores, WC memory), which this CPU performs as ordinary
//!   release stores, so they are a compiler fence ([`weak_fence`]);
//! - a LOCK'd instruction publishes with a `SeqCst` compare-and-swap, a
//!   full barrier on an x86 host (`lock cmpxchg`); other hosts add a
//!   `SeqCst` fence after it (see `atomic.rs`).

use std::sync::atomic::{
    compiler_fence, fence, AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering,
};

/// Load `bytes` (1..=8) little-endian guest bytes at `p`.
///
/// # Safety
/// `p` must address `bytes` bytes of mapped guest RAM (or another
/// location that is only ever accessed through this module).
#[inline(always)]
pub unsafe fn load(p: *const u8, bytes: usize) -> u64 {
    let p = p as *mut u8;
    let aligned = (p as usize) & (bytes - 1) == 0;
    // SAFETY: the caller's contract; each atomic is created only at an
    // address aligned for it.
    unsafe {
        match bytes {
            1 => u64::from(AtomicU8::from_ptr(p).load(Ordering::Acquire)),
            2 if aligned => u64::from(AtomicU16::from_ptr(p.cast()).load(Ordering::Acquire)),
            4 if aligned => u64::from(AtomicU32::from_ptr(p.cast()).load(Ordering::Acquire)),
            8 if aligned => AtomicU64::from_ptr(p.cast()).load(Ordering::Acquire),
            2 | 4 | 8 => load_unaligned(p, bytes),
            _ => load_bytes(p, bytes),
        }
    }
}

/// Store the low `bytes` (1..=8) bytes of `v` at `p`, little-endian.
///
/// # Safety
/// As for [`load`], and the bytes must be writable.
#[inline(always)]
pub unsafe fn store(p: *mut u8, v: u64, bytes: usize) {
    let aligned = (p as usize) & (bytes - 1) == 0;
    // SAFETY: as in `load`.
    unsafe {
        match bytes {
            1 => AtomicU8::from_ptr(p).store(v as u8, Ordering::Release),
            2 if aligned => AtomicU16::from_ptr(p.cast()).store(v as u16, Ordering::Release),
            4 if aligned => AtomicU32::from_ptr(p.cast()).store(v as u32, Ordering::Release),
            8 if aligned => AtomicU64::from_ptr(p.cast()).store(v, Ordering::Release),
            2 | 4 | 8 => store_unaligned(p, v, bytes),
            _ => store_bytes(p, v, bytes),
        }
    }
}

/// Copy `n` bytes from `src` to `dst` in ascending address order, one
/// byte after the other as far as any observer (or an overlap) can tell:
/// the semantics of a forward REP MOVSB.
///
/// # Safety
/// Both ranges must be mapped (guest RAM or a local buffer), `dst`
/// writable.
#[inline]
pub unsafe fn copy(src: *const u8, dst: *mut u8, n: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller's contract; the direction flag is clear on entry
    // to `asm!` (Rust's ABI), so this copies forwards.
    unsafe {
        std::arch::asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rsi") src => _,
            inout("rdi") dst => _,
            options(nostack, preserves_flags)
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    for k in 0..n {
        // SAFETY: the caller's contract.
        unsafe {
            let b = AtomicU8::from_ptr(src.add(k) as *mut u8).load(Ordering::Acquire);
            AtomicU8::from_ptr(dst.add(k)).store(b, Ordering::Release);
        }
    }
}

/// Store the low `size` (1, 2, 4 or 8) bytes of `v` `count` times from
/// `dst` upwards (REP STOS).
///
/// # Safety
/// `dst` must address `size * count` writable bytes of guest RAM.
#[inline]
pub unsafe fn fill(dst: *mut u8, v: u64, size: usize, count: usize) {
    #[cfg(target_arch = "x86_64")]
    if size == 1 {
        // SAFETY: the caller's contract; forward, as in `copy`.
        unsafe {
            std::arch::asm!(
                "rep stosb",
                inout("rcx") count => _,
                inout("rdi") dst => _,
                in("al") v as u8,
                options(nostack, preserves_flags)
            );
        }
        return;
    }
    for k in 0..count {
        // SAFETY: the caller's contract.
        unsafe { store(dst.add(k * size), v, size) };
    }
}

/// MFENCE, and the fence implied by serializing instructions.
#[inline(always)]
pub fn full_fence() {
    fence(Ordering::SeqCst);
}

/// Whether `i` is MFENCE or a serializing instruction, which drains the
/// store buffer (a [`full_fence`] before it runs).
#[inline]
pub fn serializes(i: &iced_x86::Instruction) -> bool {
    use iced_x86::Mnemonic as M;
    match i.mnemonic() {
        M::Cpuid
        | M::Iret
        | M::Iretd
        | M::Iretq
        | M::Wrmsr
        | M::Lgdt
        | M::Lidt
        | M::Lldt
        | M::Ltr
        | M::Invd
        | M::Wbinvd
        | M::Invlpg
        | M::Serialize => true,
        M::Mov => i.op0_register().is_cr() || i.op0_register().is_dr(),
        _ => false,
    }
}

/// LFENCE and SFENCE (see the module comment): keeps the compiler from
/// moving guest accesses across them.
#[inline(always)]
pub fn weak_fence() {
    compiler_fence(Ordering::SeqCst);
}

/// One unaligned host access (x86-64: atomic unless it crosses a cache
/// line, exactly the guest's guarantee).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn load_unaligned(p: *const u8, bytes: usize) -> u64 {
    let v: u64;
    // SAFETY: the caller's contract (`load`); x86 allows unaligned `mov`.
    unsafe {
        match bytes {
            2 => std::arch::asm!("movzx {v:e}, word ptr [{p}]", p = in(reg) p, v = out(reg) v,
                options(nostack, preserves_flags, readonly)),
            4 => std::arch::asm!("mov {v:e}, dword ptr [{p}]", p = in(reg) p, v = out(reg) v,
                options(nostack, preserves_flags, readonly)),
            _ => std::arch::asm!("mov {v}, qword ptr [{p}]", p = in(reg) p, v = out(reg) v,
                options(nostack, preserves_flags, readonly)),
        }
    }
    // Keep later guest accesses after this load (acquire).
    compiler_fence(Ordering::Acquire);
    v
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn store_unaligned(p: *mut u8, v: u64, bytes: usize) {
    // Keep earlier guest accesses before this store (release).
    compiler_fence(Ordering::Release);
    // SAFETY: the caller's contract (`store`).
    unsafe {
        match bytes {
            2 => std::arch::asm!("mov word ptr [{p}], {v:x}", p = in(reg) p, v = in(reg) v,
                options(nostack, preserves_flags)),
            4 => std::arch::asm!("mov dword ptr [{p}], {v:e}", p = in(reg) p, v = in(reg) v,
                options(nostack, preserves_flags)),
            _ => std::arch::asm!("mov qword ptr [{p}], {v}", p = in(reg) p, v = in(reg) v,
                options(nostack, preserves_flags)),
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
unsafe fn load_unaligned(p: *const u8, bytes: usize) -> u64 {
    // SAFETY: the caller's contract.
    unsafe { load_bytes(p, bytes) }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
unsafe fn store_unaligned(p: *mut u8, v: u64, bytes: usize) {
    // SAFETY: the caller's contract.
    unsafe { store_bytes(p, v, bytes) }
}

/// Byte by byte (odd sizes, which x86 does not make atomic either).
#[cold]
unsafe fn load_bytes(p: *const u8, bytes: usize) -> u64 {
    let mut v = 0u64;
    for k in 0..bytes {
        // SAFETY: the caller's contract.
        let b = unsafe { AtomicU8::from_ptr(p.add(k) as *mut u8).load(Ordering::Acquire) };
        v |= u64::from(b) << (8 * k);
    }
    v
}

#[cold]
unsafe fn store_bytes(p: *mut u8, v: u64, bytes: usize) {
    for k in 0..bytes {
        // SAFETY: the caller's contract.
        unsafe { AtomicU8::from_ptr(p.add(k)).store((v >> (8 * k)) as u8, Ordering::Release) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_and_stores_every_size_and_alignment() {
        let mut buf = [0u8; 32];
        let p = buf.as_mut_ptr();
        for bytes in 1..=8usize {
            for off in 0..16usize {
                let v = 0x8877_6655_4433_2211u64 & (u64::MAX >> (64 - 8 * bytes as u32));
                // SAFETY: `off + bytes` <= 24 < 32.
                unsafe {
                    store(p.add(off), v, bytes);
                    assert_eq!(load(p.add(off), bytes), v, "{bytes} bytes at +{off}");
                }
                assert_eq!(&buf[off..off + bytes], &v.to_le_bytes()[..bytes]);
                buf = [0u8; 32];
            }
        }
    }

    #[test]
    fn copy_is_a_forward_byte_copy_and_fill_repeats() {
        let mut buf: Vec<u8> = (0..64).collect();
        let p = buf.as_mut_ptr();
        // Overlap with the destination ahead replicates the source, as
        // REP MOVSB does.
        // SAFETY: both ranges lie in `buf`.
        unsafe { copy(p, p.add(2), 10) };
        assert_eq!(&buf[..12], &[0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
        let mut out = [0u8; 16];
        // SAFETY: 16 bytes in each.
        unsafe { copy(buf.as_ptr().add(20), out.as_mut_ptr(), 16) };
        assert_eq!(out.to_vec(), (20..36).collect::<Vec<u8>>());
        for size in [1usize, 2, 4, 8] {
            let mut d = [0u8; 48];
            // SAFETY: 5 elements of at most 8 bytes.
            unsafe { fill(d.as_mut_ptr().add(1), 0x0102_0304_0506_0708, size, 5) };
            for k in 0..5 {
                let at = 1 + k * size;
                assert_eq!(
                    &d[at..at + size],
                    &0x0102_0304_0506_0708u64.to_le_bytes()[..size]
                );
            }
            assert_eq!(d[0], 0);
            assert!(d[1 + 5 * size..].iter().all(|&b| b == 0));
        }
    }
}
