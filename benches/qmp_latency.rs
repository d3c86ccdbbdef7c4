//! QMP round-trip latency of `query-status`, side by side with
//! `qemu-system-x86_64` on the same command line (tiny-pvh with `hold`,
//! paused with -S). Prints median and p99 over many calls for each, and
//! gives criterion the same round trip to time.
//!
//! Run: `cargo bench --bench qmp_latency` (`KINDLING_BENCH_ACCEL=tcg` once the
//! software CPU is the default on the host; KVM by default).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

struct Conn {
    r: BufReader<UnixStream>,
    w: UnixStream,
}

impl Conn {
    fn call(&mut self, cmd: &[u8]) -> String {
        self.w.write_all(cmd).expect("send");
        let mut line = String::new();
        loop {
            line.clear();
            self.r.read_line(&mut line).expect("recv");
            if !line.contains("\"event\"") {
                return line;
            }
        }
    }
}

fn start(bin: &Path, accel: &str, kernel: &Path, sock: &Path) -> Option<(Child, Conn)> {
    let _ = std::fs::remove_file(sock);
    let qmp = format!("unix:{},server=on,wait=off", sock.display());
    let child = Command::new(bin)
        .args([
            "-M",
            "microvm,acpi=off",
            "-accel",
            accel,
            "-m",
            "64m",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-S",
            "-kernel",
        ])
        .arg(kernel)
        .args(["-append", "hold", "-qmp", &qmp])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let start = Instant::now();
    let s = loop {
        if let Ok(s) = UnixStream::connect(sock) {
            break s;
        }
        if start.elapsed() > Duration::from_secs(10) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut c = Conn {
        r: BufReader::new(s.try_clone().ok()?),
        w: s,
    };
    let mut greeting = String::new();
    c.r.read_line(&mut greeting).ok()?;
    c.call(b"{\"execute\":\"qmp_capabilities\"}\r\n");
    Some((child, c))
}

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() * 99 / 100])
}

fn bench(c: &mut Criterion) {
    let dir = std::env::var_os("KINDLING_GUEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/guest"));
    let kernel = dir.join("tiny-pvh.elf");
    if !kernel.exists() {
        eprintln!("skipping: tiny-pvh.elf not found (set KINDLING_GUEST_DIR)");
        return;
    }
    let accel = std::env::var("KINDLING_BENCH_ACCEL").unwrap_or_else(|_| "kvm".into());
    let mut emulators = vec![("kindling", PathBuf::from(env!("CARGO_BIN_EXE_kindling")))];
    let qemu = PathBuf::from("/usr/bin/qemu-system-x86_64");
    if qemu.exists() {
        emulators.push(("qemu", qemu));
    }
    let mut group = c.benchmark_group("qmp_query_status");
    for (name, bin) in &emulators {
        let sock = std::env::temp_dir().join(format!("kindling-bench-{name}.sock"));
        let Some((mut child, mut conn)) = start(bin, &accel, &kernel, &sock) else {
            eprintln!("{name}: could not start with -accel {accel}; skipped");
            continue;
        };
        let cmd = b"{\"execute\":\"query-status\"}\r\n";
        let samples: Vec<Duration> = (0..5000)
            .map(|_| {
                let t = Instant::now();
                conn.call(cmd);
                t.elapsed()
            })
            .collect();
        let (median, p99) = percentiles(samples);
        println!("{name}: query-status round trip median {median:?}, p99 {p99:?} (5000 calls)");
        group.bench_function(*name, |b| b.iter(|| conn.call(cmd)));
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_file(&sock);
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
