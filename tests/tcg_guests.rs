//! The same small guests on the software CPU (`-accel tcg`): always runs.

mod common;

use std::time::Duration;

use common::vm::{run, Vm};

const ACCEL_FLAG: &str = "-accel";
const ACCEL: &str = "tcg";

macro_rules! need_accel {
    () => {};
}

include!("guest_suite/mod.rs");

/// Port I/O from CPL 3 (tests/guests/userio.S): allowed with IOPL 3 (the
/// RTC answers), and with IOPL 0 only for the port the TSS I/O bitmap
/// grants (COM1's 0x3f8); another port raises #GP(0) at the instruction.
/// Software CPU only: kvm_pvm cannot run CPL 3 code in its emulator.
#[test]
fn user_mode_port_io_follows_iopl_and_the_tss_bitmap() {
    let (code, out) = run_test_guest("userio");
    assert_eq!(out, "IOPL3-OK\r\nRTC-OK\r\nBITMAP-OK\r\nGP-OK\r\n");
    assert_eq!(code, (0x41 << 1) | 1);
}
