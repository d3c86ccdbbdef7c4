use super::*;
use machine::config::{AccelKind, CharBackend, CpuModel, OnOffAuto};

fn run(s: &str) -> Result<MachineConfig, CliError> {
    let args: Vec<String> = s.split_whitespace().map(String::from).collect();
    match parse(&args)? {
        Action::Run(c) => Ok(*c),
        other => panic!("expected a machine, got {other:?}"),
    }
}

fn err(s: &str) -> String {
    run(s).unwrap_err().to_string()
}

#[test]
fn typical_microvm_command_line() {
    let c = run("-M microvm,acpi=off,pic=off -accel tcg -cpu max -m 256m -smp 2 -nodefaults \
                 -no-user-config -nographic -no-reboot -serial stdio -kernel /dev/null -append console=ttyS0")
    .unwrap();
    assert_eq!(c.acpi, OnOffAuto::Off);
    assert_eq!(c.pic, OnOffAuto::Off);
    assert_eq!(c.accel, vec![AccelKind::Tcg]);
    assert_eq!(c.cpu.model, CpuModel::Max);
    assert_eq!(c.ram_bytes, 256 << 20);
    assert_eq!(c.cpus, 2);
    assert!(c.no_reboot && c.nographic);
    assert_eq!(c.serial, Some(CharBackend::Stdio));
    assert_eq!(c.append, "console=ttyS0");
}

#[test]
fn memory_and_smp_implied_keys() {
    assert_eq!(run("-m 512").unwrap().ram_bytes, 512 << 20);
    assert_eq!(run("-m size=1G").unwrap().ram_bytes, 1 << 30);
    assert_eq!(run("--m 2G").unwrap().ram_bytes, 2 << 30);
    assert_eq!(run("-smp cpus=4").unwrap().cpus, 4);
    assert_eq!(run("-smp sockets=2,cores=2").unwrap().cpus, 4);
}

#[test]
fn accelerator_spellings() {
    assert_eq!(run("-enable-kvm").unwrap().accel, vec![AccelKind::Kvm]);
    assert_eq!(
        run("-machine accel=kvm:tcg").unwrap().accel,
        vec![AccelKind::Kvm, AccelKind::Tcg]
    );
    assert_eq!(
        run("-accel kvm -accel tcg").unwrap().accel,
        vec![AccelKind::Kvm, AccelKind::Tcg]
    );
    assert_eq!(run("").unwrap().accel, vec![AccelKind::Tcg]);
}

#[test]
fn cpu_feature_lists() {
    let c = run("-cpu host,-arch-capabilities,+x2apic,pdpe1gb=off").unwrap();
    assert_eq!(c.cpu.model, CpuModel::Host);
    assert_eq!(
        c.cpu.features,
        vec![
            ("arch-capabilities".to_string(), false),
            ("x2apic".to_string(), true),
            ("pdpe1gb".to_string(), false)
        ]
    );
}

#[test]
fn serial_defaults_follow_nodefaults() {
    assert_eq!(run("").unwrap().serial, Some(CharBackend::Stdio));
    assert_eq!(run("-nodefaults").unwrap().serial, None);
    assert_eq!(run("-serial null").unwrap().serial, Some(CharBackend::Null));
    assert_eq!(run("-serial none").unwrap().serial, None);
    assert_eq!(run("-M microvm,isa-serial=off").unwrap().serial, None);
    let c = run("-chardev stdio,id=con0 -serial chardev:con0").unwrap();
    assert_eq!(c.serial, Some(CharBackend::Stdio));
}

#[test]
fn debug_exit_device() {
    let c = run("-device isa-debug-exit,iobase=0xf4,iosize=0x04").unwrap();
    let d = c.debug_exit.unwrap();
    assert_eq!((d.iobase, d.iosize), (0xf4, 4));
    assert_eq!(
        run("-device isa-debug-exit")
            .unwrap()
            .debug_exit
            .unwrap()
            .iobase,
        0x501
    );
}

#[test]
fn errors_name_the_option_in_qemus_words() {
    assert_eq!(err("-foo"), "-foo: invalid option");
    assert_eq!(err("-m"), "-m: requires an argument");
    assert!(err("-m foo").starts_with("-m foo: Parameter 'size' expects a non-negative number"));
    assert_eq!(
        err("-M microvm,acpi=maybe"),
        "-M microvm,acpi=maybe: Parameter 'acpi' does not accept value 'maybe'"
    );
    assert_eq!(
        err("-M microvm,bogus=1"),
        "-M microvm,bogus=1: Property 'microvm-machine.bogus' not found"
    );
    assert_eq!(err("-cpu foo"), "-cpu foo: unable to find CPU model 'foo'");
    assert_eq!(
        err("-serial bogus"),
        "-serial bogus: 'bogus' is not a valid char driver"
    );
    assert_eq!(
        err("-device foo"),
        "-device foo: 'foo' is not a valid device model name"
    );
    assert_eq!(
        err("-device isa-debug-exit,iobase=zz"),
        "-device isa-debug-exit,iobase=zz: Parameter 'iobase' expects integer"
    );
    assert_eq!(
        err("-smp foo"),
        "-smp foo: Parameter 'smp.cpus' expects integer"
    );
    assert_eq!(
        err("-initrd /dev/null"),
        "-initrd only allowed with -kernel option"
    );
    assert_eq!(err("-append x"), "-append only allowed with -kernel option");
    assert_eq!(
        err("-kernel /nonexistent/k"),
        "could not open kernel file '/nonexistent/k': No such file or directory"
    );
    assert!(err("-M pc").contains("unsupported machine type"));
    assert!(err("-smp 0").contains("greater than zero"));
    assert!(err("-smp 300").contains("max CPUs supported by machine 'microvm' is 288"));
    assert!(err("-m 100,slots=2").contains("slots specified but no max-size"));
    assert!(err("-accel foo").contains("invalid accelerator foo"));
    assert!(err("-serial chardev:nope").contains("chardev 'nope' not found"));
}

#[test]
fn help_actions() {
    let p = |s: &str| parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>()).unwrap();
    assert_eq!(p("-h"), Action::Help);
    assert_eq!(p("--version"), Action::Version);
    assert_eq!(p("-M help"), Action::MachineHelp);
    assert_eq!(p("-machine microvm,help"), Action::MachinePropsHelp);
    assert_eq!(p("-cpu help"), Action::CpuHelp);
    assert_eq!(p("-accel help"), Action::AccelHelp);
    assert_eq!(p("-device help"), Action::DeviceHelp);
}

/// A tiny deterministic PRNG for the argv fuzz test.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn random_argv_never_panics() {
    const TOKENS: &[&str] = &[
        "-M",
        "-machine",
        "microvm",
        "microvm,acpi=on",
        "acpi=",
        ",,",
        ",",
        "=",
        "-m",
        "0",
        "1T",
        "99999999999999999999",
        "-smp",
        "cpus=0",
        "sockets=2,cores=0",
        "-cpu",
        "host,+",
        "-serial",
        "chardev:",
        "file:",
        "-chardev",
        "socket,id=",
        "stdio,id=a",
        "-device",
        "isa-debug-exit,iobase=0x10000",
        "-accel",
        "kvm:tcg:xen",
        "-qmp",
        "unix:",
        "-icount",
        "shift=-1",
        "--",
        "-",
        "-kernel",
        "/dev/null",
        "-initrd",
        "-append",
        "",
        "\u{0}",
        "-nodefaults",
        "-S",
        "-name",
        "guest=,process=",
        "-global",
        "a.b",
        "help",
    ];
    let mut state = 0x1234_5678_9abc_def0u64;
    for _ in 0..20_000 {
        let n = (next(&mut state) % 8) as usize;
        let args: Vec<String> = (0..n)
            .map(|_| TOKENS[(next(&mut state) % TOKENS.len() as u64) as usize].to_string())
            .collect();
        let r = std::panic::catch_unwind(|| parse(&args));
        assert!(r.is_ok(), "panicked on {args:?}");
        if let Ok(Err(e)) = r {
            assert!(
                !e.to_string().is_empty() && !e.to_string().contains('\n'),
                "{args:?}: {e}"
            );
        }
    }
}

#[test]
fn tcg_knobs_tb_size_and_one_insn_per_tb() {
    let c = run("-accel tcg,tb-size=64,one-insn-per-tb=on").unwrap();
    assert_eq!(c.tcg.tb_size_mib, 64);
    assert!(c.tcg.one_insn_per_tb);
    let c = run("-accel tcg,tb-size=0x100,one-insn-per-tb=off").unwrap();
    assert_eq!((c.tcg.tb_size_mib, c.tcg.one_insn_per_tb), (256, false));
    let d = run("-accel tcg").unwrap();
    assert_eq!(d.tcg, Default::default(), "tb-size 0: QEMU's default");
    // QEMU's messages (7.2 and 8.x, whose one-insn-per-tb is a bool property).
    let e = |s: &str| err(s).split_once(": ").map(|(_, m)| m.to_string()).unwrap();
    assert_eq!(
        e("-accel tcg,tb-size=abc"),
        "Parameter 'tb-size' expects uint64"
    );
    assert_eq!(
        e("-accel tcg,tb-size=1.5"),
        "Parameter 'tb-size' expects uint64"
    );
    assert_eq!(
        e("-accel tcg,tb-size="),
        "Parameter 'tb-size' expects uint64"
    );
    assert_eq!(
        e("-accel tcg,tb-size=-1"),
        "Parameter 'tb-size' expects uint32_t"
    );
    assert_eq!(
        e("-accel tcg,tb-size=4294967296"),
        "Parameter 'tb-size' expects uint32_t"
    );
    assert_eq!(
        e("-accel tcg,one-insn-per-tb=maybe"),
        "Parameter 'one-insn-per-tb' expects 'on' or 'off'"
    );
}

#[test]
fn acpi_auto_means_on_as_in_qemu() {
    assert!(run("-M microvm").unwrap().acpi_enabled());
    assert!(run("-M microvm,acpi=auto").unwrap().acpi_enabled());
    assert!(!run("-M microvm,acpi=off").unwrap().acpi_enabled());
}

#[test]
fn nographic_without_serial_is_serial_mon_stdio() {
    let c = run("-nographic").unwrap();
    assert_eq!((c.serial, c.serial_mux), (Some(CharBackend::Stdio), true));
    // An explicit -serial, a monitor option or -nodefaults keeps the mux away.
    let c = run("-nographic -serial stdio").unwrap();
    assert_eq!((c.serial, c.serial_mux), (Some(CharBackend::Stdio), false));
    let c = run("-nographic -qmp unix:/tmp/x.sock,server,nowait").unwrap();
    assert!(!c.serial_mux);
    assert_eq!(run("-nographic -nodefaults").unwrap().serial, None);
    assert!(run("-serial mon:stdio").unwrap().serial_mux);
    assert!(!run("").unwrap().serial_mux);
}

#[test]
fn human_monitor_spellings() {
    let c = run("-monitor stdio").unwrap();
    assert_eq!(c.serial, None, "stdio belongs to the monitor");
    assert_eq!(c.monitors[0].value, "stdio");
    let c = run("-chardev socket,id=m,path=/tmp/m,server=on,wait=off -mon chardev=m").unwrap();
    assert_eq!(
        (c.monitors[0].option.as_str(), c.monitors[0].value.as_str()),
        ("monitor", "chardev:m")
    );
    let c = run("-chardev socket,id=m,path=/tmp/m,server=on,wait=off -mon m,mode=control").unwrap();
    assert_eq!(c.monitors[0].option, "mon");
    let c =
        run("-chardev stdio,id=s,mux=on -serial chardev:s -mon chardev=s,mode=readline").unwrap();
    assert!(c.serial_mux && c.monitors.is_empty(), "{c:?}");
    assert_eq!(
        err("-mon chardev=m,mode=fancy"),
        "-mon chardev=m,mode=fancy: Parameter 'mode' does not accept value 'fancy'"
    );
}

#[test]
fn drive_snapshot_on_is_refused_rather_than_writing_the_image() {
    let e = err("-drive id=d,file=/dev/null,format=raw,if=none,snapshot=on");
    assert!(e.contains("snapshot=on is not supported"), "{e}");
    assert!(run("-drive id=d,file=/dev/null,format=raw,if=none,snapshot=off").is_ok());
    let e = err("-drive id=d,file=/dev/null,format=raw,if=none,snapshot=maybe");
    assert!(e.contains("snapshot"), "{e}");
}
