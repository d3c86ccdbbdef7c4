//! One interactive monitor: the banner, the `(qemu) ` prompt, the line
//! editor's echo and each command's reply, with QEMU's `\r\n` line ends.
//! Transports (the stdio mux, sockets) feed it bytes and write what it
//! returns.

use std::sync::Arc;

use super::readline::{Edit, Readline};
use crate::monitor::MonitorContext;

/// The prompt QEMU prints.
pub const PROMPT: &str = "(qemu) ";

/// Text with `\n` line ends as the monitor sends it (`\r\n`).
pub fn crlf(text: &str) -> String {
    text.replace('\n', "\r\n")
}

/// One interactive HMP session.
pub struct Session {
    ctx: Arc<MonitorContext>,
    editor: Readline,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session")
    }
}

impl Session {
    /// A session on the machine `ctx` serves.
    pub fn new(ctx: Arc<MonitorContext>) -> Self {
        Session {
            ctx,
            editor: Readline::new(),
        }
    }

    /// QEMU's greeting and the first prompt.
    pub fn banner() -> String {
        format!(
            "QEMU {} monitor - type 'help' for more information\r\n{PROMPT}",
            crate::QEMU_COMPAT_VERSION
        )
    }

    /// Feed typed bytes; returns what to write back.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in bytes {
            match self.editor.feed(b) {
                Edit::Echo(e) => out.extend(e),
                Edit::Line(line) => {
                    out.extend_from_slice(b"\r\n");
                    let reply = super::execute(&self.ctx, &line);
                    out.extend(crlf(&reply).into_bytes());
                    out.extend_from_slice(PROMPT.as_bytes());
                }
            }
        }
        out
    }
}
