//! Process start → exit for the tiny PVH guest (`tiny-pvh.elf`, prints
//! BOOT-OK then triple-faults, `-no-reboot` exits), side by side with
//! `qemu-system-x86_64` on the same command line when it is installed.
//! Also reports each emulator's peak RSS (from `wait4`'s rusage).
//!
//! Run: `cargo bench --bench boot_tiny_pvh` (KVM: `KINDLING_BENCH_ACCEL=kvm`,
//! the default; `tcg` for the software CPU).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

fn guest() -> Option<PathBuf> {
    let dir = std::env::var_os("KINDLING_GUEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/guest"));
    let p = dir.join("tiny-pvh.elf");
    p.exists().then_some(p)
}

fn args(accel: &str, kernel: &Path) -> Vec<String> {
    let mut a: Vec<String> = [
        "-M",
        "microvm,acpi=off",
        "-accel",
        accel,
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
        "-append",
        "x",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if accel == "kvm" {
        a.extend(["-cpu".into(), "host,-arch-capabilities".into()]);
    }
    a.extend(["-kernel".into(), kernel.display().to_string()]);
    a
}

/// Run once; return (wall time, peak RSS in KiB, console output).
fn run_once(bin: &Path, args: &[String]) -> (Duration, i64, String) {
    let start = Instant::now();
    // Reaped below with wait4, which also reports the peak RSS.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn emulator");
    let pid = child.id() as libc::pid_t;
    let mut out = child.stdout.expect("stdout");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut out, &mut text).ok();
    let mut status = 0;
    // SAFETY: rusage is plain data filled by wait4 for our own child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child with valid out-pointers.
    unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    (start.elapsed(), ru.ru_maxrss, text)
}

fn bench(c: &mut Criterion) {
    let Some(kernel) = guest() else {
        eprintln!("skipping: tiny-pvh.elf not found (set KINDLING_GUEST_DIR)");
        return;
    };
    let accel = std::env::var("KINDLING_BENCH_ACCEL").unwrap_or_else(|_| "kvm".into());
    let kindling = PathBuf::from(env!("CARGO_BIN_EXE_kindling"));
    let mut emulators = vec![("kindling", kindling)];
    if let Ok(q) = which("qemu-system-x86_64") {
        emulators.push(("qemu", q));
    }
    let mut group = c.benchmark_group(format!("boot_tiny_pvh_{accel}"));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    for (name, bin) in &emulators {
        let a = args(&accel, &kernel);
        let (_, rss, text) = run_once(bin, &a);
        if !text.contains("BOOT-OK") {
            eprintln!("{name}: tiny-pvh did not print BOOT-OK with -accel {accel}; skipped");
            continue;
        }
        println!("{name} -accel {accel}: peak RSS {rss} KiB");
        group.bench_function(*name, |b| b.iter(|| run_once(bin, &a)));
    }
    group.finish();
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|f| f.exists())
        })
        .ok_or(())
}

criterion_group!(benches, bench);
criterion_main!(benches);
