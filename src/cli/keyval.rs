//! QEMU's `key=value,...` option lists.
//!
//! Written by hand rather than with clap: QEMU's grammar has an implied
//! first key (`-m 256M` is `-m size=256M`), `,,` as an escaped comma,
//! legacy bare flags (`server,nowait`), and single-dash long options, none
//! of which clap models.

/// One parsed `key=value` pair; `implied` is true for the leading value
/// that had no key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// The key (the implied key's name for the first bare value).
    pub key: String,
    /// The value, with `,,` unescaped.
    pub value: String,
}

/// Split `s` on single commas, turning `,,` into a literal comma.
fn split_escaped(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                cur.push(',');
            } else {
                parts.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

/// Parse an option value into parameters. A first element without `=` is
/// the value of `implied` (if given); later bare words are legacy flags:
/// `flag` means `flag=on`, `noflag` means `flag=off`.
pub fn parse(s: &str, implied: Option<&str>) -> Vec<Param> {
    let mut out = Vec::new();
    for (i, part) in split_escaped(s).into_iter().enumerate() {
        if part.is_empty() && i > 0 {
            continue;
        }
        match part.split_once('=') {
            Some((k, v)) => out.push(Param {
                key: k.to_string(),
                value: v.to_string(),
            }),
            None if i == 0 && implied.is_some() => out.push(Param {
                key: implied.unwrap_or_default().to_string(),
                value: part,
            }),
            None => match part.strip_prefix("no") {
                Some(rest) if !rest.is_empty() => out.push(Param {
                    key: rest.to_string(),
                    value: "off".into(),
                }),
                _ => out.push(Param {
                    key: part,
                    value: "on".into(),
                }),
            },
        }
    }
    out
}

/// QEMU's boolean spellings.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "on" | "yes" | "true" | "y" => Some(true),
        "off" | "no" | "false" | "n" => Some(false),
        _ => None,
    }
}

/// Parse an integer the way QEMU's property parser does: decimal, `0x` hex,
/// or leading-`0` octal.
pub fn parse_int(v: &str) -> Option<u64> {
    let v = v.trim();
    if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if v.len() > 1 && v.starts_with('0') {
        u64::from_str_radix(&v[1..], 8).ok()
    } else {
        v.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(s: &str, implied: Option<&str>) -> Vec<(String, String)> {
        parse(s, implied)
            .into_iter()
            .map(|p| (p.key, p.value))
            .collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn implied_first_key() {
        assert_eq!(kv("256M", Some("size")), pairs(&[("size", "256M")]));
        assert_eq!(
            kv("microvm,acpi=off", Some("type")),
            pairs(&[("type", "microvm"), ("acpi", "off")])
        );
        assert_eq!(kv("size=1G", Some("size")), pairs(&[("size", "1G")]));
    }

    #[test]
    fn double_comma_escapes() {
        assert_eq!(
            kv("file,path=/tmp/a,,b,id=x", Some("backend")),
            pairs(&[("backend", "file"), ("path", "/tmp/a,b"), ("id", "x")])
        );
    }

    #[test]
    fn legacy_flags() {
        assert_eq!(
            kv("unix:/s,server,nowait", Some("chardev")),
            pairs(&[("chardev", "unix:/s"), ("server", "on"), ("wait", "off")])
        );
    }

    #[test]
    fn bools_and_ints() {
        for t in ["on", "yes", "true", "y"] {
            assert_eq!(parse_bool(t), Some(true));
        }
        for f in ["off", "no", "false", "n"] {
            assert_eq!(parse_bool(f), Some(false));
        }
        assert_eq!(parse_bool("maybe"), None);
        assert_eq!(parse_int("0xf4"), Some(0xf4));
        assert_eq!(parse_int("010"), Some(8));
        assert_eq!(parse_int("42"), Some(42));
        assert_eq!(parse_int("zz"), None);
    }
}
