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
include!("guest_suite/reboot.rs");

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

/// A 64-bit guest spinning in a tight loop with interrupts on, then in a
/// loop of blocks that compiled code chains (CALL, RET through a return
/// thunk, indirect JMP), keeps receiving PIT interrupts when the loops
/// run as compiled code (every block compiled at its first execution),
/// as it does interpreted.
#[test]
fn a_compiled_spin_loop_keeps_receiving_timer_interrupts() {
    let elf = common::guests::build("spin64");
    let elf = elf.to_str().unwrap().to_string();
    let kindling = common::kindling();
    for env in ["KINDLING_JIT_THRESHOLD=1", "KINDLING_NO_JIT=1"] {
        let mut args = vec![env, kindling.to_str().unwrap()];
        args.extend(accel_args(
            &elf,
            &["-no-reboot", "-device", "isa-debug-exit"],
        ));
        let mut vm = Vm::start_program("env", &args);
        let status = vm.wait_exit(T);
        let (out, err) = (vm.output(), vm.errors());
        assert!(!err.contains("panicked"), "{env}: {err}");
        // Three ticks, any while the second loop warms up, three more.
        assert!(
            out.len() >= 6 && out.chars().all(|c| c == 'S'),
            "{env}: {out} {err}"
        );
        assert_eq!(status.code(), Some((0x35 << 1) | 1), "{env}: {out} {err}");
    }
}
