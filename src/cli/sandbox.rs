//! `-sandbox on|off[,obsolete=allow|deny][,elevateprivileges=allow|deny|children]
//! [,spawn=allow|deny][,resourcecontrol=allow|deny]`, parsed as QEMU's
//! `parse_sandbox()` does. What each sub-option means for Kindling's
//! allowlist filters is in `machine::sandbox`.

use machine::sandbox::{Policy, SandboxConfig};

use super::error::CliError;
use super::keyval::{self, parse_bool};

/// Parse one `-sandbox` value.
pub fn parse(loc: &str, val: &str) -> Result<SandboxConfig, CliError> {
    let mut cfg = SandboxConfig::default();
    for p in keyval::parse(val, Some("enable")) {
        let policy = |allowed: &[(&str, Policy)]| {
            allowed
                .iter()
                .find(|(name, _)| *name == p.value)
                .map(|(_, v)| *v)
                .ok_or_else(|| CliError::at(loc, format!("invalid argument for {}", p.key)))
        };
        const ALLOW_DENY: [(&str, Policy); 2] = [("allow", Policy::Allow), ("deny", Policy::Deny)];
        match p.key.as_str() {
            "enable" => {
                cfg.enabled = parse_bool(&p.value)
                    .ok_or_else(|| CliError::at(loc, "Parameter 'enable' expects 'on' or 'off'"))?
            }
            "obsolete" => cfg.obsolete = policy(&ALLOW_DENY)?,
            "spawn" => cfg.spawn = policy(&ALLOW_DENY)?,
            "resourcecontrol" => cfg.resource_control = policy(&ALLOW_DENY)?,
            "elevateprivileges" => {
                cfg.elevate_privileges = policy(&[
                    ("allow", Policy::Allow),
                    ("deny", Policy::Deny),
                    ("children", Policy::Children),
                ])?
            }
            other => return Err(CliError::at(loc, format!("Invalid parameter '{other}'"))),
        }
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_off_and_sub_options() {
        assert!(parse("-sandbox", "on").unwrap().enabled);
        assert!(!parse("-sandbox", "off").unwrap().enabled);
        let c = parse(
            "-sandbox",
            "on,obsolete=deny,elevateprivileges=children,spawn=deny,resourcecontrol=allow",
        )
        .unwrap();
        assert_eq!(c.elevate_privileges, Policy::Children);
        assert_eq!(c.spawn, Policy::Deny);
        assert_eq!(c.resource_control, Policy::Allow);
        assert_eq!(c.obsolete, Policy::Deny);
    }

    #[test]
    fn bad_values_get_qemus_errors() {
        let e = parse("-sandbox", "on,spawn=children").unwrap_err();
        assert!(e.to_string().contains("invalid argument for spawn"), "{e}");
        let e = parse("-sandbox", "maybe").unwrap_err();
        assert!(
            e.to_string().contains("'enable' expects 'on' or 'off'"),
            "{e}"
        );
        let e = parse("-sandbox", "on,foo=bar").unwrap_err();
        assert!(e.to_string().contains("Invalid parameter 'foo'"), "{e}");
    }
}
