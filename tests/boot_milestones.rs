//! Boot milestones end to end: the `-kindling-boot-report` JSON of real
//! boots on both backends (the shared Linux guest, tiny guests), the
//! markers a guest writes for Firecracker and Cloud Hypervisor, exact and
//! repeatable counts under `-icount`, the QMP query and events, and the
//! report's wall-clock figures against this harness's own stopwatch.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::vm::{run, Vm};
use serde_json::Value;

const T: Duration = Duration::from_secs(240);

/// A report file unique to this test process and `tag`.
fn report_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "kindling-milestones-{}-{tag}.json",
        std::process::id()
    ))
}

/// Run kindling with `args` plus a boot report; returns the exit status,
/// the console, stderr and the report's objects (one per boot).
fn run_with_report(tag: &str, args: &[&str], booted: &str) -> (i32, String, String, Vec<Value>) {
    let path = report_path(tag);
    let opt = format!("{},booted={booted}", path.display());
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-kindling-boot-report", &opt]);
    let (status, out, err) = run(&all, T);
    let reports = read_reports(&path);
    (status.code().unwrap_or(-1), out, err, reports)
}

fn read_reports(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let _ = std::fs::remove_file(path);
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn milestones(report: &Value) -> &Vec<Value> {
    report["milestones"].as_array().expect("milestones list")
}

/// The names of the milestones that are not guest-written markers.
fn names(report: &Value) -> Vec<&str> {
    milestones(report)
        .iter()
        .map(|m| m["name"].as_str().expect("name"))
        .filter(|n| !matches!(*n, "debug-port" | "boot-timer"))
        .collect()
}

/// Times never go backwards within a boot.
fn assert_times_ordered(report: &Value) {
    let t: Vec<u64> = milestones(report)
        .iter()
        .map(|m| m["t-us"].as_u64().expect("t-us"))
        .collect();
    assert!(t.windows(2).all(|w| w[0] <= w[1]), "{report}");
}

fn linux_args<'a>(
    accel: &'a str,
    kernel: &'a str,
    initrd: &'a str,
    append: &'a str,
) -> Vec<&'a str> {
    vec![
        "-M",
        "microvm,acpi=off",
        "-accel",
        accel,
        "-m",
        "256m",
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-no-reboot",
        "-serial",
        "stdio",
        "-kernel",
        kernel,
        "-initrd",
        initrd,
        "-append",
        append,
    ]
}

/// Every milestone of a Linux boot that reboots (`reboot=t` under
/// `-no-reboot`), in boot order.
const LINUX_ORDER: &[&str] = &[
    "vm-created",
    "first-instruction",
    "kernel-entry",
    "console-first-byte",
    "linux-banner",
    "linux-initramfs",
    "linux-free-initmem",
    "linux-run-init",
    "booted",
    "reset",
    "exit",
];

fn assert_linux_milestones(accel: &str, kernel: &str) {
    let (Some(k), Some(i)) = (
        common::guest_file(kernel),
        common::guest_file("initramfs.cpio"),
    ) else {
        return;
    };
    let args = linux_args(
        accel,
        k.to_str().unwrap(),
        i.to_str().unwrap(),
        "console=ttyS0 reboot=t panic=-1",
    );
    let (code, out, err, reports) = run_with_report(&format!("linux-{accel}"), &args, "BOOT-OK");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("BOOT-OK"), "{out}");
    assert_eq!(reports.len(), 1, "one boot, one report: {reports:?}");
    let r = &reports[0];
    assert_eq!(names(r), LINUX_ORDER, "{r}");
    assert_eq!(r["accel"], accel);
    assert_eq!(r["figures"], "wall-clock");
    assert_eq!(r["boot"], 0);
    assert_times_ordered(r);
    let ms = milestones(r);
    let get = |n: &str| ms.iter().find(|m| m["name"] == n).unwrap();
    assert_eq!(get("console-first-byte")["console"], "serial0");
    assert_eq!(get("reset")["cause"], "guest-reset");
    assert_eq!(get("exit")["status"], 0);
}

#[test]
fn linux_milestones_appear_once_and_in_order_on_the_software_cpu() {
    assert_linux_milestones("tcg", "bzImage");
}

#[test]
fn linux_milestones_appear_once_and_in_order_on_kvm() {
    if let Some(why) = common::kvm_unusable() {
        eprintln!("skipping: {why}");
        return;
    }
    if !common::kvm_is_hardware() {
        // kvm_pvm runs guest kernels in KVM's instruction emulator, which
        // cannot boot Linux; the tiny guest below covers KVM here.
        eprintln!("skipping: KVM is not hardware-backed (no kvm_intel/kvm_amd), Linux cannot boot");
        return;
    }
    assert_linux_milestones("kvm", "bzImage");
}

/// Both consoles watched: the kernel on ttyS0 and hvc0 (a virtconsole on a
/// file chardev), `/dev/console` (the initramfs's BOOT-OK) on hvc0.
#[test]
fn each_console_has_its_first_byte_and_the_booted_text_names_its_console() {
    let (Some(k), Some(i)) = (
        common::guest_file("bzImage"),
        common::guest_file("initramfs.cpio"),
    ) else {
        return;
    };
    let log = report_path("hvc0-log");
    let chardev = format!("file,id=c0,path={}", log.display());
    let mut args = linux_args(
        "tcg",
        k.to_str().unwrap(),
        i.to_str().unwrap(),
        "console=ttyS0 console=hvc0 reboot=t panic=-1",
    );
    args.extend([
        "-chardev",
        &chardev,
        "-device",
        "virtio-serial-device",
        "-device",
        "virtconsole,chardev=c0",
    ]);
    let (code, out, err, reports) = run_with_report("hvc0", &args, "BOOT-OK");
    let hvc = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert_eq!(code, 0, "{err}");
    assert!(hvc.contains("BOOT-OK"), "{hvc}");
    let ms = milestones(&reports[0]);
    let consoles: Vec<&str> = ms
        .iter()
        .filter(|m| m["name"] == "console-first-byte")
        .map(|m| m["console"].as_str().unwrap())
        .collect();
    assert_eq!(consoles, ["serial0", "hvc0"], "{out}");
    let booted: Vec<&Value> = ms.iter().filter(|m| m["name"] == "booted").collect();
    assert_eq!(booted.len(), 1);
    assert_eq!(booted[0]["console"], "hvc0");
    // Linux's lines are counted once, whichever console shows them first.
    assert_eq!(
        ms.iter().filter(|m| m["name"] == "linux-run-init").count(),
        1
    );
}

/// A small PVH guest `kernel` on `accel`, COM1 on stdout.
fn small_guest_args<'a>(accel: &'a str, kernel: &'a str) -> Vec<&'a str> {
    vec![
        "-M",
        "microvm,acpi=off",
        "-accel",
        accel,
        "-m",
        "64m",
        "-nodefaults",
        "-serial",
        "stdio",
        "-kernel",
        kernel,
    ]
}

/// tiny-pvh on `accel`: prints BOOT-OK and triple-faults.
fn assert_tiny_milestones(accel: &str) {
    let Some(k) = common::guest_file("tiny-pvh.elf") else {
        return;
    };
    let mut args = small_guest_args(accel, k.to_str().unwrap());
    args.push("-no-reboot");
    let (code, out, err, reports) = run_with_report(&format!("tiny-{accel}"), &args, "BOOT-OK");
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(
        names(&reports[0]),
        [
            "vm-created",
            "first-instruction",
            "kernel-entry",
            "console-first-byte",
            "booted",
            "reset",
            "exit"
        ]
    );
    assert_eq!(reports[0]["accel"], accel);
    // PVH entry: the ELF note's address, where the guest is linked (1 MiB).
    assert_eq!(milestones(&reports[0])[2]["rip"], 0x10_0000);
    assert_times_ordered(&reports[0]);
}

#[test]
fn tiny_guest_milestones_on_kvm() {
    if let Some(why) = common::kvm_unusable() {
        eprintln!("skipping: {why}");
        return;
    }
    assert_tiny_milestones("kvm");
}

#[test]
fn tiny_guest_milestones_on_the_software_cpu() {
    assert_tiny_milestones("tcg");
}

/// The markers guest on `accel` (`extra`: more options): its report.
fn markers_report(tag: &str, accel: &str, extra: &[&str]) -> Value {
    let elf = common::guests::build("markers");
    let mut args = small_guest_args(accel, elf.to_str().unwrap());
    args.extend(["-device", "isa-debug-exit"]);
    args.extend_from_slice(extra);
    let (code, out, err, reports) = run_with_report(tag, &args, "MARKERS");
    assert_eq!(code, 1, "EXIT 0 is status 1\n{out}{err}");
    assert_eq!(reports.len(), 1, "{reports:?}");
    reports.into_iter().next().unwrap()
}

fn assert_markers(accel: &str) {
    let r = markers_report(&format!("markers-{accel}"), accel, &[]);
    let got: Vec<String> = milestones(&r)
        .iter()
        .filter_map(|m| match m["name"].as_str()? {
            "debug-port" => Some(format!(
                "port80 {:#04x} {}",
                m["code"].as_u64()?,
                m["range"].as_str()?
            )),
            "boot-timer" => Some(format!(
                "timer {} at {:#x}",
                m["value"].as_u64()?,
                m["address"].as_u64()?
            )),
            "booted" => Some("booted".into()),
            _ => None,
        })
        .collect();
    assert_eq!(
        got,
        [
            "port80 0x00 firmware",
            "timer 123 at 0xd0000000",
            "port80 0x21 bootloader",
            "port80 0x41 kernel",
            "booted",
            "port80 0x61 userspace",
            "port80 0x81 custom",
            "timer 123 at 0xc0000000",
        ],
        "{r}"
    );
    assert_eq!(r["markers-dropped"], 0);
    assert_times_ordered(&r);
}

#[test]
fn firecracker_and_cloud_hypervisor_markers_on_kvm() {
    if let Some(why) = common::kvm_unusable() {
        eprintln!("skipping: {why}");
        return;
    }
    assert_markers("kvm");
}

#[test]
fn firecracker_and_cloud_hypervisor_markers_on_the_software_cpu() {
    assert_markers("tcg");
}

/// (name, icount, guest-ns) of every milestone: what must repeat exactly.
fn exact_figures(r: &Value) -> Vec<(String, u64, u64)> {
    assert_eq!(r["figures"], "exact", "{r}");
    milestones(r)
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["icount"].as_u64().expect("icount"),
                m["guest-ns"].as_u64().expect("guest-ns"),
            )
        })
        .collect()
}

const ICOUNT: &[&str] = &[
    "-icount",
    "shift=0,sleep=off",
    "-rtc",
    "base=2024-01-01T00:00:00",
];

#[test]
fn icount_boots_repeat_every_milestone_exactly() {
    let (Some(k), Some(i)) = (
        common::guest_file("vmlinux"),
        common::guest_file("initramfs.cpio"),
    ) else {
        return;
    };
    let mut args = linux_args(
        "tcg",
        k.to_str().unwrap(),
        i.to_str().unwrap(),
        "console=ttyS0 reboot=t panic=-1",
    );
    args.extend_from_slice(ICOUNT);
    let figures = |tag: &str| {
        let (code, out, err, reports) = run_with_report(tag, &args, "BOOT-OK");
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0]["icount-shift"], 0);
        assert_eq!(names(&reports[0]), LINUX_ORDER);
        exact_figures(&reports[0])
    };
    let a = figures("icount-a");
    let b = figures("icount-b");
    assert_eq!(a, b, "instruction counts differ between two boots");
    let counts: Vec<u64> = a.iter().map(|f| f.1).collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{a:?}");
    let run_init = a.iter().find(|f| f.0 == "linux-run-init").unwrap().1;
    assert!(
        run_init > 10_000_000,
        "Linux runs millions before init: {a:?}"
    );
    // Guest time at shift 0 is one ns per instruction, plus idle time
    // skipped while the vCPU halted.
    assert!(a.iter().all(|f| f.2 >= f.1), "{a:?}");

    // The markers guest too: its markers land at the same instruction.
    let m1 = exact_figures(&markers_report("icount-markers-a", "tcg", ICOUNT));
    let m2 = exact_figures(&markers_report("icount-markers-b", "tcg", ICOUNT));
    assert_eq!(m1, m2);
}

#[test]
fn qmp_query_and_events_follow_the_boot() {
    let Some(k) = common::guest_file("tiny-pvh.elf") else {
        return;
    };
    let sock = std::env::temp_dir().join(format!("kindling-ms-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let qmp = format!("unix:{},server=on,wait=off", sock.display());
    // "hold": tiny-pvh prints HOLD and halts for good; -S lets the client
    // connect before the first instruction.
    let mut vm = Vm::start(&[
        "-M",
        "microvm,acpi=off",
        "-accel",
        "tcg",
        "-m",
        "64m",
        "-nodefaults",
        "-serial",
        "stdio",
        "-S",
        "-qmp",
        &qmp,
        "-kernel",
        k.to_str().unwrap(),
        "-append",
        "hold",
        "-kindling-boot-report",
        "stderr,booted=HOLD",
    ]);
    let mut q = common::qmp::Qmp::connect(&sock);
    let before = q.execute("x-query-boot-milestones");
    assert_eq!(names(&before["return"]), ["vm-created"], "{before}");
    assert_eq!(before["return"]["figures"], "wall-clock");
    q.execute("cont");
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("booted") {
        let ev = q.wait_event("X_BOOT_MILESTONE");
        assert_eq!(ev["data"]["boot"], 0, "{ev}");
        assert!(ev["data"]["t-us"].as_u64().is_some(), "{ev}");
        seen.push(ev["data"]["name"].as_str().unwrap().to_string());
    }
    assert_eq!(
        seen,
        [
            "first-instruction",
            "kernel-entry",
            "console-first-byte",
            "booted"
        ]
    );
    let now = q.execute("x-query-boot-milestones");
    let mut want = vec!["vm-created".to_string()];
    want.extend(seen);
    assert_eq!(names(&now["return"]), want, "{now}");
    // A monitor reset ends boot 0 and starts boot 1.
    q.execute("system_reset");
    let ev = q.wait_event("X_BOOT_MILESTONE");
    assert_eq!(ev["data"]["name"], "reset", "{ev}");
    assert_eq!(ev["data"]["cause"], "host-qmp-system-reset");
    assert_eq!(ev["data"]["boot"], 0);
    let ev = q.wait_event("X_BOOT_MILESTONE");
    assert_eq!(
        (ev["data"]["name"].as_str(), ev["data"]["boot"].as_u64()),
        (Some("first-instruction"), Some(1)),
        "{ev}"
    );
    // The schema lists the command and the event.
    let schema = q.execute("query-qmp-schema").to_string();
    assert!(schema.contains("\"x-query-boot-milestones\""));
    assert!(schema.contains("\"X_BOOT_MILESTONE\""));
    let bad = q.execute_raw(r#"{"execute": "x-query-boot-milestones", "arguments": {"x": 1}}"#);
    assert_eq!(bad["error"]["class"], "GenericError", "{bad}");
    q.execute("quit");
    vm.wait_exit(Duration::from_secs(20));
    // stderr: the report of boot 0, then boot 1's ending in `exit`.
    let reports: Vec<Value> = vm
        .errors()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(reports.len(), 2, "{}", vm.errors());
    assert_eq!(reports[0]["boot"], 0);
    assert_eq!(names(&reports[0]).last(), Some(&"reset"));
    assert_eq!(reports[1]["boot"], 1);
    assert_eq!(names(&reports[1]).last(), Some(&"exit"));
}

fn unix_us(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_micros() as i64
}

/// The report's process start and exit against this harness's clock:
/// before spawning and after the child is reaped. The harness's own
/// wake-ups, and the kernel's reaping of the child's threads, only ever
/// widen that window on a loaded host, so the best of ten runs is
/// compared: within 2 ms each.
#[test]
fn wall_clock_start_and_exit_agree_with_the_harness_within_2ms() {
    let elf = common::guests::build("hello");
    let path = report_path("stopwatch");
    let opt = path.display().to_string();
    let mut starts = Vec::new();
    let mut exits = Vec::new();
    for _ in 0..10 {
        let before = SystemTime::now();
        let mut child = Command::new(common::kindling())
            .args([
                "-M",
                "microvm,acpi=off",
                "-accel",
                "tcg",
                "-m",
                "64m",
                "-nodefaults",
                "-serial",
                "null",
                "-device",
                "isa-debug-exit",
                "-kernel",
                elf.to_str().unwrap(),
                "-kindling-boot-report",
                &opt,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn kindling");
        let status = child.wait().expect("wait");
        let after = SystemTime::now();
        assert_eq!(status.code(), Some(67), "hello exits with 0x21");
        let reports = read_reports(&path);
        assert_eq!(reports.len(), 1);
        let r = &reports[0];
        let start = r["process-start-unix-us"].as_i64().unwrap();
        let exit = milestones(r).last().unwrap();
        assert_eq!(exit["name"], "exit");
        assert_eq!(exit["status"], 67);
        let end = start + exit["t-us"].as_i64().unwrap();
        let (s, e) = (start - unix_us(before), unix_us(after) - end);
        // The report's clock reads and the harness's differ by a few µs.
        assert!(
            s >= -50 && e >= -50,
            "report outside the harness's window: start {s} µs, exit {e} µs"
        );
        starts.push(s.abs());
        exits.push(e.abs());
    }
    eprintln!("start after spawn (µs): {starts:?}; exit before reaping (µs): {exits:?}");
    let best = |v: &[i64]| *v.iter().min().unwrap();
    assert!(best(&starts) <= 2000, "start differs by {starts:?} µs");
    assert!(best(&exits) <= 2000, "exit differs by {exits:?} µs");
}

/// A report option or file that cannot work is one line naming the option,
/// and exit status 1 before anything runs.
#[test]
fn bad_report_options_are_refused_in_qemus_style() {
    let fails = |args: &[&str]| {
        let (status, _, err) = run(args, Duration::from_secs(30));
        assert_eq!(status.code(), Some(1), "{err}");
        err
    };
    let base = ["-M", "microvm", "-accel", "tcg", "-nodefaults"];
    let err = fails(&[&base[..], &["-kindling-boot-report", "/nonexistent/r.json"]].concat());
    assert!(
        err.contains("-kindling-boot-report: Could not open '/nonexistent/r.json'"),
        "{err}"
    );
    let err = fails(&[&base[..], &["-kindling-boot-report", "r.json,colour=red"]].concat());
    assert!(
        err.contains("-kindling-boot-report r.json,colour=red: Invalid parameter 'colour'"),
        "{err}"
    );
    let err = fails(&["-kindling-boot-report"]);
    assert!(
        err.contains("-kindling-boot-report: requires an argument"),
        "{err}"
    );
}

/// ACPI power-off (the GED's sleep control, S5) on `accel`: `power-off`
/// then `exit`, noted at the guest's write.
fn assert_power_off(accel: &str) {
    let elf = common::guests::build("ged_power");
    let mut args = small_guest_args(accel, elf.to_str().unwrap());
    args[1] = "microvm,acpi=on";
    args.extend(["-append", "poweroff"]);
    let (code, out, err, reports) = run_with_report(&format!("poweroff-{accel}"), &args, "x");
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(reports.len(), 1, "{reports:?}");
    let n = names(&reports[0]);
    assert_eq!(n[n.len() - 2..], ["power-off", "exit"], "{n:?}");
    assert_eq!(n.iter().filter(|x| **x == "power-off").count(), 1);
}

#[test]
fn guest_power_off_on_kvm() {
    if let Some(why) = common::kvm_unusable() {
        eprintln!("skipping: {why}");
        return;
    }
    assert_power_off("kvm");
}

#[test]
fn guest_power_off_on_the_software_cpu() {
    assert_power_off("tcg");
}
