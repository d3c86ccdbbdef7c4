//! `-kindling-boot-report [file=]PATH|stderr[,booted=TEXT]`: Kindling's own
//! option (QEMU has no `-kindling-*` options, so it cannot collide with
//! one) asking for a JSON boot report per boot.

use std::path::PathBuf;

use machine::milestones::{BootReportConfig, ReportTarget};

use super::error::CliError;
use super::keyval;

/// The option's name, without the dash.
pub const OPTION: &str = "kindling-boot-report";

/// Parse the option's value (`loc`: the option as typed, for errors).
pub fn parse(loc: &str, val: &str) -> Result<BootReportConfig, CliError> {
    let mut cfg = BootReportConfig::default();
    for p in keyval::parse(val, Some("file")) {
        match p.key.as_str() {
            "file" if p.value.is_empty() => {
                return Err(CliError::at(
                    loc,
                    "Parameter 'file' expects a path or 'stderr'",
                ))
            }
            "file" if p.value == "stderr" => cfg.target = Some(ReportTarget::Stderr),
            "file" => cfg.target = Some(ReportTarget::File(PathBuf::from(p.value))),
            "booted" if p.value.is_empty() => {
                return Err(CliError::at(loc, "Parameter 'booted' expects some text"))
            }
            "booted" => cfg.booted = Some(p.value),
            other => return Err(CliError::at(loc, format!("Invalid parameter '{other}'"))),
        }
    }
    if cfg.target.is_none() {
        return Err(CliError::at(loc, "Parameter 'file' is missing"));
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implied_file_stderr_and_the_booted_pattern() {
        let c = parse("-x", "/tmp/r.json").unwrap();
        assert_eq!(c.target, Some(ReportTarget::File("/tmp/r.json".into())));
        assert_eq!(c.booted, None);
        let c = parse("-x", "stderr,booted=login:").unwrap();
        assert_eq!(c.target, Some(ReportTarget::Stderr));
        assert_eq!(c.booted.as_deref(), Some("login:"));
        // QEMU's `,,` escapes a comma inside a value.
        let c = parse("-x", "file=r.json,booted=a,,b").unwrap();
        assert_eq!(c.booted.as_deref(), Some("a,b"));
    }

    #[test]
    fn bad_values_name_the_option() {
        let e = |v: &str| parse("-kindling-boot-report v", v).unwrap_err().to_string();
        assert!(e("r.json,colour=red").contains("Invalid parameter 'colour'"));
        assert!(e("booted=x").contains("Parameter 'file' is missing"));
        assert!(e("r.json,booted=").contains("'booted' expects"));
        assert!(e("r.json,colour=red").starts_with("-kindling-boot-report v: "));
    }
}
