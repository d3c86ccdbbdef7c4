//! SMP on the software CPU end to end: the shared Linux guest with four
//! vCPUs (`-smp 4 -accel tcg`) runs scripts/guest/smpcheck.c (the
//! device-test initramfs's `test=smp`): threads hammering shared counters
//! with LOCK XADD / CMPXCHG / INC / ADD, CMPXCHG16B and an XCHG spinlock,
//! a fork/exit storm, and mmap/munmap races between threads (TLB
//! shootdowns), each for `$KINDLING_SMP_MS` milliseconds (default 5000).
//! Every shared counter must equal the sum of the threads' own counts,
//! every child must exit with its code, every mapping must read back its
//! pattern, and the kernel log must show no oops, BUG or warning.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::vm::run;

/// The cached device-test initramfs (test-initramfs-path.sh).
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

/// The `key=value` words of the console line starting with `prefix`.
fn fields<'a>(out: &'a str, prefix: &str) -> Option<Vec<(&'a str, &'a str)>> {
    let line = out
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .find_map(|l| l.strip_prefix(prefix))?;
    Some(
        line.split_whitespace()
            .map(|w| w.split_once('=').unwrap_or((w, "")))
            .collect(),
    )
}

/// The number `key` of a `fields` list.
fn num(f: &[(&str, &str)], key: &str) -> u64 {
    f.iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {f:?}"))
}

#[test]
fn four_vcpus_keep_locked_counters_exact_and_the_kernel_sane() {
    let Some(kernel) = common::guest_file("bzImage") else {
        return;
    };
    let Some(initrd) = test_initramfs() else {
        return;
    };
    let ms: u64 = std::env::var("KINDLING_SMP_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let append = format!("console=ttyS0 reboot=t panic=-1 quiet test=smp smp-ms={ms}");
    let args = [
        "-M",
        "microvm,acpi=off",
        "-accel",
        "tcg",
        "-smp",
        "4",
        "-m",
        "512m",
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
    let timeout = Duration::from_secs(300 + 3 * ms / 1000);
    let (status, out, err) = run(&args, timeout);
    let ctx = format!("console:\n{out}\nstderr:\n{err}");
    assert!(out.contains("BOOT-OK"), "{ctx}");
    let cpus = fields(&out, "SMP-CPUS ").unwrap_or_else(|| panic!("no SMP-CPUS\n{ctx}"));
    assert_eq!(cpus[0].0, "4", "{ctx}");

    let c = fields(&out, "SMP-COUNTERS ").unwrap_or_else(|| panic!("no SMP-COUNTERS\n{ctx}"));
    let n = num(&c, "iterations");
    assert!(n > 0, "no iterations\n{ctx}");
    for key in ["xadd", "cmpxchg", "cx16", "locked"] {
        assert_eq!(num(&c, key), n, "{key}\n{ctx}");
    }
    assert_eq!(num(&c, "inc"), n & 0xffff_ffff, "inc\n{ctx}");
    assert_eq!(num(&c, "add64"), 3 * n, "add64\n{ctx}");
    assert_eq!(c.last().map(|w| w.0), Some("ok"), "{ctx}");

    let f = fields(&out, "SMP-FORK ").unwrap_or_else(|| panic!("no SMP-FORK\n{ctx}"));
    assert!(num(&f, "forks") > 0, "{ctx}");
    assert_eq!(num(&f, "bad"), 0, "{ctx}");

    let m = fields(&out, "SMP-MMAP ").unwrap_or_else(|| panic!("no SMP-MMAP\n{ctx}"));
    assert!(num(&m, "maps") > 0, "{ctx}");
    assert_eq!(num(&m, "bad"), 0, "{ctx}");

    assert!(out.contains("SMP-DONE ok"), "{ctx}");
    assert!(!out.contains("SMP-KLOG"), "kernel log\n{ctx}");
    for bad in ["Oops", "general protection fault", "BUG:", "Kernel panic"] {
        assert!(!out.contains(bad), "{bad}\n{ctx}");
    }
    assert!(out.contains("TEST smp ok"), "{ctx}");
    assert!(status.success(), "{ctx}");
    eprintln!(
        "smpcheck ({ms} ms a phase): {n} counter iterations, {} forks, {} maps",
        num(&f, "forks"),
        num(&m, "maps")
    );
}
