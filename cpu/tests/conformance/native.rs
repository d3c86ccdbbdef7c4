//! The oracle: run a snippet natively on the host CPU, with the same
//! contract as `cpu::interp::run_snippet`.
//!
//! The snippet's code is copied to an RWX mapping at exactly
//! [`CODE_BASE`] and the data buffer to a mapping at exactly
//! [`DATA_BASE`], both made once per process with `MAP_FIXED_NOREPLACE`
//! (if the addresses are taken the runner panics with a clear message
//! instead of clobbering anything). A return trampoline
//! (`jmp [rip+0]; .quad exit`) is appended after the code.
//!
//! `kindling_oracle_enter` (hand-written, in `global_asm!`) saves the
//! host's callee-saved registers, its FXSAVE image and RSP, loads the
//! snippet's x87, SSE and AVX state (`xrstor64` of an XSAVE image built
//! from the FXSAVE image and the YMM upper halves), RFLAGS (`popfq`: arithmetic flags
//! and DF only) and all sixteen GPRs, and jumps to [`CODE_BASE`]. The
//! snippet gets its own stack inside the code mapping ([`STACK_TOP`]);
//! RSP is therefore **not** compared (the interpreter's stack is elsewhere)
//! and snippets must leave it balanced. The exit path stores the GPRs,
//! RFLAGS and `xsave64`, then restores the host.
//!
//! Exceptions: while a snippet runs, SIGFPE/SIGSEGV/SIGILL/SIGBUS/SIGTRAP
//! go to [`on_fault`] (on a private alternate stack), which records the
//! vector (the kernel's trap number, `REG_TRAPNO`), copies the registers
//! and the FXSAVE image at the fault from the `ucontext`, and resumes at
//! the trampoline's host-restore path by rewriting RIP and RSP. A fault
//! outside the snippet's code is a bug in the runner: the handler puts the
//! default action back so the process dies with the signal.
//!
//! One process-wide mutex serialises runs (the mappings are at fixed
//! addresses), so tests may call this from parallel threads.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use cpu::snippet::{SnippetEnd, SnippetState, CODE_BASE, DATA_BASE, DATA_SIZE};

/// Bytes mapped at [`CODE_BASE`]: code, then the snippet's stack.
pub const CODE_MAP_SIZE: usize = 0x10000;
/// The most code bytes a snippet may have (the trampoline follows it).
pub const CODE_MAX: usize = 0x4000 - TRAMPOLINE_LEN;
/// The snippet's initial RSP (inside the code mapping, 4 KiB below its end
/// so a few stray POPs stay mapped).
pub const STACK_TOP: u64 = CODE_BASE + 0xF000;
/// Bytes of the return trampoline appended after the snippet.
const TRAMPOLINE_LEN: usize = 14;
/// Size of the alternate signal stack the fault handler runs on.
const ALT_STACK_SIZE: usize = 256 * 1024;
/// `NativeCtx::vector` while no exception has been recorded.
const NO_VECTOR: u64 = u64::MAX;

/// Why the oracle cannot run.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// A fixed mapping could not be made (usually: the address is taken).
    #[error("cannot map the {what} at {addr:#x} in the test process: {source}")]
    Map {
        /// Which mapping.
        what: &'static str,
        /// The fixed address asked for.
        addr: u64,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The block the trampoline reads and writes (offsets are used by the
/// assembly below; keep them in sync).
#[repr(C, align(64))]
struct NativeCtx {
    /// Unused (offset 0): keeps the offsets below, which the assembly uses.
    _reserved: [u8; 512],
    /// GPRs in encoding order (offset 512).
    gprs: [u64; 16],
    /// RFLAGS (offset 640).
    rflags: u64,
    /// Host RSP saved by the entry (offset 648).
    host_rsp: u64,
    /// Vector recorded by the fault handler, or [`NO_VECTOR`] (offset 656).
    vector: u64,
    /// XSAVE area (offset 704, 64-aligned): the entry loads x87, SSE and
    /// AVX state from it with `xrstor64`, the exit saves them with `xsave64`.
    xsave: XsaveArea,
}

/// A standard-format XSAVE area large enough for x87, SSE and AVX.
#[repr(C, align(64))]
struct XsaveArea([u8; XSAVE_SIZE]);

/// Bytes of [`XsaveArea`]: legacy region, header, AVX component.
const XSAVE_SIZE: usize = 832;
/// Offset of the XSAVE header in the area.
const XSAVE_HEADER: usize = 512;
/// Offset of the AVX component (YMM0_H..YMM15_H) in the area.
const XSAVE_AVX: usize = 576;

const OFF_GPRS: usize = 512;
const OFF_RFLAGS: usize = 640;
const OFF_HOST_RSP: usize = 648;
const _: () = assert!(std::mem::offset_of!(NativeCtx, gprs) == OFF_GPRS);
const _: () = assert!(std::mem::offset_of!(NativeCtx, rflags) == OFF_RFLAGS);
const _: () = assert!(std::mem::offset_of!(NativeCtx, host_rsp) == OFF_HOST_RSP);
const _: () = assert!(std::mem::offset_of!(NativeCtx, xsave) == 704);

/// The context of the run in progress (read by the exit path and the
/// fault handler).
static CUR_CTX: AtomicU64 = AtomicU64::new(0);
/// Scratch slot for RAX while the exit path finds the context.
static SCRATCH_RAX: AtomicU64 = AtomicU64::new(0);
/// Jump target of the entry path.
static ENTRY: u64 = CODE_BASE;
/// End of the snippet code of the run in progress (for the fault handler).
static CODE_END: AtomicUsize = AtomicUsize::new(0);

core::arch::global_asm!(
    ".globl kindling_oracle_enter",
    ".globl kindling_oracle_exit",
    ".globl kindling_oracle_resume",
    // fn kindling_oracle_enter(ctx: *mut NativeCtx)  (SysV: ctx in rdi)
    "kindling_oracle_enter:",
    "push rbp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    // entry RSP = 8 mod 16; after six pushes still 8; minus 520 = 0 mod 16.
    "sub rsp, 520",
    "fxsave64 [rsp]",
    "mov [rip + {cur}], rdi",
    "mov [rdi + 648], rsp",
    "mov eax, 7",
    "xor edx, edx",
    "xrstor64 [rdi + 704]",
    "push qword ptr [rdi + 640]",
    "popfq",
    "mov rax, [rdi + 512]",
    "mov rcx, [rdi + 520]",
    "mov rdx, [rdi + 528]",
    "mov rbx, [rdi + 536]",
    "mov rbp, [rdi + 552]",
    "mov rsi, [rdi + 560]",
    "mov r8, [rdi + 576]",
    "mov r9, [rdi + 584]",
    "mov r10, [rdi + 592]",
    "mov r11, [rdi + 600]",
    "mov r12, [rdi + 608]",
    "mov r13, [rdi + 616]",
    "mov r14, [rdi + 624]",
    "mov r15, [rdi + 632]",
    "mov rsp, [rdi + 544]",
    "mov rdi, [rdi + 568]",
    "jmp qword ptr [rip + {entry}]",
    // Reached from the trampoline after the snippet's last instruction.
    "kindling_oracle_exit:",
    "mov [rip + {scratch}], rax",
    "mov rax, [rip + {cur}]",
    "mov [rax + 520], rcx",
    "mov [rax + 528], rdx",
    "mov [rax + 536], rbx",
    "mov [rax + 544], rsp",
    "mov [rax + 552], rbp",
    "mov [rax + 560], rsi",
    "mov [rax + 568], rdi",
    "mov [rax + 576], r8",
    "mov [rax + 584], r9",
    "mov [rax + 592], r10",
    "mov [rax + 600], r11",
    "mov [rax + 608], r12",
    "mov [rax + 616], r13",
    "mov [rax + 624], r14",
    "mov [rax + 632], r15",
    "mov rcx, [rip + {scratch}]",
    "mov [rax + 512], rcx",
    "mov rsp, [rax + 648]",
    "pushfq",
    "pop qword ptr [rax + 640]",
    "mov rcx, rax",
    "mov eax, 7",
    "xor edx, edx",
    "xsave64 [rcx + 704]",
    // Faults resume here with RSP = the saved host RSP.
    "kindling_oracle_resume:",
    "cld",
    "fxrstor64 [rsp]",
    "add rsp, 520",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
    cur = sym CUR_CTX,
    scratch = sym SCRATCH_RAX,
    entry = sym ENTRY,
);

extern "C" {
    fn kindling_oracle_enter(ctx: *mut NativeCtx);
    fn kindling_oracle_exit();
    fn kindling_oracle_resume();
}

/// Serialises runs: the mappings and the statics above are process-wide.
static LOCK: Mutex<()> = Mutex::new(());

/// The fixed mappings, made once: (code, data, alternate signal stack).
fn mappings() -> Result<usize, &'static NativeError> {
    static MAPS: OnceLock<Result<usize, NativeError>> = OnceLock::new();
    MAPS.get_or_init(|| {
        map_fixed(
            "code mapping",
            CODE_BASE,
            CODE_MAP_SIZE,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
        )?;
        map_fixed(
            "data buffer",
            DATA_BASE,
            DATA_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
        )?;
        // SAFETY: a fresh anonymous mapping anywhere; the result is checked.
        let alt = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ALT_STACK_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if alt == libc::MAP_FAILED {
            return Err(NativeError::Map {
                what: "alternate signal stack",
                addr: 0,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(alt as usize)
    })
    .as_ref()
    .copied()
}

fn map_fixed(what: &'static str, addr: u64, len: usize, prot: i32) -> Result<(), NativeError> {
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping: it
    // either maps fresh anonymous memory at `addr` or fails.
    let p = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(NativeError::Map {
            what,
            addr,
            source: std::io::Error::last_os_error(),
        });
    }
    if p as u64 != addr {
        // Old kernels treat the flag as a hint: undo and report.
        // SAFETY: `p` is the mapping just made, of `len` bytes.
        unsafe { libc::munmap(p, len) };
        return Err(NativeError::Map {
            what,
            addr,
            source: std::io::Error::from_raw_os_error(libc::EEXIST),
        });
    }
    Ok(())
}

/// The kernel's marker of an XSAVE-format signal frame.
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;

/// Signals a snippet may raise.
const SIGNALS: [i32; 5] = [
    libc::SIGFPE,
    libc::SIGSEGV,
    libc::SIGILL,
    libc::SIGBUS,
    libc::SIGTRAP,
];

/// The vector of an exception, from the kernel's trap number, falling
/// back on the signal when the trap number is not a fault vector.
fn vector_of(signo: i32, trapno: u64) -> u64 {
    if trapno < 32 {
        return trapno;
    }
    match signo {
        libc::SIGFPE => 0,
        libc::SIGILL => 6,
        libc::SIGTRAP => 3,
        libc::SIGBUS => 17,
        _ => 13,
    }
}

/// The fault handler (see the module docs). Async-signal-safe: plain
/// loads and stores, `write` and `sigaction` only.
extern "C" fn on_fault(signo: i32, _info: *mut libc::siginfo_t, uctx: *mut libc::c_void) {
    let uc = uctx.cast::<libc::ucontext_t>();
    // SAFETY: the kernel passes a valid ucontext to an SA_SIGINFO handler;
    // we only read and write its register fields.
    let gregs = unsafe { &mut (*uc).uc_mcontext.gregs };
    let rip = gregs[libc::REG_RIP as usize] as u64;
    let ctx = CUR_CTX.load(Ordering::SeqCst) as *mut NativeCtx;
    let end = CODE_END.load(Ordering::SeqCst) as u64;
    if ctx.is_null() || rip < CODE_BASE || rip > end {
        let msg = b"conformance oracle: fault outside the snippet code; dying with the signal\n";
        // SAFETY: write(2) and sigaction(2) are async-signal-safe; putting
        // the default action back makes the re-executed fault kill the
        // process instead of looping.
        unsafe {
            libc::write(2, msg.as_ptr().cast(), msg.len());
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(signo, &dfl, std::ptr::null_mut());
        }
        return;
    }
    // SAFETY: `ctx` is the live context of the run in progress (set by
    // `run_snippet`, which holds the lock and waits in the trampoline);
    // `fpregs` points at the FXSAVE-format image in the signal frame.
    unsafe {
        let c = &mut *ctx;
        let g = |r: i32| gregs[r as usize] as u64;
        c.gprs = [
            g(libc::REG_RAX),
            g(libc::REG_RCX),
            g(libc::REG_RDX),
            g(libc::REG_RBX),
            g(libc::REG_RSP),
            g(libc::REG_RBP),
            g(libc::REG_RSI),
            g(libc::REG_RDI),
            g(libc::REG_R8),
            g(libc::REG_R9),
            g(libc::REG_R10),
            g(libc::REG_R11),
            g(libc::REG_R12),
            g(libc::REG_R13),
            g(libc::REG_R14),
            g(libc::REG_R15),
        ];
        c.rflags = g(libc::REG_EFL);
        c.vector = vector_of(signo, g(libc::REG_TRAPNO));
        let fp = (*uc).uc_mcontext.fpregs;
        if !fp.is_null() {
            // The signal frame's state is an XSAVE image (the kernel marks
            // it with FP_XSTATE_MAGIC1 in the legacy region's software
            // bytes); copy its legacy region, header and AVX component.
            let src = fp.cast::<u8>();
            let magic = std::ptr::read_unaligned(src.add(464).cast::<u32>());
            let len = if magic == FP_XSTATE_MAGIC1 {
                XSAVE_SIZE
            } else {
                512
            };
            c.xsave.0.fill(0);
            std::ptr::copy_nonoverlapping(src, c.xsave.0.as_mut_ptr(), len);
        }
        // Resume on the host stack at the restore path, with DF, TF and AC
        // clear as the host ABI expects.
        gregs[libc::REG_RSP as usize] = c.host_rsp as i64;
        gregs[libc::REG_RIP as usize] = kindling_oracle_resume as *const () as i64;
        gregs[libc::REG_EFL as usize] &= !0x4_0500;
    }
}

/// Installs the fault handlers and the alternate stack for one run, and
/// puts the previous ones back when dropped.
struct FaultGuard {
    old: [libc::sigaction; SIGNALS.len()],
    old_stack: libc::stack_t,
}

impl FaultGuard {
    fn install(alt_stack: usize) -> Self {
        // SAFETY: plain-data structs filled in by the kernel; sigaltstack
        // points at our private ALT_STACK_SIZE mapping, used only while
        // the lock is held; `on_fault` has the SA_SIGINFO signature.
        unsafe {
            let mut old_stack: libc::stack_t = std::mem::zeroed();
            let stack = libc::stack_t {
                ss_sp: alt_stack as *mut libc::c_void,
                ss_flags: 0,
                ss_size: ALT_STACK_SIZE,
            };
            let r = libc::sigaltstack(&stack, &mut old_stack);
            assert_eq!(r, 0, "sigaltstack");
            let mut old: [libc::sigaction; SIGNALS.len()] = std::mem::zeroed();
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_fault as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut act.sa_mask);
            for (i, &s) in SIGNALS.iter().enumerate() {
                let r = libc::sigaction(s, &act, &mut old[i]);
                assert_eq!(r, 0, "sigaction");
            }
            FaultGuard { old, old_stack }
        }
    }
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        // SAFETY: restores exactly what `install` replaced.
        unsafe {
            for (i, &s) in SIGNALS.iter().enumerate() {
                libc::sigaction(s, &self.old[i], std::ptr::null_mut());
            }
            libc::sigaltstack(&self.old_stack, std::ptr::null_mut());
        }
    }
}

/// Runs `code` natively from `state` and writes the final state back, as
/// `cpu::interp::run_snippet` does: GPRs (RSP is given back unchanged:
/// the snippet ran on its own stack), RFLAGS, the FXSAVE image and the
/// data buffer (always `DATA_SIZE` bytes afterwards; a shorter input is
/// zero-filled). On an exception the state is the one at the faulting
/// instruction.
///
/// Panics if the fixed mappings cannot be made, if `code` is longer than
/// [`CODE_MAX`], or if the FXSAVE image's MXCSR has reserved bits set
/// (the host would fault loading it).
pub fn run_snippet(code: &[u8], state: &mut SnippetState) -> SnippetEnd {
    assert!(
        code.len() <= CODE_MAX,
        "snippet longer than {CODE_MAX} bytes"
    );
    let mxcsr = u32::from_le_bytes(state.fxsave[24..28].try_into().unwrap_or([0; 4]));
    assert_eq!(mxcsr & !0xffff, 0, "MXCSR {mxcsr:#x} has reserved bits set");
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let alt = match mappings() {
        Ok(a) => a,
        Err(e) => panic!("conformance oracle: {e}"),
    };
    let mut image = code.to_vec();
    image.extend_from_slice(&[0xff, 0x25, 0, 0, 0, 0]); // jmp [rip+0]
    image.extend_from_slice(&(kindling_oracle_exit as *const () as u64).to_le_bytes());
    let mut data = state.data.clone();
    data.resize(DATA_SIZE, 0);
    // SAFETY: both mappings exist (made above, never unmapped) and are
    // large enough: image.len() <= CODE_MAX + TRAMPOLINE_LEN < CODE_MAP_SIZE
    // and data.len() == DATA_SIZE. Stale code beyond the image is zeroed.
    unsafe {
        let c = CODE_BASE as *mut u8;
        std::ptr::write_bytes(c, 0, CODE_MAX + TRAMPOLINE_LEN);
        std::ptr::copy_nonoverlapping(image.as_ptr(), c, image.len());
        std::ptr::copy_nonoverlapping(data.as_ptr(), DATA_BASE as *mut u8, DATA_SIZE);
    }
    let mut ctx = Box::new(NativeCtx {
        _reserved: [0; 512],
        gprs: state.gprs,
        rflags: (state.rflags & 0xcd5) | 2,
        host_rsp: 0,
        vector: NO_VECTOR,
        xsave: xsave_image(state),
    });
    ctx.gprs[4] = STACK_TOP;
    CUR_CTX.store(&mut *ctx as *mut NativeCtx as u64, Ordering::SeqCst);
    CODE_END.store(CODE_BASE as usize + code.len(), Ordering::SeqCst);
    {
        let _faults = FaultGuard::install(alt);
        // SAFETY: the trampoline saves and restores every callee-saved
        // register, the host RSP and FXSAVE state, and clears DF; the
        // snippet runs on its own stack inside the code mapping and only
        // reaches the data buffer; any exception it raises is turned by
        // `on_fault` into a return through the same restore path. `ctx`
        // outlives the call and is 64-byte aligned.
        unsafe { kindling_oracle_enter(&mut *ctx) };
    }
    CUR_CTX.store(0, Ordering::SeqCst);
    CODE_END.store(0, Ordering::SeqCst);
    let rsp = state.gprs[4];
    state.gprs = ctx.gprs;
    state.gprs[4] = rsp;
    state.rflags = ctx.rflags;
    state.fxsave.copy_from_slice(&ctx.xsave.0[..512]);
    state.ymm_hi = ymm_upper(&ctx.xsave);
    // SAFETY: the data mapping holds DATA_SIZE bytes.
    unsafe { std::ptr::copy_nonoverlapping(DATA_BASE as *const u8, data.as_mut_ptr(), DATA_SIZE) };
    state.data = data;
    if ctx.vector == NO_VECTOR {
        SnippetEnd::Completed
    } else {
        SnippetEnd::Exception(ctx.vector as u8)
    }
}

/// The XSAVE image the entry restores: the FXSAVE image, the AVX
/// component, and XSTATE_BV naming only the components that are not in
/// their initial configuration, so the host's XINUSE afterwards is
/// exactly "not in the initial configuration" (as the interpreter
/// computes it).
fn xsave_image(state: &SnippetState) -> XsaveArea {
    let mut a = XsaveArea([0; XSAVE_SIZE]);
    let fx = &state.fxsave;
    a.0[..512].copy_from_slice(fx);
    let x87_init = fx[0..2] == [0x7f, 0x03]
        && fx[2..24].iter().enumerate().all(|(i, &b)| i == 3 || b == 0)
        && fx[32..160].iter().all(|&b| b == 0);
    let sse_init = fx[24..28] == 0x1f80u32.to_le_bytes() && fx[160..416].iter().all(|&b| b == 0);
    let avx_init = state.ymm_hi.iter().all(|&v| v == 0);
    let bv = u64::from(!x87_init) | (u64::from(!sse_init) << 1) | (u64::from(!avx_init) << 2);
    a.0[XSAVE_HEADER..XSAVE_HEADER + 8].copy_from_slice(&bv.to_le_bytes());
    for (i, v) in state.ymm_hi.iter().enumerate() {
        let o = XSAVE_AVX + 16 * i;
        a.0[o..o + 16].copy_from_slice(&v.to_le_bytes());
    }
    a
}

/// YMM0_H..YMM15_H from a standard-format XSAVE image (zero when its
/// XSTATE_BV says the AVX component is in its initial configuration).
fn ymm_upper(a: &XsaveArea) -> [u128; 16] {
    let mut out = [0u128; 16];
    if a.0[XSAVE_HEADER] & 4 == 0 {
        return out;
    }
    for (i, v) in out.iter_mut().enumerate() {
        let o = XSAVE_AVX + 16 * i;
        let mut b = [0u8; 16];
        b.copy_from_slice(&a.0[o..o + 16]);
        *v = u128::from_le_bytes(b);
    }
    out
}
