//! Linux (../shared/guest) on the software CPU through the built binary:
//! PVH vmlinux and bzImage, with and without ACPI, one and two vCPUs, the
//! virtio disk, power-off, and an interactive shell on the serial console.

mod common;

use std::time::Duration;

use common::vm::{run, Vm};

const T: Duration = Duration::from_secs(240);
const APPEND: &str = "console=ttyS0 reboot=t panic=-1 quiet";

fn boot(
    machine: &str,
    kernel: &str,
    extra: &[&str],
    append: &str,
) -> Option<(i32, String, String)> {
    let k = common::guest_file(kernel)?;
    let initrd = common::guest_file("initramfs.cpio")?;
    let mut args = vec![
        "-M",
        machine,
        "-accel",
        "tcg",
        "-m",
        "256m",
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-no-reboot",
        "-serial",
        "stdio",
        "-kernel",
        k.to_str().unwrap(),
        "-initrd",
        initrd.to_str().unwrap(),
        "-append",
        append,
    ];
    args.extend_from_slice(extra);
    let (status, out, err) = run(&args, T);
    Some((status.code().unwrap_or(-1), out, err))
}

fn assert_boots(machine: &str, kernel: &str, extra: &[&str]) {
    let Some((code, out, err)) = boot(machine, kernel, extra, APPEND) else {
        return;
    };
    assert!(out.contains("BOOT-OK"), "console:\n{out}\nstderr:\n{err}");
    assert!(out.contains("reboot: Restarting system"), "{out}");
    assert_eq!(
        code, 0,
        "reboot=t triple fault under -no-reboot exits 0\n{err}"
    );
}

#[test]
fn pvh_vmlinux_without_acpi() {
    assert_boots("microvm,acpi=off", "vmlinux", &[]);
}

#[test]
fn bzimage_without_acpi() {
    assert_boots("microvm,acpi=off", "bzImage", &[]);
}

#[test]
fn bzimage_with_acpi() {
    assert_boots("microvm,acpi=on", "bzImage", &[]);
}

/// Two vCPUs: the AP is started by INIT/SIPI through the userspace LAPIC,
/// both run Linux (spinlocks need LOCK'd instructions that are atomic
/// against the other vCPU's plain stores), and the reboot takes both down.
fn assert_boots_two_cpus(machine: &str, kernel: &str) {
    let Some((code, out, err)) = boot(
        machine,
        kernel,
        &["-smp", "2"],
        "console=ttyS0 reboot=t panic=-1",
    ) else {
        return;
    };
    assert!(
        out.contains("smp: Brought up 1 node, 2 CPUs"),
        "console:\n{out}\nstderr:\n{err}"
    );
    assert!(out.contains("BOOT-OK"), "{out}");
    assert_eq!(code, 0, "{err}");
}

#[test]
fn bzimage_two_cpus_without_acpi() {
    assert_boots_two_cpus("microvm,acpi=off", "bzImage");
}

#[test]
fn pvh_vmlinux_two_cpus_with_acpi() {
    assert_boots_two_cpus("microvm,acpi=on", "vmlinux");
}

#[test]
fn pvh_vmlinux_with_acpi_and_no_extra_kernel_arguments() {
    // No tsc_early_khz= or pic=off: CPUID leaf 0x15 tells the TSC and
    // LAPIC timer rates, and the 8259 is left masked.
    let Some((code, out, _)) = boot("microvm,acpi=on", "vmlinux", &[], "console=ttyS0 reboot=t")
    else {
        return;
    };
    assert!(out.contains("BOOT-OK"), "{out}");
    assert_eq!(code, 0);
}

#[test]
fn acpi_poweroff_ends_the_process() {
    let Some((code, out, _)) = boot(
        "microvm,acpi=on",
        "vmlinux",
        &[],
        "console=ttyS0 reboot=t panic=-1 quiet bench=poweroff",
    ) else {
        return;
    };
    assert!(out.contains("reboot: Power down"), "{out}");
    assert_eq!(code, 0);
}

#[test]
fn guest_reads_the_virtio_disk() {
    let Some(disk) = common::guest_file("disk.img") else {
        return;
    };
    let md5 = std::process::Command::new("md5sum")
        .arg(&disk)
        .output()
        .expect("md5sum");
    let want = String::from_utf8_lossy(&md5.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string();
    let drive = format!(
        "id=d0,file={},format=raw,if=none,readonly=on",
        disk.display()
    );
    let Some((code, out, _)) = boot(
        "microvm,acpi=off",
        "bzImage",
        &["-drive", &drive, "-device", "virtio-blk-device,drive=d0"],
        "console=ttyS0 reboot=t panic=-1 quiet bench=disk",
    ) else {
        return;
    };
    assert!(
        out.contains(&format!("DISK-MD5 {want}")),
        "want {want}:\n{out}"
    );
    assert_eq!(code, 0);
}

/// Starts vmlinux with a shell as init (`rdinit=/bin/sh`) on `console`
/// (ttyS0 or hvc0), with `extra` arguments, and waits for its prompt.
fn shell(console: &str, extra: &[&str]) -> Option<Vm> {
    let k = common::guest_file("vmlinux")?;
    let initrd = common::guest_file("initramfs.cpio")?;
    let append = format!("console={console} reboot=t panic=-1 quiet rdinit=/bin/sh");
    let mut args = vec![
        "-M",
        "microvm,acpi=off",
        "-accel",
        "tcg",
        "-m",
        "256m",
        "-nodefaults",
        "-no-reboot",
        "-kernel",
        k.to_str().unwrap(),
        "-initrd",
        initrd.to_str().unwrap(),
        "-append",
        &append,
    ];
    args.extend_from_slice(extra);
    let mut vm = Vm::start_interactive(&args);
    assert!(vm.wait_for("#", 1, T), "no shell prompt:\n{}", vm.output());
    Some(vm)
}

#[test]
fn interactive_shell_on_the_serial_console() {
    let Some(mut vm) = shell("ttyS0", &["-serial", "stdio"]) else {
        return;
    };
    vm.type_text("echo answer=$((6*7))\n");
    assert!(vm.wait_for("answer=42", 1, T), "{}", vm.output());
    vm.type_text("reboot -f\n");
    assert_eq!(vm.wait_exit(T).code(), Some(0));
}

/// One `-icount shift=0,sleep=off` boot to the guest's reset; returns the
/// console and the instruction count QMP `query-replay` reports once the
/// machine stopped (`-no-shutdown`). `blocks: false` runs it with the
/// block engine off (`KINDLING_NO_BLOCKS=1`).
fn icount_boot(tag: &str, blocks: bool) -> Option<(String, u64)> {
    let env: &[&str] = if blocks {
        &[]
    } else {
        &["KINDLING_NO_BLOCKS=1"]
    };
    icount_boot_env(tag, env)
}

/// [`icount_boot`] with `env` (`NAME=value` settings) added to the
/// environment.
fn icount_boot_env(tag: &str, env: &[&str]) -> Option<(String, u64)> {
    let k = common::guest_file("vmlinux")?;
    let initrd = common::guest_file("initramfs.cpio")?;
    let sock =
        std::env::temp_dir().join(format!("kindling-icount-{}-{tag}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let qmp = format!("unix:{},server=on,wait=off", sock.display());
    let kindling = common::kindling();
    let env_prefix: Vec<&str> = env
        .iter()
        .copied()
        .chain([kindling.to_str().expect("path")])
        .collect();
    let args = [
        "-M",
        "microvm,acpi=off",
        "-accel",
        "tcg",
        "-icount",
        "shift=0,sleep=off",
        // The wall-clock time seeds the guest's RNG (and so its ASLR):
        // fixed, as with QEMU's record/replay.
        "-rtc",
        "base=2024-01-01T00:00:00",
        "-m",
        "256m",
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-no-reboot",
        "-no-shutdown",
        "-serial",
        "stdio",
        "-qmp",
        &qmp,
        "-kernel",
        k.to_str().unwrap(),
        "-initrd",
        initrd.to_str().unwrap(),
        "-append",
        "console=ttyS0 reboot=t panic=-1 printk.time=1",
    ];
    let mut vm = if env.is_empty() {
        Vm::start(&args)
    } else {
        Vm::start_program("env", &[&env_prefix[..], &args[..]].concat())
    };
    let mut q = common::qmp::Qmp::connect(&sock);
    let shutdown = q.wait_event("SHUTDOWN");
    assert_eq!(shutdown["data"]["reason"], "guest-reset", "{shutdown}");
    let replay = q.execute("query-replay");
    assert_eq!(replay["return"]["mode"], "none", "{replay}");
    let count = replay["return"]["icount"].as_u64().expect("icount");
    q.execute("quit");
    vm.wait_exit(Duration::from_secs(20));
    let _ = std::fs::remove_file(&sock);
    Some((vm.output(), count))
}

#[test]
fn icount_boots_are_identical_instruction_for_instruction() {
    let Some((out1, n1)) = icount_boot("a", true) else {
        return;
    };
    let (out2, n2) = icount_boot("b", true).expect("guest present");
    assert!(out1.contains("BOOT-OK"), "{out1}");
    // printk timestamps are guest time: identical consoles mean every
    // event happened at the same virtual time in both runs.
    assert!(out1.contains("[    0.0"), "timestamps shown:\n{out1}");
    assert_eq!(out1, out2, "console differs between the two runs");
    assert!(n1 > 1_000_000, "a Linux boot executes millions: {n1}");
    assert_eq!(n1, n2, "instruction counts differ");
}

/// The block engine against the single-step executor: under `-icount`
/// both stop at the same instruction budgets and open interrupt windows at
/// the same instructions, so the whole boot must be identical, down to the
/// instruction count and every printk timestamp.
#[test]
fn the_block_engine_boots_exactly_as_single_stepping() {
    let Some((stepped, n1)) = icount_boot("step", false) else {
        return;
    };
    let (blocks, n2) = icount_boot_env("blocks", &["KINDLING_NO_JIT=1"]).expect("guest present");
    assert!(stepped.contains("BOOT-OK"), "{stepped}");
    assert_eq!(stepped, blocks, "console differs between the engines");
    assert_eq!(n1, n2, "instruction counts differ");
    // The compiled tier, blocks compiled at their 200th execution (a
    // threshold of 1 compiles some 60 000 blocks, minutes of Cranelift).
    let (compiled, n3) =
        icount_boot_env("compiled", &["KINDLING_JIT_THRESHOLD=200"]).expect("guest present");
    assert_eq!(stepped, compiled, "console differs with the compiled tier");
    assert_eq!(n1, n3, "instruction counts differ with the compiled tier");
}

/// Boots Linux with a shell as init and `disk` as a virtio drive, types
/// `commands` (ending with `reboot -f`), and returns the console.
fn shell_with_disk(disk: &std::path::Path, read_only: bool, commands: &[&str]) -> Option<String> {
    let drive = format!(
        "id=d0,file={},format=raw,if=none{}",
        disk.display(),
        if read_only { ",readonly=on" } else { "" }
    );
    let mut vm = shell(
        "ttyS0",
        &[
            "-serial",
            "stdio",
            "-drive",
            &drive,
            "-device",
            "virtio-blk-device,drive=d0",
        ],
    )?;
    for c in commands {
        vm.type_text(c);
        vm.type_text("\n");
    }
    assert_eq!(vm.wait_exit(T).code(), Some(0), "{}", vm.output());
    Some(vm.output())
}

/// A scratch copy of the shared disk image.
fn scratch_disk(tag: &str) -> Option<(std::path::PathBuf, Vec<u8>)> {
    let original = std::fs::read(common::guest_file("disk.img")?).ok()?;
    let path = std::env::temp_dir().join(format!("kindling-disk-{}-{tag}.img", std::process::id()));
    std::fs::write(&path, &original).unwrap();
    Some((path, original))
}

const PATTERN: &str = "KINDLING-WROTE-THIS";

#[test]
fn guest_writes_reach_the_disk_file_after_fsync() {
    let Some((disk, original)) = scratch_disk("rw") else {
        return;
    };
    let dd = format!(
        "echo {PATTERN} > /p; dd if=/p of=/dev/vda bs=512 seek=3 conv=fsync; echo dd-status=$?"
    );
    let Some(out) = shell_with_disk(
        &disk,
        false,
        &["mount -t devtmpfs dev /dev", &dd, "reboot -f"],
    ) else {
        return;
    };
    assert!(out.contains("dd-status=0"), "{out}");
    let now = std::fs::read(&disk).unwrap();
    let at = 3 * 512;
    let want = format!("{PATTERN}\n");
    assert_eq!(&now[at..at + want.len()], want.as_bytes(), "{out}");
    assert_eq!(now[..at], original[..at], "bytes before the write changed");
    assert_eq!(
        now[at + want.len()..],
        original[at + want.len()..],
        "bytes after the write changed"
    );
    let _ = std::fs::remove_file(&disk);
}

#[test]
fn read_only_drive_refuses_guest_writes() {
    let Some((disk, original)) = scratch_disk("ro") else {
        return;
    };
    let dd = format!(
        "echo {PATTERN} > /p; dd if=/p of=/dev/vda bs=512 seek=3 conv=fsync; echo dd-status=$?"
    );
    let Some(out) = shell_with_disk(
        &disk,
        true,
        &["mount -t devtmpfs dev /dev", &dd, "reboot -f"],
    ) else {
        return;
    };
    assert!(
        out.contains("dd-status=1"),
        "the write must fail on a read-only drive:\n{out}"
    );
    assert_eq!(std::fs::read(&disk).unwrap(), original, "the image changed");
    let _ = std::fs::remove_file(&disk);
}

#[test]
fn guest_discards_reach_the_disk_file() {
    let Some((disk, original)) = scratch_disk("discard") else {
        return;
    };
    let Some(out) = shell_with_disk(
        &disk,
        false,
        &[
            "mount -t devtmpfs dev /dev; mount -t sysfs sys /sys",
            "echo max=$(cat /sys/block/vda/queue/discard_max_bytes)",
            "busybox blkdiscard -o 65536 -l 65536 /dev/vda; echo discard-status=$?",
            "reboot -f",
        ],
    ) else {
        return;
    };
    assert!(out.contains("discard-status=0"), "{out}");
    assert!(
        !out.contains("max=0\r"),
        "the guest sees discard support:\n{out}"
    );
    let now = std::fs::read(&disk).unwrap();
    assert_eq!(now.len(), original.len());
    assert_eq!(now[..65536], original[..65536]);
    assert_eq!(now[131072..], original[131072..]);
    // Punched (reads as zeros) where the file system has holes; discard
    // is advisory, so elsewhere the data may stay.
    let range = &now[65536..131072];
    assert!(
        range.iter().all(|&b| b == 0) || range == &original[65536..131072],
        "{out}"
    );
    let _ = std::fs::remove_file(&disk);
}

#[test]
fn virtio_console_is_an_interactive_hvc0() {
    let Some(mut vm) = shell(
        "hvc0",
        &[
            "-display",
            "none",
            "-serial",
            "none",
            "-chardev",
            "stdio,id=con0",
            "-device",
            "virtio-serial-device",
            "-device",
            "virtconsole,chardev=con0",
        ],
    ) else {
        return;
    };
    vm.type_text("mount -t sysfs sys /sys\n");
    vm.type_text("echo hvc-answer=$((6*7)) on $(cat /sys/class/tty/console/active)\n");
    assert!(
        vm.wait_for("hvc-answer=42 on hvc0", 1, T),
        "{}",
        vm.output()
    );
    vm.type_text("reboot -f\n");
    assert_eq!(vm.wait_exit(T).code(), Some(0));
}

#[test]
fn virtio_rng_feeds_dev_hwrng() {
    let Some(mut vm) = shell(
        "ttyS0",
        &["-serial", "stdio", "-device", "virtio-rng-device"],
    ) else {
        return;
    };
    vm.type_text("mount -t devtmpfs dev /dev; mount -t sysfs sys /sys\n");
    vm.type_text("echo rng=$(cat /sys/class/misc/hw_random/rng_current)\n");
    vm.type_text("for i in 1 2; do dd if=/dev/hwrng bs=32 count=1 2>/dev/null | md5sum; done\n");
    vm.type_text("reboot -f\n");
    assert_eq!(vm.wait_exit(T).code(), Some(0), "{}", vm.output());
    let out = vm.output();
    assert!(out.contains("rng=virtio_rng."), "{out}");
    let sums: Vec<&str> = out
        .lines()
        .filter_map(|l| l.trim().strip_suffix("  -"))
        .filter(|s| s.len() == 32)
        .collect();
    assert_eq!(sums.len(), 2, "{out}");
    assert_ne!(sums[0], sums[1], "two reads gave the same bytes");
    // md5 of 32 zero bytes and of nothing: the device must give real bytes.
    for s in &sums {
        assert_ne!(*s, "70bc8f4b72a86921468bf8e8441dce51");
        assert_ne!(*s, "d41d8cd98f00b204e9800998ecf8427e");
    }
}
