//! The host terminal behind `-serial stdio`: raw mode while the machine
//! runs, restored on every exit path.

use std::sync::Mutex;

/// The terminal settings to restore, if stdin was a terminal we changed.
static SAVED: Mutex<Option<libc::termios>> = Mutex::new(None);

/// Put stdin in raw mode as QEMU's stdio chardev does: no echo, no line
/// editing, no CR/NL translation, but signals (Ctrl-C) still work.
/// Does nothing if stdin is not a terminal.
pub fn enter_raw_mode() {
    // SAFETY: isatty only inspects the descriptor.
    if unsafe { libc::isatty(0) } != 1 {
        return;
    }
    // SAFETY: termios is plain data; tcgetattr fills it for a valid fd.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd 0 is a terminal (checked above) and `t` is writable.
    if unsafe { libc::tcgetattr(0, &mut t) } != 0 {
        return;
    }
    if let Ok(mut saved) = SAVED.lock() {
        if saved.is_none() {
            *saved = Some(t);
        }
    }
    t.c_iflag &= !(libc::IGNBRK
        | libc::BRKINT
        | libc::PARMRK
        | libc::ISTRIP
        | libc::INLCR
        | libc::IGNCR
        | libc::ICRNL
        | libc::IXON);
    t.c_oflag |= libc::OPOST;
    t.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ICANON | libc::IEXTEN);
    t.c_cflag &= !(libc::CSIZE | libc::PARENB);
    t.c_cflag |= libc::CS8;
    t.c_cc[libc::VMIN] = 1;
    t.c_cc[libc::VTIME] = 0;
    // SAFETY: fd 0 is a terminal and `t` is a valid termios.
    unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
}

/// Restore the terminal if [`enter_raw_mode`] changed it. Safe to call
/// more than once and from any exit path.
pub fn restore() {
    let saved = SAVED.lock().ok().and_then(|mut s| s.take());
    if let Some(t) = saved {
        // SAFETY: restores settings read from this same terminal.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
    }
}

/// Restore the terminal even if the process panics.
pub fn restore_on_panic() {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        prev(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_without_raw_mode_is_harmless() {
        restore();
        restore();
    }
}
