//! A Debian 12 system built from Debian packages boots to multi-user.target
//! on the software CPU: scripts/guest/debian-system-path.sh's debootstrap
//! system (systemd, udev, linux-image-amd64 and its initramfs-tools initrd)
//! on a raw virtio-blk disk, with `-M microvm,acpi=on` (Debian's kernel finds
//! virtio-mmio devices only through ACPI). The guest's boot-ok.service
//! reports on the console once multi-user.target is reached and powers the
//! machine off (`kindling.poweroff=1`). scripts/test.sh builds the system
//! once and exports it as `$KINDLING_DEBIAN_SYSTEM`.

mod common;

use common::vm::Vm;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The boot costs about 4 minutes of one host core on the software CPU
/// (interpreter), more than the ~6 minutes of wall time other tests keep
/// to on a shared host can give it: 7.8 minutes wall at a load average of
/// 13 on 2 cores. The budget leaves room for a slower CI runner.
const BOOT: Duration = Duration::from_secs(1200);

/// `$KINDLING_DEBIAN_SYSTEM`, or `None` with the reason (an error under CI).
fn system_dir() -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("KINDLING_DEBIAN_SYSTEM").map(PathBuf::from) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide KINDLING_DEBIAN_SYSTEM (scripts/test.sh builds it)"
        );
        eprintln!(
            "skipping: KINDLING_DEBIAN_SYSTEM is not set (scripts/guest/debian-system-path.sh builds it)"
        );
        return None;
    };
    assert!(
        dir.join("disk.img").exists(),
        "{} has no disk.img",
        dir.display()
    );
    Some(dir)
}

/// A scratch copy of the system's disk, removed when dropped, so every
/// boot starts from the pristine image.
struct DiskCopy(PathBuf);

impl DiskCopy {
    fn new(image: &Path) -> DiskCopy {
        let dir = std::env::temp_dir().join(format!("kindling-debsys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        let copy = DiskCopy(dir);
        // cp keeps the 2 GiB image sparse (std::fs::copy would not).
        let status = Command::new("cp")
            .arg("--sparse=always")
            .arg(image)
            .arg(copy.path())
            .status()
            .expect("run cp");
        assert!(status.success(), "copying {} failed", image.display());
        copy
    }

    fn path(&self) -> PathBuf {
        self.0.join("disk.img")
    }
}

impl Drop for DiskCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The rest of the line after the first occurrence of `tag`.
fn after<'a>(out: &'a str, tag: &str) -> Option<&'a str> {
    let start = out.find(tag)? + tag.len();
    out[start..].lines().next().map(str::trim)
}

#[test]
fn debian_boots_to_multi_user_on_the_software_cpu() {
    let Some(dir) = system_dir() else {
        return;
    };
    let disk = DiskCopy::new(&dir.join("disk.img"));
    let cmdline = std::fs::read_to_string(dir.join("cmdline")).expect("read cmdline");
    // The serial getty hangs up ttyS0 when it starts (vhangup), which can
    // cut boot-ok.service's report off the console; the test logs in nowhere.
    let append = format!(
        "{} kindling.poweroff=1 systemd.mask=serial-getty@ttyS0.service",
        cmdline.trim()
    );
    let kernel = dir.join("vmlinuz");
    let initrd = dir.join("initrd.img");
    let drive = format!("id=d,file={},format=raw,if=none", disk.path().display());
    let mut vm = Vm::start(&[
        "-M",
        "microvm,acpi=on",
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
        "-drive",
        &drive,
        "-device",
        "virtio-blk-device,drive=d",
        "-append",
        &append,
    ]);
    assert!(
        vm.wait_for("KINDLING-BOOT-DONE", 1, BOOT),
        "the system did not report multi-user.target:\n{}\nstderr:\n{}",
        vm.output(),
        vm.errors()
    );
    let status = vm.wait_exit(Duration::from_secs(120));
    let out = vm.output();
    assert!(out.contains("KINDLING-MULTI-USER-OK"), "{out}");
    assert!(
        out.contains("EXT4-fs (vda): mounted filesystem"),
        "the initrd did not mount /dev/vda:\n{out}"
    );
    assert_eq!(
        after(&out, "KINDLING-FAILED-UNITS "),
        Some("0"),
        "failed units:\n{out}"
    );
    let root = after(&out, "KINDLING-ROOT ").unwrap_or_default();
    let fields: Vec<&str> = root.split_whitespace().collect();
    assert!(
        matches!(fields.as_slice(), ["/dev/vda", "ext4", opts] if opts.split(',').any(|o| o == "rw")),
        "the root filesystem is not /dev/vda mounted read-write: {root:?}\n{out}"
    );
    assert!(
        after(&out, "KINDLING-ANALYZE Startup finished in").is_some(),
        "no systemd-analyze figures:\n{out}"
    );
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after the guest's power-off\n{out}"
    );
}
