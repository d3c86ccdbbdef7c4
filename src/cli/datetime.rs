//! QEMU's `-rtc base=` date formats: `YYYY-MM-DDTHH:MM:SS` or `YYYY-MM-DD`
//! (UTC), as seconds since the Unix epoch.

/// Seconds since 1970-01-01T00:00:00Z for `value`, or `None` if it is not
/// one of the two formats or names an impossible date.
pub fn parse_unix_secs(value: &str) -> Option<u64> {
    let (date, time) = match value.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (value, None),
    };
    let mut d = date.split('-');
    let year: i64 = field(d.next()?, 4)?;
    let month: i64 = field(d.next()?, 2)?;
    let day: i64 = field(d.next()?, 2)?;
    if d.next().is_some() || !(1..=12).contains(&month) || day < 1 || day > days_in(year, month) {
        return None;
    }
    let (h, m, s) = match time {
        None => (0, 0, 0),
        Some(t) => {
            let mut t = t.split(':');
            let h: i64 = field(t.next()?, 2)?;
            let m: i64 = field(t.next()?, 2)?;
            let s: i64 = field(t.next()?, 2)?;
            if t.next().is_some() || h > 23 || m > 59 || s > 59 {
                return None;
            }
            (h, m, s)
        }
    };
    let secs = days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s;
    u64::try_from(secs).ok()
}

/// A decimal field of exactly `width` digits.
fn field(s: &str, width: usize) -> Option<i64> {
    (s.len() == width && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn days_in(year: i64, month: i64) -> i64 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// civil-from-days inverse).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_unix_secs;

    #[test]
    fn both_formats_and_known_instants() {
        assert_eq!(parse_unix_secs("1970-01-01"), Some(0));
        assert_eq!(parse_unix_secs("2006-06-17T16:01:21"), Some(1_150_560_081));
        assert_eq!(parse_unix_secs("2024-02-29"), Some(1_709_164_800));
        assert_eq!(parse_unix_secs("2000-03-01T00:00:00"), Some(951_868_800));
    }

    #[test]
    fn rejects_malformed_and_impossible_dates() {
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-1-01",
            "2024-01-01T24:00:00",
            "2024-01-01T10:00",
            "1969-12-31",
            "yesterday",
            "",
        ] {
            assert_eq!(parse_unix_secs(bad), None, "{bad}");
        }
    }
}
