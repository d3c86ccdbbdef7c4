//! The human monitor (HMP): one implementation behind `-monitor`, `-mon
//! mode=readline`, the `mon:stdio` mux and QMP's `human-monitor-command`.
//! This file parses a command line and dispatches it; the command table,
//! `info`, memory dumps, disassembly, expressions, page tables, the line
//! editor, interactive sessions and socket listeners each have a file.

pub mod commands;
pub mod disasm;
pub mod expr;
pub mod info;
pub mod memdump;
pub mod paging;
pub mod readline;
pub mod registers;
pub mod server;
pub mod session;

use vm_memory::{Bytes, GuestAddress};

use crate::monitor::{translate, MonitorContext};
use crate::runstate::MonitorRequest;

pub use memdump::FormatState;

/// QEMU's hint after an argument error.
fn try_help(cmd: &str) -> String {
    format!("Try \"help {cmd}\" for more information\n")
}

/// Run one command line; the reply's lines end in `\n`.
pub fn execute(ctx: &MonitorContext, line: &str) -> String {
    let line = line.trim();
    if line.is_empty() {
        return String::new();
    }
    let (cmd, args) = match line.find(|c: char| c.is_ascii_whitespace() || c == '/') {
        Some(i) => (&line[..i], &line[i..]),
        None => (line, ""),
    };
    let Some(command) = commands::find(commands::COMMANDS, cmd) else {
        return format!("unknown command: '{cmd}'\n");
    };
    let request = |r: MonitorRequest| match ctx.request(r) {
        Ok(()) => String::new(),
        Err(e) => format!("Error: {}\n", e.desc),
    };
    match command.name {
        "cont|c" => request(MonitorRequest::Cont),
        "stop|s" => request(MonitorRequest::Stop),
        "system_reset" => request(MonitorRequest::Reset),
        "system_powerdown" => request(MonitorRequest::Powerdown),
        "nmi" => request(MonitorRequest::Nmi),
        "quit|q" => request(MonitorRequest::Quit),
        "help|?" => help(args.trim()),
        "info" => info::run(ctx, args.trim()),
        "x" | "xp" => examine(ctx, cmd, args, cmd == "xp"),
        "migrate" => {
            if args.trim().is_empty() {
                format!("Parameter 'uri' is missing\n{}", try_help(cmd))
            } else {
                "Error: migration is not supported by this version of Kindling yet\n".into()
            }
        }
        "gdbserver" => {
            "Error: the gdb server is not supported by this version of Kindling yet\n".into()
        }
        _ => format!("unknown command: '{cmd}'\n"),
    }
}

fn help(topic: &str) -> String {
    if topic.is_empty() {
        return commands::listing("", commands::COMMANDS);
    }
    let mut words = topic.split_whitespace();
    let first = words.next().unwrap_or("");
    if first == "info" {
        return match words.next() {
            None => commands::listing("info ", commands::INFO),
            Some(sub) => match commands::find(commands::INFO, sub) {
                Some(c) => commands::line("info ", c),
                None => format!("unknown command: 'info {sub}'\n"),
            },
        };
    }
    match commands::find(commands::COMMANDS, first) {
        Some(c) => commands::line("", c),
        None => format!("unknown command: '{first}'\n"),
    }
}

/// `x` / `xp`: parse `/fmt` and the address, then dump or disassemble.
fn examine(ctx: &MonitorContext, cmd: &str, args: &str, physical: bool) -> String {
    let mut state = ctx.hmp_format();
    let parsed = memdump::parse_format(args, &mut state);
    ctx.set_hmp_format(state);
    let (fmt, rest) = match parsed {
        Ok(p) => p,
        Err(e) => return format!("{e}\n{}", try_help(cmd)),
    };
    let snapshot = ctx.registers().into_iter().next().flatten();
    let value = match &snapshot {
        Some((r, s)) => expr::parse(rest, &expr::Snapshot { regs: r, sregs: s }),
        None => expr::parse(rest, &expr::NoRegisters),
    };
    let addr = match value {
        Ok((a, tail)) if tail.trim().is_empty() => a,
        Ok((_, tail)) => {
            return format!(
                "{cmd}: extraneous characters at the end of line: '{}'\n{}",
                tail.trim(),
                try_help(cmd)
            )
        }
        Err(e) => return format!("{e}\n{}", try_help(cmd)),
    };
    let sregs = snapshot.map(|(_, s)| s);
    let mem = ctx.mem.clone();
    let mut read = |a: u64, buf: &mut [u8]| -> bool {
        // Page by page: a virtual range may map to scattered frames.
        let mut done = 0usize;
        while done < buf.len() {
            let va = a.wrapping_add(done as u64);
            let chunk = ((0x1000 - (va & 0xfff)) as usize).min(buf.len() - done);
            let gpa = if physical {
                Some(va)
            } else {
                sregs.as_ref().and_then(|s| translate(&mem, s, va))
            };
            let Some(gpa) = gpa else {
                return false;
            };
            if mem
                .read_slice(&mut buf[done..done + chunk], GuestAddress(gpa))
                .is_err()
            {
                return false;
            }
            done += chunk;
        }
        true
    };
    if fmt.format != b'i' {
        return memdump::dump(&fmt, addr, &mut read);
    }
    let bitness = match (fmt.size, &sregs) {
        (Some(2), _) => 16,
        (Some(4), _) => 32,
        (_, Some(s)) if registers::cs64(s) => 64,
        (_, Some(s)) if !s.cs.db => 16,
        _ => 32,
    };
    let mut out = String::new();
    let mut pc = addr;
    for _ in 0..fmt.count {
        let mut code = [0u8; 15];
        // An instruction may end where readable memory ends.
        let n = (1..=15).rev().find(|&n| read(pc, &mut code[..n]));
        let Some(n) = n else {
            out.push_str(&format!("0x{pc:08x}: unable to read memory\n"));
            break;
        };
        let Some((line, len)) = disasm::line(&code[..n], pc, bitness) else {
            break;
        };
        out.push_str(&line);
        pc = pc.wrapping_add(len as u64);
    }
    out
}
