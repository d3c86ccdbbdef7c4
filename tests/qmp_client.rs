//! The QMP conversation suite (tests/qmp/qmp_suite.py), driven by QEMU's
//! own Python client library `qemu.qmp` against the built binary, and
//! compared with qemu-system-x86_64 where it is installed.

mod common;

use std::process::Command;

/// True when python3 can import qemu.qmp (else says why the test skips).
fn have_client() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import qemu.qmp"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        common::skip("python3 with qemu.qmp is not installed (scripts/setup.sh installs it)");
    }
    ok
}

fn suite(accel: &str) {
    let Some(guest) = common::guest_file("tiny-pvh.elf") else {
        return;
    };
    if !have_client() {
        return;
    }
    let suite = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/qmp/qmp_suite.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&suite)
        .arg(common::kindling())
        .arg(&guest)
        .arg(accel);
    // The suite includes the shape comparison with QEMU: without QEMU the
    // test skips (a failure under CI) rather than passing without it.
    let qemu = std::path::Path::new("/usr/bin/qemu-system-x86_64");
    if !qemu.exists() {
        common::skip("qemu-system-x86_64 is not installed (the QMP shape comparison needs it)");
        return;
    }
    cmd.arg("--compare").arg(qemu);
    let out = cmd.output().expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

#[test]
fn qemu_qmp_client_suite_on_kvm() {
    if let Some(why) = common::kvm_unusable() {
        common::skip_for_kvm(why);
        return;
    }
    suite("kvm");
}

#[test]
fn qemu_qmp_client_suite_on_the_software_cpu() {
    suite("tcg");
}

#[test]
fn linux_guest_lifecycle_through_qemu_qmp_on_the_software_cpu() {
    let (Some(kernel), Some(initrd)) = (
        common::guest_file("vmlinux"),
        common::guest_file("initramfs.cpio"),
    ) else {
        return;
    };
    if !have_client() {
        return;
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/qmp/linux_hold.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(common::kindling())
        .arg(&kernel)
        .arg(&initrd)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("all steps passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
