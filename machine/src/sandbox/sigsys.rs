//! The SIGSYS handler behind `SECCOMP_RET_TRAP`: one line naming the denied
//! system call and the kind of thread that made it, then the process ends
//! with status 159 (128 + SIGSYS, what a shell reports for a death by
//! SIGSYS). Async-signal-safe: it formats into a stack buffer and uses only
//! `write` and `exit_group`, which every filter allows.

use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::OnceLock;

use super::names;

/// Exit status after a denied call.
pub const EXIT_STATUS: i32 = 128 + libc::SIGSYS;

static PROG: OnceLock<String> = OnceLock::new();

thread_local! {
    /// The calling thread's kind, as the report names it.
    static KIND: Cell<&'static str> = const { Cell::new("a") };
}

/// Record the calling thread's kind for the report.
pub fn set_thread_kind(name: &'static str) {
    KIND.with(|k| k.set(name));
}

/// The SIGSYS part of `siginfo_t` on x86-64 (`_sigsys` in the kernel's
/// union, which the libc crate does not expose).
#[repr(C)]
struct SigsysInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    call_addr: usize,
    syscall: i32,
    arch: u32,
}

/// A fixed buffer that formatting writes into without allocating.
struct Line {
    buf: [u8; 512],
    len: usize,
}

impl std::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// The report line for a denied call `nr` in a thread of kind `kind`;
/// `arg1` is the call's second argument (an ioctl's request number).
fn report(line: &mut Line, prog: &str, kind: &str, nr: i64, arg1: u64) {
    let name = names::name(nr).unwrap_or("unknown");
    let _ = write!(
        line,
        "{prog}: sandbox: {kind} thread made system call {name} ({nr}"
    );
    if nr == libc::SYS_ioctl {
        let _ = write!(line, ", request {arg1:#x}");
    }
    let _ = writeln!(
        line,
        "), which its seccomp filter does not allow; ending the VM (-sandbox off disables \
         the filters)"
    );
}

extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for SA_SIGINFO handlers,
    // and for SIGSYS its union holds the `_sigsys` layout read here.
    let nr = unsafe { (*(info as *const SigsysInfo)).syscall };
    // SAFETY: `ctx` is the interrupted thread's ucontext_t; RSI held the
    // call's second argument.
    let arg1 = unsafe {
        (*(ctx as *const libc::ucontext_t)).uc_mcontext.gregs[libc::REG_RSI as usize] as u64
    };
    let mut line = Line {
        buf: [0; 512],
        len: 0,
    };
    let prog = PROG.get().map(String::as_str).unwrap_or("kindling");
    let kind = KIND.with(|k| k.get());
    report(&mut line, prog, kind, i64::from(nr), arg1);
    // SAFETY: writing a valid buffer to stderr, then ending the process;
    // both are async-signal-safe and allowed by every filter.
    unsafe {
        libc::write(2, line.buf.as_ptr().cast(), line.len);
        libc::_exit(EXIT_STATUS);
    }
}

/// Install the handler for the whole process.
pub fn install() -> std::io::Result<()> {
    PROG.get_or_init(|| {
        std::env::args()
            .next()
            .as_deref()
            .and_then(|a| std::path::Path::new(a).file_name())
            .and_then(|n| n.to_str())
            .unwrap_or("kindling")
            .to_string()
    });
    // SAFETY: sigaction is plain data; zeroed is a valid empty action.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = on_sigsys as *const () as usize;
    act.sa_flags = libc::SA_SIGINFO;
    // SAFETY: `act` is a valid action whose handler has the SA_SIGINFO
    // signature; a null old-action pointer is allowed.
    let r = unsafe { libc::sigaction(libc::SIGSYS, &act, std::ptr::null_mut()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_names_the_call_and_thread_kind() {
        let mut line = Line {
            buf: [0; 512],
            len: 0,
        };
        report(&mut line, "kindling", "a vCPU", libc::SYS_getpgid, 0);
        let text = std::str::from_utf8(&line.buf[..line.len]).unwrap();
        assert!(
            text.starts_with("kindling: sandbox: a vCPU thread made system call getpgid (121),"),
            "{text}"
        );
        assert!(text.ends_with('\n'));
        let mut line = Line {
            buf: [0; 512],
            len: 0,
        };
        report(&mut line, "k", "a vCPU", libc::SYS_ioctl, 0xae03);
        let text = std::str::from_utf8(&line.buf[..line.len]).unwrap();
        assert!(
            text.contains("system call ioctl (16, request 0xae03), which"),
            "{text}"
        );
    }

    #[test]
    fn sigsys_info_layout_matches_the_kernel() {
        assert_eq!(std::mem::offset_of!(SigsysInfo, syscall), 24);
        assert_eq!(std::mem::offset_of!(SigsysInfo, arch), 28);
    }
}
