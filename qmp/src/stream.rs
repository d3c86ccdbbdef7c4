//! Splitting a byte stream into QMP messages, as QEMU's JSON streamer does:
//! a message ends when its braces and brackets balance. Also translates
//! QEMU's JSON extension (single-quoted strings) into standard JSON.

use serde_json::Value;

/// Largest message accepted (QEMU's token size limit is 64 MiB).
pub const MAX_MESSAGE: usize = 64 << 20;
/// Deepest nesting accepted (QEMU's limit).
pub const MAX_NESTING: usize = 1024;

/// One complete input unit: a parsed value, or why it could not be parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A well-formed JSON value.
    Value(Value),
    /// Malformed input; the text is QEMU's error description.
    Error(String),
}

/// Incremental splitter; feed bytes, collect complete inputs.
#[derive(Debug, Default)]
pub struct Splitter {
    buf: Vec<u8>,
    depth: usize,
    quote: Option<u8>,
    escape: bool,
    /// Discarding the rest of an oversized or broken message until the
    /// nesting closes or a newline arrives.
    skipping: bool,
}

impl Splitter {
    /// A splitter with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.depth = 0;
        self.quote = None;
        self.escape = false;
    }

    /// Feed bytes; complete inputs are appended to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Input>) {
        for &b in bytes {
            self.byte(b, out);
        }
    }

    fn byte(&mut self, b: u8, out: &mut Vec<Input>) {
        if self.skipping {
            if b == b'\n' || b < 0x20 && b != b'\t' && b != b'\r' {
                self.skipping = false;
            }
            return;
        }
        if let Some(q) = self.quote {
            self.buf.push(b);
            if self.escape {
                self.escape = false;
            } else if b == b'\\' {
                self.escape = true;
            } else if b == q {
                self.quote = None;
            } else if b < 0x20 {
                self.reset();
                out.push(Input::Error("JSON parse error, invalid string".into()));
                return;
            }
            self.check_size(out);
            return;
        }
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                if !self.buf.is_empty() && self.depth == 0 {
                    self.emit(out);
                }
            }
            0..=0x1f | 0x7f..=0xff => {
                // QEMU resynchronises on control characters (and 0xFF).
                if !self.buf.is_empty() {
                    out.push(Input::Error("JSON parse error, stray input".into()));
                }
                self.reset();
            }
            b'{' | b'[' => {
                if self.depth == 0 && !self.buf.is_empty() {
                    self.emit(out);
                }
                self.buf.push(b);
                self.depth += 1;
                if self.depth > MAX_NESTING {
                    self.reset();
                    self.skipping = true;
                    out.push(Input::Error("JSON parse error, nesting too deep".into()));
                }
            }
            b'}' | b']' => {
                self.buf.push(b);
                if self.depth == 0 {
                    self.reset();
                    out.push(Input::Error("JSON parse error, expecting value".into()));
                    return;
                }
                self.depth -= 1;
                if self.depth == 0 {
                    self.emit(out);
                }
            }
            b'"' | b'\'' => {
                self.buf.push(b);
                self.quote = Some(b);
            }
            _ => self.buf.push(b),
        }
        self.check_size(out);
    }

    fn check_size(&mut self, out: &mut Vec<Input>) {
        if self.buf.len() > MAX_MESSAGE {
            self.reset();
            self.skipping = true;
            out.push(Input::Error(
                "JSON parse error, message exceeds the size limit".into(),
            ));
        }
    }

    fn emit(&mut self, out: &mut Vec<Input>) {
        let text = std::mem::take(&mut self.buf);
        self.reset();
        out.push(parse(&text));
    }

    /// True if a message is partly received.
    pub fn pending(&self) -> bool {
        !self.buf.is_empty()
    }
}

/// Parse one message in QEMU's JSON dialect.
pub fn parse(text: &[u8]) -> Input {
    let Ok(s) = std::str::from_utf8(text) else {
        return Input::Error("JSON parse error, invalid UTF-8 sequence in string".into());
    };
    let standard = translate_single_quotes(s);
    match serde_json::from_str::<Value>(&standard) {
        Ok(v) => Input::Value(v),
        Err(e) => Input::Error(describe(s, &e)),
    }
}

/// QEMU-like wording for a parse failure.
fn describe(s: &str, e: &serde_json::Error) -> String {
    let t = s.trim_start_matches(['{', '[', ' ']);
    if e.is_syntax() {
        // An unquoted word where a value belongs: QEMU says "invalid keyword".
        if let Some(word) = s
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .find(|w| {
                !w.is_empty()
                    && w.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && !["true", "false", "null"].contains(w)
                    && !s.contains(&format!("\"{w}\""))
                    && !s.contains(&format!("'{w}'"))
            })
        {
            return format!("JSON parse error, invalid keyword '{word}'");
        }
    }
    if e.is_eof() || t.is_empty() {
        return "JSON parse error, expecting value".into();
    }
    format!("JSON parse error, {e}")
}

/// Rewrite `'...'` strings as `"..."` strings.
fn translate_single_quotes(s: &str) -> String {
    if !s.contains('\'') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\'') => {
                quote = Some('\'');
                out.push('"');
            }
            (None, '"') => {
                quote = Some('"');
                out.push('"');
            }
            (Some(q), '\\') => {
                let n = chars.next().unwrap_or('\\');
                if q == '\'' && n == '\'' {
                    out.push('\'');
                } else {
                    out.push('\\');
                    out.push(n);
                }
            }
            (Some('\''), '"') => out.push_str("\\\""),
            (Some(q), c) if c == q => {
                quote = None;
                out.push('"');
            }
            (_, c) => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn split(s: &[u8]) -> Vec<Input> {
        let mut sp = Splitter::new();
        let mut out = Vec::new();
        sp.feed(s, &mut out);
        out
    }

    #[test]
    fn splits_on_balanced_braces_across_chunks() {
        let mut sp = Splitter::new();
        let mut out = Vec::new();
        sp.feed(b"{\"execute\": \"a\"}{\"exec", &mut out);
        assert_eq!(out, vec![Input::Value(json!({"execute": "a"}))]);
        assert!(sp.pending());
        sp.feed(b"ute\": \"}{\"}\r\n", &mut out);
        assert_eq!(out[1], Input::Value(json!({"execute": "}{"})));
    }

    #[test]
    fn single_quotes_are_accepted() {
        assert_eq!(
            split(b"{'execute':'query-status','id':'q'}"),
            vec![Input::Value(json!({"execute": "query-status", "id": "q"}))]
        );
        assert_eq!(
            split(b"{'execute':'x','id':'q\\'\"'}"),
            vec![Input::Value(json!({"execute": "x", "id": "q'\""}))]
        );
    }

    #[test]
    fn errors_use_qemus_words_and_recover() {
        let out = split(b"{\"execute\": foo}\n{\"execute\":\"b\"}");
        assert_eq!(
            out[0],
            Input::Error("JSON parse error, invalid keyword 'foo'".into())
        );
        assert_eq!(out[1], Input::Value(json!({"execute": "b"})));
        let out = split(b"}\n[1]");
        assert_eq!(
            out[0],
            Input::Error("JSON parse error, expecting value".into())
        );
        assert_eq!(out[1], Input::Value(json!([1])));
    }

    #[test]
    fn control_character_resynchronises() {
        let out = split(b"{\"execute\": \"a\x01{\"execute\":\"b\"}");
        assert!(matches!(out[0], Input::Error(_)));
        assert_eq!(out.last(), Some(&Input::Value(json!({"execute": "b"}))));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut s = vec![b'['; MAX_NESTING + 5];
        s.extend(vec![b']'; MAX_NESTING + 5]);
        s.extend(b"\n{\"execute\":\"ok\"}");
        let out = split(&s);
        assert_eq!(
            out[0],
            Input::Error("JSON parse error, nesting too deep".into())
        );
        assert_eq!(out.last(), Some(&Input::Value(json!({"execute": "ok"}))));
    }
}
