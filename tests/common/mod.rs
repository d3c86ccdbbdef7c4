//! Shared pieces of the end-to-end tests: the built binary, the test guests
//! and a child-process runner that watches the serial console.
#![allow(dead_code)]

pub mod guests;
pub mod hmp;
pub mod pty;
pub mod qmp;
pub mod restart;
pub mod vm;

use std::path::PathBuf;

/// True under CI (`CI=true`), where only missing hardware-backed KVM may
/// excuse a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skip the rest of a test for `why` (anything but KVM): prints the reason
/// and returns; under `CI=true` it fails the test instead, since the test
/// command must install or build whatever a test needs.
#[track_caller]
pub fn skip(why: impl std::fmt::Display) {
    if in_ci() {
        panic!(
            "CI=true: a test may skip only when hardware-backed KVM is absent, not because: {why} \
             (scripts/test.sh must provide it)"
        );
    }
    eprintln!("skipping: {why}");
}

/// Skip because hardware-backed KVM is absent (or this KVM cannot run the
/// test): the one reason allowed everywhere, CI included.
pub fn skip_for_kvm(why: impl std::fmt::Display) {
    eprintln!("skipping: no hardware-backed KVM for this test: {why}");
}

/// The `kindling` binary under test.
pub fn kindling() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kindling"))
}

/// The directory holding the shared Linux test guest (bzImage, vmlinux,
/// initramfs.cpio, disk.img, tiny-pvh.elf): `$KINDLING_GUEST_DIR`, else the
/// repository's sibling `shared/guest`. `None` (with the reason printed)
/// when neither exists: run `scripts/guest/path.sh` to build it.
pub fn guest_dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("KINDLING_GUEST_DIR").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/guest")),
    ];
    for c in candidates.into_iter().flatten() {
        if c.join("tiny-pvh.elf").exists() {
            return Some(c);
        }
    }
    skip("no test guest (set KINDLING_GUEST_DIR or run scripts/guest/path.sh)");
    None
}

/// A file of the shared guest, or `None` with the reason printed.
pub fn guest_file(name: &str) -> Option<PathBuf> {
    let p = guest_dir()?.join(name);
    if p.exists() {
        Some(p)
    } else {
        skip(format!("{} is missing", p.display()));
        None
    }
}

/// Why KVM tests can't run here, or `None` if `/dev/kvm` opens.
pub fn kvm_unusable() -> Option<String> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => None,
        Err(e) => Some(format!("/dev/kvm: {e}")),
    }
}

/// True where KVM is hardware-backed (kvm_intel or kvm_amd loaded), so
/// Linux can boot on it.
pub fn kvm_is_hardware() -> bool {
    ["kvm_intel", "kvm_amd"]
        .iter()
        .any(|m| std::path::Path::new("/sys/module").join(m).exists())
}

/// The device-test initramfs (`$KINDLING_TEST_INITRAMFS`, else built once
/// by `scripts/guest/test-initramfs-path.sh`), or `None` with the reason
/// given to [`skip`].
pub fn test_initramfs() -> Option<PathBuf> {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/guest/test-initramfs-path.sh");
    let o = std::process::Command::new(script)
        .env("NO_APT", "1")
        .output()
        .ok()?;
    if !o.status.success() {
        skip(String::from_utf8_lossy(&o.stderr));
        return None;
    }
    Some(PathBuf::from(String::from_utf8(o.stdout).ok()?.trim()))
}
