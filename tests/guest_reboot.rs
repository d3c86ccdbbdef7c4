//! A Linux guest's restart never hangs the machine (issue 14), on the
//! software CPU with the shared kernel and the device-test initramfs
//! (`end=reboot`: `reboot -f` once booted). For each of Linux's restart
//! methods (`reboot=a`, `k`, `b`, `t` and its default order), with ACPI on
//! and off: under `-no-reboot` the process exits 0 within a second of the
//! kernel's "Restarting system"; without it the guest boots again. A guest
//! that halts (`end=halt`: "System halted", CPU halted with interrupts
//! off) sleeps, QMP answers, and `system_reset` boots it again.
//!
//! The same paths on KVM (and again on the software CPU) with a small
//! guest are in `guest_suite/reboot.rs`.

mod common;

use std::path::PathBuf;
use std::time::Duration;

const T: Duration = Duration::from_secs(120);

/// The kernel and initramfs, or `None` (the reason printed).
fn guest() -> Option<(PathBuf, PathBuf)> {
    Some((common::guest_file("bzImage")?, common::test_initramfs()?))
}

fn linux_args<'a>(kernel: &'a str, initrd: &'a str, acpi: bool, append: &'a str) -> Vec<&'a str> {
    vec![
        "-M",
        if acpi {
            "microvm,acpi=on"
        } else {
            "microvm,acpi=off"
        },
        "-accel",
        "tcg",
        "-m",
        "256m",
        "-nodefaults",
        "-no-user-config",
        "-nographic",
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

/// `reboot` is the `reboot=` word ("" for none).
fn restart_case(reboot: &str, acpi: bool) {
    let Some((kernel, initrd)) = guest() else {
        return;
    };
    let append = format!("console=ttyS0 {reboot} panic=-1 quiet tests= end=reboot");
    let args = linux_args(
        kernel.to_str().unwrap(),
        initrd.to_str().unwrap(),
        acpi,
        &append,
    );
    let tag = format!("linux-{}-acpi-{acpi}", reboot.replace('=', "-"));
    let mut once = args.clone();
    once.push("-no-reboot");
    let (code, out, err, after) = common::restart::run_until_exit(&once, T);
    assert_eq!(code, Some(0), "{tag}: {out}\n{err}");
    assert_eq!(out.matches("BOOT-OK").count(), 1, "{tag}: {out}");
    assert!(out.contains("reboot: Restarting system"), "{tag}: {out}");
    assert!(
        after <= common::restart::PROMPT,
        "{tag}: exited {after:?} after the restart request"
    );
    common::restart::boots_again(&args, &tag, "BOOT-OK", 2, T);
}

macro_rules! restart_tests {
    ($($name:ident: $reboot:expr, $acpi:expr;)*) => {
        $(
            #[test]
            fn $name() {
                restart_case($reboot, $acpi);
            }
        )*
    };
}

restart_tests! {
    linux_reboot_a_acpi_on: "reboot=a", true;
    linux_reboot_a_acpi_off: "reboot=a", false;
    linux_reboot_k_acpi_on: "reboot=k", true;
    linux_reboot_k_acpi_off: "reboot=k", false;
    linux_reboot_b_acpi_on: "reboot=b", true;
    linux_reboot_b_acpi_off: "reboot=b", false;
    linux_reboot_t_acpi_on: "reboot=t", true;
    linux_reboot_t_acpi_off: "reboot=t", false;
    linux_default_restart_acpi_on: "", true;
    linux_default_restart_acpi_off: "", false;
}

/// `halt -f` ("System halted"): the vCPU sleeps with interrupts off.
#[test]
fn linux_halted_guest_sleeps_and_system_reset_boots_it_again() {
    let Some((kernel, initrd)) = guest() else {
        return;
    };
    let append = "console=ttyS0 panic=-1 quiet tests= end=halt";
    let args = linux_args(
        kernel.to_str().unwrap(),
        initrd.to_str().unwrap(),
        false,
        append,
    );
    common::restart::halted_sleeps_and_resets(
        &args,
        "linux-halt",
        common::restart::HaltMarks {
            halted: "System halted",
            boot: "BOOT-OK",
            nmi: None,
        },
        Duration::from_secs(10),
        Duration::from_millis(300),
        T,
    );
}
