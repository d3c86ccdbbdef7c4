//! `-pidfile` and `-daemonize`.

use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::MachineError;

/// The pidfile to remove if the process ends through [`exit_now`].
static PIDFILE_PATH: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

/// End the process at once with `status`, as QEMU's isa-debug-exit does
/// (the vCPU that wrote the port must not run another instruction):
/// restores the terminal and removes the pidfile first.
pub fn exit_now(status: i32) -> ! {
    crate::terminal::restore();
    crate::milestones::at_exit(status);
    if let Some(p) = PIDFILE_PATH.lock().ok().and_then(|mut p| p.take()) {
        let _ = std::fs::remove_file(p);
    }
    std::process::exit(status)
}

/// A locked pidfile, removed when dropped (as QEMU does at exit).
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    _file: std::fs::File,
}

impl PidFile {
    /// Create, lock and write `path`. Fails if another live process holds it.
    pub fn create(path: &Path) -> Result<Self, MachineError> {
        let err = |e: std::io::Error| {
            MachineError::host(format!("cannot create PID file '{}'", path.display()), e)
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)
            .map_err(err)?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(MachineError::Config(format!(
                "cannot create PID file: Cannot lock pid file '{}': Resource temporarily unavailable",
                path.display()
            )));
        }
        f.set_len(0).map_err(err)?;
        writeln!(f, "{}", std::process::id()).map_err(err)?;
        if let Ok(mut p) = PIDFILE_PATH.lock() {
            *p = Some(path.to_path_buf());
        }
        Ok(PidFile {
            path: path.to_path_buf(),
            _file: f,
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        if let Ok(mut p) = PIDFILE_PATH.lock() {
            *p = None;
        }
    }
}

/// Fork into the background. The parent waits until the child reports
/// readiness (or failure) through a pipe and exits with that status; the
/// returned closure is the child's "ready" signal.
pub fn daemonize() -> Result<impl FnOnce(bool), MachineError> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for two descriptors.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(MachineError::host("pipe", std::io::Error::last_os_error()));
    }
    // SAFETY: fork in a process that has not started other threads yet
    // (the board calls this before spawning any).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(MachineError::host("fork", std::io::Error::last_os_error()));
    }
    if pid > 0 {
        // Parent: wait for the child's verdict.
        // SAFETY: closing our copy of the write end.
        unsafe { libc::close(fds[1]) };
        let mut b = [0u8; 1];
        // SAFETY: reading one byte into a valid buffer.
        let n = unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 1) };
        std::process::exit(if n == 1 && b[0] == 0 { 0 } else { 1 });
    }
    // Child: new session, stdio to /dev/null once ready.
    // SAFETY: plain syscalls on our own process and descriptors.
    unsafe {
        libc::close(fds[0]);
        libc::setsid();
    }
    let w = fds[1];
    Ok(move |ok: bool| {
        let b = [u8::from(!ok)];
        // SAFETY: writing one byte to our pipe end, then redirecting stdio
        // to /dev/null as QEMU does after daemonizing.
        unsafe {
            libc::write(w, b.as_ptr().cast(), 1);
            libc::close(w);
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            if null >= 0 {
                libc::dup2(null, 0);
                libc::dup2(null, 1);
                libc::dup2(null, 2);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pidfile_holds_pid_locks_and_is_removed() {
        let p = std::env::temp_dir().join(format!("kindling-pid-{}", std::process::id()));
        {
            let _pf = PidFile::create(&p).unwrap();
            let s = std::fs::read_to_string(&p).unwrap();
            assert_eq!(s.trim(), std::process::id().to_string());
            assert!(
                PidFile::create(&p).is_err(),
                "second holder must be refused"
            );
        }
        assert!(!p.exists());
    }
}
