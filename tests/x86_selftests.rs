//! The Linux kernel's own x86 selftests (`tools/testing/selftests/x86` of
//! Debian's linux-source-6.1, 64-bit, static) inside the shared guest on
//! the software CPU with `-smp 2`, side by side with QEMU's TCG
//! (`-cpu max`): every test that passes on QEMU must pass on Kindling.
//! The initramfs comes from `scripts/guest/x86-selftests-path.sh`
//! (scripts/test.sh provides it as `KINDLING_X86_SELFTESTS`).

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The most a whole run may take (syscall_numbering alone makes millions
/// of system calls).
const TIMEOUT_S: u64 = 1500;

/// Each test's exit status, by name, from the guest's console.
fn results(console: &str) -> BTreeMap<String, i32> {
    console
        .lines()
        .filter_map(|l| {
            let rest = l.trim_end().strip_prefix("SELFTEST ")?;
            let (name, rc) = rest.split_once(" rc=")?;
            Some((name.to_string(), rc.parse().ok()?))
        })
        .collect()
}

/// Boot `emulator` with the selftests initramfs; the whole console.
fn run(emulator: &Path, kernel: &Path, initramfs: &Path, qemu: bool) -> String {
    let mut append = "console=ttyS0 reboot=t panic=-1 rdinit=/selftests-init".to_string();
    let mut args: Vec<String> = Vec::new();
    if qemu {
        // QEMU's TCG cannot calibrate the TSC by itself.
        append.push_str(" tsc_early_khz=2600000");
        args.extend(["-cpu".into(), "max".into()]);
    }
    args.extend(
        [
            "-M",
            "microvm,acpi=off",
            "-accel",
            "tcg",
            "-smp",
            "2",
            "-m",
            "512m",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
            "-serial",
            "stdio",
        ]
        .map(String::from),
    );
    args.extend([
        "-kernel".into(),
        kernel.display().to_string(),
        "-initrd".into(),
        initramfs.display().to_string(),
        "-append".into(),
        append,
    ]);
    let mut child = Command::new("timeout")
        .arg(TIMEOUT_S.to_string())
        .arg(emulator)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the emulator");
    let mut out = String::new();
    let mut raw = Vec::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_end(&mut raw)
        .expect("read the console");
    child.wait().expect("wait for the emulator");
    out.push_str(&String::from_utf8_lossy(&raw));
    out
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

#[test]
fn the_kernels_x86_selftests_pass_where_they_pass_on_qemu() {
    let Some(initramfs) = std::env::var_os("KINDLING_X86_SELFTESTS").map(PathBuf::from) else {
        common::skip(
            "KINDLING_X86_SELFTESTS is not set (scripts/guest/x86-selftests-path.sh builds it)",
        );
        return;
    };
    let Some(kernel) = common::guest_file("bzImage") else {
        return;
    };
    let qemu = which("qemu-system-x86_64");
    let reference = qemu.as_ref().map(|q| {
        let (q, k, i) = (q.clone(), kernel.clone(), initramfs.clone());
        std::thread::spawn(move || run(&q, &k, &i, true))
    });
    let ours = run(&common::kindling(), &kernel, &initramfs, false);
    let mine = results(&ours);
    assert!(
        ours.contains("SELFTESTS-END"),
        "the selftests did not finish on Kindling:\n{ours}"
    );
    assert!(
        mine.len() >= 15,
        "too few selftests ran on Kindling: {mine:?}"
    );
    assert!(
        !ours.contains("Oops") && !ours.contains("BUG:"),
        "the guest kernel oopsed on Kindling:\n{ours}"
    );
    let Some(reference) = reference else {
        eprintln!("note: qemu-system-x86_64 not found; Kindling's results only: {mine:?}");
        return;
    };
    let theirs = results(&reference.join().expect("QEMU run"));
    eprintln!(
        "{:<32} {:>8} {:>8}",
        "selftest (exit status)", "kindling", "qemu"
    );
    for (name, rc) in &mine {
        let q = theirs.get(name).map_or("-".to_string(), |r| r.to_string());
        eprintln!("{name:<32} {rc:>8} {q:>8}");
    }
    let regressions: Vec<String> = theirs
        .iter()
        .filter(|(name, &rc)| rc == 0 && mine.get(*name) != Some(&0))
        .map(|(name, _)| format!("{name} (Kindling: {:?})", mine.get(name)))
        .collect();
    assert!(
        regressions.is_empty(),
        "selftests that pass on QEMU TCG but not on Kindling: {regressions:?}\n{ours}"
    );
}
