//! virtio-blk cache modes and image locking, and virtio-console, with
//! Linux on the software CPU (no KVM needed): a second Kindling (or QEMU)
//! on an image in use is refused in QEMU's words, every `cache=` mode
//! reads the disk, and the guest's hvc0 talks through a chardev.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::vm::{run, Vm};

const T: Duration = Duration::from_secs(240);

/// md5 of the shared guest's disk.img (scripts/guest/build-test-initramfs.sh).
const DISK_MD5: &str = "694a1213b6c22f75d5efb8d9b42917b7";

fn scratch(name: &str, bytes: usize) -> PathBuf {
    let p = std::env::temp_dir().join(format!("kindling-blkcon-{name}-{}.img", std::process::id()));
    std::fs::write(&p, vec![0u8; bytes]).unwrap();
    p
}

/// The device-test initramfs (scripts/guest/test-initramfs-path.sh).
fn test_initramfs() -> Option<PathBuf> {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/guest/test-initramfs-path.sh");
    let o = Command::new(script).env("NO_APT", "1").output().ok()?;
    if !o.status.success() {
        common::skip(String::from_utf8_lossy(&o.stderr));
        return None;
    }
    Some(PathBuf::from(String::from_utf8(o.stdout).ok()?.trim()))
}

/// Linux on the software CPU with the device-test initramfs running the
/// `test=` words, plus `extra` arguments.
fn linux_args(initrd: &std::path::Path, words: &str, extra: &[&str]) -> Option<Vec<String>> {
    let kernel = common::guest_file("bzImage")?;
    let mut args: Vec<String> = [
        "-M",
        "microvm,acpi=off",
        "-accel",
        "tcg",
        "-m",
        "256m",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-kernel",
        kernel.to_str()?,
        "-initrd",
        initrd.to_str()?,
        "-append",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("console=ttyS0 reboot=t panic=-1 quiet {words}"));
    args.extend(extra.iter().map(|s| s.to_string()));
    Some(args)
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A guest that holds `img` open for writing until killed.
fn holder(img: &std::path::Path) -> Option<Vm> {
    let k = common::guest_file("tiny-pvh.elf")?;
    let drive = format!("id=d0,file={},format=raw,if=none", img.display());
    let mut vm = Vm::start(&[
        "-accel",
        "tcg",
        "-nodefaults",
        "-serial",
        "stdio",
        "-kernel",
        k.to_str().unwrap(),
        "-append",
        "hold",
        "-drive",
        &drive,
        "-device",
        "virtio-blk-device,drive=d0",
    ]);
    assert!(vm.wait_for("HOLD", 1, T), "{}", vm.errors());
    Some(vm)
}

#[test]
fn a_second_kindling_on_an_image_in_use_fails_with_qemus_lock_error() {
    let img = scratch("lock", 1 << 20);
    let Some(mut first) = holder(&img) else {
        return;
    };
    let Some(k) = common::guest_file("tiny-pvh.elf") else {
        return;
    };
    let second = |extra: &str| {
        let drive = format!("id=d0,file={},format=raw,if=none{extra}", img.display());
        run(
            &[
                "-accel",
                "tcg",
                "-nodefaults",
                "-kernel",
                k.to_str().unwrap(),
                "-drive",
                &drive,
                "-device",
                "virtio-blk-device,drive=d0",
            ],
            T,
        )
    };
    let (status, _, err) = second("");
    assert_eq!(status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "kindling: -device virtio-blk-device,drive=d0: Failed to get \"write\" lock\n\
             Is another process using the image [{}]?",
            img.display()
        )
    );
    // A reader cannot keep the writer from writing either.
    let (status, _, err) = second(",readonly=on");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("Failed to get shared \"write\" lock"), "{err}");
    assert!(first.running(), "the first VMM keeps running");
    first.signal(15);
    first.wait_exit(T);
    let _ = std::fs::remove_file(img);
}

#[test]
fn kindling_and_qemu_keep_each_other_off_an_image() {
    let qemu = "qemu-system-x86_64";
    if Command::new(qemu).arg("-version").output().is_err() {
        common::skip(format!("no {qemu}"));
        return;
    }
    let img = scratch("qemu-lock", 1 << 20);
    let Some(mut first) = holder(&img) else {
        return;
    };
    let drive = format!("id=d0,file={},format=raw,if=none", img.display());
    let o = Command::new(qemu)
        .args([
            "-M",
            "microvm",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-S",
            "-drive",
            &drive,
            "-device",
            "virtio-blk-device,drive=d0",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("Failed to get \"write\" lock"), "{err}");
    first.signal(15);
    first.wait_exit(T);
    // And the other way round: QEMU holds it, Kindling is refused.
    let mut q = Command::new(qemu)
        .args([
            "-M",
            "microvm",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-S",
            "-drive",
            &drive,
            "-device",
            "virtio-blk-device,drive=d0",
        ])
        .spawn()
        .unwrap();
    let mut refused = String::new();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        let (status, _, err) = run(
            &[
                "-accel",
                "tcg",
                "-nodefaults",
                "-drive",
                &drive,
                "-device",
                "virtio-blk-device,drive=d0",
                "-kernel",
                common::guest_file("tiny-pvh.elf")
                    .unwrap()
                    .to_str()
                    .unwrap(),
            ],
            T,
        );
        if status.code() == Some(1) && err.contains("lock") {
            refused = err;
            break;
        }
    }
    let _ = q.kill();
    let _ = q.wait();
    assert!(
        refused.contains("Failed to get \"write\" lock\nIs another process using the image"),
        "{refused}"
    );
    let _ = std::fs::remove_file(img);
}

#[test]
fn every_cache_mode_reads_the_disk_in_linux() {
    let (Some(initrd), Some(disk)) = (test_initramfs(), common::guest_file("disk.img")) else {
        return;
    };
    for opts in [
        "cache=writeback,aio=threads",
        "cache=none,aio=native",
        "cache=directsync,aio=io_uring",
        "cache=unsafe",
        "cache=writethrough",
    ] {
        let drive = format!(
            "id=d0,file={},format=raw,if=none,readonly=on,{opts}",
            disk.display()
        );
        let Some(args) = linux_args(
            &initrd,
            "test=disk-md5",
            &[
                "-serial",
                "stdio",
                "-drive",
                &drive,
                "-device",
                "virtio-blk-device,drive=d0",
            ],
        ) else {
            return;
        };
        let (status, out, err) = run(&strs(&args), T);
        assert_eq!(status.code(), Some(0), "{opts}: {err}\n{out}");
        assert!(
            out.contains(&format!("DISK-MD5 {DISK_MD5}")),
            "{opts}:\n{out}"
        );
        assert!(out.contains("TESTS-DONE ok"), "{opts}:\n{out}");
    }
}

#[test]
fn writethrough_guest_writes_reach_the_image() {
    let Some(initrd) = test_initramfs() else {
        return;
    };
    let img = scratch("wt", 1 << 20);
    let drive = format!(
        "id=d0,file={},format=raw,if=none,cache=writethrough",
        img.display()
    );
    let Some(args) = linux_args(
        &initrd,
        "test=disk-write disk-size=4096",
        &[
            "-serial",
            "stdio",
            "-drive",
            &drive,
            "-device",
            "virtio-blk-device,drive=d0",
        ],
    ) else {
        return;
    };
    let (status, out, err) = run(&strs(&args), T);
    assert_eq!(status.code(), Some(0), "{err}\n{out}");
    assert!(out.contains("TESTS-DONE ok"), "{out}");
    let data = std::fs::read(&img).unwrap();
    assert_eq!(&data[..16], b"KINDLING0000000\n");
    assert_eq!(&data[4080..4096], b"KINDLING00000ff\n");
    let _ = std::fs::remove_file(img);
}

#[test]
fn guest_echoes_over_hvc0_through_a_stdio_chardev() {
    let Some(initrd) = test_initramfs() else {
        return;
    };
    // ttyS0 (the test's report) goes to a file; hvc0 is on stdio.
    let log = std::env::temp_dir().join(format!("kindling-hvc-{}.log", std::process::id()));
    let serial = format!("file:{}", log.display());
    let Some(args) = linux_args(
        &initrd,
        "test=hvc hvc-lines=2",
        &[
            "-serial",
            &serial,
            "-chardev",
            "stdio,id=hvc",
            "-device",
            "virtio-serial-device",
            "-device",
            "virtconsole,chardev=hvc",
        ],
    ) else {
        return;
    };
    let mut vm = Vm::start_interactive(&strs(&args));
    assert!(
        vm.wait_for("HVC-READY", 1, T),
        "stdout:\n{}\nstderr:\n{}",
        vm.output(),
        vm.errors()
    );
    vm.type_text("hello over virtio\n");
    assert!(
        vm.wait_for("HVC-ECHO hello over virtio", 1, T),
        "{}",
        vm.output()
    );
    vm.type_text("second line\r");
    assert!(vm.wait_for("HVC-ECHO second line", 1, T), "{}", vm.output());
    assert_eq!(vm.wait_exit(T).code(), Some(0), "{}", vm.errors());
    let report = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(report.contains("HVC-GOT hello over virtio"), "{report}");
    assert!(report.contains("TESTS-DONE ok"), "{report}");
    let _ = std::fs::remove_file(log);
}

#[test]
fn kernel_console_on_hvc0_reaches_a_file_chardev() {
    let Some(initrd) = common::guest_file("initramfs.cpio") else {
        return;
    };
    let Some(kernel) = common::guest_file("bzImage") else {
        return;
    };
    let log = std::env::temp_dir().join(format!("kindling-hvc0-{}.log", std::process::id()));
    let chardev = format!("file,id=c0,path={}", log.display());
    let (status, out, err) = run(
        &[
            "-M",
            "microvm,acpi=off",
            "-accel",
            "tcg",
            "-m",
            "256m",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
            "-serial",
            "stdio",
            "-chardev",
            &chardev,
            "-device",
            "virtio-serial-device",
            "-device",
            "virtconsole,chardev=c0",
            "-kernel",
            kernel.to_str().unwrap(),
            "-initrd",
            initrd.to_str().unwrap(),
            "-append",
            "console=ttyS0 console=hvc0 reboot=t panic=-1",
        ],
        T,
    );
    assert_eq!(status.code(), Some(0), "{err}\n{out}");
    let hvc = std::fs::read_to_string(&log).unwrap_or_default();
    // The driver probes and registers hvc0 as a kernel console; from then
    // on the kernel's messages and, since console=hvc0 comes last and so
    // is /dev/console, the initramfs's BOOT-OK arrive through the chardev.
    assert!(out.contains("printk: console [hvc0] enabled"), "{out}");
    assert!(hvc.contains("Run /init as init process"), "{hvc}");
    assert!(hvc.contains("BOOT-OK"), "{hvc}");
    let _ = std::fs::remove_file(log);
}

#[test]
fn linux_reads_a_qcow2_image_made_by_qemu_img() {
    let (Some(initrd), Some(disk)) = (test_initramfs(), common::guest_file("disk.img")) else {
        return;
    };
    let dir = std::env::temp_dir();
    let mut made = Vec::new();
    for (name, opts) in [
        ("v3", "compat=1.1"),
        ("v2-4k", "compat=0.10,cluster_size=4096"),
    ] {
        let out = dir.join(format!("kindling-{name}-{}.qcow2", std::process::id()));
        let ok = Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "qcow2", "-o", opts])
            .arg(&disk)
            .arg(&out)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            common::skip("qemu-img convert failed or is missing");
            return;
        }
        made.push(out);
    }
    for img in &made {
        let drive = format!(
            "id=d0,file={},format=qcow2,if=none,readonly=on",
            img.display()
        );
        let Some(args) = linux_args(
            &initrd,
            "test=disk-md5",
            &[
                "-serial",
                "stdio",
                "-drive",
                &drive,
                "-device",
                "virtio-blk-device,drive=d0",
            ],
        ) else {
            return;
        };
        let (status, out, err) = run(&strs(&args), T);
        assert_eq!(status.code(), Some(0), "{err}\n{out}");
        assert!(
            out.contains(&format!("DISK-MD5 {DISK_MD5}")),
            "{}:\n{out}",
            img.display()
        );
        let _ = std::fs::remove_file(img);
    }
}

#[test]
fn image_format_and_cache_errors_in_qemus_words() {
    let img = scratch("fmt", 1 << 16);
    let err_of = |drive: &str| {
        let drive = format!("id=d0,file={},if=none,{drive}", img.display());
        let (status, _, err) = run(
            &[
                "-accel",
                "tcg",
                "-nodefaults",
                "-drive",
                &drive,
                "-device",
                "virtio-blk-device,drive=d0",
            ],
            T,
        );
        assert_eq!(status.code(), Some(1), "{err}");
        let prefix = format!("kindling: -drive {drive}: ");
        err.trim_end()
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{err}"))
            .to_string()
    };
    assert_eq!(err_of("format=foo"), "Unknown driver 'foo'");
    assert_eq!(err_of("format=raw,cache=bogus"), "invalid cache option");
    assert_eq!(err_of("format=raw,aio=bogus"), "invalid aio option");
    assert_eq!(
        err_of("format=raw,aio=native"),
        "aio=native was specified, but it requires cache.direct=on, which was not specified."
    );
    assert_eq!(
        err_of("format=qcow2"),
        "Kindling opens qcow2 images read-only (add readonly=on)"
    );
    assert_eq!(
        err_of("format=qcow2,readonly=on"),
        format!(
            "Could not open '{}': Image is not in qcow2 format",
            img.display()
        )
    );
    let _ = std::fs::remove_file(img);
}

/// Guest flushes reach the host disk as fdatasync (seen with strace), and
/// cache=unsafe drops them as QEMU does.
#[test]
fn guest_flushes_become_fdatasync_except_with_cache_unsafe() {
    if Command::new("strace").arg("-V").output().is_err() {
        common::skip("no strace");
        return;
    }
    let Some(initrd) = test_initramfs() else {
        return;
    };
    for (cache, expect_sync) in [("writeback", true), ("unsafe", false)] {
        let img = scratch(&format!("flush-{cache}"), 1 << 20);
        let trace = img.with_extension("strace");
        let drive = format!(
            "id=d0,file={},format=raw,if=none,cache={cache}",
            img.display()
        );
        let Some(args) = linux_args(
            &initrd,
            "test=disk-write disk-size=4096",
            &[
                "-serial",
                "stdio",
                "-drive",
                &drive,
                "-device",
                "virtio-blk-device,drive=d0",
            ],
        ) else {
            return;
        };
        let kindling = common::kindling();
        let mut strace_args = vec![
            "-f",
            "-qq",
            "-e",
            "trace=fdatasync",
            "-o",
            trace.to_str().unwrap(),
            kindling.to_str().unwrap(),
        ];
        strace_args.extend(strs(&args));
        let o = Command::new("strace").args(&strace_args).output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("TESTS-DONE ok"), "{cache}:\n{out}");
        let syncs = std::fs::read_to_string(&trace)
            .unwrap_or_default()
            .matches("fdatasync(")
            .count();
        assert_eq!(syncs > 0, expect_sync, "{cache}: {syncs} fdatasync calls");
        let _ = std::fs::remove_file(img);
        let _ = std::fs::remove_file(trace);
    }
}
