//! The human monitor (HMP) as people use it: typed through a real
//! terminal on `-nographic`'s `mon:stdio` mux (Ctrl-A C, commands, Ctrl-A C
//! back to a console that still works), over `-monitor unix:|tcp:|stdio`
//! and `-mon chardev=ID,mode=readline`, and its replies compared with
//! QEMU's for the same guest stopped at the same instruction.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::hmp::{reply_of, Hmp, PROMPT};
use common::pty::{lflag, pty, read_until};

const QEMU: &str = "qemu-system-x86_64";

/// One `x /Ni` line: address, instruction bytes, text.
fn parse_insn(line: &str) -> (u64, Vec<u8>, String) {
    let (addr, rest) = line.split_once(":  ").expect("0xADDR:  bytes insn");
    let addr = u64::from_str_radix(addr.trim_start_matches("0x"), 16).expect("address");
    let (bytes, text) = rest.split_at(24.min(rest.len()));
    let bytes = bytes
        .split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("byte"))
        .collect();
    (addr, bytes, text.trim().to_string())
}

/// The bytes of an `x /Nxb` reply.
fn parse_bytes(reply: &str) -> Vec<u8> {
    reply
        .lines()
        .flat_map(|l| l.split_once(": ").map(|(_, r)| r).unwrap_or("").split(' '))
        .filter(|w| !w.is_empty())
        .map(|w| u8::from_str_radix(w.trim_start_matches("0x"), 16).expect("byte"))
        .collect()
}

/// The value of `NAME=` in an `info registers` reply.
fn reg(reply: &str, name: &str) -> u64 {
    let at = reply
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("{name} in {reply}"));
    let v = &reply[at + name.len() + 1..];
    let hex: String = v.chars().take_while(char::is_ascii_hexdigit).collect();
    u64::from_str_radix(&hex, 16).unwrap()
}

/// Check `x /Ni $pc` against the registers and memory: the first address
/// is the PC, each next address follows the previous bytes, and the bytes
/// shown are the bytes in memory.
fn check_disassembly(insns: &str, pc: u64, memory: &[u8]) {
    let lines: Vec<&str> = insns.lines().collect();
    assert_eq!(lines.len(), 4, "{insns}");
    let mut at = pc;
    let mut all = Vec::new();
    for l in lines {
        let (addr, bytes, text) = parse_insn(l);
        assert_eq!(addr, at, "{insns}");
        assert!(!bytes.is_empty() && !text.is_empty(), "{l}");
        at += bytes.len() as u64;
        all.extend(bytes);
    }
    let n = all.len().min(memory.len());
    assert_eq!(all[..n], memory[..n], "{insns}");
}

fn wait_exit(child: &mut Child, secs: u64) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            panic!("did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn ctrl_a_c_reaches_the_monitor_through_a_terminal_and_back() {
    let elf = common::guests::build("echo");
    let mut p = pty();
    let cooked = lflag(&p.slave);
    // -nographic without -serial: QEMU's -serial mon:stdio.
    let mut child = Command::new(common::kindling())
        .args(["-accel", "tcg", "-m", "64m", "-nographic", "-no-reboot"])
        .args(["-device", "isa-debug-exit", "-kernel"])
        .arg(&elf)
        .stdin(Stdio::from(p.slave.try_clone().unwrap()))
        .stdout(Stdio::from(p.slave.try_clone().unwrap()))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kindling");
    assert!(read_until(&mut p.master, "READY").contains("READY"));

    p.master.write_all(&[0x01, b'c']).unwrap();
    let banner = read_until(&mut p.master, PROMPT);
    assert!(
        banner.contains("monitor - type 'help' for more information"),
        "{banner:?}"
    );
    let mut typed = |line: &str| {
        for b in line.bytes() {
            p.master.write_all(&[b]).unwrap();
        }
        p.master.write_all(b"\r").unwrap();
        // The terminal turns each \n into \r\n, as on QEMU's.
        reply_of(&read_until(&mut p.master, PROMPT)).replace('\r', "")
    };
    assert_eq!(typed("stop"), "");
    assert_eq!(typed("info status"), "VM status: paused\n");
    let regs = typed("info registers");
    assert!(regs.starts_with("\nCPU#0\nEAX="), "{regs}");
    assert!(regs.contains("\nCS =") && regs.contains("\nCR0="), "{regs}");
    let pc = reg(&regs, "EIP");
    let insns = typed("x /4i $pc");
    let bytes = parse_bytes(&typed("x /16xb $pc"));
    assert_eq!(bytes.len(), 16);
    check_disassembly(&insns, pc, &bytes);
    // Physical and virtual agree (no paging in this guest).
    assert_eq!(parse_bytes(&typed(&format!("xp /16xb {pc:#x}"))), bytes);
    assert_eq!(
        typed("x /2q $pc"),
        "invalid char in format: 'q'\nTry \"help x\" for more information\n"
    );
    assert_eq!(typed("cont"), "");

    p.master.write_all(&[0x01, b'c']).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    p.master.write_all(b"hello").unwrap();
    let echoed = read_until(&mut p.master, "hello");
    assert!(
        echoed.ends_with("hello"),
        "the console works again: {echoed:?}"
    );
    p.master.write_all(b"q").unwrap();
    assert_eq!(wait_exit(&mut child, 20), (0x11 << 1) | 1);
    assert_eq!(lflag(&p.slave), cooked, "terminal restored");
}

/// A unique path in the temp directory.
fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("kindling-hmp-{}-{name}", std::process::id()))
}

/// Boot tiny-pvh with `-append hold` under `program` (QEMU or Kindling),
/// with its monitor on a Unix socket; wait until the guest holds.
fn start_held(program: &Path, tag: &str) -> Option<(Child, Hmp)> {
    let guest = common::guest_file("tiny-pvh.elf")?;
    let sock = temp(&format!("{tag}.sock"));
    let serial = temp(&format!("{tag}.serial"));
    let _ = std::fs::remove_file(&sock);
    let child = Command::new(program)
        .args([
            "-M", "microvm", "-accel", "tcg", "-m", "256m", "-display", "none",
        ])
        .arg("-kernel")
        .arg(&guest)
        .args(["-append", "hold", "-serial"])
        .arg(format!("file:{}", serial.display()))
        .arg("-monitor")
        .arg(format!("unix:{},server,nowait", sock.display()))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    while !std::fs::read_to_string(&serial)
        .unwrap_or_default()
        .contains("HOLD")
    {
        assert!(start.elapsed() < Duration::from_secs(30), "{tag}: no HOLD");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((child, Hmp::unix(&sock)))
}

/// The shape of an `info registers` line: its name and the widths of its
/// first four fields.
fn shape(line: &str) -> (String, Vec<usize>) {
    let name = line.split('=').next().unwrap_or("").to_string();
    let widths = line
        .split_whitespace()
        .take(4)
        .map(|w| w.rsplit('=').next().unwrap_or("").len())
        .collect();
    (name, widths)
}

/// Lines QEMU prints that Kindling's snapshot cannot yet (debug, x87 and
/// SSE registers): the only QEMU lines allowed to be missing.
const NOT_YET: [&str; 5] = ["DR0=", "DR6=", "FCW=", "FPR", "XMM"];

#[test]
fn replies_match_qemus_for_the_same_guest() {
    if Command::new(QEMU).arg("-version").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{QEMU} is missing: scripts/setup.sh installs it"
        );
        eprintln!("skipping: {QEMU} is not installed");
        return;
    }
    let Some((mut kindling, mut k)) = start_held(&common::kindling(), "kindling") else {
        return;
    };
    let Some((mut qemu, mut q)) = start_held(Path::new(QEMU), "qemu") else {
        return;
    };
    // Compared word for word: the guest holds at the same instruction.
    let exact = [
        "stop",
        "info status",
        "x /4i $pc",
        "x /8xb $pc",
        "x /2dh $pc",
        "x /2uh $pc",
        "x /2oh $pc",
        "x /2xg $pc",
        "x /4c $pc",
        "x /3i 0x100000",
        "x 0x1000000000",
        "x/s 0",
        "x /4x $nosuchreg",
        "x",
        "bogus",
        "info bogus",
        "help x",
        "info tlb",
        "info mem",
        "info kvm",
    ];
    for c in exact {
        assert_eq!(k.cmd(c), q.cmd(c), "reply to {c:?}");
    }
    // The first IOAPIC as QEMU prints it (tiny-pvh leaves it untouched).
    let ioapic0 = |t: &str| -> Vec<String> {
        t.lines()
            .skip_while(|l| !l.starts_with("ioapic0:"))
            .take(25)
            .map(String::from)
            .collect()
    };
    let (kp, qp) = (k.cmd("info pic"), q.cmd("info pic"));
    assert_eq!(ioapic0(&kp).len(), 25, "{kp}");
    assert_eq!(ioapic0(&kp), ioapic0(&qp), "info pic:\n{kp}\n{qp}");
    let (kr, qr) = (k.cmd("info registers"), q.cmd("info registers"));
    assert_eq!(reg(&kr, "EIP"), reg(&qr, "EIP"));
    let qlines: Vec<&str> = qr.lines().collect();
    for line in kr.lines() {
        assert!(
            qlines.iter().any(|q| shape(q) == shape(line)),
            "no QEMU line shaped like {line:?}:\n{qr}"
        );
    }
    let klines: Vec<(String, Vec<usize>)> = kr.lines().map(shape).collect();
    for line in qlines {
        assert!(
            klines.contains(&shape(line)) || NOT_YET.iter().any(|p| line.starts_with(p)),
            "Kindling lacks QEMU's {line:?}:\n{kr}"
        );
    }
    assert_eq!(k.cmd("cont"), "");
    assert_eq!(k.cmd("info status"), "VM status: running\n");
    assert_eq!(k.cmd("quit"), "");
    assert_eq!(wait_exit(&mut kindling, 20), 0);
    let _ = qemu.kill();
    let _ = qemu.wait();
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn monitor_spellings_all_serve_the_same_hmp() {
    let Some(guest) = common::guest_file("tiny-pvh.elf") else {
        return;
    };
    let port = free_port();
    let (unix, chardev, qmp) = (temp("m.sock"), temp("c.sock"), temp("q.sock"));
    let mut child = Command::new(common::kindling())
        .args([
            "-accel", "tcg", "-m", "64m", "-display", "none", "-serial", "null",
        ])
        .arg("-kernel")
        .arg(&guest)
        .args(["-append", "hold", "-S"])
        .arg("-monitor")
        .arg(format!("unix:{},server,nowait", unix.display()))
        .arg("-monitor")
        .arg(format!("tcp:127.0.0.1:{port},server,nowait"))
        .arg("-chardev")
        .arg(format!(
            "socket,id=mon1,path={},server=on,wait=off",
            chardev.display()
        ))
        .args(["-mon", "chardev=mon1,mode=readline"])
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", qmp.display()))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut a = Hmp::unix(&unix);
    let mut b = Hmp::tcp(port);
    let mut c = Hmp::unix(&chardev);
    assert_eq!(a.cmd("info status"), "VM status: paused (prelaunch)\n");
    assert_eq!(b.cmd("info status"), "VM status: paused (prelaunch)\n");
    let chardevs = c.cmd("info chardev");
    for label in ["compat_monitor0", "compat_monitor1", "mon1", "serial0"] {
        assert!(
            chardevs.contains(&format!("{label}: filename=")),
            "{chardevs}"
        );
    }
    assert_eq!(c.cmd("cont"), "");
    assert_eq!(a.cmd("info status"), "VM status: running\n");
    // QMP's human-monitor-command runs the same implementation.
    let mut q = common::qmp::Qmp::connect(&qmp);
    let hmp_text = b.cmd("x /8xb 0x100000");
    let reply = q.execute_raw(
        r#"{"execute":"human-monitor-command","arguments":{"command-line":"x /8xb 0x100000"}}"#,
    );
    let text = reply["return"]
        .as_str()
        .expect("text")
        .replace("\r\n", "\n");
    assert_eq!(text, hmp_text);
    assert!(hmp_text.starts_with("0000000000100000: 0x"), "{hmp_text}");
    assert_eq!(a.cmd("quit"), "");
    assert_eq!(wait_exit(&mut child, 20), 0);
}

#[test]
fn monitor_stdio_reads_commands_from_stdin() {
    let Some(guest) = common::guest_file("tiny-pvh.elf") else {
        return;
    };
    let mut child = Command::new(common::kindling())
        .args(["-accel", "tcg", "-m", "64m", "-display", "none"])
        .arg("-kernel")
        .arg(&guest)
        .args(["-append", "hold", "-monitor", "stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"info status\rquit\r").unwrap();
    assert_eq!(wait_exit(&mut child, 20), 0);
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(out.starts_with("QEMU "), "{out:?}");
    assert!(out.contains("\r\nVM status: running\r\n"), "{out:?}");
    assert!(!out.contains("HOLD"), "COM1 is not on stdio: {out:?}");
}
