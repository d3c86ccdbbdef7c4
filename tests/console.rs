//! `-serial stdio` as an interactive console on a real terminal (a pty):
//! raw mode while running, input reaches the guest, Ctrl-A X quits under
//! `-nographic`, and the terminal is restored on every exit path.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Pty {
    master: std::fs::File,
    slave: OwnedFd,
}

fn pty() -> Pty {
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

fn lflag(fd: &OwnedFd) -> libc::tcflag_t {
    // SAFETY: termios is plain data filled by tcgetattr on a valid tty fd.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) }, 0);
    t.c_lflag
}

fn start(p: &Pty, extra: &[&str]) -> Child {
    let elf = common::guests::build("echo");
    let mut args = vec![
        "-enable-kvm",
        "-m",
        "64m",
        "-nodefaults",
        "-no-reboot",
        "-serial",
        "stdio",
        "-device",
        "isa-debug-exit",
        "-kernel",
    ];
    let elf = elf.to_str().unwrap().to_string();
    args.push(&elf);
    args.extend_from_slice(extra);
    Command::new(common::kindling())
        .args(&args)
        .stdin(Stdio::from(p.slave.try_clone().unwrap()))
        .stdout(Stdio::from(p.slave.try_clone().unwrap()))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kindling")
}

fn read_until(master: &mut std::fs::File, text: &str) -> String {
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

fn wait(child: &mut Child) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "kindling did not exit"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

macro_rules! need_kvm {
    () => {
        if let Some(why) = common::kvm_unusable() {
            common::skip_for_kvm(why);
            return;
        }
    };
}

#[test]
fn typed_input_reaches_the_guest_in_raw_mode_and_ctrl_a_x_quits() {
    need_kvm!();
    let mut p = pty();
    let cooked = lflag(&p.slave);
    assert_ne!(cooked & libc::ICANON, 0);
    let mut child = start(&p, &["-nographic"]);
    assert!(read_until(&mut p.master, "READY").contains("READY"));
    let raw = lflag(&p.slave);
    assert_eq!(
        raw & (libc::ICANON | libc::ECHO),
        0,
        "raw mode while running"
    );
    assert_ne!(raw & libc::ISIG, 0, "Ctrl-C still works, as in QEMU");
    p.master.write_all(b"hello").unwrap();
    let echoed = read_until(&mut p.master, "hello");
    assert!(echoed.ends_with("hello"), "{echoed:?}");
    p.master.write_all(&[0x01, b'x']).unwrap();
    assert_eq!(wait(&mut child), 0);
    assert_eq!(lflag(&p.slave), cooked, "terminal restored after Ctrl-A X");
}

#[test]
fn terminal_is_restored_when_the_guest_exits_and_on_sigterm() {
    need_kvm!();
    let mut p = pty();
    let cooked = lflag(&p.slave);
    let mut child = start(&p, &[]);
    read_until(&mut p.master, "READY");
    // Without -nographic, Ctrl-A is an ordinary byte for the guest.
    p.master.write_all(&[0x01, b'x', b'q']).unwrap();
    assert_eq!(wait(&mut child), (0x11 << 1) | 1);
    assert_eq!(lflag(&p.slave), cooked, "restored after isa-debug-exit");

    let mut child = start(&p, &[]);
    read_until(&mut p.master, "READY");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(wait(&mut child), 0);
    assert_eq!(lflag(&p.slave), cooked, "restored after SIGTERM");
}
