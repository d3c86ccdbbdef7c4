//! QEMU's size syntax: `256M`, `1.5G`, `4096` (with a default unit).

/// Parse `s` as a byte count. A bare number is multiplied by
/// `default_unit` (QEMU's `-m` treats it as MiB). Suffixes B, K, M, G, T,
/// P, E (either case) are powers of 1024; a fraction is allowed with a
/// suffix (`1.5G`).
pub fn parse_size(s: &str, default_unit: u64) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    if num.is_empty() {
        return None;
    }
    let unit: u64 = match suffix {
        "" => default_unit,
        "b" | "B" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        "t" | "T" => 1 << 40,
        "p" | "P" => 1 << 50,
        "e" | "E" => 1 << 60,
        _ => return None,
    };
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(unit);
    }
    // A fraction needs an explicit unit, as in QEMU.
    let f: f64 = num.parse().ok()?;
    if suffix.is_empty() || !f.is_finite() || f < 0.0 {
        return None;
    }
    let bytes = f * unit as f64;
    (bytes < 18_446_744_073_709_551_615.0).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_and_default_unit() {
        assert_eq!(parse_size("256", 1 << 20), Some(256 << 20));
        assert_eq!(parse_size("256M", 1 << 20), Some(256 << 20));
        assert_eq!(parse_size("256m", 1 << 20), Some(256 << 20));
        assert_eq!(parse_size("2G", 1), Some(2 << 30));
        assert_eq!(parse_size("1.5G", 1), Some(3 << 29));
        assert_eq!(parse_size("4096", 1), Some(4096));
        assert_eq!(parse_size("1T", 1), Some(1 << 40));
    }

    #[test]
    fn rejects_garbage_and_overflow() {
        assert_eq!(parse_size("foo", 1), None);
        assert_eq!(parse_size("", 1), None);
        assert_eq!(parse_size("12Q", 1), None);
        assert_eq!(parse_size("1.5", 1), None);
        assert_eq!(parse_size("99999999999E", 1), None);
    }
}
