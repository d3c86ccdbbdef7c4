//! An x86-64-v3 userland on the software CPU: C programs built on the host
//! with `gcc -O3 -march=x86-64-v3` (auto-vectorized AVX2/FMA loops, BMI2
//! hashing, glibc's AVX2 string functions and FMA libm, AES-NI, PCLMULQDQ,
//! CRC32, SHA-NI and SSE4.2 string-compare intrinsics), dynamically linked
//! against the host's glibc, run in the shared guest (bzImage, `-accel
//! tcg`, `-cpu max`) with that glibc beside them. Each program's output
//! must equal the same binary's output on the host; glibc's loader must
//! find x86-64-v2 and x86-64-v3 supported (and not v4: no AVX-512); and
//! Linux must list the v3 flags in /proc/cpuinfo.
//!
//! The userland comes from `scripts/guest/v3-userland-path.sh`
//! (scripts/test.sh provides it as `KINDLING_V3_USERLAND`; without it the
//! test runs the script). Without gcc the test says why it skips, except
//! under CI=true, where gcc is required.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::vm::run;

/// The most the boot and the programs may take on the interpreter.
const T: Duration = Duration::from_secs(900);

/// The userland directory (bin/ and initramfs.cpio), or `None` with the
/// reason printed.
fn userland() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("KINDLING_V3_USERLAND") {
        return Some(PathBuf::from(d));
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let have_gcc = Command::new("gcc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_gcc {
        assert!(!ci, "CI=true but gcc is missing");
        common::skip("gcc is not installed (needed to build the x86-64-v3 userland)");
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/guest/v3-userland-path.sh");
    let out = Command::new(&script)
        .output()
        .expect("run v3-userland-path.sh");
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(!ci, "v3-userland-path.sh failed under CI:\n{why}");
        common::skip(format!("v3-userland-path.sh failed:\n{why}"));
        return None;
    }
    Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// The guest's console lines (carriage returns removed) and the userland
/// directory, from one boot shared by the tests.
fn guest_run() -> Option<&'static (Vec<String>, PathBuf)> {
    static RUN: OnceLock<Option<(Vec<String>, PathBuf)>> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = userland()?;
        let kernel = common::guest_file("bzImage")?;
        let initrd = dir.join("initramfs.cpio");
        let (status, out, err) = run(
            &[
                "-M",
                "microvm",
                "-accel",
                "tcg",
                "-cpu",
                "max",
                "-m",
                "512m",
                "-nodefaults",
                "-no-user-config",
                "-nographic",
                "-no-reboot",
                "-serial",
                "stdio",
                "-kernel",
                kernel.to_str().expect("path"),
                "-initrd",
                initrd.to_str().expect("path"),
                "-append",
                "console=ttyS0 reboot=t panic=-1 quiet rdinit=/v3-init",
            ],
            T,
        );
        assert!(
            out.contains("V3-END"),
            "status {status}\n{out}\nstderr:\n{err}"
        );
        let lines = out
            .lines()
            .map(|l| l.trim_end_matches('\r').to_string())
            .collect();
        Some((lines, dir))
    })
    .as_ref()
}

/// The lines between `start` and the first line starting with `end`.
fn section<'a>(lines: &'a [String], start: &str, end: &str) -> &'a [String] {
    let from = lines
        .iter()
        .position(|l| l == start)
        .unwrap_or_else(|| panic!("no {start:?} in:\n{}", lines.join("\n")))
        + 1;
    let len = lines[from..]
        .iter()
        .position(|l| l.starts_with(end))
        .unwrap_or_else(|| panic!("no {end:?} after {start:?}"));
    &lines[from..from + len]
}

#[test]
fn v3_programs_print_what_they_print_on_the_host() {
    let Some((lines, dir)) = guest_run() else {
        return;
    };
    let mut programs: Vec<PathBuf> = std::fs::read_dir(dir.join("bin"))
        .expect("bin/")
        .map(|e| e.expect("entry").path())
        .collect();
    programs.sort();
    assert_eq!(programs.len(), 3, "{programs:?}");
    for p in programs {
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        let host = Command::new(&p).output().expect("run on the host");
        assert!(host.status.success(), "{name} fails on the host");
        let host = String::from_utf8(host.stdout).expect("utf-8");
        let guest = section(lines, &format!("V3-PROG {name}"), &format!("V3-RC {name} "));
        let rc = lines
            .iter()
            .find(|l| l.starts_with(&format!("V3-RC {name} ")))
            .expect("status line");
        assert_eq!(rc, &format!("V3-RC {name} 0"), "{name} in the guest");
        let host: Vec<&str> = host.lines().collect();
        assert!(host.len() >= 5, "{name}: {host:?}");
        assert_eq!(guest, host.as_slice(), "{name}: guest vs host");
    }
}

#[test]
fn glibc_finds_x86_64_v2_and_v3_supported() {
    let Some((lines, _)) = guest_run() else {
        return;
    };
    let help = section(lines, "V3-LDSO", "V3-LDSO-END");
    let status = |level: &str| {
        help.iter()
            .map(|l| l.trim())
            .find(|l| l.starts_with(&format!("{level} ")) || *l == level)
            .unwrap_or_else(|| panic!("{level} not listed:\n{}", help.join("\n")))
            .to_string()
    };
    assert_eq!(status("x86-64-v3"), "x86-64-v3 (supported, searched)");
    assert_eq!(status("x86-64-v2"), "x86-64-v2 (supported, searched)");
    assert_eq!(status("x86-64-v4"), "x86-64-v4", "no AVX-512 here");
}

#[test]
fn linux_lists_the_v3_flags() {
    let Some((lines, _)) = guest_run() else {
        return;
    };
    let flags = lines
        .iter()
        .find_map(|l| l.strip_prefix("V3-flags"))
        .expect("flags line");
    let flags: Vec<&str> = flags
        .trim_start_matches([' ', '\t', ':'])
        .split_whitespace()
        .collect();
    for f in [
        "avx",
        "avx2",
        "fma",
        "f16c",
        "bmi1",
        "bmi2",
        "abm",
        "movbe",
        "xsave",
        "sha_ni",
        "aes",
        "pclmulqdq",
        "sse4_2",
        "ssse3",
        "pni",
        "popcnt",
    ] {
        assert!(flags.contains(&f), "no {f} in {flags:?}");
    }
}
