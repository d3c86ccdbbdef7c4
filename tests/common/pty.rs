//! A pseudo-terminal for tests that drive Kindling as a person at a
//! terminal would: the child gets the slave side as stdin/stdout, the
//! test reads and writes the master side.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// A pty pair.
pub struct Pty {
    /// The test's side.
    pub master: std::fs::File,
    /// The child's side (its terminal).
    pub slave: OwnedFd,
}

/// Open a pty pair.
pub fn pty() -> Pty {
    let (mut m, mut s) = (0, 0);
    // SAFETY: openpty fills two descriptors; null name/termios/winsize are allowed.
    let r = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty");
    // SAFETY: both descriptors were just returned by openpty and are owned here.
    unsafe {
        Pty {
            master: std::fs::File::from_raw_fd(m),
            slave: OwnedFd::from_raw_fd(s),
        }
    }
}

/// The terminal's local flags (raw or cooked).
pub fn lflag(fd: &OwnedFd) -> libc::tcflag_t {
    // SAFETY: termios is plain data filled by tcgetattr on a valid tty fd.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) }, 0);
    t.c_lflag
}

/// Read the master side until `text` appears (or 20 s pass); returns all read.
pub fn read_until(master: &mut std::fs::File, text: &str) -> String {
    let fd = master.as_raw_fd();
    // SAFETY: switching our own pty master to non-blocking mode.
    unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) };
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while start.elapsed() < Duration::from_secs(20) {
        match master.read(&mut buf) {
            Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
        if String::from_utf8_lossy(&got).contains(text) {
            break;
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}
