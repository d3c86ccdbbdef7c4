//! `-serial stdio` as an interactive console on a real terminal (a pty):
//! raw mode while running, input reaches the guest, Ctrl-A X quits under
//! `-nographic`, and the terminal is restored on every exit path.

mod common;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::pty::{lflag, pty, read_until, Pty};

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
