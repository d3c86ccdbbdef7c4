//! The monitor's line editor, as QEMU's readline behaves on a terminal:
//! typed characters are echoed by redrawing the line (cursor back, the
//! line, erase to the end), with backspace, Ctrl-U, cursor keys, Home/End
//! and a history walked with Up/Down. Enter hands the line over.

/// What a byte did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Still editing; write this echo.
    Echo(Vec<u8>),
    /// A complete line (echo `\r\n` first).
    Line(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Escape {
    #[default]
    None,
    Esc,
    Csi,
}

/// One monitor's line editor.
#[derive(Debug, Default)]
pub struct Readline {
    buf: Vec<u8>,
    cursor: usize,
    shown_cursor: usize,
    shown: Vec<u8>,
    escape: Escape,
    csi_arg: Vec<u8>,
    history: Vec<String>,
    history_pos: Option<usize>,
}

const MAX_HISTORY: usize = 64;

impl Readline {
    /// A fresh editor with an empty line.
    pub fn new() -> Self {
        Self::default()
    }

    /// The redraw QEMU's readline does after an edit.
    fn redraw(&mut self) -> Vec<u8> {
        let mut o = Vec::new();
        if self.buf != self.shown {
            for _ in 0..self.shown_cursor {
                o.extend_from_slice(b"\x1b[D");
            }
            o.extend_from_slice(&self.buf);
            o.extend_from_slice(b"\x1b[K");
            self.shown = self.buf.clone();
            self.shown_cursor = self.buf.len();
        }
        while self.shown_cursor > self.cursor {
            o.extend_from_slice(b"\x1b[D");
            self.shown_cursor -= 1;
        }
        while self.shown_cursor < self.cursor {
            o.extend_from_slice(b"\x1b[C");
            self.shown_cursor += 1;
        }
        o
    }

    fn set_line(&mut self, line: &str) {
        self.buf = line.as_bytes().to_vec();
        self.cursor = self.buf.len();
    }

    fn history_step(&mut self, up: bool) {
        let n = self.history.len();
        let pos = match (self.history_pos, up) {
            (None, true) if n > 0 => Some(n - 1),
            (Some(p), true) => Some(p.saturating_sub(1)),
            (Some(p), false) if p + 1 < n => Some(p + 1),
            (Some(_), false) => None,
            (p, _) => p,
        };
        self.history_pos = pos;
        let line = pos.map(|p| self.history[p].clone()).unwrap_or_default();
        self.set_line(&line);
    }

    fn csi(&mut self, final_byte: u8) {
        match (final_byte, self.csi_arg.as_slice()) {
            (b'A', _) => self.history_step(true),
            (b'B', _) => self.history_step(false),
            (b'C', _) => self.cursor = (self.cursor + 1).min(self.buf.len()),
            (b'D', _) => self.cursor = self.cursor.saturating_sub(1),
            (b'H', _) | (b'~', b"1") => self.cursor = 0,
            (b'F', _) | (b'~', b"4") => self.cursor = self.buf.len(),
            (b'~', b"3") if self.cursor < self.buf.len() => {
                self.buf.remove(self.cursor);
            }
            _ => {}
        }
    }

    /// Feed one typed byte.
    pub fn feed(&mut self, b: u8) -> Edit {
        match self.escape {
            Escape::Esc => {
                self.escape = if b == b'[' || b == b'O' {
                    self.csi_arg.clear();
                    Escape::Csi
                } else {
                    Escape::None
                };
                return Edit::Echo(Vec::new());
            }
            Escape::Csi => {
                if b.is_ascii_digit() || b == b';' {
                    self.csi_arg.push(b);
                    return Edit::Echo(Vec::new());
                }
                self.escape = Escape::None;
                self.csi(b);
                return Edit::Echo(self.redraw());
            }
            Escape::None => {}
        }
        match b {
            b'\r' | b'\n' => {
                let line = String::from_utf8_lossy(&self.buf).into_owned();
                if !line.trim().is_empty() && self.history.last() != Some(&line) {
                    self.history.push(line.clone());
                    if self.history.len() > MAX_HISTORY {
                        self.history.remove(0);
                    }
                }
                self.history_pos = None;
                self.buf.clear();
                self.shown.clear();
                self.cursor = 0;
                self.shown_cursor = 0;
                return Edit::Line(line);
            }
            0x1b => self.escape = Escape::Esc,
            0x7f | 0x08 if self.cursor > 0 => {
                self.cursor -= 1;
                self.buf.remove(self.cursor);
            }
            0x15 => {
                self.buf.drain(..self.cursor);
                self.cursor = 0;
            }
            0x01 => self.cursor = 0,
            0x05 => self.cursor = self.buf.len(),
            0x20..=0x7e => {
                self.buf.insert(self.cursor, b);
                self.cursor += 1;
            }
            _ => {}
        }
        Edit::Echo(self.redraw())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(r: &mut Readline, text: &[u8]) -> (Vec<u8>, Option<String>) {
        let mut echo = Vec::new();
        for &b in text {
            match r.feed(b) {
                Edit::Echo(e) => echo.extend(e),
                Edit::Line(l) => return (echo, Some(l)),
            }
        }
        (echo, None)
    }

    #[test]
    fn echo_redraws_like_qemu() {
        let mut r = Readline::new();
        let (echo, line) = typed(&mut r, b"inf\r");
        assert_eq!(echo, b"i\x1b[K\x1b[Din\x1b[K\x1b[D\x1b[Dinf\x1b[K".to_vec());
        assert_eq!(line.as_deref(), Some("inf"));
    }

    #[test]
    fn backspace_kill_and_cursor_keys() {
        let mut r = Readline::new();
        assert_eq!(typed(&mut r, b"infx\x7fo\r").1.as_deref(), Some("info"));
        assert_eq!(typed(&mut r, b"junk\x15cont\r").1.as_deref(), Some("cont"));
        assert_eq!(typed(&mut r, b"ac\x1b[Db\r").1.as_deref(), Some("abc"));
    }

    #[test]
    fn history_walks_back() {
        let mut r = Readline::new();
        typed(&mut r, b"info status\r");
        typed(&mut r, b"stop\r");
        assert_eq!(
            typed(&mut r, b"\x1b[A\x1b[A\r").1.as_deref(),
            Some("info status")
        );
    }
}
