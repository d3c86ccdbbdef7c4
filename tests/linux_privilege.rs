//! The protection model end to end: a static user program in the shared
//! Linux guest, on the software CPU (`-accel tcg`), tries every privileged
//! instruction and some port I/O (scripts/guest/privcheck.c, run by the
//! device-test initramfs's `test=privilege`). Each attempt must end in the
//! signal the SDM implies (#GP -> SIGSEGV, #UD -> SIGILL), CR4.TSD set
//! through prctl(PR_SET_TSC) must stop RDTSC, the guest kernel must run
//! with SMEP and SMAP on (advertised by the software CPU), and its log
//! must show no oops or kernel-mode general protection fault.

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

/// The cases privcheck runs whatever the kernel's configuration, with the
/// signal each must end in.
const CASES: &[(&str, &str)] = &[
    ("cli", "SIGSEGV"),
    ("sti", "SIGSEGV"),
    ("hlt", "SIGSEGV"),
    ("mov-from-cr0", "SIGSEGV"),
    ("mov-from-cr2", "SIGSEGV"),
    ("mov-from-cr3", "SIGSEGV"),
    ("mov-from-cr4", "SIGSEGV"),
    ("mov-from-cr8", "SIGSEGV"),
    ("mov-to-cr0", "SIGSEGV"),
    ("mov-to-cr3", "SIGSEGV"),
    ("mov-to-cr4", "SIGSEGV"),
    ("mov-to-cr8", "SIGSEGV"),
    ("mov-from-dr7", "SIGSEGV"),
    ("mov-to-dr0", "SIGSEGV"),
    ("wbinvd", "SIGSEGV"),
    ("invd", "SIGSEGV"),
    ("clts", "SIGSEGV"),
    ("lmsw", "SIGSEGV"),
    ("invlpg", "SIGSEGV"),
    ("lgdt", "SIGSEGV"),
    ("lidt", "SIGSEGV"),
    ("lldt", "SIGSEGV"),
    ("ltr", "SIGSEGV"),
    ("rdmsr", "SIGSEGV"),
    ("wrmsr", "SIGSEGV"),
    ("swapgs", "SIGSEGV"),
    ("sysret", "SIGSEGV"),
    ("rdpmc", "SIGSEGV"),
    ("mov-from-cr1", "SIGILL"),
    ("stac", "SIGILL"),
    ("clac", "SIGILL"),
    ("monitor", "SIGILL"),
    ("mwait", "SIGILL"),
    // The software CPU advertises no INVPCID.
    ("invpcid", "SIGILL"),
    ("in-0x71", "SIGSEGV"),
    ("out-0x70", "SIGSEGV"),
    ("in-0x3fd", "SIGSEGV"),
    ("insb", "SIGSEGV"),
    ("outsb", "SIGSEGV"),
    ("rdtsc", "ran"),
    ("prctl-tsc-sigsegv", "ok"),
    ("rdtsc-with-tsd", "SIGSEGV"),
    ("rdtscp-with-tsd", "SIGSEGV"),
    ("prctl-tsc-enable", "ok"),
    ("rdtsc-again", "ran"),
    // With UMIP the kernel emulates them, without it the CPU runs them.
    ("sgdt", "ran"),
    ("sidt", "ran"),
];

/// `PRIV <case> <got> want=<want> ok|FAIL` lines: case -> (got, verdict).
fn results(out: &str) -> Vec<(String, String, String)> {
    out.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter_map(|l| {
            let mut w = l.strip_prefix("PRIV ")?.split(' ');
            let (case, got, _want, verdict) = (w.next()?, w.next()?, w.next()?, w.next()?);
            Some((case.to_string(), got.to_string(), verdict.to_string()))
        })
        .collect()
}

#[test]
fn a_user_process_cannot_use_privileged_instructions_on_tcg() {
    let Some(kernel) = common::guest_file("bzImage") else {
        return;
    };
    // The shared kernel is built without CONFIG_X86_IOPL_IOPERM.
    check_kernel(&kernel, "microvm,acpi=off", Duration::from_secs(300), false);
}

/// The same with Debian's own kernel (`$KINDLING_PRIVILEGE_KERNEL`, else
/// `$KINDLING_STOCK_KERNEL`, which scripts/test.sh fetches), whose
/// CONFIG_X86_IOPL_IOPERM and CONFIG_X86_UMIP exercise the I/O bitmap
/// through ioperm()/iopl(3) and UMIP through the kernel's emulation:
/// about 5 minutes on the software CPU.
#[test]
fn the_same_with_a_stock_debian_kernel() {
    let kernel = ["KINDLING_PRIVILEGE_KERNEL", "KINDLING_STOCK_KERNEL"]
        .iter()
        .find_map(std::env::var_os);
    let Some(kernel) = kernel else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide KINDLING_STOCK_KERNEL (scripts/test.sh fetches it)"
        );
        common::skip("neither KINDLING_PRIVILEGE_KERNEL nor KINDLING_STOCK_KERNEL is set");
        return;
    };
    check_kernel(
        std::path::Path::new(&kernel),
        "microvm",
        Duration::from_secs(900),
        true,
    );
}

/// Boot `kernel` with the device-test initramfs's `test=privilege` and
/// check every line; `with_ioperm` says whether the kernel offers
/// ioperm()/iopl() (CONFIG_X86_IOPL_IOPERM).
fn check_kernel(kernel: &std::path::Path, machine: &str, timeout: Duration, with_ioperm: bool) {
    let Some(initrd) = test_initramfs() else {
        return;
    };
    let args = [
        "-M",
        machine,
        "-accel",
        "tcg",
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
        "console=ttyS0 reboot=t panic=-1 quiet test=privilege",
    ];
    let (status, out, err) = run(&args, timeout);
    let ctx = format!("console:\n{out}\nstderr:\n{err}");
    assert!(out.contains("BOOT-OK"), "{ctx}");
    let got = results(&out);
    for (case, want) in CASES {
        let r = got.iter().find(|(c, _, _)| c == case);
        let Some((_, g, verdict)) = r else {
            panic!("no result for {case}\n{ctx}");
        };
        assert_eq!(g, want, "{case}\n{ctx}");
        assert_eq!(verdict, "ok", "{case}\n{ctx}");
    }
    // XSETBV: #GP with CR4.OSXSAVE, else #UD; privcheck decides by CPUID.
    let xsetbv = got.iter().find(|(c, _, _)| c == "xsetbv");
    assert!(
        matches!(xsetbv, Some((_, _, v)) if v == "ok"),
        "xsetbv\n{ctx}"
    );
    // ioperm()/iopl() need CONFIG_X86_IOPL_IOPERM: without it (the shared
    // kernel) they are ENOSYS and the ports stay closed; with it, the
    // granted ports work (the RTC answers) and the others fault.
    let ioperm = out
        .lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix("PRIV-IOPERM "))
        .unwrap_or_else(|| panic!("no PRIV-IOPERM\n{ctx}"));
    assert_eq!(ioperm == "ok", with_ioperm, "PRIV-IOPERM {ioperm}\n{ctx}");
    let needed: &[&str] = if with_ioperm {
        &[
            "ioperm-out-0x70",
            "ioperm-in-0x71",
            "ioperm-in-0x3fd",
            "ioperm-inw-0x71-straddles",
            "ioperm-rtc-seconds-bcd",
            "iopl3-in-0x3fd",
            "iopl3-rtc-seconds-bcd",
            // Linux >= 5.18 skips CLI/STI after the #GP under iopl(3).
            "iopl3-cli",
        ]
    } else {
        &[
            "ioperm-unavailable",
            "in-0x71-after-ioperm",
            "iopl-unavailable",
        ]
    };
    for case in needed {
        assert!(
            got.iter().any(|(c, _, v)| c == case && v == "ok"),
            "{case}\n{ctx}"
        );
    }
    assert!(
        got.iter().all(|(_, _, v)| v == "ok"),
        "a case failed\n{ctx}"
    );
    let done = out
        .lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix("PRIV-DONE "))
        .unwrap_or_else(|| panic!("no PRIV-DONE\n{ctx}"));
    assert_eq!(done, format!("{} 0", got.len()), "{ctx}");
    // SIDT gives the kernel's IDT address, or Linux's dummy under UMIP.
    assert!(
        got.iter()
            .any(|(c, _, v)| (c == "sidt-kernel-base" || c == "sidt-dummy-base") && v == "ok"),
        "SIDT base\n{ctx}"
    );
    let flags = out
        .lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix("PRIV-FLAGS"))
        .unwrap_or_else(|| panic!("no PRIV-FLAGS\n{ctx}"));
    for f in ["smep", "smap", "nx"] {
        assert!(flags.split_whitespace().any(|w| w == f), "{f}: {flags}");
    }
    assert!(!out.contains("PRIV-KLOG"), "kernel log\n{ctx}");
    for bad in ["Oops", "general protection fault", "BUG:", "Kernel panic"] {
        assert!(!out.contains(bad), "{bad}\n{ctx}");
    }
    assert!(out.contains("TEST privilege ok"), "{ctx}");
    assert!(out.contains("TESTS-DONE ok"), "{ctx}");
    assert_eq!(status.code(), Some(0), "{ctx}");
    eprintln!("{} privilege cases passed in the guest", got.len());
}
