//! Linux (../shared/guest bzImage and PVH vmlinux) on the KVM backend.
//! Runs where KVM is hardware-backed (kvm_intel or kvm_amd loaded); on
//! kvm_pvm hosts Linux can't boot on KVM at all, so these say why they skip.

mod common;

use std::time::Duration;

fn boot(kernel: &str, acpi: &str) {
    if let Some(why) = common::kvm_unusable() {
        common::skip_for_kvm(why);
        return;
    }
    if !common::kvm_is_hardware() {
        common::skip_for_kvm(
            "KVM here is not hardware-backed (no kvm_intel/kvm_amd), so Linux cannot boot on it",
        );
        return;
    }
    let (Some(k), Some(initrd)) = (
        common::guest_file(kernel),
        common::guest_file("initramfs.cpio"),
    ) else {
        return;
    };
    let machine = format!("microvm,acpi={acpi}");
    let (status, out, err) = common::vm::run(
        &[
            "-M",
            &machine,
            "-enable-kvm",
            "-cpu",
            "host",
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
            "console=ttyS0 reboot=t panic=-1",
        ],
        Duration::from_secs(120),
    );
    assert!(out.contains("BOOT-OK"), "console:\n{out}\nstderr:\n{err}");
    assert_eq!(status.code(), Some(0), "{err}");
}

#[test]
fn bzimage_boots_on_kvm_without_acpi() {
    boot("bzImage", "off");
}

#[test]
fn bzimage_boots_on_kvm_with_acpi() {
    boot("bzImage", "on");
}

#[test]
fn pvh_vmlinux_boots_on_kvm() {
    boot("vmlinux", "off");
}
