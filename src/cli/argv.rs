//! Splitting argv into QEMU options: `-opt value`, `--opt value`, `-opt`.

use super::error::CliError;

/// Options that take a value, as QEMU spells them.
const WITH_VALUE: &[&str] = &[
    "M",
    "machine",
    "accel",
    "cpu",
    "m",
    "smp",
    "kernel",
    "initrd",
    "append",
    "display",
    "serial",
    "chardev",
    "name",
    "pidfile",
    "device",
    "qmp",
    "mon",
    "monitor",
    "drive",
    "blockdev",
    "netdev",
    "global",
    "icount",
    "vga",
    "D",
    "d",
    "object",
    "rtc",
    "boot",
    "uuid",
    "qmp-pretty",
    "sandbox",
    // Kindling's own.
    super::boot_report::OPTION,
];

/// Options that are flags.
const FLAGS: &[&str] = &[
    "enable-kvm",
    "nodefaults",
    "no-user-config",
    "nographic",
    "no-reboot",
    "no-shutdown",
    "daemonize",
    "S",
    "version",
    "h",
    "help",
    "qmp-pretty",
    "no-hpet",
];

/// One option occurrence in command-line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opt {
    /// The option name without dashes.
    pub name: String,
    /// Its value, for options that take one.
    pub value: Option<String>,
}

impl Opt {
    /// The `-name value` text QEMU puts in front of error messages.
    pub fn location(&self) -> String {
        match &self.value {
            Some(v) => format!("-{} {}", self.name, v),
            None => format!("-{}", self.name),
        }
    }
}

/// Split `args` (without argv\[0\]) into options.
pub fn split(args: &[String]) -> Result<Vec<Opt>, CliError> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some(name) = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .filter(|n| !n.is_empty())
        else {
            return Err(CliError::at(
                arg.clone(),
                "machine type does not support if=ide,bus=0,unit=0 (disk images are given with -drive)",
            ));
        };
        if WITH_VALUE.contains(&name) {
            let value = it
                .next()
                .ok_or_else(|| CliError::at(format!("-{name}"), "requires an argument"))?;
            out.push(Opt {
                name: name.to_string(),
                value: Some(value.clone()),
            });
        } else if FLAGS.contains(&name) {
            out.push(Opt {
                name: name.to_string(),
                value: None,
            });
        } else {
            return Err(CliError::at(format!("-{name}"), "invalid option"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn single_and_double_dash() {
        let o = split(&args("-m 256M --smp 2 -nographic --no-reboot")).unwrap();
        let names: Vec<_> = o.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["m", "smp", "nographic", "no-reboot"]);
        assert_eq!(o[1].value.as_deref(), Some("2"));
        assert_eq!(o[2].value, None);
    }

    #[test]
    fn errors_name_the_option() {
        assert_eq!(
            split(&args("-foo")).unwrap_err().to_string(),
            "-foo: invalid option"
        );
        assert_eq!(
            split(&args("-m")).unwrap_err().to_string(),
            "-m: requires an argument"
        );
        assert!(split(&args("disk.img")).is_err());
        assert!(split(&args("-")).is_err());
    }
}
