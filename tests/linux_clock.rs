//! Time a guest can trust on the software CPU: Linux finds KVM's
//! paravirtual clock (kvmclock), takes its wall clock from the board's RTC
//! epoch, never marks the TSC unstable, and measures a busy minute and an
//! idle minute as the host does while the host's cores are kept busy by
//! other processes.

mod common;

use common::vm::Vm;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(120);

/// The shared guest's vmlinux with a shell as init, `-smp 2`, `extra`
/// arguments; waits for the prompt and mounts /proc.
fn shell(extra: &[&str]) -> Option<Vm> {
    let k = common::guest_file("vmlinux")?;
    let initrd = common::guest_file("initramfs.cpio")?;
    let mut args = vec![
        "-M",
        "microvm,acpi=off",
        "-accel",
        "tcg",
        "-smp",
        "2",
        "-m",
        "256m",
        "-nodefaults",
        "-no-reboot",
        "-serial",
        "stdio",
        "-kernel",
        k.to_str().unwrap(),
        "-initrd",
        initrd.to_str().unwrap(),
        "-append",
        "console=ttyS0 reboot=t panic=-1 rdinit=/bin/sh",
    ];
    args.extend_from_slice(extra);
    let mut vm = Vm::start_interactive(&args);
    assert!(
        vm.wait_for("/ # ", 1, T),
        "no shell prompt:\n{}",
        vm.output()
    );
    vm.type_text("mount -t proc proc /proc; echo MOUNTED\n");
    assert!(vm.wait_for("\nMOUNTED", 1, T), "{}", vm.output());
    Some(vm)
}

/// The number printed after `tag` on the console (the last occurrence).
fn value_after(out: &str, tag: &str) -> Option<f64> {
    let line = out.lines().rev().find(|l| l.starts_with(tag))?;
    line[tag.len()..].split_whitespace().next()?.parse().ok()
}

#[test]
fn kvmclock_gives_linux_the_rtc_epoch_and_a_stable_tsc() {
    // 2020-01-02T03:04:05Z.
    let base = 1_577_934_245u64;
    let Some(mut vm) = shell(&["-rtc", "base=2020-01-02T03:04:05"]) else {
        return;
    };
    let started = Instant::now();
    vm.type_text("echo DATE $(date +%s)\n");
    assert!(vm.wait_for("\nDATE ", 1, T), "{}", vm.output());
    let out = vm.output();
    assert!(
        out.contains("kvm-clock: Using msrs 4b564d01 and 4b564d00"),
        "Linux did not find kvmclock:\n{out}"
    );
    assert!(
        !out.contains("as unstable"),
        "a clocksource was marked unstable:\n{out}"
    );
    let date = value_after(&out, "DATE ").expect("the guest's date") as u64;
    let upper = base + 5 + started.elapsed().as_secs() + 60;
    assert!(
        (base..upper).contains(&date),
        "guest date {date}, RTC base {base} (at most {upper})"
    );
    vm.type_text("reboot -f\n");
    assert_eq!(vm.wait_exit(T).code(), Some(0));
}

#[test]
fn without_kvmclock_the_msrs_are_gone_and_linux_uses_the_tsc() {
    let Some(mut vm) = shell(&["-cpu", "max,-kvmclock"]) else {
        return;
    };
    vm.type_text("echo DONE\n");
    assert!(vm.wait_for("\nDONE", 1, T), "{}", vm.output());
    let out = vm.output();
    assert!(!out.contains("kvm-clock"), "{out}");
    assert!(out.contains("Switched to clocksource tsc"), "{out}");
    vm.type_text("reboot -f\n");
    assert_eq!(vm.wait_exit(T).code(), Some(0));
}

/// Processes that keep `n` host cores busy until dropped.
struct Burners(Vec<Child>);

impl Burners {
    fn start(n: usize) -> Burners {
        Burners(
            (0..n)
                .map(|_| {
                    Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .spawn()
                        .expect("start a busy loop")
                })
                .collect(),
        )
    }
}

impl Drop for Burners {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn the_guest_measures_a_busy_and_an_idle_minute_as_the_host_does_under_load() {
    let Some(mut vm) = shell(&[]) else {
        return;
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let _load = Burners::start(cores);
    // The guest prints its uptime, spins for 60 s of its own time, prints
    // it, sleeps 60 s, prints it again; the host notes when each line
    // arrives. (`"T""0"` keeps the echoed command line from matching.)
    vm.type_text(concat!(
        "read a x < /proc/uptime; echo \"T\"\"0 $a\"; ",
        "e=$((${a%.*}+60)); while :; do read u x < /proc/uptime; ",
        "[ ${u%.*} -ge $e ] && break; done; echo \"T\"\"1 $u\"; ",
        "sleep 60; read c x < /proc/uptime; echo \"T\"\"2 $c\"\n"
    ));
    let mut host = Vec::new();
    for tag in ["\nT0 ", "\nT1 ", "\nT2 "] {
        assert!(
            vm.wait_for(tag, 1, Duration::from_secs(200)),
            "no {tag:?}:\n{}",
            vm.output()
        );
        host.push(Instant::now());
    }
    let out = vm.output();
    let guest: Vec<f64> = ["T0 ", "T1 ", "T2 "]
        .iter()
        .map(|t| value_after(&out, t).expect("a guest uptime"))
        .collect();
    for (k, what) in [(1, "busy"), (2, "idle")] {
        let g = guest[k] - guest[k - 1];
        let h = (host[k] - host[k - 1]).as_secs_f64();
        let err = (g - h).abs() / h;
        eprintln!(
            "{what} minute: guest {g:.3} s, host {h:.3} s ({:.3}%)",
            err * 100.0
        );
        assert!(
            err < 0.005,
            "{what} minute: the guest measured {g:.3} s, the host {h:.3} s"
        );
    }
    vm.type_text("reboot -f\n");
    assert_eq!(vm.wait_exit(T).code(), Some(0));
}

/// Debian's own kernel (scripts/test.sh provides it as
/// `KINDLING_STOCK_KERNEL`, fetched by scripts/guest/stock-kernel-path.sh)
/// with ACPI on, booted while every host core is kept busy: its
/// clocksource watchdog must not mark the TSC unstable, and it must run on
/// kvm-clock or the TSC.
#[test]
fn a_stock_debian_kernel_keeps_a_stable_clocksource_on_a_loaded_host() {
    let Some(kernel) = std::env::var_os("KINDLING_STOCK_KERNEL") else {
        common::skip("KINDLING_STOCK_KERNEL is not set (scripts/guest/stock-kernel-path.sh fetches Debian's kernel)");
        return;
    };
    let Some(initrd) = common::guest_file("initramfs.cpio") else {
        return;
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let _load = Burners::start(cores);
    let mut vm = Vm::start(&[
        "-M",
        "microvm,acpi=on",
        "-accel",
        "tcg",
        "-smp",
        "2",
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
        "console=ttyS0 reboot=t panic=-1",
    ]);
    assert!(
        vm.wait_for("BOOT-OK", 1, Duration::from_secs(900)),
        "no BOOT-OK:\n{}",
        vm.output()
    );
    let out = vm.output();
    assert!(out.contains("kvm-clock: Using msrs"), "{out}");
    assert!(
        out.contains("Switched to clocksource kvm-clock")
            || out.contains("Switched to clocksource tsc"),
        "{out}"
    );
    assert!(
        !out.contains("as unstable"),
        "a clocksource was marked unstable:\n{out}"
    );
    assert!(
        !out.contains("Switched to clocksource refined-jiffies"),
        "{out}"
    );
    assert_eq!(vm.wait_exit(T * 5).code(), Some(0), "{}", vm.output());
}
