//! A stock Debian kernel with its own initramfs-tools initrd finds a
//! virtio-blk root with Kindling's default machine options (ACPI on, as in
//! QEMU): Debian builds virtio_mmio as a module that only the DSDT can
//! point at its devices, so this is the check that the DSDT announces them.
//! The root is a small ext4 image whose /sbin/init (scripts/guest/rootcheck.c)
//! prints the mount of "/" and powers off.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `var`'s file, or `None` with the reason printed (a failure under CI,
/// where scripts/test.sh provides it).
fn provided(var: &str, script: &str) -> Option<PathBuf> {
    match std::env::var_os(var).map(PathBuf::from) {
        Some(p) if p.exists() => Some(p),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{var} is not set: scripts/test.sh runs {script}"
            );
            eprintln!("skipping: {var} is not set ({script} provides it)");
            None
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An ext4 image holding /sbin/init = rootcheck and the directories
/// initramfs-tools moves its mounts into.
fn root_image(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    for d in ["sbin", "proc", "sys", "dev", "run"] {
        std::fs::create_dir_all(tree.join(d)).unwrap();
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/guest/rootcheck.c");
    run(Command::new("gcc")
        .args(["-static", "-O2", "-s", "-o"])
        .arg(tree.join("sbin/init"))
        .arg(&src));
    let img = dir.join("root.ext4");
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "kindling-root", "-d"])
        .arg(&tree)
        .arg(&img)
        .arg("16M"));
    img
}

#[test]
fn debian_kernel_and_initrd_mount_a_virtio_blk_root_with_default_options() {
    let Some(kernel) = provided(
        "KINDLING_STOCK_KERNEL",
        "scripts/guest/stock-kernel-path.sh",
    ) else {
        return;
    };
    let Some(initrd) = provided(
        "KINDLING_DEBIAN_INITRD",
        "scripts/guest/debian-initrd-path.sh",
    ) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("kindling-debian-root-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let img = root_image(&dir);
    let drive = format!("id=root,file={},format=raw,if=none", img.display());
    // No acpi=: the default board.
    let (status, out, err) = common::vm::run(
        &[
            "-M",
            "microvm",
            "-accel",
            "tcg",
            "-m",
            "512m",
            "-nodefaults",
            "-no-reboot",
            "-serial",
            "stdio",
            "-kernel",
            kernel.to_str().unwrap(),
            "-initrd",
            initrd.to_str().unwrap(),
            "-append",
            "console=ttyS0 root=/dev/vda panic=-1",
            "-drive",
            &drive,
            "-device",
            "virtio-blk-device,drive=root",
        ],
        Duration::from_secs(600),
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        !out.contains("ALERT!"),
        "the initrd did not find its root:\n{out}"
    );
    let mount = out
        .lines()
        .find(|l| l.starts_with("ROOT-MOUNT "))
        .unwrap_or_else(|| panic!("init did not run from the disk:\n{out}\n{err}"));
    assert!(
        mount.starts_with("ROOT-MOUNT /dev/vda / ext4 "),
        "root is not /dev/vda: {mount}"
    );
    assert!(out.contains("ROOT-INIT-OK pid=1"), "{out}");
    assert_eq!(
        status.code(),
        Some(0),
        "guest power-off ends the process:\n{err}"
    );
}
