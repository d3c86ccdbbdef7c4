//! Options QEMU has that Kindling takes only in part: `-uuid` (checked and
//! reported by `query-uuid`), `-global` (only the properties Kindling's
//! devices have), and options Kindling does not implement (`-d`, `-D`,
//! `-boot`), which are refused by name instead of being ignored.

use super::error::CliError;
use super::keyval::parse_bool;

/// `-uuid`: QEMU's `qemu_uuid_parse()` format, returned in lower case.
pub fn uuid(loc: &str, val: &str) -> Result<String, CliError> {
    let groups: Vec<&str> = val.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    let ok = groups.len() == lens.len()
        && groups
            .iter()
            .zip(lens)
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
    if !ok {
        return Err(CliError::at(
            loc,
            "failed to parse UUID string: wrong format",
        ));
    }
    Ok(val.to_ascii_lowercase())
}

/// `-global driver.property=value`: the properties Kindling's devices
/// have. Kindling's transports are always virtio-mmio version 2 (modern);
/// the legacy switch is accepted and validated.
pub fn global(loc: &str, key: &str, value: &str) -> Result<(), CliError> {
    match key {
        "virtio-mmio.force-legacy" => parse_bool(value)
            .map(|_| ())
            .ok_or_else(|| CliError::at(loc, "Parameter 'force-legacy' expects 'on' or 'off'")),
        _ => Err(CliError::at(
            loc,
            format!("can't apply global {key}={value}: Property '{key}' not found"),
        )),
    }
}

/// An option QEMU accepts that Kindling does not implement.
pub fn unsupported(loc: &str, name: &str) -> CliError {
    let what = match name {
        "d" | "D" => " (QEMU's debug log)",
        "boot" => " (microvm boots the -kernel image; there is no firmware boot order)",
        _ => "",
    };
    CliError::at(loc, format!("-{name} is not supported by Kindling{what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_in_qemus_format_only() {
        assert_eq!(
            uuid("-uuid", "12345678-ABCD-1234-1234-123456789abc").unwrap(),
            "12345678-abcd-1234-1234-123456789abc"
        );
        for bad in [
            "xyz",
            "12345678-1234-1234-1234-123456789ab",
            "1234567g-1234-1234-1234-123456789abc",
        ] {
            assert_eq!(
                uuid("-uuid", bad).unwrap_err().to_string(),
                format!("-uuid: failed to parse UUID string: wrong format"),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_globals_are_refused() {
        assert!(global("-global", "virtio-mmio.force-legacy", "off").is_ok());
        assert!(global("-global", "virtio-mmio.force-legacy", "x").is_err());
        assert_eq!(
            global("-global", "virtio-mmio.foo", "1")
                .unwrap_err()
                .to_string(),
            "-global: can't apply global virtio-mmio.foo=1: Property 'virtio-mmio.foo' not found"
        );
    }
}
