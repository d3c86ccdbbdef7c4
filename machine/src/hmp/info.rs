//! `info SUBCOMMAND`: the machine's state in QEMU's layouts.

use std::fmt::Write;

use vm_memory::{Bytes, GuestAddress};

use super::commands;
use super::paging;
use super::registers;
use crate::config::{AccelKind, NetdevKind, VirtioKind};
use crate::monitor::MonitorContext;
use crate::runstate::RunState;

/// Run `info ARGS`.
pub fn run(ctx: &MonitorContext, args: &str) -> String {
    let mut words = args.split_whitespace();
    let Some(sub) = words.next() else {
        return commands::listing("info ", commands::INFO);
    };
    let Some(c) = commands::find(commands::INFO, sub) else {
        return format!("unknown command: 'info {sub}'\n");
    };
    let rest: Vec<&str> = words.collect();
    match c.name {
        "status" => status(ctx.state()),
        "registers" => info_registers(ctx, rest.contains(&"-a")),
        "cpus" => cpus(ctx),
        "block" => block(ctx),
        "network" => network(ctx),
        "chardev" => ctx
            .chardev_list()
            .iter()
            .map(|(label, filename)| format!("{label}: filename={filename}\n"))
            .collect(),
        "mtree" => mtree(ctx),
        "qtree" => qtree(ctx),
        "irq" => "IRQ statistics not available.\n".into(),
        "pic" => pic(ctx),
        "tlb" | "mem" => page_tables(ctx, c.name == "tlb"),
        "kvm" => format!(
            "kvm support: {}\n",
            if ctx.accel == AccelKind::Kvm {
                "enabled"
            } else {
                "disabled"
            }
        ),
        "version" => format!(
            "{} (Kindling {})\n",
            crate::QEMU_COMPAT_VERSION,
            env!("CARGO_PKG_VERSION")
        ),
        "name" => ctx
            .name
            .as_ref()
            .map(|n| format!("{n}\n"))
            .unwrap_or_default(),
        "uuid" => "00000000-0000-0000-0000-000000000000\n".into(),
        // No migration has run (Kindling has none yet): QEMU then prints
        // no status either.
        _ => String::new(),
    }
}

/// `info status`.
pub fn status(s: RunState) -> String {
    match s {
        RunState::Running => "VM status: running\n".into(),
        RunState::Paused => "VM status: paused\n".into(),
        other => format!("VM status: paused ({})\n", other.as_str()),
    }
}

fn info_registers(ctx: &MonitorContext, all: bool) -> String {
    let mut s = String::new();
    for (i, r) in ctx.registers().iter().enumerate() {
        if !all && i != 0 {
            break;
        }
        if let Some((r, sr)) = r {
            let _ = write!(s, "\nCPU#{i}\n");
            s.push_str(&registers::info_registers(r, sr, false));
        }
    }
    s
}

fn cpus(ctx: &MonitorContext) -> String {
    let tids = ctx.tids.lock().map(|t| t.clone()).unwrap_or_default();
    (0..ctx.cpus)
        .map(|i| {
            format!(
                "{}CPU #{i}: thread_id={}\n",
                if i == 0 { "* " } else { "  " },
                tids.get(i as usize).copied().unwrap_or(0)
            )
        })
        .collect()
}

fn block(ctx: &MonitorContext) -> String {
    let mut out = Vec::new();
    for (n, d) in ctx.config.drives.iter().enumerate() {
        let format = match d.format {
            devices::virtio::blk::ImageFormat::Raw => "raw",
            devices::virtio::blk::ImageFormat::Qcow2 => "qcow2",
        };
        let attached = ctx
            .config
            .virtio
            .iter()
            .position(|v| matches!(&v.kind, VirtioKind::Block { drive, .. } if drive == &d.id));
        let mut s = format!(
            "{} (#block{}): {} ({format}{})\n",
            d.id,
            n * 100 + 100,
            d.file.display(),
            if d.read_only { ", read-only" } else { "" }
        );
        if let Some(i) = attached {
            let _ = writeln!(
                s,
                "    Attached to:      /machine/peripheral-anon/device[{i}]/virtio-backend"
            );
        }
        let _ = writeln!(s, "    Cache mode:       {}", cache_mode(d.cache));
        out.push(s);
    }
    out.join("\n")
}

/// QEMU's words for a cache mode in `info block`.
fn cache_mode(c: devices::virtio::blk::CacheMode) -> &'static str {
    use devices::virtio::blk::CacheMode;
    match c {
        CacheMode::Writeback => "writeback",
        CacheMode::None => "writeback, direct",
        CacheMode::Unsafe => "writeback, ignore flushes",
        CacheMode::Writethrough => "writethrough",
        CacheMode::Directsync => "writethrough, direct",
    }
}

fn network(ctx: &MonitorContext) -> String {
    let mut s = String::new();
    for (i, d) in ctx.config.virtio.iter().enumerate() {
        let VirtioKind::Net { netdev, mac } = &d.kind else {
            continue;
        };
        let mac: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(
            s,
            "virtio-net-device.{i}: index=0,type=nic,model=virtio-net-device,macaddr={}",
            mac.join(":")
        );
        let Some(nd) = netdev
            .as_ref()
            .and_then(|id| ctx.config.netdevs.iter().find(|n| &n.id == id))
        else {
            continue;
        };
        let what = match &nd.kind {
            NetdevKind::Tap { ifname } => format!("type=tap,ifname={ifname}"),
            NetdevKind::User { .. } => "type=user,net=10.0.2.0,restrict=off".into(),
        };
        let _ = writeln!(s, " \\ {}: index=0,{what}", nd.id);
    }
    s
}

fn mtree(ctx: &MonitorContext) -> String {
    use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
    let mut s = String::from(
        "address-space: memory\n  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n",
    );
    for r in ctx.mem.iter() {
        let start = r.start_addr().0;
        let _ = writeln!(
            s,
            "    {:016x}-{:016x} (prio 0, ram): microvm.ram",
            start,
            start + r.len() - 1
        );
    }
    for t in &ctx.transports {
        let _ = writeln!(
            s,
            "    {:016x}-{:016x} (prio 0, i/o): virtio-mmio",
            t.base,
            t.base + 0x1ff
        );
    }
    s.push_str("    00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic\n");
    if ctx.config.acpi_enabled() {
        s.push_str("    00000000fec10000-00000000fec10fff (prio 0, i/o): ioapic\n");
    }
    s.push_str("    00000000fee00000-00000000feefffff (prio 4096, i/o): apic-msi\n");
    s.push_str("address-space: I/O\n  0000000000000000-000000000000ffff (prio 0, i/o): io\n");
    s
}

fn qtree(ctx: &MonitorContext) -> String {
    let mut s = String::from("bus: main-system-bus\n  type System\n");
    for t in &ctx.transports {
        let _ = write!(
            s,
            "  dev: virtio-mmio, id \"\"\n    gpio-out \"sysbus-irq\" 1\n    mmio {:016x}/0000000000000200\n",
            t.base
        );
    }
    s.push_str("  dev: ioapic, id \"\"\n    mmio 00000000fec00000/0000000000001000\n");
    s.push_str("  dev: isabus-bridge, id \"\"\n    bus: isa.0\n      type ISA\n");
    if ctx.serial.is_some() {
        s.push_str("      dev: isa-serial, id \"\"\n        index = 0 (0x0)\n        iobase = 1016 (0x3f8)\n        irq = 4 (0x4)\n");
    }
    s
}

fn pic(ctx: &MonitorContext) -> String {
    const DELIVERY: [&str; 8] = [
        "fixed", "lowest", "SMI", "...", "NMI", "INIT", "...", "extINT",
    ];
    let Some(chip) = &ctx.irqchip else {
        return "PIC information not available.\n".into();
    };
    let mut s = String::new();
    let mut n = 0;
    while let Some(io) = chip.ioapic(n) {
        let Ok(io) = io.lock() else { break };
        let (id, sel, irr) = io.debug_state();
        let _ = writeln!(
            s,
            "ioapic{n}: ver=0x{:x} id=0x{id:02x} sel=0x{sel:02x}",
            devices::irqchip::ioapic::IOAPIC_VERSION
        );
        let mut remote = 0u32;
        for pin in 0..24 {
            let e = io.redirection_entry(pin);
            let logical = e & (1 << 11) != 0;
            let _ = writeln!(
                s,
                "  pin {pin:<2} 0x{e:016x} dest={:x} vec={:<3} {} {:<5} {:<6} {:<6} {}",
                (e >> 56) & if logical { 0xff } else { 0xf },
                e & 0xff,
                if e & (1 << 13) != 0 {
                    "active-lo"
                } else {
                    "active-hi"
                },
                if e & (1 << 15) != 0 { "level" } else { "edge" },
                if e & (1 << 16) != 0 { "masked" } else { "" },
                DELIVERY[((e >> 8) & 7) as usize],
                if logical { "logical" } else { "physical" }
            );
            if e & (1 << 14) != 0 {
                remote |= 1 << pin;
            }
        }
        pin_list(&mut s, "  IRR", irr);
        pin_list(&mut s, "  Remote IRR", remote);
        n += 1;
    }
    s
}

/// QEMU's `info pic` pin-set line: a label, then the pins or `(none)`.
fn pin_list(s: &mut String, label: &str, pins: u32) {
    let _ = write!(s, "{label:<10} ");
    if pins == 0 {
        s.push_str("(none)\n");
        return;
    }
    for pin in (0..24).filter(|p| pins & (1 << p) != 0) {
        let _ = write!(s, "{pin:<2} ");
    }
    s.push('\n');
}

fn page_tables(ctx: &MonitorContext, tlb: bool) -> String {
    let Some(Some((_, sregs))) = ctx.registers().into_iter().next() else {
        return "No CPU available\n".into();
    };
    let mem = ctx.mem.clone();
    let read = |a: u64, size: u64| -> Option<u64> {
        if size == 4 {
            mem.read_obj::<u32>(GuestAddress(a)).ok().map(u64::from)
        } else {
            mem.read_obj::<u64>(GuestAddress(a)).ok()
        }
    };
    match paging::leaves(&sregs, &read) {
        None => "PG disabled\n".into(),
        Some(l) if tlb => paging::info_tlb(&l),
        Some(l) => paging::info_mem(&l),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words_are_qemus() {
        assert_eq!(status(RunState::Running), "VM status: running\n");
        assert_eq!(status(RunState::Paused), "VM status: paused\n");
        assert_eq!(
            status(RunState::Prelaunch),
            "VM status: paused (prelaunch)\n"
        );
    }

    #[test]
    fn pin_lists_pad_like_qemu() {
        let mut s = String::new();
        pin_list(&mut s, "  IRR", 0);
        pin_list(&mut s, "  Remote IRR", (1 << 4) | (1 << 12));
        assert_eq!(s, "  IRR      (none)\n  Remote IRR 4  12 \n");
    }
}
