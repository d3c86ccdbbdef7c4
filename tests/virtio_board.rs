//! virtio-mmio devices on the board: QEMU's slots, IRQs and kernel
//! command-line announcement, drive options and image locking.

mod common;

use std::time::Duration;

use common::vm::{run, Vm};

const T: Duration = Duration::from_secs(30);

fn need_kvm() -> bool {
    match common::kvm_unusable() {
        Some(why) => {
            common::skip_for_kvm(why);
            false
        }
        None => true,
    }
}

fn scratch(name: &str, bytes: usize) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("kindling-{name}-{}.img", std::process::id()));
    std::fs::write(&p, vec![0x5au8; bytes]).unwrap();
    p
}

/// The kernel command line as the guest sees it (read back with pmemsave
/// from where the firmware put it).
fn guest_cmdline(extra: &[&str]) -> String {
    let Some(k) = common::guest_file("tiny-pvh.elf") else {
        return String::new();
    };
    let sock = std::env::temp_dir().join(format!(
        "kindling-virtio-{}-{}.sock",
        std::process::id(),
        extra.len()
    ));
    let qmp = format!("unix:{},server=on,wait=off", sock.display());
    let mut args = vec![
        "-enable-kvm",
        "-nodefaults",
        "-serial",
        "null",
        "-kernel",
        k.to_str().unwrap(),
        "-append",
        "hold",
        "-qmp",
        &qmp,
    ];
    args.extend_from_slice(extra);
    let _vm = Vm::start(&args);
    let mut q = common::qmp::Qmp::connect(&sock);
    let out = sock.with_extension("cmdline");
    let cmd = format!(
        "{{\"execute\":\"pmemsave\",\"arguments\":{{\"val\":131072,\"size\":512,\"filename\":\"{}\"}}}}",
        out.display()
    );
    let reply = q.execute_raw(&cmd);
    assert!(reply.get("return").is_some(), "{reply}");
    let bytes = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&sock);
    String::from_utf8_lossy(&bytes)
        .trim_end_matches('\0')
        .split('\0')
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn devices_fill_the_highest_slots_first_and_are_announced_like_qemu() {
    if !need_kvm() {
        return;
    }
    let img = scratch("slots", 1 << 20);
    let drive = format!("id=d0,file={},format=raw,if=none", img.display());
    // The command-line announcement is the ACPI-free board's (acpi=on
    // announces the devices in the DSDT instead, as QEMU does).
    let line = guest_cmdline(&[
        "-M",
        "microvm,acpi=off",
        "-drive",
        &drive,
        "-device",
        "virtio-blk-device,drive=d0",
        "-device",
        "virtio-rng-device",
        "-device",
        "virtio-rng-device,bus=virtio-mmio-bus.3",
    ]);
    assert_eq!(
        line,
        "hold virtio_mmio.device=512@0xfeb00e00:12 virtio_mmio.device=512@0xfeb00c00:11 \
         virtio_mmio.device=512@0xfeb00600:8"
    );
    let line = guest_cmdline(&[
        "-M",
        "microvm,acpi=off,auto-kernel-cmdline=off",
        "-device",
        "virtio-rng-device",
    ]);
    assert_eq!(line, "hold");
    let _ = std::fs::remove_file(img);
}

#[test]
fn a_second_writer_of_an_image_is_refused() {
    if !need_kvm() {
        return;
    }
    let Some(k) = common::guest_file("tiny-pvh.elf") else {
        return;
    };
    let img = scratch("lock", 1 << 20);
    let drive = format!("id=d0,file={},format=raw,if=none", img.display());
    let args = [
        "-enable-kvm",
        "-nodefaults",
        "-serial",
        "stdio",
        "-kernel",
        k.to_str().unwrap(),
        "-append",
        "hold",
        "-drive",
        &drive,
        "-device",
        "virtio-blk-device,drive=d0",
    ];
    let mut first = Vm::start(&args);
    assert!(first.wait_for("HOLD", 1, T));
    let (status, _, err) = run(&args, T);
    assert_eq!(status.code(), Some(1));
    assert!(err.contains("Failed to get \"write\" lock"), "{err}");
    assert!(first.running(), "the first VMM keeps running");
    let ro = format!("{drive},readonly=on");
    let ro_args = [
        "-enable-kvm",
        "-nodefaults",
        "-serial",
        "stdio",
        "-kernel",
        k.to_str().unwrap(),
        "-append",
        "hold",
        "-drive",
        &ro,
        "-device",
        "virtio-blk-device,drive=d0",
    ];
    drop(first);
    let mut a = Vm::start(&ro_args);
    let mut b = Vm::start(&ro_args);
    assert!(
        a.wait_for("HOLD", 1, T) && b.wait_for("HOLD", 1, T),
        "readers share an image"
    );
    let _ = std::fs::remove_file(img);
}

#[test]
fn drive_errors_are_one_line_and_name_the_option() {
    let cases: &[(&[&str], &str)] = &[
        (&["-drive", "id=d0,file=/nonexistent.img,format=raw,if=none"],
         "kindling: -drive id=d0,file=/nonexistent.img,format=raw,if=none: Could not open '/nonexistent.img': No such file or directory\n"),
        (&["-device", "virtio-blk-device,drive=nope"],
         "kindling: -device virtio-blk-device,drive=nope: Property 'virtio-blk-device.drive' can't find value 'nope'\n"),
        (&["-device", "virtio-rng-device,bus=virtio-mmio-bus.x"],
         "kindling: -device virtio-rng-device,bus=virtio-mmio-bus.x: Bus 'virtio-mmio-bus.x' not found\n"),
    ];
    for (args, want) in cases {
        let out = std::process::Command::new(common::kindling())
            .args(*args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), *want);
    }
}
