//! The oracle: run a register-only snippet on the host CPU.
//!
//! A generated wrapper loads all general registers (but RSP) and the
//! arithmetic flags from a context block, runs the snippet, and stores them
//! back. The snippet must not touch RSP or memory.

use std::sync::Mutex;

/// Registers in encoding order, then RFLAGS.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ctx {
    /// RAX..R15.
    pub gprs: [u64; 16],
    /// RFLAGS.
    pub rflags: u64,
}

fn load_store(out: &mut Vec<u8>, store: bool) {
    for r in 0..16u8 {
        if r == 4 || r == 7 {
            continue;
        }
        out.push(0x48 | ((r >> 3) << 2));
        out.push(if store { 0x89 } else { 0x8b });
        out.push(0x40 | ((r & 7) << 3) | 7);
        out.push(r * 8);
    }
}

fn wrapper(snippet: &[u8]) -> Vec<u8> {
    let mut c = vec![
        0x53, 0x55, 0x41, 0x54, 0x41, 0x55, 0x41, 0x56, 0x41, 0x57, 0x57,
    ];
    c.extend([0xff, 0xb7, 0x80, 0, 0, 0, 0x9d]); // push [rdi+128]; popfq
    load_store(&mut c, false);
    c.extend([0x48, 0x8b, 0x7f, 0x38]); // mov rdi, [rdi+56]
    c.extend_from_slice(snippet);
    c.extend([0x48, 0x87, 0x3c, 0x24]); // xchg [rsp], rdi
    c.extend([0x9c, 0x8f, 0x87, 0x80, 0, 0, 0]); // pushfq; pop [rdi+128]
    load_store(&mut c, true);
    c.extend([0x8f, 0x47, 0x38]); // pop [rdi+56]
    c.extend([
        0x41, 0x5f, 0x41, 0x5e, 0x41, 0x5d, 0x41, 0x5c, 0x5d, 0x5b, 0xc3,
    ]);
    c
}

static LOCK: Mutex<()> = Mutex::new(());

/// The data buffer at `cpu::snippet::DATA_BASE` in this process (mapped
/// once, at the same address the interpreter's snippet guest uses).
fn data_buffer() -> *mut u8 {
    use std::sync::OnceLock;
    static BUF: OnceLock<usize> = OnceLock::new();
    *BUF.get_or_init(|| {
        // SAFETY: a fixed anonymous mapping at an address the test process
        // does not use; MAP_FIXED_NOREPLACE fails instead of clobbering.
        let p = unsafe {
            libc::mmap(
                cpu::snippet::DATA_BASE as *mut libc::c_void,
                cpu::snippet::DATA_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        assert_eq!(
            p as u64,
            cpu::snippet::DATA_BASE,
            "DATA_BASE is taken in the test process"
        );
        p as usize
    }) as *mut u8
}

/// Run `snippet` natively from `ctx` with `data` at `DATA_BASE`.
pub fn run_with_data(snippet: &[u8], ctx: &mut Ctx, data: &mut [u8]) {
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let buf = data_buffer();
    let n = data.len().min(cpu::snippet::DATA_SIZE);
    // SAFETY: `buf` is the DATA_SIZE-byte mapping made above; n <= DATA_SIZE.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf, n) };
    run_locked(snippet, ctx);
    // SAFETY: as above.
    unsafe { std::ptr::copy_nonoverlapping(buf, data.as_mut_ptr(), n) };
}

/// Run `snippet` natively from `ctx`.
pub fn run(snippet: &[u8], ctx: &mut Ctx) {
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    run_locked(snippet, ctx);
}

fn run_locked(snippet: &[u8], ctx: &mut Ctx) {
    let code = wrapper(snippet);
    // SAFETY: a fresh private anonymous mapping, used only here.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED, "mmap");
    assert!(code.len() <= 4096);
    // SAFETY: the mapping is 4096 writable bytes and `code` fits.
    unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), page.cast::<u8>(), code.len()) };
    ctx.rflags = (ctx.rflags & 0x8d5) | 2;
    // SAFETY: the page holds a complete function with the C ABI that
    // saves and restores every callee-saved register and leaves RSP as it
    // found it; snippets touch only registers and the data buffer (the
    // callers' templates address it through a register set to DATA_BASE).
    unsafe {
        let f: extern "C" fn(*mut Ctx) = std::mem::transmute(page);
        f(ctx);
        libc::munmap(page, 4096);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_add_matches_rust_arithmetic() {
        let mut c = Ctx::default();
        c.gprs[0] = 0xffff_ffff_ffff_ffff;
        c.gprs[3] = 2;
        run(&[0x48, 0x01, 0xd8], &mut c); // add rax, rbx
        assert_eq!(c.gprs[0], 1);
        assert_eq!(c.rflags & 1, 1, "carry");
        assert_eq!(c.gprs[3], 2, "other registers kept");
    }
}
