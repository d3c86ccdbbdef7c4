// The small-guest suite, run once per CPU backend: `kvm_guests.rs` and
// `tcg_guests.rs` include this file with `ACCEL` set.

const T: Duration = Duration::from_secs(30);

fn accel_args<'a>(kernel: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "-M",
        "microvm,acpi=off",
        ACCEL_FLAG, ACCEL,
        "-cpu",
        "max",
        "-m",
        "64m",
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-serial",
        "stdio",
        "-kernel",
        kernel,
    ];
    a.extend_from_slice(extra);
    a
}


fn run_test_guest(name: &str) -> (i32, String) {
    let elf = common::guests::build(name);
    let elf = elf.to_str().unwrap().to_string();
    let (status, out, err) = run(
        &accel_args(&elf, &["-no-reboot", "-device", "isa-debug-exit"]),
        T,
    );
    assert!(!err.contains("panicked"), "{err}");
    (status.code().unwrap_or(-1), out)
}

#[test]
fn debug_exit_status_is_2v_plus_1() {
    need_accel!();
    let (code, out) = run_test_guest("hello");
    assert_eq!(out, "HELLO\r\n");
    assert_eq!(code, (0x21 << 1) | 1);
}

#[test]
fn guest_switches_to_long_mode() {
    need_accel!();
    let (code, out) = run_test_guest("longmode");
    assert_eq!(out, "LONG-OK\r\n");
    assert_eq!(code, (0x40 << 1) | 1);
}

#[test]
fn guest_drops_to_real_mode() {
    need_accel!();
    let (code, out) = run_test_guest("realmode");
    assert_eq!(out, "REAL-OK\r\n");
    assert_eq!(code, (0x30 << 1) | 1);
}

#[test]
fn ioapic_registers_answer_over_mmio() {
    need_accel!();
    let (code, _) = run_test_guest("ioapic_mmio");
    assert_eq!(code, (23 << 1) | 1, "IOAPIC version register: 24 pins");
}

#[test]
fn pit_interrupts_through_the_8259() {
    need_accel!();
    let (code, out) = run_test_guest("pit_pic");
    assert!(out.starts_with("TTT"), "{out}");
    assert_eq!(code, (0x33 << 1) | 1);
}

#[test]
fn pit_interrupts_through_the_ioapic() {
    need_accel!();
    let (code, out) = run_test_guest("pit_ioapic");
    assert!(out.starts_with("III"), "{out}");
    assert_eq!(code, (0x34 << 1) | 1);
}

#[test]
fn tiny_pvh_boots_and_triple_fault_exits_under_no_reboot() {
    need_accel!();
    let Some(k) = common::guest_file("tiny-pvh.elf") else {
        return;
    };
    let (status, out, err) = run(
        &accel_args(k.to_str().unwrap(), &["-no-reboot", "-append", "x"]),
        T,
    );
    assert_eq!(out, "BOOT-OK\r\n");
    assert_eq!(status.code(), Some(0), "{err}");
}

#[test]
fn triple_fault_without_no_reboot_reboots() {
    need_accel!();
    let Some(k) = common::guest_file("tiny-pvh.elf") else {
        return;
    };
    let mut vm = Vm::start(&accel_args(k.to_str().unwrap(), &["-append", "x"]));
    assert!(vm.wait_for("BOOT-OK", 3, T), "{}", vm.output());
    assert!(vm.running(), "rebooting, not exiting");
}

#[test]
fn hold_keeps_running_until_sigterm_which_exits_cleanly() {
    need_accel!();
    let Some(k) = common::guest_file("tiny-pvh.elf") else {
        return;
    };
    let mut vm = Vm::start(&accel_args(
        k.to_str().unwrap(),
        &["-no-reboot", "-append", "hold"],
    ));
    assert!(vm.wait_for("HOLD", 1, T), "{}", vm.output());
    std::thread::sleep(Duration::from_millis(200));
    assert!(vm.running());
    vm.signal(libc::SIGTERM);
    let status = vm.wait_exit(T);
    assert_eq!(status.code(), Some(0));
    assert!(
        vm.errors().contains("terminating on signal 15 from pid"),
        "{}",
        vm.errors()
    );
}

#[test]
fn kvm_pvm_hosts_get_a_one_line_notice() {
    need_accel!();
    if ACCEL != "kvm" {
        return;
    }
    if !std::path::Path::new("/sys/module/kvm_pvm").exists() || common::kvm_is_hardware() {
        common::skip_for_kvm("not a kvm_pvm host");
        return;
    }
    let Some(k) = common::guest_file("tiny-pvh.elf") else {
        return;
    };
    let (_, _, err) = run(&accel_args(k.to_str().unwrap(), &["-no-reboot"]), T);
    let notices: Vec<_> = err.lines().filter(|l| l.contains("kvm_pvm")).collect();
    assert_eq!(notices.len(), 1, "{err}");
    assert!(notices[0].contains("-accel tcg"));
}

#[test]
fn serial_file_backend_and_pidfile() {
    need_accel!();
    let Some(k) = common::guest_file("tiny-pvh.elf") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("kindling-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("serial.log");
    let pid = dir.join("k.pid");
    let serial = format!("file:{}", log.display());
    let pidfile = pid.display().to_string();
    let mut vm = Vm::start(&[
        ACCEL_FLAG, ACCEL,
        "-nodefaults",
        "-serial",
        &serial,
        "-pidfile",
        &pidfile,
        "-kernel",
        k.to_str().unwrap(),
        "-append",
        "hold",
    ]);
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("HOLD")
        && start.elapsed() < T
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "BOOT-OK\r\nHOLD\r\n"
    );
    assert_eq!(
        std::fs::read_to_string(&pid).unwrap().trim(),
        vm.pid().to_string()
    );
    vm.signal(libc::SIGINT);
    assert_eq!(vm.wait_exit(T).code(), Some(0));
    assert!(!pid.exists(), "pidfile removed at exit");
    let _ = std::fs::remove_dir_all(dir);
}

fn ged_guest(append: &str, extra: &[&str]) -> (i32, String) {
    let elf = common::guests::build("ged_power");
    let mut args = vec![
        "-M",
        "microvm,acpi=on",
        ACCEL_FLAG, ACCEL,
        "-m",
        "64m",
        "-nodefaults",
        "-serial",
        "stdio",
        "-kernel",
        elf.to_str().unwrap(),
        "-append",
        append,
    ];
    args.extend_from_slice(extra);
    let (status, out, _) = run(&args, T);
    (status.code().unwrap_or(-1), out)
}

#[test]
fn acpi_sleep_control_s5_powers_off() {
    need_accel!();
    assert_eq!(ged_guest("poweroff", &[]).0, 0);
}

#[test]
fn acpi_reset_register_resets() {
    need_accel!();
    // Under -no-reboot a guest reset ends the process with status 0.
    assert_eq!(ged_guest("reset", &["-no-reboot"]).0, 0);
}

#[test]
fn qmp_system_powerdown_presses_the_acpi_power_button() {
    need_accel!();
    let elf = common::guests::build("ged_power");
    let sock = std::env::temp_dir().join(format!("kindling-ged-{}.sock", std::process::id()));
    let qmp_arg = format!("unix:{},server=on,wait=off", sock.display());
    let mut vm = Vm::start(&[
        "-M",
        "microvm,acpi=on",
        ACCEL_FLAG, ACCEL,
        "-m",
        "64m",
        "-nodefaults",
        "-serial",
        "stdio",
        "-kernel",
        elf.to_str().unwrap(),
        "-append",
        "button",
        "-qmp",
        &qmp_arg,
    ]);
    assert!(vm.wait_for("PWR", 1, T), "{}", vm.output());
    let mut q = common::qmp::Qmp::connect(&sock);
    assert_eq!(
        q.execute("system_powerdown")["return"],
        serde_json::json!({})
    );
    q.wait_event("POWERDOWN");
    let ev = q.wait_event("SHUTDOWN");
    assert_eq!(
        ev["data"],
        serde_json::json!({"guest": true, "reason": "guest-shutdown"})
    );
    assert_eq!(vm.wait_exit(T).code(), Some(0));
    let _ = std::fs::remove_file(sock);
}

#[test]
fn smp_application_processor_starts_on_init_sipi() {
    need_accel!();
    let elf = common::guests::build("smp");
    let (status, out, err) = run(
        &accel_args(
            elf.to_str().unwrap(),
            &["-smp", "2", "-no-reboot", "-device", "isa-debug-exit"],
        ),
        T,
    );
    assert_eq!(out, "AP-UP\r\n", "{err}");
    assert_eq!(
        status.code(),
        Some(((0x50 + 1) << 1) | 1),
        "the AP reports APIC ID 1"
    );
}

/// A guest driver posts a descriptor chain whose header lies outside guest
/// RAM: the device reports DEVICE_NEEDS_RESET, a log line names it, reset
/// recovers it, and the VMM runs on (the guest gets to exit by itself).
#[test]
fn a_corrupt_virtio_chain_breaks_the_device_not_the_vmm() {
    need_accel!();
    let elf = common::guests::build("virtio_bad_chain");
    let disk = std::env::temp_dir().join(format!(
        "kindling-bad-chain-{ACCEL}-{}.img",
        std::process::id()
    ));
    std::fs::write(&disk, vec![0x5au8; 1 << 20]).unwrap();
    let drive = format!("id=d0,file={},format=raw,if=none", disk.display());
    let (status, out, err) = run(
        &accel_args(
            elf.to_str().unwrap(),
            &[
                "-no-reboot",
                "-device",
                "isa-debug-exit",
                "-drive",
                &drive,
                "-device",
                "virtio-blk-device,drive=d0",
            ],
        ),
        T,
    );
    let image = std::fs::read(&disk).unwrap();
    let _ = std::fs::remove_file(&disk);
    assert_eq!(out, "BROKEN-OK\r\n", "{err}");
    assert_eq!(status.code(), Some((0x42 << 1) | 1), "{err}");
    assert!(err.contains("virtio-blk"), "a log line names the device: {err}");
    assert!(image.iter().all(|&b| b == 0x5a), "the image is untouched");
}

/// Self-modifying code by DMA: the guest runs a function, reads new code
/// over it from the virtio-blk disk, and the new code runs (the software
/// CPU's cached block of the old code is dropped by the device's write).
#[test]
fn a_virtio_blk_read_over_code_that_ran_runs_the_new_code() {
    need_accel!();
    let elf = common::guests::build("virtio_smc");
    let disk = std::env::temp_dir().join(format!(
        "kindling-smc-{ACCEL}-{}.img",
        std::process::id()
    ));
    let mut image = vec![0u8; 1 << 20];
    image[..6].copy_from_slice(&[0xb8, 0x02, 0x00, 0x00, 0x00, 0xc3]); // mov eax, 2; ret
    std::fs::write(&disk, &image).unwrap();
    let drive = format!("id=d0,file={},format=raw,if=none", disk.display());
    let (status, out, err) = run(
        &accel_args(
            elf.to_str().unwrap(),
            &[
                "-no-reboot",
                "-device",
                "isa-debug-exit",
                "-drive",
                &drive,
                "-device",
                "virtio-blk-device,drive=d0",
            ],
        ),
        T,
    );
    let _ = std::fs::remove_file(&disk);
    assert_eq!(out, "SMC-OK\r\n", "{err}");
    assert_eq!(status.code(), Some((0x42 << 1) | 1), "{err}");
}
