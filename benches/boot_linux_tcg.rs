//! Linux on the software CPU, side by side with `qemu-system-x86_64 -accel
//! tcg` (QEMU's JIT) on the same command line and guest: time from process
//! start to the guest's `BOOT-OK` line, and to process exit (the guest
//! reboots with `reboot=t`, `-no-reboot` ends the process).
//!
//! Run: `cargo bench --bench boot_linux_tcg`. `KINDLING_BENCH_KERNEL`
//! picks `bzImage` or `vmlinux` (default: both). QEMU is given
//! `tsc_early_khz=` (its TCG hangs in TSC calibration without it);
//! Kindling needs no extra kernel argument.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

fn guest_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("KINDLING_GUEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/guest"));
    dir.join("initramfs.cpio").exists().then_some(dir)
}

fn args(dir: &Path, kernel: &str, qemu: bool) -> Vec<String> {
    let mut append = "console=ttyS0 reboot=t panic=-1 quiet".to_string();
    if qemu {
        let khz = host_tsc_khz().unwrap_or(2_600_000);
        append.push_str(&format!(" tsc_early_khz={khz}"));
    }
    let mut a: Vec<String> = [
        "-M",
        "microvm,acpi=off",
        "-accel",
        "tcg",
        "-m",
        "256m",
        "-smp",
        "1",
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-no-reboot",
        "-serial",
        "stdio",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if qemu {
        a.extend(["-cpu".into(), "max".into()]);
    }
    a.extend([
        "-kernel".into(),
        dir.join(kernel).display().to_string(),
        "-initrd".into(),
        dir.join("initramfs.cpio").display().to_string(),
        "-append".into(),
        append,
    ]);
    a
}

/// The host TSC rate from /proc/cpuinfo's "cpu MHz" (for QEMU's argument).
fn host_tsc_khz() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = info
        .lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()?;
    Some((mhz * 1000.0) as u64)
}

/// One boot: (time to the BOOT-OK line, time to exit).
fn boot_once(bin: &Path, args: &[String]) -> (Duration, Duration) {
    let start = Instant::now();
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn emulator");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut boot_ok = None;
    for line in out.lines() {
        let Ok(line) = line else { break };
        if boot_ok.is_none() && line.contains("BOOT-OK") {
            boot_ok = Some(start.elapsed());
        }
    }
    child.wait().expect("wait");
    let exit = start.elapsed();
    (boot_ok.expect("the guest printed BOOT-OK"), exit)
}

fn bench(c: &mut Criterion) {
    let Some(dir) = guest_dir() else {
        eprintln!("skipping: the test guest was not found (set KINDLING_GUEST_DIR)");
        return;
    };
    let kindling = PathBuf::from(env!("CARGO_BIN_EXE_kindling"));
    let qemu = which("qemu-system-x86_64");
    let kernels: Vec<String> = match std::env::var("KINDLING_BENCH_KERNEL") {
        Ok(k) => vec![k],
        Err(_) => vec!["vmlinux".into(), "bzImage".into()],
    };
    let mut g = c.benchmark_group("boot_linux_tcg");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    for kernel in &kernels {
        let mut emulators = vec![("kindling", kindling.clone(), false)];
        if let Some(q) = &qemu {
            emulators.push(("qemu", q.clone(), true));
        }
        for (name, bin, is_qemu) in emulators {
            let a = args(&dir, kernel, is_qemu);
            g.bench_function(format!("{kernel}/{name}/boot_ok"), |b| {
                b.iter_custom(|n| (0..n).map(|_| boot_once(&bin, &a).0).sum())
            });
            g.bench_function(format!("{kernel}/{name}/exit"), |b| {
                b.iter_custom(|n| (0..n).map(|_| boot_once(&bin, &a).1).sum())
            });
        }
    }
    g.finish();
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

criterion_group!(benches, bench);
criterion_main!(benches);
