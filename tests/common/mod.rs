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
    eprintln!("skipping: no test guest (set KINDLING_GUEST_DIR or run scripts/guest/path.sh)");
    None
}

/// A file of the shared guest, or `None` with the reason printed.
pub fn guest_file(name: &str) -> Option<PathBuf> {
    let p = guest_dir()?.join(name);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipping: {} is missing", p.display());
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

/// The cached device-test initramfs (scripts/guest/test-initramfs-path.sh,
/// which builds it once), or `None` with the reason printed.
pub fn test_initramfs() -> Option<PathBuf> {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/guest/test-initramfs-path.sh");
    let o = std::process::Command::new(script)
        .env("NO_APT", "1")
        .output()
        .ok()?;
    if !o.status.success() {
        eprintln!("skipping: {}", String::from_utf8_lossy(&o.stderr));
        return None;
    }
    Some(PathBuf::from(String::from_utf8(o.stdout).ok()?.trim()))
}
