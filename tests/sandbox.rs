//! The seccomp sandbox seen from outside: every thread of a running
//! Kindling is filtered (`Seccomp: 2` in `/proc/PID/task/*/status`) on both
//! backends and with every device thread running, a forbidden call in a
//! vCPU thread ends the VM with one line naming it, `-sandbox off` runs
//! unfiltered, and `-sandbox`'s sub-options are parsed as QEMU does.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::qmp::Qmp;
use common::vm::{run, Vm};

const T: Duration = Duration::from_secs(60);

fn socket(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "kindling-sandbox-{name}-{}.sock",
        std::process::id()
    ))
}

/// Wait until the vCPUs run (the monitor answers before they start).
fn wait_running(q: &mut Qmp) {
    let deadline = std::time::Instant::now() + T;
    while q.execute("query-status")["return"]["running"] != true {
        assert!(std::time::Instant::now() < deadline, "the guest never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `(thread name, Seccomp mode)` for every thread of `pid`.
fn seccomp_modes(pid: u32) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).expect("read tasks") {
        let dir = t.unwrap().path();
        let Ok(status) = std::fs::read_to_string(dir.join("status")) else {
            continue; // the thread ended meanwhile
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        out.push((field("Name:"), field("Seccomp:").parse().unwrap()));
    }
    out
}

/// A tiny guest that resets forever (it prints, then triple-faults), with
/// two vCPUs and a QMP socket.
fn tiny(accel: &str, sock: &std::path::Path, extra: &[&str]) -> Option<Vm> {
    let guest = common::guest_file("tiny-pvh.elf")?;
    let qmp = format!("unix:{},server=on,wait=off", sock.display());
    let mut args = vec![
        "-M",
        "microvm",
        "-accel",
        accel,
        "-smp",
        "2",
        "-m",
        "64m",
        "-nodefaults",
        "-serial",
        "null",
        "-kernel",
        guest.to_str().unwrap(),
        "-qmp",
        &qmp,
    ];
    args.extend_from_slice(extra);
    Some(Vm::start(&args))
}

fn every_thread_is_filtered(accel: &str) {
    let sock = socket(accel);
    let Some(mut vm) = tiny(accel, &sock, &[]) else {
        return;
    };
    let mut q = Qmp::connect(&sock);
    wait_running(&mut q);
    // Threads name themselves when they first run: wait for all of them
    // (bounded; an unfiltered thread fails below).
    let vcpu = format!("CPU 1/{}", accel.to_uppercase());
    let wanted = [
        vcpu.as_str(),
        "qmp-conn-0",
        "qmp-listen-0",
        "signals",
        "timers",
    ];
    let deadline = std::time::Instant::now() + T;
    let modes = loop {
        let modes = seccomp_modes(vm.pid());
        let missing: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|w| !modes.iter().any(|(n, _)| n == w))
            .collect();
        // A thread names itself just before installing its filter.
        let settled = modes.iter().all(|(_, m)| *m == 2);
        if (missing.is_empty() && settled) || std::time::Instant::now() > deadline {
            assert!(missing.is_empty(), "no {missing:?} threads in {modes:?}");
            break modes;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    for (name, mode) in &modes {
        assert_eq!(*mode, 2, "thread {name} is not filtered: {modes:?}");
    }
    // The filtered machine still serves the monitor and resets its guest.
    assert_eq!(q.execute("system_reset")["return"], serde_json::json!({}));
    assert_eq!(q.execute("query-status")["return"]["running"], true);
    vm.signal(libc::SIGTERM);
    assert!(vm.wait_exit(T).success(), "{}", vm.errors());
    let _ = std::fs::remove_file(&sock);
}

#[test]
fn every_thread_is_filtered_on_the_software_cpu() {
    every_thread_is_filtered("tcg");
}

#[test]
fn every_thread_is_filtered_on_kvm() {
    if let Some(why) = common::kvm_unusable() {
        common::skip_for_kvm(why);
        return;
    }
    every_thread_is_filtered("kvm");
}

#[test]
fn sandbox_off_runs_without_filters() {
    let sock = socket("off");
    let Some(mut vm) = tiny("tcg", &sock, &["-sandbox", "off"]) else {
        return;
    };
    let mut q = Qmp::connect(&sock);
    wait_running(&mut q);
    let modes = seccomp_modes(vm.pid());
    assert!(modes.len() >= 5, "{modes:?}");
    assert!(modes.iter().all(|(_, m)| *m == 0), "{modes:?}");
    vm.signal(libc::SIGTERM);
    vm.wait_exit(T);
    let _ = std::fs::remove_file(&sock);
}

fn forbidden_call_ends_the_vm(accel: &str) {
    let Some(guest) = common::guest_file("tiny-pvh.elf") else {
        return;
    };
    let out = Command::new(common::kindling())
        .args(["-M", "microvm", "-accel", accel, "-nodefaults"])
        .args(["-serial", "null", "-kernel", guest.to_str().unwrap()])
        .env("KINDLING_SANDBOX_SELFTEST", "vcpu")
        .output()
        .expect("run kindling");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(159), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("sandbox")).collect();
    assert_eq!(
        lines,
        [
            "kindling: sandbox: a vCPU thread made system call getpgid (121), which its \
             seccomp filter does not allow; ending the VM (-sandbox off disables the filters)"
        ],
        "{err}"
    );
}

#[test]
fn a_forbidden_call_in_a_vcpu_thread_ends_the_vm_with_its_name() {
    forbidden_call_ends_the_vm("tcg");
}

#[test]
fn a_forbidden_call_in_a_kvm_vcpu_thread_ends_the_vm_with_its_name() {
    if let Some(why) = common::kvm_unusable() {
        common::skip_for_kvm(why);
        return;
    }
    forbidden_call_ends_the_vm("kvm");
}

#[test]
fn the_hook_is_harmless_without_the_sandbox() {
    let Some(guest) = common::guest_file("tiny-pvh.elf") else {
        return;
    };
    let out = Command::new(common::kindling())
        .args(["-sandbox", "off", "-M", "microvm", "-accel", "tcg"])
        .args(["-nodefaults", "-no-reboot", "-serial", "stdio"])
        .args(["-kernel", guest.to_str().unwrap()])
        .env("KINDLING_SANDBOX_SELFTEST", "vcpu")
        .output()
        .expect("run kindling");
    assert!(String::from_utf8_lossy(&out.stdout).contains("BOOT-OK"));
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn sandbox_options_are_parsed_as_qemu_does() {
    // Each line is QEMU 7.2's for the same option.
    for (arg, want) in [
        (
            "on,spawn=maybe",
            "-sandbox on,spawn=maybe: invalid argument for spawn",
        ),
        ("on,foo=bar", "-sandbox on,foo=bar: Invalid parameter 'foo'"),
        (
            "maybe",
            "-sandbox maybe: Parameter 'enable' expects 'on' or 'off'",
        ),
        (
            "on,elevateprivileges=sometimes",
            "-sandbox on,elevateprivileges=sometimes: invalid argument for elevateprivileges",
        ),
    ] {
        let (code, _, err) = run(&["-sandbox", arg, "-kernel", "/dev/null"], T);
        assert_eq!(code.code(), Some(1), "{arg}: {err}");
        assert_eq!(err.trim(), format!("kindling: {want}"), "{arg}");
    }
    let Some(guest) = common::guest_file("tiny-pvh.elf") else {
        return;
    };
    let full = "on,obsolete=deny,elevateprivileges=children,spawn=deny,resourcecontrol=deny";
    let (code, out, err) = run(
        &[
            "-sandbox",
            full,
            "-M",
            "microvm",
            "-accel",
            "tcg",
            "-nodefaults",
            "-no-reboot",
            "-serial",
            "stdio",
            "-kernel",
            guest.to_str().unwrap(),
        ],
        T,
    );
    assert!(out.contains("BOOT-OK"), "{err}");
    assert_eq!(code.code(), Some(0), "{err}");
}

/// Linux on the software CPU with the compiled tier, virtio-blk (raw with
/// O_DIRECT and qcow2), virtio-rng and user networking: every thread,
/// the slirp thread included, runs filtered while the guest uses them.
#[test]
fn linux_with_every_device_runs_filtered() {
    let Some(kernel) = common::guest_file("bzImage") else {
        return;
    };
    let Some(disk) = common::guest_file("disk.img") else {
        return;
    };
    let Some(initrd) = common::test_initramfs() else {
        return;
    };
    let dir = std::env::temp_dir();
    let raw = dir.join(format!("kindling-sandbox-{}.img", std::process::id()));
    std::fs::copy(&disk, &raw).unwrap();
    let qcow2 = dir.join(format!("kindling-sandbox-{}.qcow2", std::process::id()));
    let made = Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&disk)
        .arg(&qcow2)
        .status();
    if !made.is_ok_and(|s| s.success()) {
        common::skip("qemu-img convert failed or is missing");
        return;
    }
    let sock = socket("linux");
    let qmp = format!("unix:{},server=on,wait=off", sock.display());
    let d0 = format!("id=d0,file={},format=raw,if=none,cache=none", raw.display());
    let d1 = format!(
        "id=d1,file={},format=qcow2,if=none,readonly=on",
        qcow2.display()
    );
    let mut vm = Vm::start(&[
        "-M",
        "microvm",
        "-accel",
        "tcg",
        "-m",
        "256m",
        "-smp",
        "2",
        "-nodefaults",
        "-no-reboot",
        "-serial",
        "stdio",
        "-kernel",
        kernel.to_str().unwrap(),
        "-initrd",
        initrd.to_str().unwrap(),
        "-append",
        "console=ttyS0 reboot=t panic=-1 quiet test=virtio,disk-write,hwrng,net,sleep sleep=60",
        "-drive",
        &d0,
        "-device",
        "virtio-blk-device,drive=d0",
        "-drive",
        &d1,
        "-device",
        "virtio-blk-device,drive=d1",
        "-device",
        "virtio-rng-device",
        "-netdev",
        "user,id=n0",
        "-device",
        "virtio-net-device,netdev=n0",
        "-qmp",
        &qmp,
    ]);
    let mut q = Qmp::connect(&sock);
    let ok = vm.wait_for("TEST net ok", 1, Duration::from_secs(240));
    let modes = seccomp_modes(vm.pid());
    let blocks = q.execute("query-block");
    vm.signal(libc::SIGTERM);
    vm.wait_exit(T);
    let _ = std::fs::remove_file(&raw);
    let _ = std::fs::remove_file(&qcow2);
    let _ = std::fs::remove_file(&sock);
    assert!(ok, "{}\n{}", vm.output(), vm.errors());
    for want in ["disk-write ok", "hwrng ok"] {
        assert!(
            vm.output().contains(&format!("TEST {want}")),
            "{}",
            vm.output()
        );
    }
    assert!(modes.iter().any(|(n, _)| n == "slirp"), "{modes:?}");
    for (name, mode) in &modes {
        assert_eq!(*mode, 2, "thread {name} is not filtered: {modes:?}");
    }
    // query-block reports the real drivers, cache modes and sizes.
    let b = &blocks["return"];
    assert_eq!(b[0]["inserted"]["drv"], "raw");
    assert_eq!(b[0]["inserted"]["cache"]["direct"], true);
    assert_eq!(b[0]["inserted"]["ro"], false);
    assert_eq!(b[1]["inserted"]["drv"], "qcow2");
    assert_eq!(b[1]["inserted"]["ro"], true);
    assert_eq!(b[1]["inserted"]["image"]["virtual-size"], 8 << 20);
}
