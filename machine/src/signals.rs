//! SIGINT, SIGTERM and SIGHUP become a [`BoardEvent::Signal`] for the
//! control loop: they are blocked in every thread and collected by one
//! thread with `sigwaitinfo`, so no async-signal-safety games are needed.

use std::sync::mpsc::Sender;

use crate::runstate::BoardEvent;

fn termination_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data initialised by sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
    }
    set
}

/// Block the termination signals in the calling thread; call from the main
/// thread before spawning any other thread so every thread inherits it.
pub fn block_termination_signals() {
    let set = termination_set();
    // SAFETY: `set` is valid; a null old-set pointer is allowed.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// Spawn the thread that turns termination signals into board events.
pub fn spawn_signal_thread(events: Sender<BoardEvent>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            crate::sandbox::enter_or_exit(crate::sandbox::ThreadKind::Io);
            loop {
                let set = termination_set();
                // SAFETY: siginfo_t is plain data filled by sigwaitinfo.
                let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                // SAFETY: `set` and `info` are valid for the call.
                let signo = unsafe { libc::sigwaitinfo(&set, &mut info) };
                if signo < 0 {
                    continue;
                }
                // SAFETY: si_pid is valid for signals sent by kill(2), which is
                // how termination signals arrive; it reads 0 otherwise.
                let pid = unsafe { info.si_pid() };
                if events.send(BoardEvent::Signal { signo, pid }).is_err() {
                    return;
                }
            }
        })
        .map(|_| ())
}

/// QEMU's "terminating on signal N from pid P (name)" line.
pub fn termination_message(prog: &str, signo: i32, pid: i32) -> String {
    if pid > 0 {
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "<unknown process>".into());
        format!("{prog}: terminating on signal {signo} from pid {pid} ({name})")
    } else {
        format!("{prog}: terminating on signal {signo}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_sender() {
        let me = std::process::id() as i32;
        let m = termination_message("kindling", 15, me);
        assert!(m.starts_with(&format!(
            "kindling: terminating on signal 15 from pid {me} ("
        )));
        assert_eq!(termination_message("k", 2, 0), "k: terminating on signal 2");
    }
}
