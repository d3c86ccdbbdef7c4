//! The HMP command table: names, argument synopses and help lines, in
//! QEMU's words, for `help` and `info` with no argument.

/// One top-level command.
#[derive(Debug, Clone, Copy)]
pub struct Command {
    /// Names, `|`-separated (`cont|c`).
    pub name: &'static str,
    /// Argument synopsis.
    pub args: &'static str,
    /// One-line help.
    pub help: &'static str,
}

/// The commands Kindling's monitor answers, alphabetical as QEMU lists them.
pub const COMMANDS: &[Command] = &[
    Command {
        name: "cont|c",
        args: "",
        help: "resume emulation",
    },
    Command {
        name: "gdbserver",
        args: "[device]",
        help: "start gdbserver on given device (default 'tcp::1234'), stop with 'none'",
    },
    Command {
        name: "help|?",
        args: "[cmd]",
        help: "show the help",
    },
    Command {
        name: "info",
        args: "[subcommand]",
        help: "show various information about the system state",
    },
    Command {
        name: "migrate",
        args: "[-d] uri",
        help: "migrate to URI (using -d to not wait for completion)",
    },
    Command {
        name: "nmi",
        args: "",
        help: "inject an NMI",
    },
    Command {
        name: "quit|q",
        args: "",
        help: "quit the emulator",
    },
    Command {
        name: "stop|s",
        args: "",
        help: "stop emulation",
    },
    Command {
        name: "system_powerdown",
        args: "",
        help: "send system power down event",
    },
    Command {
        name: "system_reset",
        args: "",
        help: "reset the system",
    },
    Command {
        name: "x",
        args: "/fmt addr",
        help: "virtual memory dump starting at 'addr'",
    },
    Command {
        name: "xp",
        args: "/fmt addr",
        help: "physical memory dump starting at 'addr'",
    },
];

/// The `info` subcommands.
pub const INFO: &[Command] = &[
    Command {
        name: "block",
        args: "",
        help: "show info of one block device or all block devices",
    },
    Command {
        name: "chardev",
        args: "",
        help: "show the character devices",
    },
    Command {
        name: "cpus",
        args: "",
        help: "show infos for each CPU",
    },
    Command {
        name: "irq",
        args: "",
        help: "show the interrupts statistics (if available)",
    },
    Command {
        name: "kvm",
        args: "",
        help: "show KVM information",
    },
    Command {
        name: "mem",
        args: "",
        help: "show the active virtual memory mappings",
    },
    Command {
        name: "migrate",
        args: "",
        help: "show migration status",
    },
    Command {
        name: "mtree",
        args: "",
        help: "show memory tree",
    },
    Command {
        name: "name",
        args: "",
        help: "show the current VM name",
    },
    Command {
        name: "network",
        args: "",
        help: "show the network state",
    },
    Command {
        name: "pic",
        args: "",
        help: "show PIC state",
    },
    Command {
        name: "qtree",
        args: "",
        help: "show device tree",
    },
    Command {
        name: "registers",
        args: "[-a]",
        help: "show the cpu registers (-a: all - show register info for all cpus)",
    },
    Command {
        name: "status",
        args: "",
        help: "show the current VM status (running|paused)",
    },
    Command {
        name: "tlb",
        args: "",
        help: "show virtual to physical memory mappings",
    },
    Command {
        name: "uuid",
        args: "",
        help: "show the current VM UUID",
    },
    Command {
        name: "version",
        args: "",
        help: "show the version of QEMU",
    },
];

/// The command `word` names, if any.
pub fn find<'a>(table: &'a [Command], word: &str) -> Option<&'a Command> {
    table.iter().find(|c| c.name.split('|').any(|n| n == word))
}

/// One help line: `name args -- help`.
pub fn line(prefix: &str, c: &Command) -> String {
    format!("{prefix}{} {} -- {}\n", c.name, c.args, c.help)
}

/// `help` with no argument, or `info` with none.
pub fn listing(prefix: &str, table: &[Command]) -> String {
    table.iter().map(|c| line(prefix, c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_found() {
        assert_eq!(find(COMMANDS, "c").map(|c| c.name), Some("cont|c"));
        assert_eq!(find(COMMANDS, "quit").map(|c| c.name), Some("quit|q"));
        assert!(find(COMMANDS, "bogus").is_none());
    }

    #[test]
    fn help_lines_read_like_qemus() {
        let x = find(COMMANDS, "x").unwrap();
        assert_eq!(
            line("", x),
            "x /fmt addr -- virtual memory dump starting at 'addr'\n"
        );
        assert!(listing("info ", INFO).contains("info tlb  -- show virtual to physical"));
    }
}
