//! QEMU's stdio multiplexer (`mon:stdio`, and `-nographic`'s default):
//! the console and the human monitor share the terminal. Typed bytes go
//! to the frontend in focus; Ctrl-A starts an escape: `c` switches focus,
//! `x` quits, `h` prints help, Ctrl-A again sends a Ctrl-A. Output from
//! both frontends reaches the terminal.

use crate::hmp::session::Session;

const CTRL_A: u8 = 1;

/// What the mux asks its owner to do with a run of typed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MuxAction {
    /// Bytes for the guest's console.
    Guest(Vec<u8>),
    /// Text for the terminal (the monitor's replies, help).
    Terminal(Vec<u8>),
    /// Ctrl-A X: quit.
    Quit,
}

/// QEMU's Ctrl-A help, the lines for what this mux offers.
pub fn escape_help(monitor: bool) -> String {
    let mut s = String::from("\r\nC-a h    print this help\r\nC-a x    exit emulator\r\n");
    if monitor {
        s.push_str("C-a c    switch between console and monitor\r\n");
    }
    s.push_str("C-a C-a  sends C-a\r\n");
    s
}

/// The stdio mux: escape decoding and focus.
#[derive(Debug)]
pub struct Mux {
    pending_escape: bool,
    monitor: Option<Session>,
    monitor_focused: bool,
    greeted: bool,
}

impl Mux {
    /// A mux whose Ctrl-A C reaches `monitor` (none: console only).
    pub fn new(monitor: Option<Session>) -> Self {
        Mux {
            pending_escape: false,
            monitor,
            monitor_focused: false,
            greeted: false,
        }
    }

    /// Whether the monitor has the focus.
    pub fn monitor_focused(&self) -> bool {
        self.monitor_focused
    }

    fn send_to_focus(&mut self, bytes: &[u8], out: &mut Vec<MuxAction>) {
        if bytes.is_empty() {
            return;
        }
        let action = match (&mut self.monitor, self.monitor_focused) {
            (Some(m), true) => MuxAction::Terminal(m.feed(bytes)),
            _ => MuxAction::Guest(bytes.to_vec()),
        };
        match (out.last_mut(), action) {
            (Some(MuxAction::Guest(g)), MuxAction::Guest(b)) => g.extend(b),
            (Some(MuxAction::Terminal(t)), MuxAction::Terminal(b)) => t.extend(b),
            (_, a) => out.push(a),
        }
    }

    fn switch(&mut self, out: &mut Vec<MuxAction>) {
        if self.monitor.is_none() {
            return;
        }
        self.monitor_focused = !self.monitor_focused;
        let text = if !self.monitor_focused {
            "\r\n".to_string()
        } else if self.greeted {
            crate::hmp::session::PROMPT.to_string()
        } else {
            self.greeted = true;
            Session::banner()
        };
        out.push(MuxAction::Terminal(text.into_bytes()));
    }

    /// Decode typed bytes.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<MuxAction> {
        let mut out = Vec::new();
        let mut run = Vec::new();
        for &b in bytes {
            if !self.pending_escape {
                if b == CTRL_A {
                    self.pending_escape = true;
                } else {
                    run.push(b);
                }
                continue;
            }
            self.pending_escape = false;
            match b {
                CTRL_A => run.push(CTRL_A),
                b'x' | b'X' => {
                    self.send_to_focus(&std::mem::take(&mut run), &mut out);
                    out.push(MuxAction::Quit);
                    return out;
                }
                b'h' | b'H' | b'?' => {
                    self.send_to_focus(&std::mem::take(&mut run), &mut out);
                    let help = escape_help(self.monitor.is_some());
                    out.push(MuxAction::Terminal(help.into_bytes()));
                }
                b'c' | b'C' => {
                    self.send_to_focus(&std::mem::take(&mut run), &mut out);
                    self.switch(&mut out);
                }
                _ => {}
            }
        }
        self.send_to_focus(&run, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_a_escapes_without_a_monitor() {
        let mut m = Mux::new(None);
        assert_eq!(m.feed(b"ab"), vec![MuxAction::Guest(b"ab".to_vec())]);
        assert_eq!(m.feed(&[1, 1]), vec![MuxAction::Guest(vec![1])]);
        assert_eq!(m.feed(&[1]), vec![]);
        assert_eq!(m.feed(b"z"), vec![], "unknown escapes are dropped");
        assert_eq!(
            m.feed(&[1, b'h']),
            vec![MuxAction::Terminal(escape_help(false).into_bytes())]
        );
        // Ctrl-A C does nothing without a monitor.
        assert_eq!(
            m.feed(&[1, b'c', b'q']),
            vec![MuxAction::Guest(b"q".to_vec())]
        );
        assert_eq!(
            m.feed(&[b'k', 1, b'x', b'y']),
            vec![MuxAction::Guest(b"k".to_vec()), MuxAction::Quit]
        );
    }

    #[test]
    fn help_mentions_the_monitor_switch_only_with_a_monitor() {
        assert!(escape_help(true).contains("C-a c    switch between console and monitor"));
        assert!(!escape_help(false).contains("C-a c"));
    }
}
