//! Validating parsed options into a [`MachineConfig`].

use std::path::PathBuf;

use machine::config::{
    AccelKind, CharBackend, Chardev, CpuConfig, CpuModel, DebugExitConfig, DriveConfig,
    KernelIrqchip, MachineConfig, MonitorArg, NetdevConfig, NetdevKind, OnOffAuto,
    VirtioDeviceConfig, VirtioKind,
};

use devices::virtio::blk::{CacheMode, ImageFormat};

use super::argv::Opt;
use super::error::CliError;
use super::keyval::{self, parse_bool, parse_int, Param};
use super::size::parse_size;
use super::Action;

/// The microvm's `max_cpus`, as QEMU's machine class sets it.
const MAX_CPUS: u64 = 288;

/// Build the action the options ask for.
pub fn build(opts: &[Opt]) -> Result<Action, CliError> {
    let mut cfg = MachineConfig::default();
    let mut nodefaults = false;
    let mut serial_given: Option<Option<CharBackend>> = None;
    let mut serial_chardev: Option<(String, String)> = None;
    let mut accel_set = false;
    let mut monitor_given = false;
    for opt in opts {
        let loc = opt.location();
        let val = opt.value.as_deref().unwrap_or("");
        match opt.name.as_str() {
            "h" | "help" => return Ok(Action::Help),
            "version" => return Ok(Action::Version),
            "M" | "machine" => {
                if let Some(a) = machine_opt(&mut cfg, &loc, val)? {
                    return Ok(a);
                }
                if cfg.accel.len() > 1 || cfg.accel.first() == Some(&AccelKind::Kvm) {
                    accel_set = true;
                }
            }
            "accel" => {
                let params = keyval::parse(val, Some("accel"));
                let mut kinds = Vec::new();
                for p in &params {
                    match p.key.as_str() {
                        "accel" if p.value == "help" => return Ok(Action::AccelHelp),
                        "accel" => kinds = accel_list(&loc, &p.value)?,
                        "kernel-irqchip" => cfg.kernel_irqchip = irqchip(&loc, p)?,
                        "tb-size" => cfg.tcg.tb_size_mib = tb_size(&loc, &p.value)?,
                        "one-insn-per-tb" => cfg.tcg.one_insn_per_tb = boolean(&loc, p)?,
                        "thread" | "split-wx" => {}
                        _ => return Err(not_found(&loc, "accel", &p.key)),
                    }
                }
                if accel_set {
                    cfg.accel.extend(kinds);
                } else {
                    cfg.accel = kinds;
                }
                accel_set = true;
            }
            "enable-kvm" => {
                cfg.accel = vec![AccelKind::Kvm];
                accel_set = true;
            }
            "cpu" => {
                if let Some(a) = cpu_opt(&mut cfg, &loc, val)? {
                    return Ok(a);
                }
            }
            "m" => memory_opt(&mut cfg, &loc, val)?,
            "smp" => smp_opt(&mut cfg, &loc, val)?,
            "kernel" => cfg.kernel = Some(PathBuf::from(val)),
            "initrd" => cfg.initrd = Some(PathBuf::from(val)),
            "append" => cfg.append = val.to_string(),
            "nodefaults" => nodefaults = true,
            "no-user-config" | "no-hpet" => {}
            "nographic" => cfg.nographic = true,
            "display" => {
                let params = keyval::parse(val, Some("type"));
                match params.first().map(|p| p.value.as_str()) {
                    Some("none") => {}
                    Some(other) => {
                        return Err(CliError::at(
                            loc,
                            format!("Display '{other}' is not available (Kindling has no graphical display; use -display none)"),
                        ))
                    }
                    None => return Err(CliError::at(loc, "Parameter 'type' is missing")),
                }
            }
            "vga" => {
                if val != "none" {
                    return Err(CliError::at(loc, format!("{val}: VGA not available")));
                }
            }
            "serial" => {
                if serial_given.is_none() {
                    cfg.serial_mux = val == "mon:stdio";
                    let backend = serial_opt(&loc, val, &mut cfg)?;
                    if let Some(id) = val.strip_prefix("chardev:") {
                        serial_chardev = Some((loc.clone(), id.to_string()));
                    }
                    serial_given = Some(backend);
                }
            }
            "chardev" => chardev_opt(&mut cfg, &loc, val)?,
            "no-reboot" => cfg.no_reboot = true,
            "no-shutdown" => cfg.no_shutdown = true,
            "name" => {
                for p in keyval::parse(val, Some("guest")) {
                    match p.key.as_str() {
                        "guest" => cfg.name = Some(p.value),
                        "process" | "debug-threads" => {}
                        _ => {
                            return Err(CliError::at(
                                &loc,
                                format!("Invalid parameter '{}'", p.key),
                            ))
                        }
                    }
                }
            }
            "pidfile" => cfg.pidfile = Some(PathBuf::from(val)),
            "daemonize" => cfg.daemonize = true,
            "S" => cfg.start_paused = true,
            "device" => {
                if let Some(a) = device_opt(&mut cfg, &loc, val)? {
                    return Ok(a);
                }
            }
            "qmp" | "qmp-pretty" => {
                monitor_given = true;
                cfg.monitors.push(MonitorArg {
                    option: opt.name.clone(),
                    value: val.to_string(),
                })
            }
            "mon" => {
                monitor_given = true;
                cfg.monitors.push(mon_opt(&loc, val)?);
            }
            "monitor" => {
                monitor_given = true;
                if val != "none" {
                    cfg.monitors.push(MonitorArg {
                        option: opt.name.clone(),
                        value: val.to_string(),
                    })
                }
            }
            "drive" => drive_opt(&mut cfg, &loc, val)?,
            "blockdev" => blockdev_opt(&mut cfg, &loc, val)?,
            "global" => {
                let (k, v) = val.split_once('=').ok_or_else(|| {
                    CliError::at(
                        &loc,
                        format!("Invalid format for '{val}', expected driver.property=value"),
                    )
                })?;
                super::extras::global(&loc, k, v)?;
                cfg.globals.push((k.to_string(), v.to_string()));
            }
            "icount" => {
                for p in keyval::parse(val, Some("shift")) {
                    match p.key.as_str() {
                        "shift" => {
                            let shift = parse_int(&p.value).filter(|s| *s <= 10).ok_or_else(|| {
                                CliError::at(&loc, "icount: shift must be an integer between 0 and 10 (\"auto\" is not supported)")
                            })?;
                            cfg.icount_shift = Some(shift as u32);
                        }
                        "sleep" => {
                            cfg.icount_sleep =
                                parse_bool(&p.value).ok_or_else(|| bad_bool(&loc, &p))?;
                        }
                        "align" => {
                            parse_bool(&p.value).ok_or_else(|| bad_bool(&loc, &p))?;
                        }
                        _ => {
                            return Err(CliError::at(
                                &loc,
                                format!("Invalid parameter '{}'", p.key),
                            ))
                        }
                    }
                }
            }
            "netdev" => netdev_opt(&mut cfg, &loc, val)?,
            "object" => {
                return Err(CliError::at(
                    loc,
                    format!(
                        "-{} is not supported by this version of Kindling yet",
                        opt.name
                    ),
                ))
            }
            "rtc" => rtc_opt(&mut cfg, &loc, val)?,
            super::boot_report::OPTION => cfg.boot_report = super::boot_report::parse(&loc, val)?,
            "sandbox" => cfg.sandbox = super::sandbox::parse(&loc, val)?,
            "uuid" => cfg.uuid = Some(super::extras::uuid(&loc, val)?),
            "D" | "d" | "boot" => return Err(super::extras::unsupported(&loc, &opt.name)),
            other => return Err(CliError::at(format!("-{other}"), "invalid option")),
        }
    }
    let serial_chardev_id = serial_chardev.as_ref().map(|(_, id)| id.clone());
    if let Some((loc, id)) = serial_chardev {
        let dev = cfg
            .chardevs
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| CliError::at(&loc, format!("chardev '{id}' not found")))?;
        serial_given = Some(Some(dev.backend.clone()));
    }
    let hmp_on_stdio = cfg
        .monitors
        .iter()
        .any(|m| m.option == "monitor" && m.value == "stdio");
    cfg.serial = match serial_given {
        Some(b) => b,
        None if nodefaults || hmp_on_stdio => None,
        None if cfg.nographic && !monitor_given => {
            // QEMU's -nographic default: -serial mon:stdio.
            cfg.serial_mux = true;
            Some(CharBackend::Stdio)
        }
        None => Some(CharBackend::Stdio),
    };
    share_stdio_chardev(&mut cfg, serial_chardev_id.as_deref());
    if !cfg.isa_serial {
        cfg.serial = None;
    }
    for d in &cfg.virtio {
        if let VirtioKind::Block { drive, .. } = &d.kind {
            if !cfg.drives.iter().any(|x| &x.id == drive) {
                return Err(CliError::at(
                    &d.location,
                    format!("Property 'virtio-blk-device.drive' can't find value '{drive}'"),
                ));
            }
        }
    }
    if cfg.kernel.is_none() {
        if cfg.initrd.is_some() {
            return Err(CliError::general(
                "-initrd only allowed with -kernel option",
            ));
        }
        if !cfg.append.is_empty() {
            return Err(CliError::general(
                "-append only allowed with -kernel option",
            ));
        }
    }
    for (what, path) in [("kernel", &cfg.kernel), ("initrd", &cfg.initrd)] {
        if let Some(p) = path {
            std::fs::File::open(p).map_err(|e| {
                CliError::general(format!(
                    "could not open {what} file '{}': {}",
                    p.display(),
                    strip_os_error(&e)
                ))
            })?;
        }
    }
    if cfg.daemonize && cfg.serial == Some(CharBackend::Stdio) {
        return Err(CliError::general(
            "-nographic cannot be used with -daemonize",
        ));
    }
    check_nics(&cfg)?;
    Ok(Action::Run(Box::new(cfg)))
}

/// `-mon [chardev=]ID[,mode=readline|control][,pretty=on]`: QMP with
/// `mode=control`, else (QEMU's default mode) the human monitor.
fn mon_opt(loc: &str, val: &str) -> Result<MonitorArg, CliError> {
    let params = keyval::parse(val, Some("chardev"));
    let mode = params
        .iter()
        .find(|p| p.key == "mode")
        .map(|p| p.value.as_str());
    match mode {
        Some("control") => Ok(MonitorArg {
            option: "mon".into(),
            value: val.to_string(),
        }),
        None | Some("readline") => {
            let id = params
                .iter()
                .find(|p| p.key == "chardev")
                .map(|p| p.value.clone())
                .ok_or_else(|| CliError::at(loc, "Parameter 'chardev' is missing"))?;
            if let Some(p) = params
                .iter()
                .find(|p| !matches!(p.key.as_str(), "chardev" | "mode" | "default" | "pretty"))
            {
                return Err(CliError::at(loc, format!("Invalid parameter '{}'", p.key)));
            }
            Ok(MonitorArg {
                option: "monitor".into(),
                value: format!("chardev:{id}"),
            })
        }
        Some(other) => Err(CliError::at(
            loc,
            format!("Parameter 'mode' does not accept value '{other}'"),
        )),
    }
}

/// QEMU's mux idiom: `-chardev stdio,id=ID,mux=on -serial chardev:ID -mon
/// chardev=ID` puts COM1 and the human monitor on one stdio mux.
fn share_stdio_chardev(cfg: &mut MachineConfig, serial_chardev: Option<&str>) {
    let Some(id) = serial_chardev else { return };
    let spec = format!("chardev:{id}");
    let Some(i) = cfg
        .monitors
        .iter()
        .position(|m| m.option == "monitor" && m.value == spec)
    else {
        return;
    };
    if cfg.serial == Some(CharBackend::Stdio) {
        cfg.monitors.remove(i);
        cfg.serial_mux = true;
    }
}

/// Each NIC's `netdev=` names a `-netdev` (given before or after it, as
/// QEMU creates netdevs first) that no other NIC uses.
fn check_nics(cfg: &MachineConfig) -> Result<(), CliError> {
    let mut used: Vec<&str> = Vec::new();
    for d in &cfg.virtio {
        let VirtioKind::Net {
            netdev: Some(id), ..
        } = &d.kind
        else {
            continue;
        };
        if !cfg.netdevs.iter().any(|n| &n.id == id) {
            return Err(CliError::at(
                &d.location,
                format!("Property 'virtio-net-device.netdev' can't find value '{id}'"),
            ));
        }
        if used.contains(&id.as_str()) {
            return Err(CliError::at(
                &d.location,
                format!("Property 'virtio-net-device.netdev' can't take value '{id}', it's in use"),
            ));
        }
        used.push(id);
    }
    Ok(())
}

/// `std::io::Error`'s text without Rust's " (os error N)" suffix, as C's strerror prints it.
fn strip_os_error(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// `bus=virtio-mmio-bus.N`.
fn virtio_bus(loc: &str, value: &str) -> Result<u32, CliError> {
    value
        .strip_prefix("virtio-mmio-bus.")
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or_else(|| CliError::at(loc, format!("Bus '{value}' not found")))
}

fn not_found(loc: &str, class: &str, key: &str) -> CliError {
    CliError::at(loc, format!("Property '{class}.{key}' not found"))
}

/// `-netdev tap,id=ID[,ifname=NAME][,script=no][,downscript=no]` and
/// `-netdev user,id=ID[,hostfwd=RULE]...`.
fn netdev_opt(cfg: &mut MachineConfig, loc: &str, val: &str) -> Result<(), CliError> {
    let params = keyval::parse(val, Some("type"));
    let kind = params.first().map(|p| p.value.as_str()).unwrap_or("");
    if !matches!(kind, "tap" | "user") {
        return Err(CliError::at(
            loc,
            format!("Parameter 'type' does not accept value '{kind}'"),
        ));
    }
    let mut id = None;
    let mut ifname = "tap%d".to_string();
    let mut hostfwd = Vec::new();
    let mut addrs: [Option<&str>; 4] = [None; 4];
    let mut restrict = false;
    for p in &params[1..] {
        match p.key.as_str() {
            "id" => id = Some(p.value.clone()),
            "ifname" if kind == "tap" => ifname = p.value.clone(),
            "hostfwd" if kind == "user" => hostfwd.push(
                devices::virtio::slirp::HostFwd::parse(&p.value).map_err(|why| {
                    CliError::at(
                        loc,
                        format!("Invalid host forwarding rule '{}' ({why})", p.value),
                    )
                })?,
            ),
            "net" if kind == "user" => addrs[0] = Some(&p.value),
            "host" if kind == "user" => addrs[1] = Some(&p.value),
            "dhcpstart" if kind == "user" => addrs[2] = Some(&p.value),
            "dns" if kind == "user" => addrs[3] = Some(&p.value),
            "restrict" if kind == "user" => restrict = boolean(loc, p)?,
            "ipv4" | "ipv6" if kind == "user" && boolean(loc, p)? => {}
            "ipv4" | "ipv6" if kind == "user" => {
                return Err(CliError::at(
                    loc,
                    format!("-netdev user: {}=off is not supported", p.key),
                ))
            }
            "script" | "downscript" if p.value == "no" => {}
            "script" | "downscript" => {
                return Err(CliError::at(
                    loc,
                    format!(
                        "{}={}: Kindling runs no network scripts; configure the interface beforehand and use {}=no",
                        p.key, p.value, p.key
                    ),
                ))
            }
            "vhost" if p.value == "off" => {}
            _ => return Err(CliError::at(loc, format!("Invalid parameter '{}'", p.key))),
        }
    }
    let id = id.ok_or_else(|| CliError::at(loc, "Parameter 'id' is missing"))?;
    if cfg.netdevs.iter().any(|n| n.id == id) {
        return Err(CliError::at(loc, format!("Duplicate ID '{id}' for netdev")));
    }
    let kind = if kind == "user" {
        let [net, host, dhcp, dns] = addrs;
        let options = devices::virtio::slirp::UserOptions::new(net, host, dhcp, dns, restrict)
            .map_err(|e| CliError::at(loc, e))?;
        NetdevKind::User { hostfwd, options }
    } else {
        NetdevKind::Tap { ifname }
    };
    cfg.netdevs.push(NetdevConfig {
        id,
        kind,
        location: loc.to_string(),
    });
    Ok(())
}

/// `-rtc [base=utc|localtime|DATETIME][,clock=host|rt|vm][,driftfix=none|slew]`.
/// The RTC always runs on the guest clock (QEMU's `clock=vm`), which
/// follows the host unless `-icount` is given; `base=` fixes its start.
fn rtc_opt(cfg: &mut MachineConfig, loc: &str, val: &str) -> Result<(), CliError> {
    for p in keyval::parse(val, None) {
        match p.key.as_str() {
            "base" => {
                cfg.rtc_base = match p.value.as_str() {
                    "utc" | "localtime" => None,
                    v => Some(super::datetime::parse_unix_secs(v).ok_or_else(|| {
                        CliError::at(
                            loc,
                            "invalid datetime format\nvalid formats: '2006-06-17T16:01:21' or '2006-06-17'",
                        )
                    })?),
                }
            }
            "clock" if matches!(p.value.as_str(), "host" | "rt" | "vm") => {}
            "clock" => {
                return Err(CliError::at(
                    loc,
                    format!("invalid option value '{}'", p.value),
                ))
            }
            "driftfix" if matches!(p.value.as_str(), "none" | "slew") => {}
            "driftfix" => {
                return Err(CliError::at(
                    loc,
                    format!("invalid option value '{}'", p.value),
                ))
            }
            _ => return Err(CliError::at(loc, format!("Invalid parameter '{}'", p.key))),
        }
    }
    Ok(())
}

fn bad_bool(loc: &str, p: &Param) -> CliError {
    CliError::at(loc, format!("Parameter '{}' expects 'on' or 'off'", p.key))
}

fn on_off_auto(loc: &str, p: &Param) -> Result<OnOffAuto, CliError> {
    match p.value.as_str() {
        "auto" => Ok(OnOffAuto::Auto),
        v => match parse_bool(v) {
            Some(true) => Ok(OnOffAuto::On),
            Some(false) => Ok(OnOffAuto::Off),
            None => Err(CliError::at(
                loc,
                format!("Parameter '{}' does not accept value '{}'", p.key, p.value),
            )),
        },
    }
}

fn boolean(loc: &str, p: &Param) -> Result<bool, CliError> {
    parse_bool(&p.value).ok_or_else(|| bad_bool(loc, p))
}

fn irqchip(loc: &str, p: &Param) -> Result<KernelIrqchip, CliError> {
    match p.value.as_str() {
        "split" => Ok(KernelIrqchip::Split),
        v => match parse_bool(v) {
            Some(true) => Ok(KernelIrqchip::On),
            Some(false) => Ok(KernelIrqchip::Off),
            None => Err(CliError::at(
                loc,
                format!("Parameter 'kernel-irqchip' does not accept value '{v}'"),
            )),
        },
    }
}

/// `tb-size=N` (MiB), an integer as QEMU's property parser reads it; a
/// leading `-` wraps around (QEMU's strtou64), so it is out of range like
/// any value above `u32::MAX`.
fn tb_size(loc: &str, v: &str) -> Result<u32, CliError> {
    let n = match v.strip_prefix('-') {
        Some(d) => parse_int(d).map(u64::wrapping_neg),
        None => parse_int(v),
    }
    .ok_or_else(|| CliError::at(loc, "Parameter 'tb-size' expects uint64"))?;
    u32::try_from(n).map_err(|_| CliError::at(loc, "Parameter 'tb-size' expects uint32_t"))
}

fn accel_list(loc: &str, v: &str) -> Result<Vec<AccelKind>, CliError> {
    v.split(':')
        .map(|a| match a {
            "kvm" => Ok(AccelKind::Kvm),
            "tcg" => Ok(AccelKind::Tcg),
            other => Err(CliError::at(loc, format!("invalid accelerator {other}"))),
        })
        .collect()
}

fn machine_opt(cfg: &mut MachineConfig, loc: &str, val: &str) -> Result<Option<Action>, CliError> {
    for p in keyval::parse(val, Some("type")) {
        match p.key.as_str() {
            "type" => match p.value.as_str() {
                "microvm" => {}
                "help" => return Ok(Some(Action::MachineHelp)),
                _ => {
                    return Err(CliError::at(
                        loc,
                        "unsupported machine type (Kindling builds only 'microvm'; use -machine help to list supported machines)",
                    ))
                }
            },
            "help" => return Ok(Some(Action::MachinePropsHelp)),
            "accel" => cfg.accel = accel_list(loc, &p.value)?,
            "acpi" => cfg.acpi = on_off_auto(loc, &p)?,
            "pic" => cfg.pic = on_off_auto(loc, &p)?,
            "pit" => cfg.pit = on_off_auto(loc, &p)?,
            "rtc" => cfg.rtc = on_off_auto(loc, &p)?,
            "isa-serial" => cfg.isa_serial = boolean(loc, &p)?,
            "auto-kernel-cmdline" => cfg.auto_kernel_cmdline = boolean(loc, &p)?,
            "x-option-roms" => cfg.option_roms = boolean(loc, &p)?,
            "kernel-irqchip" => cfg.kernel_irqchip = irqchip(loc, &p)?,
            "pcie" | "ioapic2" => {
                if on_off_auto(loc, &p)? == OnOffAuto::On && p.key == "pcie" {
                    return Err(CliError::at(loc, "pcie=on is not supported by Kindling"));
                }
            }
            "usb" | "graphics" | "dump-guest-core" | "mem-merge" => {
                boolean(loc, &p)?;
            }
            "kernel" => cfg.kernel = Some(PathBuf::from(&p.value)),
            "initrd" => cfg.initrd = Some(PathBuf::from(&p.value)),
            "append" => cfg.append = p.value.clone(),
            _ => return Err(not_found(loc, "microvm-machine", &p.key)),
        }
    }
    Ok(None)
}

fn cpu_opt(cfg: &mut MachineConfig, loc: &str, val: &str) -> Result<Option<Action>, CliError> {
    let mut parts = val.split(',');
    let model = match parts.next().unwrap_or("") {
        "help" => return Ok(Some(Action::CpuHelp)),
        "host" => CpuModel::Host,
        "max" => CpuModel::Max,
        "qemu64" => CpuModel::Qemu64,
        other => {
            return Err(CliError::at(
                loc,
                format!("unable to find CPU model '{other}'"),
            ));
        }
    };
    let mut features = Vec::new();
    for f in parts.filter(|f| !f.is_empty()) {
        if let Some(name) = f.strip_prefix('+') {
            features.push((name.to_string(), true));
        } else if let Some(name) = f.strip_prefix('-') {
            features.push((name.to_string(), false));
        } else if let Some((k, v)) = f.split_once('=') {
            let on = parse_bool(v).ok_or_else(|| {
                CliError::at(loc, format!("Parameter '{k}' expects 'on' or 'off'"))
            })?;
            features.push((k.to_string(), on));
        } else {
            features.push((f.to_string(), true));
        }
    }
    cfg.cpu = CpuConfig { model, features };
    Ok(None)
}

fn memory_opt(cfg: &mut MachineConfig, loc: &str, val: &str) -> Result<(), CliError> {
    let mut slots = false;
    let mut maxmem = false;
    for p in keyval::parse(val, Some("size")) {
        match p.key.as_str() {
            "size" => {
                let bytes = parse_size(&p.value, 1 << 20).ok_or_else(|| {
                    CliError::at(
                        loc,
                        "Parameter 'size' expects a non-negative number below 2^64 (optional suffix k, M, G, T, P or E)",
                    )
                })?;
                if bytes < (1 << 20) {
                    return Err(CliError::at(
                        loc,
                        "ram size too small (at least 1M is needed)",
                    ));
                }
                cfg.ram_bytes = bytes & !0xfff;
            }
            "slots" => slots = true,
            "maxmem" => maxmem = true,
            _ => return Err(CliError::at(loc, format!("Invalid parameter '{}'", p.key))),
        }
    }
    if slots && !maxmem {
        return Err(CliError::at(loc, "slots specified but no max-size"));
    }
    Ok(())
}

fn smp_opt(cfg: &mut MachineConfig, loc: &str, val: &str) -> Result<(), CliError> {
    let mut cpus = None;
    let mut maxcpus = None;
    let mut product = 1u64;
    let mut topo = false;
    for p in keyval::parse(val, Some("cpus")) {
        let n = parse_int(&p.value).ok_or_else(|| {
            CliError::at(loc, format!("Parameter 'smp.{}' expects integer", p.key))
        })?;
        match p.key.as_str() {
            "cpus" => cpus = Some(n),
            "maxcpus" => maxcpus = Some(n),
            "sockets" | "dies" | "clusters" | "cores" | "threads" | "books" | "drawers" => {
                product = product.saturating_mul(n);
                topo = true;
            }
            _ => return Err(CliError::at(loc, format!("Invalid parameter '{}'", p.key))),
        }
    }
    let n = cpus.unwrap_or(if topo { product } else { 1 });
    if n == 0 {
        return Err(CliError::at(
            loc,
            "CPU topology parameters must be greater than zero",
        ));
    }
    let max = maxcpus.unwrap_or(if topo { product } else { n });
    if max < n {
        return Err(CliError::at(
            loc,
            format!(
                "Invalid CPU topology: maxcpus ({max}) must be equal to or greater than smp ({n})"
            ),
        ));
    }
    if topo && product != max {
        return Err(CliError::at(loc, format!("Invalid CPU topology: product of the hierarchy ({product}) must match maxcpus ({max})")));
    }
    if max > MAX_CPUS {
        return Err(CliError::at(
            loc,
            format!(
                "Invalid SMP CPUs {max}. The max CPUs supported by machine 'microvm' is {MAX_CPUS}"
            ),
        ));
    }
    cfg.cpus = n as u32;
    Ok(())
}

fn backend_from_spec(
    loc: &str,
    val: &str,
    cfg: &MachineConfig,
) -> Result<Option<CharBackend>, CliError> {
    Ok(match val {
        "stdio" | "mon:stdio" => Some(CharBackend::Stdio),
        "null" => Some(CharBackend::Null),
        "none" => None,
        v if v.starts_with("file:") => {
            let path = &v[5..];
            std::fs::File::create(path).map_err(|e| {
                CliError::at(
                    loc,
                    format!("Could not open '{path}': {}", strip_os_error(&e)),
                )
            })?;
            Some(CharBackend::File(PathBuf::from(path)))
        }
        v if v.starts_with("chardev:") => {
            // Resolved after all -chardev options are seen.
            let _ = cfg;
            Some(CharBackend::Null)
        }
        other => {
            return Err(CliError::at(
                loc,
                format!("'{other}' is not a valid char driver"),
            ));
        }
    })
}

fn serial_opt(
    loc: &str,
    val: &str,
    cfg: &mut MachineConfig,
) -> Result<Option<CharBackend>, CliError> {
    backend_from_spec(loc, val, cfg)
}

fn chardev_opt(cfg: &mut MachineConfig, loc: &str, val: &str) -> Result<(), CliError> {
    let params = keyval::parse(val, Some("backend"));
    let get = |k: &str| params.iter().find(|p| p.key == k).map(|p| p.value.clone());
    let kind = get("backend").unwrap_or_default();
    let id = get("id").ok_or_else(|| CliError::at(loc, "Parameter 'id' is missing"))?;
    if cfg.chardevs.iter().any(|c| c.id == id) {
        return Err(CliError::at(
            loc,
            format!("attempt to add duplicate property '{id}' to object (type 'container')"),
        ));
    }
    if let Some(p) = params.iter().find(|p| p.key == "mux") {
        parse_bool(&p.value).ok_or_else(|| bad_bool(loc, p))?;
    }
    let backend = match kind.as_str() {
        "stdio" => CharBackend::Stdio,
        "null" => CharBackend::Null,
        "file" => {
            let path =
                get("path").ok_or_else(|| CliError::at(loc, "chardev: file: no filename given"))?;
            std::fs::File::create(&path).map_err(|e| {
                CliError::at(
                    loc,
                    format!("Could not open '{path}': {}", strip_os_error(&e)),
                )
            })?;
            CharBackend::File(PathBuf::from(path))
        }
        "socket" => CharBackend::Socket(
            params
                .iter()
                .filter(|p| p.key != "backend")
                .map(|p| (p.key.clone(), p.value.clone()))
                .collect(),
        ),
        other => {
            return Err(CliError::at(
                loc,
                format!("'{other}' is not a valid char driver name"),
            ));
        }
    };
    cfg.chardevs.push(Chardev { id, backend });
    Ok(())
}

fn device_opt(cfg: &mut MachineConfig, loc: &str, val: &str) -> Result<Option<Action>, CliError> {
    let params = keyval::parse(val, Some("driver"));
    let driver = params.first().map(|p| p.value.clone()).unwrap_or_default();
    match driver.as_str() {
        "help" => Ok(Some(Action::DeviceHelp)),
        "isa-debug-exit" => {
            let mut dev = DebugExitConfig::default();
            for p in &params[1..] {
                let int = || {
                    parse_int(&p.value)
                        .filter(|v| *v <= 0xffff)
                        .map(|v| v as u16)
                        .ok_or_else(|| {
                            CliError::at(loc, format!("Parameter '{}' expects integer", p.key))
                        })
                };
                match p.key.as_str() {
                    "iobase" => dev.iobase = int()?,
                    "iosize" => dev.iosize = int()?,
                    "id" => {}
                    _ => return Err(not_found(loc, "isa-debug-exit", &p.key)),
                }
            }
            if dev.iosize == 0 || u32::from(dev.iobase) + u32::from(dev.iosize) > 0x1_0000 {
                return Err(CliError::at(
                    loc,
                    "isa-debug-exit: iobase/iosize out of the I/O port range",
                ));
            }
            cfg.debug_exit = Some(dev);
            Ok(None)
        }
        "virtio-net-device" => {
            let mut bus = None;
            let mut netdev = None;
            let nics = cfg
                .virtio
                .iter()
                .filter(|d| matches!(d.kind, VirtioKind::Net { .. }))
                .count();
            // QEMU's default: 52:54:00:12:34:56, then ...:57 and so on.
            let mut mac = [
                0x52,
                0x54,
                0x00,
                0x12,
                0x34,
                0x56u8.wrapping_add(nics as u8),
            ];
            for p in &params[1..] {
                match p.key.as_str() {
                    "netdev" => netdev = Some(p.value.clone()),
                    "mac" => {
                        mac = devices::virtio::net::parse_mac(&p.value).ok_or_else(|| {
                            CliError::at(
                                loc,
                                format!(
                                    "Property 'virtio-net-device.mac' doesn't take value '{}'",
                                    p.value
                                ),
                            )
                        })?
                    }
                    "bus" => bus = Some(virtio_bus(loc, &p.value)?),
                    "id" => {}
                    _ => return Err(not_found(loc, "virtio-net-device", &p.key)),
                }
            }
            // netdev= is checked once every -netdev is known (check_nics).
            cfg.virtio.push(VirtioDeviceConfig {
                kind: VirtioKind::Net { netdev, mac },
                bus,
                location: loc.to_string(),
            });
            Ok(None)
        }
        "virtconsole" => {
            let mut chardev = None;
            for p in &params[1..] {
                match p.key.as_str() {
                    "chardev" => chardev = Some(p.value.clone()),
                    "id" | "name" | "bus" | "nr" => {}
                    _ => return Err(not_found(loc, "virtconsole", &p.key)),
                }
            }
            let chardev = chardev
                .ok_or_else(|| CliError::at(loc, "Property 'virtconsole.chardev' is required"))?;
            if !cfg.chardevs.iter().any(|c| c.id == chardev) {
                return Err(CliError::at(
                    loc,
                    format!("Property 'virtconsole.chardev' can't find value '{chardev}'"),
                ));
            }
            let port = cfg.virtio.iter_mut().rev().find_map(|d| match &mut d.kind {
                VirtioKind::Console { chardev } => Some(chardev),
                _ => None,
            });
            match port {
                None => Err(CliError::at(
                    loc,
                    "No 'virtio-serial-bus' bus found for device 'virtconsole'",
                )),
                Some(Some(_)) => Err(CliError::at(
                    loc,
                    "virtconsole: this virtio-serial-device already has its port (Kindling's has one, without multiport)",
                )),
                Some(slot) => {
                    *slot = Some(chardev);
                    Ok(None)
                }
            }
        }
        "virtio-blk-device" | "virtio-rng-device" | "virtio-serial-device" => {
            let mut bus = None;
            let mut drive = None;
            let mut serial = String::new();
            for p in &params[1..] {
                match p.key.as_str() {
                    "bus" => bus = Some(virtio_bus(loc, &p.value)?),
                    "drive" if driver == "virtio-blk-device" => drive = Some(p.value.clone()),
                    "serial" if driver == "virtio-blk-device" => serial = p.value.clone(),
                    "id" => {}
                    _ => return Err(not_found(loc, &driver, &p.key)),
                }
            }
            let kind = if driver == "virtio-rng-device" {
                VirtioKind::Rng
            } else if driver == "virtio-serial-device" {
                VirtioKind::Console { chardev: None }
            } else {
                VirtioKind::Block {
                    drive: drive.ok_or_else(|| CliError::at(loc, "drive property not set"))?,
                    serial,
                }
            };
            cfg.virtio.push(VirtioDeviceConfig {
                kind,
                bus,
                location: loc.to_string(),
            });
            Ok(None)
        }
        other => Err(CliError::at(
            loc,
            format!("'{other}' is not a valid device model name"),
        )),
    }
}

fn add_drive(cfg: &mut MachineConfig, loc: &str, d: DriveConfig) -> Result<(), CliError> {
    if cfg.drives.iter().any(|x| x.id == d.id) {
        return Err(CliError::at(
            loc,
            format!("Duplicate ID '{}' for drive", d.id),
        ));
    }
    std::fs::metadata(&d.file).map_err(|e| {
        CliError::at(
            loc,
            format!(
                "Could not open '{}': {}",
                d.file.display(),
                strip_os_error(&e)
            ),
        )
    })?;
    cfg.drives.push(d);
    Ok(())
}

fn drive_opt(cfg: &mut MachineConfig, loc: &str, val: &str) -> Result<(), CliError> {
    let mut id = None;
    let mut file = None;
    let mut read_only = false;
    let mut cache = CacheMode::default();
    let mut format = ImageFormat::Raw;
    let mut aio_native = false;
    for p in keyval::parse(val, None) {
        match p.key.as_str() {
            "id" => id = Some(p.value),
            "file" => file = Some(p.value),
            "format" => format = image_format(loc, &p.value)?,
            "if" => {
                if p.value != "none" {
                    return Err(CliError::at(
                        loc,
                        format!("machine type does not support if={},bus=0,unit=0", p.value),
                    ));
                }
            }
            "readonly" | "read-only" => read_only = boolean(loc, &p)?,
            "cache" => {
                cache = CacheMode::parse(&p.value)
                    .ok_or_else(|| CliError::at(loc, "invalid cache option"))?;
            }
            // Requests are served synchronously whatever the engine.
            "aio" => {
                if !["threads", "native", "io_uring"].contains(&p.value.as_str()) {
                    return Err(CliError::at(loc, "invalid aio option"));
                }
                aio_native = p.value == "native";
            }
            // QEMU keeps snapshot=on writes in a temporary overlay; Kindling
            // has none yet, and writing the image instead would lose the
            // data the user meant to keep.
            "snapshot" => {
                if boolean(loc, &p)? {
                    return Err(CliError::at(
                        loc,
                        "snapshot=on is not supported by Kindling: guest writes would reach the image (boot a copy of it instead)",
                    ));
                }
            }
            "discard" | "detect-zeroes" | "media" => {}
            other => return Err(CliError::at(loc, format!("Invalid parameter '{other}'"))),
        }
    }
    if aio_native && !cache.direct() {
        return Err(CliError::at(
            loc,
            "aio=native was specified, but it requires cache.direct=on, which was not specified.",
        ));
    }
    let file = file.ok_or_else(|| CliError::at(loc, "Parameter 'file' is missing"))?;
    qcow2_read_only(loc, format, read_only, "readonly")?;
    let id = id.ok_or_else(|| {
        CliError::at(
            loc,
            "Kindling needs id= on -drive (use -device virtio-blk-device,drive=ID)",
        )
    })?;
    add_drive(
        cfg,
        loc,
        DriveConfig {
            id,
            file: PathBuf::from(file),
            read_only,
            cache,
            format,
            location: loc.to_string(),
        },
    )
}

/// QEMU's formats that Kindling reads; QEMU's words for the others.
fn image_format(loc: &str, v: &str) -> Result<ImageFormat, CliError> {
    match v {
        "raw" => Ok(ImageFormat::Raw),
        "qcow2" => Ok(ImageFormat::Qcow2),
        "qcow" | "vmdk" | "vdi" | "vhdx" | "vpc" | "qed" | "luks" | "parallels" | "dmg"
        | "bochs" | "cloop" => Err(CliError::at(
            loc,
            format!("'{v}' is not a supported image format (Kindling reads raw and qcow2 images)"),
        )),
        _ => Err(CliError::at(loc, format!("Unknown driver '{v}'"))),
    }
}

/// Kindling's qcow2 driver only reads.
fn qcow2_read_only(
    loc: &str,
    format: ImageFormat,
    read_only: bool,
    key: &str,
) -> Result<(), CliError> {
    if format == ImageFormat::Qcow2 && !read_only {
        return Err(CliError::at(
            loc,
            format!("Kindling opens qcow2 images read-only (add {key}=on)"),
        ));
    }
    Ok(())
}

fn blockdev_opt(cfg: &mut MachineConfig, loc: &str, val: &str) -> Result<(), CliError> {
    let mut id = None;
    let mut file = None;
    let mut read_only = false;
    let (mut direct, mut no_flush) = (false, false);
    let mut format = ImageFormat::Raw;
    for p in keyval::parse(val, None) {
        match p.key.as_str() {
            "node-name" => id = Some(p.value),
            "driver" if p.value == "qcow2" => format = ImageFormat::Qcow2,
            "driver" => {
                if p.value != "raw" && p.value != "file" {
                    return Err(CliError::at(
                        loc,
                        format!("Invalid parameter '{}' for driver", p.value),
                    ));
                }
            }
            "file.driver" => {}
            "file.filename" | "filename" => file = Some(p.value),
            "read-only" => read_only = boolean(loc, &p)?,
            "cache.direct" => direct = boolean(loc, &p)?,
            "cache.no-flush" => no_flush = boolean(loc, &p)?,
            "discard" | "auto-read-only" | "file.aio" => {}
            other => return Err(CliError::at(loc, format!("Invalid parameter '{other}'"))),
        }
    }
    let file = file.ok_or_else(|| CliError::at(loc, "Parameter 'file.filename' is missing"))?;
    let id = id.ok_or_else(|| CliError::at(loc, "Parameter 'node-name' is missing"))?;
    qcow2_read_only(loc, format, read_only, "read-only")?;
    // A -blockdev node has no write-cache switch of its own (writeback).
    let cache = match (direct, no_flush) {
        (_, true) => CacheMode::Unsafe,
        (true, false) => CacheMode::None,
        (false, false) => CacheMode::Writeback,
    };
    add_drive(
        cfg,
        loc,
        DriveConfig {
            id,
            file: PathBuf::from(file),
            read_only,
            cache,
            format,
            location: loc.to_string(),
        },
    )
}
