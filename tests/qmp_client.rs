//! The QMP conversation suite (tests/qmp/qmp_suite.py), driven by QEMU's
//! own Python client library `qemu.qmp` against the built binary, and
//! compared with qemu-system-x86_64 where it is installed.

mod common;

use std::process::Command;

fn suite(accel: &str) {
    let Some(guest) = common::guest_file("tiny-pvh.elf") else {
        return;
    };
    let have_client = Command::new("python3")
        .args(["-c", "import qemu.qmp"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !have_client {
        eprintln!(
            "skipping: python3 with qemu.qmp is not installed (scripts/setup.sh installs it)"
        );
        return;
    }
    let suite = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/qmp/qmp_suite.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&suite)
        .arg(common::kindling())
        .arg(&guest)
        .arg(accel);
    let qemu = std::path::Path::new("/usr/bin/qemu-system-x86_64");
    if qemu.exists() {
        cmd.arg("--compare").arg(qemu);
    } else {
        eprintln!("note: qemu-system-x86_64 not installed; the shape comparison is skipped");
    }
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
        eprintln!("skipping: {why}");
        return;
    }
    suite("kvm");
}

#[test]
fn qemu_qmp_client_suite_on_the_software_cpu() {
    suite("tcg");
}
