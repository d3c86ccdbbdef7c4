//! The binary's command-line behaviour: QEMU-style one-line errors with
//! exit status 1 before any guest runs, and the help listings.

mod common;

use std::process::Command;

fn kindling(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(common::kindling())
        .args(args)
        .output()
        .expect("run kindling");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_command_lines_fail_with_one_line_naming_the_option() {
    let cases: &[(&[&str], &str)] = &[
        (&["-foo"], "kindling: -foo: invalid option\n"),
        (&["-m"], "kindling: -m: requires an argument\n"),
        (&["-M", "microvm,acpi=maybe"], "kindling: -M microvm,acpi=maybe: Parameter 'acpi' does not accept value 'maybe'\n"),
        (&["-cpu", "pentium9"], "kindling: -cpu pentium9: unable to find CPU model 'pentium9'\n"),
        (&["-kernel", "/nonexistent/bzImage"], "kindling: could not open kernel file '/nonexistent/bzImage': No such file or directory\n"),
        (&["-serial", "tty:"], "kindling: -serial tty:: 'tty:' is not a valid char driver\n"),
        (&["-device", "e1000"], "kindling: -device e1000: 'e1000' is not a valid device model name\n"),
        (&["-accel", "tcg,tb-size=abc"], "kindling: -accel tcg,tb-size=abc: Parameter 'tb-size' expects uint64\n"),
        (&["-accel", "tcg,tb-size=5000000000"], "kindling: -accel tcg,tb-size=5000000000: Parameter 'tb-size' expects uint32_t\n"),
        (&["-accel", "tcg,one-insn-per-tb=maybe"], "kindling: -accel tcg,one-insn-per-tb=maybe: Parameter 'one-insn-per-tb' expects 'on' or 'off'\n"),
    ];
    for (args, expected) in cases {
        let (code, stdout, stderr) = kindling(args);
        assert_eq!(code, 1, "{args:?}");
        assert_eq!(stderr, *expected, "{args:?}");
        assert!(stdout.is_empty(), "{args:?} printed {stdout:?}");
    }
}

#[test]
fn garbage_argv_never_panics() {
    let junk: &[&[&str]] = &[
        &["-m", "-1"],
        &["-m", "99999999999999999999999"],
        &["-smp", "cpus=,,,"],
        &["-M", ",,,,=,=,"],
        &["-M", "microvm,,"],
        &["-device", "isa-debug-exit,iobase=0xffff,iosize=2"],
        &["-chardev", "file"],
        &["-serial", "chardev:"],
        &["--", "x"],
        &["-icount", "shift=99"],
        &["-accel", ""],
        &["\u{fffd}"],
    ];
    for args in junk {
        let (code, _, stderr) = kindling(args);
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn version_and_help_listings() {
    let (code, out, _) = kindling(&["-version"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("QEMU emulator version 10.0.2 (Kindling "),
        "{out}"
    );
    let (code, out, _) = kindling(&["-h"]);
    assert_eq!(code, 0);
    assert!(out.contains("-machine [type=]microvm"));
    let (_, out, _) = kindling(&["-M", "help"]);
    assert!(out.contains("microvm"));
    let (_, out, _) = kindling(&["-machine", "microvm,help"]);
    assert!(out.contains("acpi=<OnOffAuto>"));
    let (_, out, _) = kindling(&["-cpu", "help"]);
    assert!(out.contains("x86 host"));
}

#[test]
fn virtconsole_needs_a_virtio_serial_device_and_a_known_chardev() {
    let (code, _, err) = common::vm::run(
        &[
            "-chardev",
            "null,id=c0",
            "-device",
            "virtconsole,chardev=c0",
        ],
        std::time::Duration::from_secs(10),
    );
    assert_eq!(code.code(), Some(1));
    assert!(
        err.contains("No 'virtio-serial-bus' bus found for device 'virtconsole'"),
        "{err}"
    );
    let (code, _, err) = common::vm::run(
        &[
            "-device",
            "virtio-serial-device",
            "-device",
            "virtconsole,chardev=nope",
        ],
        std::time::Duration::from_secs(10),
    );
    assert_eq!(code.code(), Some(1));
    assert!(
        err.contains("Property 'virtconsole.chardev' can't find value 'nope'"),
        "{err}"
    );
}
