//! `-cpu` models and feature lists through the built binary: what a Linux
//! guest on the software CPU sees in /proc/cpuinfo for `max`, for `max`
//! minus features, and for `qemu64`; QEMU's warning for a feature the
//! accelerator lacks and its error for an unknown feature name.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::vm::{run, Vm};

const T: Duration = Duration::from_secs(240);

/// The flags Linux lists in /proc/cpuinfo on `-accel tcg -cpu <cpu>`.
fn guest_flags(cpu: &str) -> Option<BTreeSet<String>> {
    let k = common::guest_file("vmlinux")?;
    let initrd = common::guest_file("initramfs.cpio")?;
    let args = [
        "-M",
        "microvm,acpi=off",
        "-accel",
        "tcg",
        "-cpu",
        cpu,
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
        "console=ttyS0 reboot=t panic=-1 quiet rdinit=/bin/sh",
    ];
    let mut vm = Vm::start_interactive(&args);
    assert!(vm.wait_for("#", 1, T), "no shell prompt:\n{}", vm.output());
    // The initramfs's busybox has no grep: the shell filters.
    vm.type_text(
        "mount -t proc proc /proc; while read l; do case \"$l\" in flags*) \
         echo \"$l\";; esac; done < /proc/cpuinfo; echo done-$((6*7))\n",
    );
    assert!(vm.wait_for("done-42", 1, T), "{}", vm.output());
    vm.type_text("reboot -f\n");
    assert_eq!(vm.wait_exit(T).code(), Some(0));
    let out = vm.output();
    let line = out
        .lines()
        .find(|l| l.starts_with("flags"))
        .unwrap_or_else(|| panic!("no flags line:\n{out}"));
    let (_, list) = line.split_once(':').expect("flags: list");
    Some(list.split_whitespace().map(str::to_string).collect())
}

#[test]
fn linux_sees_the_model_and_the_feature_list() {
    let Some(max) = guest_flags("max") else {
        return;
    };
    for f in [
        "popcnt",
        "abm",
        "bmi1",
        "bmi2",
        "adx",
        "movbe",
        "rdrand",
        "rdseed",
        "fsgsbase",
        "rdpid",
        "cx16",
        "lahf_lm",
        "pni",
        "ssse3",
        "sse4_1",
        "sse4_2",
        "aes",
        "pclmulqdq",
        "sha_ni",
        "xsave",
        "xsaveopt",
        "xsavec",
        "xgetbv1",
        "avx",
        "avx2",
        "fma",
        "f16c",
    ] {
        assert!(max.contains(f), "max lacks {f}: {max:?}");
    }
    for f in ["avx512f", "vaes", "vpclmulqdq", "xsaves", "pku"] {
        assert!(!max.contains(f), "max shows unimplemented {f}");
    }
    let Some(less) = guest_flags("max,-popcnt,bmi2=off") else {
        return;
    };
    let gone: Vec<&String> = max.difference(&less).collect();
    assert_eq!(gone, ["bmi2", "popcnt"], "max,-popcnt,bmi2=off");
    assert!(less.is_subset(&max));
    let Some(q64) = guest_flags("qemu64") else {
        return;
    };
    for f in ["cx16", "lahf_lm", "lm", "nx", "syscall", "sse2"] {
        assert!(q64.contains(f), "qemu64 lacks {f}");
    }
    for f in [
        "popcnt", "abm", "bmi1", "bmi2", "movbe", "rdrand", "fsgsbase", "rdtscp",
    ] {
        assert!(!q64.contains(f), "qemu64 shows {f}");
    }
}

#[test]
fn unsupported_features_warn_and_unknown_ones_fail_as_in_qemu() {
    let Some(tiny) = common::guest_file("tiny-pvh.elf") else {
        return;
    };
    let tiny = tiny.to_str().unwrap();
    let args = |cpu: &'static str| {
        [
            "-M",
            "microvm",
            "-accel",
            "tcg",
            "-cpu",
            cpu,
            "-nodefaults",
            "-no-reboot",
            "-serial",
            "stdio",
            "-kernel",
            tiny,
        ]
    };
    let (status, out, err) = run(&args("max,+avx512f,-popcnt"), T);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(out.contains("BOOT-OK"), "{out}");
    assert_eq!(
        err,
        "kindling: warning: TCG doesn't support requested feature: CPUID.07H:EBX.avx512f [bit 16]\n"
    );
    let (status, out, err) = run(&args("qemu64,+popcnt,abm=on"), T);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(out.contains("BOOT-OK") && err.is_empty(), "{out}\n{err}");
    let (status, out, err) = run(&args("max,+foo"), T);
    assert_eq!(status.code(), Some(1));
    assert!(!out.contains("BOOT-OK"));
    assert_eq!(err, "kindling: Property 'max-x86_64-cpu.foo' not found\n");
}
