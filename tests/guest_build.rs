//! The guest build scripts in scripts/guest: they parse, the device-test
//! initramfs (build-test-initramfs.sh) comes out byte for byte the same on
//! every build, and its /init's `test=` words work on the software CPU with
//! the shared kernel (entropy, disk write, and the failure lines).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::vm::run;

const T: Duration = Duration::from_secs(240);

fn scripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/guest")
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kindling-guest-build-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Build the test initramfs into `out`; `false` (with the reason printed)
/// when this host lacks the Debian packages and may not install them.
fn build_initramfs(out: &Path) -> bool {
    let o = Command::new(scripts().join("build-test-initramfs.sh"))
        .arg(out)
        .env("NO_APT", "1")
        .output()
        .expect("run build-test-initramfs.sh");
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() && err.contains("install these Debian packages") {
        common::skip(err);
        return false;
    }
    assert!(o.status.success(), "build-test-initramfs.sh failed:\n{err}");
    true
}

/// The cached test initramfs, through test-initramfs-path.sh.
fn test_initramfs() -> Option<PathBuf> {
    let o = Command::new(scripts().join("test-initramfs-path.sh"))
        .env("NO_APT", "1")
        .output()
        .expect("run test-initramfs-path.sh");
    if !o.status.success() {
        common::skip(String::from_utf8_lossy(&o.stderr));
        return None;
    }
    Some(PathBuf::from(String::from_utf8(o.stdout).unwrap().trim()))
}

fn boot(devices: &[&str], words: &str) -> Option<(i32, String, String)> {
    let kernel = common::guest_file("bzImage")?;
    let initrd = test_initramfs()?;
    let append = format!("console=ttyS0 reboot=t panic=-1 quiet {words}");
    let mut args = vec![
        "-M",
        "microvm,acpi=off",
        "-accel",
        "tcg",
        "-m",
        "256m",
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-no-reboot",
        "-serial",
        "stdio",
        "-kernel",
        kernel.to_str().unwrap(),
        "-initrd",
        initrd.to_str().unwrap(),
        "-append",
        &append,
    ];
    args.extend_from_slice(devices);
    let (status, out, err) = run(&args, T);
    Some((status.code().unwrap_or(-1), out, err))
}

/// The value after `key ` on the console line starting with it.
fn line<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines()
        .map(|l| l.trim_end_matches('\r'))
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
}

#[test]
fn guest_scripts_parse() {
    for s in [
        "build.sh",
        "path.sh",
        "build-test-initramfs.sh",
        "test-initramfs-path.sh",
    ] {
        let st = Command::new("bash")
            .arg("-n")
            .arg(scripts().join(s))
            .status()
            .unwrap();
        assert!(st.success(), "bash -n {s}");
    }
}

#[test]
fn test_initramfs_is_reproducible() {
    let d = scratch("repro");
    let (a, b) = (d.join("a.cpio"), d.join("b.cpio"));
    if !build_initramfs(&a) || !build_initramfs(&b) {
        return;
    }
    let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert!(a.len() > 1 << 20, "busybox is in the archive");
    assert!(a == b, "two builds differ");
    assert!(a.starts_with(b"070701"), "newc cpio");
    let gz = d.join("c.cpio.gz");
    assert!(build_initramfs(&gz));
    assert!(
        std::fs::read(gz).unwrap().starts_with(&[0x1f, 0x8b]),
        "gzip"
    );
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn test_initramfs_reads_the_virtio_entropy_device() {
    let Some((code, out, err)) = boot(&["-device", "virtio-rng-device"], "test=virtio,hwrng")
    else {
        return;
    };
    assert!(out.contains("BOOT-OK"), "console:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("VIRTIO virtio0 device=0x0004 vendor=0x554d4551"),
        "{out}"
    );
    assert_eq!(line(&out, "HWRNG-CURRENT"), Some("virtio_rng.0"), "{out}");
    let n = line(&out, "HWRNG").unwrap_or_else(|| panic!("{out}"));
    assert!(n.starts_with("64 "), "{out}");
    assert_eq!(line(&out, "HWRNG-HEX").map(str::len), Some(128), "{out}");
    assert!(
        out.contains("TEST hwrng ok") && out.contains("TESTS-DONE ok"),
        "{out}"
    );
    assert!(
        out.contains("END reboot"),
        "acpi=off ends with reboot -f: {out}"
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn test_initramfs_writes_its_pattern_to_the_disk() {
    let Some(orig) = common::guest_file("disk.img") else {
        return;
    };
    let d = scratch("disk");
    let img = d.join("disk.img");
    std::fs::copy(&orig, &img).unwrap();
    let drive = format!("id=d0,file={},format=raw,if=none", img.display());
    let (offset, size) = (4096usize, 32768usize);
    let Some((code, out, err)) = boot(
        &["-drive", &drive, "-device", "virtio-blk-device,drive=d0"],
        &format!("test=disk-write disk-offset={offset} disk-size={size}"),
    ) else {
        return;
    };
    assert!(
        out.contains("TEST disk-write ok"),
        "console:\n{out}\nstderr:\n{err}"
    );
    assert_eq!(code, 0, "{err}");
    let want: Vec<u8> = (offset / 16..(offset + size) / 16)
        .flat_map(|i| format!("KINDLING{i:07x}\n").into_bytes())
        .collect();
    let got = std::fs::read(&img).unwrap();
    let before = std::fs::read(&orig).unwrap();
    assert_eq!(got.len(), before.len());
    assert!(
        got[offset..offset + size] == want[..],
        "the pattern reached the image"
    );
    assert!(
        got[..offset] == before[..offset],
        "bytes before it are untouched"
    );
    assert!(
        got[offset + size..] == before[offset + size..],
        "bytes after it are untouched"
    );
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn test_initramfs_reports_missing_devices_and_unknown_tests() {
    let Some((code, out, err)) = boot(&[], "test=hwrng,hvc,net,disk-write,nonesuch") else {
        return;
    };
    for l in [
        "TEST hwrng FAIL short read",
        "TEST hvc FAIL no /dev/hvc0",
        "TEST net FAIL no eth0",
        "TEST disk-write FAIL no /dev/vda",
        "TEST nonesuch FAIL unknown test",
        "TESTS-DONE FAIL",
    ] {
        assert!(out.contains(l), "missing {l:?} in:\n{out}\nstderr:\n{err}");
    }
    assert_eq!(code, 0, "{err}");
}
