//! Splitting a monitor's byte stream into messages the way QEMU does, so a
//! client sees the same replies for the same bytes, malformed ones
//! included: QEMU's JSON lexer (`qobject/json-lexer.c`: tokens, the
//! single-quote extension, error recovery), its streamer
//! (`json-streamer.c`: a message ends when braces and brackets balance or
//! go negative; token size, count and nesting limits) and its parser
//! (`json-parser.c`: the value grammar and its error wording).
//!
//! Hand-written rather than serde_json's streaming deserializer: QMP's
//! framing *is* these rules (how many error replies a bad message earns,
//! and where the next message starts), and serde_json follows none of
//! them. The lexer is QEMU's state table expressed as a `match`.

use serde_json::{Map, Number, Value};

/// QEMU's per-token and per-message size limit (64 MiB).
pub const MAX_TOKEN_SIZE: usize = 64 << 20;
/// QEMU's limit on tokens in one message.
pub const MAX_TOKEN_COUNT: usize = 2 << 20;
/// QEMU's limit on open braces plus brackets.
pub const MAX_NESTING: i64 = 1 << 10;

/// One complete input unit: a parsed value, or why it could not be parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A well-formed JSON value.
    Value(Value),
    /// Malformed input; the text is QEMU's error description.
    Error(String),
}

/// Lexer states (QEMU's `json_lexer_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Start,
    /// After an error: skip to a byte that can start a message.
    Recovery,
    DqString,
    DqEscape,
    SqString,
    SqEscape,
    Zero,
    Sign,
    Digits,
    Mantissa,
    MantissaDigits,
    ExpE,
    ExpSign,
    ExpDigits,
    Keyword,
}

/// Token kinds (QEMU's `JSONTokenType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    LCurly,
    RCurly,
    LSquare,
    RSquare,
    Colon,
    Comma,
    Integer,
    Float,
    Keyword,
    String,
    /// A token cut at [`MAX_TOKEN_SIZE`]; the parser rejects it.
    Oversized,
}

/// One lexer step for a byte.
enum Step {
    /// Consume the byte and go to the state.
    Go(State),
    /// Consume the byte; it completes a token.
    Token(Kind),
    /// The token ended before this byte, which is looked at again.
    TokenBefore(Kind),
    /// Consume the byte: whitespace between tokens.
    Skip,
    /// Consume the byte: it makes the token so far an error.
    Error,
    /// Leave recovery; the byte is looked at again from `Start`.
    Resync,
}

fn step(state: State, b: u8) -> Step {
    use State::*;
    let string_byte = (0x20..=0xFD).contains(&b);
    match state {
        Recovery => match b {
            b'\t' => Step::Go(Recovery),
            b'[' | b']' | b'{' | b'}' | b':' | b',' | 0..=0x1F | 0xFE | 0xFF => Step::Resync,
            _ => Step::Go(Recovery),
        },
        DqString => match b {
            b'\\' => Step::Go(DqEscape),
            b'"' => Step::Token(Kind::String),
            _ if string_byte => Step::Go(DqString),
            _ => Step::Error,
        },
        SqString => match b {
            b'\\' => Step::Go(SqEscape),
            b'\'' => Step::Token(Kind::String),
            _ if string_byte => Step::Go(SqString),
            _ => Step::Error,
        },
        DqEscape if string_byte => Step::Go(DqString),
        SqEscape if string_byte => Step::Go(SqString),
        DqEscape | SqEscape => Step::Error,
        Zero => match b {
            b'0'..=b'9' => Step::Error,
            b'.' => Step::Go(Mantissa),
            _ => Step::TokenBefore(Kind::Integer),
        },
        Sign => match b {
            b'0' => Step::Go(Zero),
            b'1'..=b'9' => Step::Go(Digits),
            _ => Step::Error,
        },
        Digits => match b {
            b'0'..=b'9' => Step::Go(Digits),
            b'e' | b'E' => Step::Go(ExpE),
            b'.' => Step::Go(Mantissa),
            _ => Step::TokenBefore(Kind::Integer),
        },
        Mantissa => match b {
            b'0'..=b'9' => Step::Go(MantissaDigits),
            _ => Step::Error,
        },
        MantissaDigits => match b {
            b'0'..=b'9' => Step::Go(MantissaDigits),
            b'e' | b'E' => Step::Go(ExpE),
            _ => Step::TokenBefore(Kind::Float),
        },
        ExpE => match b {
            b'-' | b'+' => Step::Go(ExpSign),
            b'0'..=b'9' => Step::Go(ExpDigits),
            _ => Step::Error,
        },
        ExpSign => match b {
            b'0'..=b'9' => Step::Go(ExpDigits),
            _ => Step::Error,
        },
        ExpDigits => match b {
            b'0'..=b'9' => Step::Go(ExpDigits),
            _ => Step::TokenBefore(Kind::Float),
        },
        Keyword => match b {
            b'a'..=b'z' => Step::Go(Keyword),
            _ => Step::TokenBefore(Kind::Keyword),
        },
        Start => match b {
            b'"' => Step::Go(DqString),
            b'\'' => Step::Go(SqString),
            b'0' => Step::Go(Zero),
            b'1'..=b'9' => Step::Go(Digits),
            b'-' => Step::Go(Sign),
            b'a'..=b'z' => Step::Go(Keyword),
            b'{' => Step::Token(Kind::LCurly),
            b'}' => Step::Token(Kind::RCurly),
            b'[' => Step::Token(Kind::LSquare),
            b']' => Step::Token(Kind::RSquare),
            b':' => Step::Token(Kind::Colon),
            b',' => Step::Token(Kind::Comma),
            b' ' | b'\t' | b'\r' | b'\n' => Step::Skip,
            _ => Step::Error,
        },
    }
}

/// Incremental splitter; feed bytes, collect complete inputs. Memory is
/// bounded by QEMU's limits: one message's tokens (64 MiB of text, 2 Mi
/// tokens) at most.
#[derive(Debug, Default)]
pub struct Splitter {
    state: State,
    /// The token being lexed.
    token: Vec<u8>,
    /// The message so far: token texts back to back, and their kinds
    /// with end offsets into `text`.
    text: Vec<u8>,
    tokens: Vec<(Kind, usize)>,
    braces: i64,
    brackets: i64,
}

impl Splitter {
    /// A splitter with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed bytes; complete inputs are appended to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Input>) {
        for &b in bytes {
            self.byte(b, out);
        }
    }

    /// True if a message is partly received.
    pub fn pending(&self) -> bool {
        !self.tokens.is_empty() || !self.token.is_empty()
    }

    /// `json_lexer_feed_char()`.
    fn byte(&mut self, b: u8, out: &mut Vec<Input>) {
        loop {
            match step(self.state, b) {
                Step::Go(s) => {
                    if s != State::Recovery {
                        self.token.push(b);
                    }
                    self.state = s;
                }
                Step::Token(kind) => {
                    self.token.push(b);
                    self.end_token(kind, out);
                }
                Step::TokenBefore(kind) => {
                    self.end_token(kind, out);
                    continue;
                }
                Step::Skip => {}
                Step::Error => {
                    self.token.push(b);
                    let stray = String::from_utf8_lossy(&self.token).into_owned();
                    self.token.clear();
                    self.state = State::Recovery;
                    self.reset();
                    out.push(Input::Error(format!("JSON parse error, stray '{stray}'")));
                }
                Step::Resync => {
                    self.state = State::Start;
                    continue;
                }
            }
            break;
        }
        if self.token.len() > MAX_TOKEN_SIZE {
            self.end_token(Kind::Oversized, out);
        }
    }

    fn end_token(&mut self, kind: Kind, out: &mut Vec<Input>) {
        self.state = State::Start;
        let token = std::mem::take(&mut self.token);
        self.process(kind, &token, out);
        self.token = token;
        self.token.clear();
    }

    /// `json_message_process_token()`.
    fn process(&mut self, kind: Kind, token: &[u8], out: &mut Vec<Input>) {
        match kind {
            Kind::LCurly => self.braces += 1,
            Kind::RCurly => self.braces -= 1,
            Kind::LSquare => self.brackets += 1,
            Kind::RSquare => self.brackets -= 1,
            _ => {}
        }
        self.text.extend_from_slice(token);
        self.tokens.push((kind, self.text.len()));
        let ended =
            self.braces < 0 || self.brackets < 0 || (self.braces == 0 && self.brackets == 0);
        let result = if ended {
            let r = Parser::new(&self.text, &self.tokens).parse();
            Some(match r {
                Ok(v) => Input::Value(v),
                Err(e) => Input::Error(e),
            })
        } else if self.text.len() > MAX_TOKEN_SIZE {
            Some(Input::Error("JSON token size limit exceeded".into()))
        } else if self.tokens.len() > MAX_TOKEN_COUNT {
            Some(Input::Error("JSON token count limit exceeded".into()))
        } else if self.braces + self.brackets > MAX_NESTING {
            Some(Input::Error("JSON nesting depth limit exceeded".into()))
        } else {
            None
        };
        if let Some(r) = result {
            self.reset();
            out.push(r);
        }
    }

    /// Forget the message so far (the lexer state is kept).
    fn reset(&mut self) {
        self.braces = 0;
        self.brackets = 0;
        self.tokens.clear();
        self.text.clear();
        // Give back what a large message took.
        if self.text.capacity() > 1 << 20 {
            self.text = Vec::new();
            self.tokens = Vec::new();
        }
    }
}

/// QEMU's recursive-descent parser over one message's tokens.
struct Parser<'a> {
    text: &'a [u8],
    tokens: &'a [(Kind, usize)],
    next: usize,
}

type Parsed<T> = Result<T, String>;

fn error(msg: impl std::fmt::Display) -> String {
    format!("JSON parse error, {msg}")
}

impl<'a> Parser<'a> {
    fn new(text: &'a [u8], tokens: &'a [(Kind, usize)]) -> Self {
        Parser {
            text,
            tokens,
            next: 0,
        }
    }

    fn parse(mut self) -> Parsed<Value> {
        self.value()
    }

    fn peek(&self) -> Option<Kind> {
        self.tokens.get(self.next).map(|t| t.0)
    }

    /// Take the next token: its kind and text.
    fn pop(&mut self) -> Option<(Kind, &'a [u8])> {
        let (kind, end) = *self.tokens.get(self.next)?;
        let start = match self.next {
            0 => 0,
            n => self.tokens[n - 1].1,
        };
        self.next += 1;
        Some((kind, &self.text[start..end]))
    }

    fn value(&mut self) -> Parsed<Value> {
        match self.peek() {
            None => Err(error("premature EOI")),
            Some(Kind::LCurly) => self.object(),
            Some(Kind::LSquare) => self.array(),
            Some(Kind::Integer | Kind::Float | Kind::String | Kind::Keyword) => self.literal(),
            Some(_) => Err(error("expecting value")),
        }
    }

    fn pop_or_eoi(&mut self) -> Parsed<Kind> {
        self.pop()
            .map(|t| t.0)
            .ok_or_else(|| error("premature EOI"))
    }

    fn object(&mut self) -> Parsed<Value> {
        self.pop();
        let mut map = Map::new();
        match self.peek() {
            None => return Err(error("premature EOI")),
            Some(Kind::RCurly) => {
                self.pop();
                return Ok(Value::Object(map));
            }
            Some(_) => {}
        }
        loop {
            self.pair(&mut map)?;
            match self.pop_or_eoi()? {
                Kind::RCurly => return Ok(Value::Object(map)),
                Kind::Comma => {}
                _ => return Err(error("expected separator in dict")),
            }
        }
    }

    fn pair(&mut self, map: &mut Map<String, Value>) -> Parsed<()> {
        if self.peek().is_none() {
            return Err(error("premature EOI"));
        }
        let Value::String(key) = self.value()? else {
            return Err(error("key is not a string in object"));
        };
        if self.pop_or_eoi()? != Kind::Colon {
            return Err(error("missing : in object pair"));
        }
        let value = self.value()?;
        if map.contains_key(&key) {
            return Err(error("duplicate key"));
        }
        map.insert(key, value);
        Ok(())
    }

    fn array(&mut self) -> Parsed<Value> {
        self.pop();
        let mut list = Vec::new();
        match self.peek() {
            None => return Err(error("premature EOI")),
            Some(Kind::RSquare) => {
                self.pop();
                return Ok(Value::Array(list));
            }
            Some(_) => {}
        }
        loop {
            list.push(self.value()?);
            match self.pop_or_eoi()? {
                Kind::RSquare => return Ok(Value::Array(list)),
                Kind::Comma => {}
                _ => return Err(error("expected separator in list")),
            }
        }
    }

    fn literal(&mut self) -> Parsed<Value> {
        let Some((kind, text)) = self.pop() else {
            return Err(error("premature EOI"));
        };
        let s = String::from_utf8_lossy(text);
        match kind {
            Kind::String => parse_string(text).map(Value::String),
            Kind::Keyword => match text {
                b"true" => Ok(Value::Bool(true)),
                b"false" => Ok(Value::Bool(false)),
                b"null" => Ok(Value::Null),
                _ => Err(error(format!("invalid keyword '{s}'"))),
            },
            _ => {
                // Integers are i64 if they fit, else u64, else a double.
                if kind == Kind::Integer {
                    if let Ok(i) = s.parse::<i64>() {
                        return Ok(Value::Number(i.into()));
                    }
                    if let Ok(u) = s.parse::<u64>() {
                        return Ok(Value::Number(u.into()));
                    }
                }
                s.parse::<f64>()
                    .ok()
                    .and_then(Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| error(format!("number '{s}' is out of range")))
            }
        }
    }
}

/// Unicode scalar values QEMU accepts (`is_valid_codepoint()`): no
/// surrogates and no noncharacters.
fn valid_codepoint(cp: u32) -> Option<char> {
    if (0xFDD0..=0xFDEF).contains(&cp) || cp & 0xFFFE == 0xFFFE {
        return None;
    }
    char::from_u32(cp)
}

fn hex4(s: &[u8]) -> Option<u32> {
    let h = std::str::from_utf8(s.get(..4)?).ok()?;
    if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(h, 16).ok()
}

/// Decode one character of (modified) UTF-8 at the start of `s`:
/// `C0 80` is NUL, other overlong forms and invalid code points fail.
fn utf8_char(s: &[u8]) -> Option<(char, usize)> {
    if s.starts_with(&[0xC0, 0x80]) {
        return Some(('\0', 2));
    }
    let len = match s.first()? {
        0x01..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    let c = std::str::from_utf8(s.get(..len)?).ok()?.chars().next()?;
    valid_codepoint(c as u32).map(|c| (c, len))
}

/// `parse_string()`: the token includes its quotes.
fn parse_string(token: &[u8]) -> Parsed<String> {
    let body = &token[1..token.len().saturating_sub(1).max(1)];
    let mut out = String::new();
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'\\' {
            let (c, n) =
                utf8_char(&body[i..]).ok_or_else(|| error("invalid UTF-8 sequence in string"))?;
            out.push(c);
            i += n;
            continue;
        }
        let esc = body.get(i + 1).copied().unwrap_or(0);
        i += 2;
        let c = match esc {
            b'"' => '"',
            b'\'' => '\'',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let start = i - 2;
                let mut cp = hex4(&body[i..]);
                i += 4;
                if let Some(lead @ 0xD800..=0xDBFF) = cp {
                    if body.get(i..i + 2) == Some(b"\\u") {
                        cp = hex4(&body[i + 2..])
                            .filter(|t| (0xDC00..=0xDFFF).contains(t))
                            .map(|t| 0x10000 + ((lead & 0x3FF) << 10) + (t & 0x3FF));
                        i += 6;
                    }
                }
                match cp.and_then(valid_codepoint) {
                    Some(c) => c,
                    None => {
                        let seq = String::from_utf8_lossy(&body[start..i.min(body.len())]);
                        return Err(error(format!("{seq} is not a valid Unicode character")));
                    }
                }
            }
            _ => return Err(error("invalid escape sequence in string")),
        };
        out.push(c);
    }
    Ok(out)
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

    fn err(s: &str) -> Input {
        Input::Error(s.into())
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
        assert!(!sp.pending());
    }

    #[test]
    fn single_quotes_and_escapes() {
        assert_eq!(
            split(b"{'execute':'query-status','id':'q'}"),
            vec![Input::Value(json!({"execute": "query-status", "id": "q"}))]
        );
        assert_eq!(
            split(b"{'execute':'x','id':'q\\'\"\\u00e9\\ud83d\\ude00'}"),
            vec![Input::Value(
                json!({"execute": "x", "id": "q'\"\u{e9}\u{1F600}"})
            )]
        );
    }

    #[test]
    fn numbers_keep_their_width() {
        assert_eq!(
            split(b"[-1, 18446744073709551615, 1.5e3, 0]"),
            vec![Input::Value(json!([
                -1,
                18446744073709551615u64,
                1500.0,
                0
            ]))]
        );
    }

    #[test]
    fn parser_errors_use_qemus_words_and_recover() {
        let out = split(b"{\"execute\": foo}\n{\"execute\":\"b\"}");
        assert_eq!(out[0], err("JSON parse error, invalid keyword 'foo'"));
        assert_eq!(out[1], Input::Value(json!({"execute": "b"})));
        assert_eq!(split(b"}"), vec![err("JSON parse error, expecting value")]);
        assert_eq!(
            split(b"{\"execute\"}"),
            vec![err("JSON parse error, missing : in object pair")]
        );
        assert_eq!(
            split(b"{\"execute\":}"),
            vec![err("JSON parse error, expecting value")]
        );
        assert_eq!(
            split(b"{\"a\":1,\"a\":2}"),
            vec![err("JSON parse error, duplicate key")]
        );
        assert_eq!(
            split(b"{1:2}"),
            vec![err("JSON parse error, key is not a string in object")]
        );
    }

    #[test]
    fn a_control_character_is_one_stray_error_then_the_tail_is_skipped() {
        // QEMU: the string is an error, recovery skips to the next
        // structural character, and the lone `}` is a second error.
        let out = split(b"{\"execute\": \"a\x01b\"}\n{\"execute\":\"next\"}");
        assert_eq!(
            out,
            vec![
                err("JSON parse error, stray '\"a\x01'"),
                err("JSON parse error, expecting value"),
                Input::Value(json!({"execute": "next"})),
            ]
        );
        // A control character between messages resets quietly.
        let out = split(b"\x01{\"execute\":\"next\"}");
        assert_eq!(out[0], err("JSON parse error, stray '\x01'"));
        assert_eq!(out[1], Input::Value(json!({"execute": "next"})));
    }

    #[test]
    fn invalid_utf8_in_a_string_is_one_parse_error() {
        let out = split(b"{\"execute\": \"\xC3\x28\"}{\"execute\":\"n\"}");
        assert_eq!(
            out,
            vec![
                err("JSON parse error, invalid UTF-8 sequence in string"),
                Input::Value(json!({"execute": "n"})),
            ]
        );
    }

    #[test]
    fn nesting_is_limited_as_in_qemu() {
        let deep = |n: usize| {
            let mut s = vec![b'['; n];
            s.extend(vec![b']'; n]);
            s
        };
        // 1000 levels are fine.
        assert!(matches!(&split(&deep(1000))[..], [Input::Value(_)]));
        // 1025 open: the limit error, then the rest is parsed as QEMU does.
        let out = split(&deep(1025));
        assert_eq!(out[0], err("JSON nesting depth limit exceeded"));
        assert!(out[1..]
            .iter()
            .all(|i| *i == err("JSON parse error, expecting value")));
        assert_eq!(out.len(), 1 + 1025);
    }

    #[test]
    fn a_large_member_is_accepted() {
        let big = "x".repeat(1 << 20);
        let msg = format!("{{\"execute\":\"a\",\"arguments\":{{\"v\":\"{big}\"}}}}");
        let out = split(msg.as_bytes());
        assert_eq!(
            out,
            vec![Input::Value(
                json!({"execute": "a", "arguments": {"v": big}})
            )]
        );
    }
}
