//! A console's output on its way to the backend, watched for boot
//! milestones: the first byte, Linux's well-known lines and the user's
//! "booted" pattern. The bytes pass through unchanged; the scan is a few
//! compares per byte until every line of this boot was seen, then nothing
//! but the first-byte check.

use std::io::Write;
use std::sync::Arc;

use crate::milestones::Milestones;

/// Linux lines every boot prints (unless `quiet`), in boot order: the
/// milestone's name and text the line contains (a name may have several
/// spellings; the first seen counts).
pub const LINUX_LINES: &[(&str, &str)] = &[
    ("linux-banner", "Linux version "),
    ("linux-initramfs", "Unpacking initramfs"),
    // Its spelling before Linux 6.1.y.
    (
        "linux-initramfs",
        "Trying to unpack rootfs image as initramfs",
    ),
    ("linux-free-initmem", "Freeing unused kernel image"),
    ("linux-run-init", " as init process"),
    ("linux-panic", "Kernel panic - not syncing"),
];

/// Longest line prefix kept for matching (Linux's lines are shorter; the
/// "booted" pattern is matched at the end of the kept text).
const LINE_MAX: usize = 512;

/// Wraps a console's writer.
pub struct ConsoleTap {
    inner: Box<dyn Write + Send>,
    name: String,
    rec: Arc<Milestones>,
    /// The boot the state below belongs to.
    generation: u64,
    first_seen: bool,
    /// The user's "booted" pattern (matched within one line).
    booted: Option<Vec<u8>>,
    booted_seen: bool,
    /// Indexes into [`LINUX_LINES`] not seen yet in this boot.
    pending: Vec<usize>,
    line: Vec<u8>,
}

impl std::fmt::Debug for ConsoleTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleTap")
            .field("name", &self.name)
            .finish()
    }
}

impl ConsoleTap {
    /// Watch `inner`, the console called `name` (`serial0`, `hvc0`).
    pub fn new(inner: Box<dyn Write + Send>, name: &str, rec: Arc<Milestones>) -> Self {
        ConsoleTap {
            inner,
            name: name.to_string(),
            generation: rec.generation(),
            booted: rec.booted_pattern().map(<[u8]>::to_vec),
            rec,
            first_seen: false,
            booted_seen: false,
            pending: (0..LINUX_LINES.len()).collect(),
            line: Vec::new(),
        }
    }

    fn scan(&mut self, bytes: &[u8]) {
        let g = self.rec.generation();
        if g != self.generation {
            self.generation = g;
            self.first_seen = false;
            self.booted_seen = false;
            self.pending = (0..LINUX_LINES.len()).collect();
            self.line.clear();
        }
        if !self.first_seen {
            self.first_seen = true;
            self.rec.console_first_byte(&self.name);
        }
        let want_booted = self.booted.is_some() && !self.booted_seen;
        if self.pending.is_empty() && !want_booted {
            return;
        }
        for &b in bytes {
            if b == b'\n' {
                self.end_line();
                continue;
            }
            if self.line.len() == LINE_MAX {
                self.line.drain(..LINE_MAX / 2);
            }
            self.line.push(b);
            if let Some(p) = &self.booted {
                if !self.booted_seen && p.last() == Some(&b) && self.line.ends_with(p) {
                    self.booted_seen = true;
                    self.rec.booted(&self.name);
                }
            }
        }
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        let rec = &self.rec;
        let name = &self.name;
        self.pending.retain(|&i| {
            let (milestone, text) = LINUX_LINES[i];
            if contains(&line, text.as_bytes()) {
                // Seen on another console first: done here too.
                rec.console_line(milestone, name);
                false
            } else {
                true
            }
        });
        self.line = line;
        self.line.clear();
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

impl Write for ConsoleTap {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.scan(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use cpu::{Clock, ClockMode};
    use serde_json::Value;

    use super::*;
    use crate::events::Events;
    use crate::milestones::BootReportConfig;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn milestones(booted: Option<&str>) -> Arc<Milestones> {
        let cfg = BootReportConfig {
            target: None,
            booted: booted.map(str::to_string),
        };
        let clock = Arc::new(Clock::new(ClockMode::Host, 1_000_000));
        Arc::new(Milestones::new(clock, "tcg", true, &cfg, Arc::new(Events::default())).unwrap())
    }

    fn seen(m: &Milestones) -> Vec<(String, String)> {
        m.report()["milestones"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["name"].as_str().unwrap().to_string(),
                    v["console"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn bytes_pass_through_and_linux_lines_are_found_once_per_boot() {
        let m = milestones(Some("login: "));
        let out = Shared::default();
        let mut tap = ConsoleTap::new(Box::new(out.clone()), "serial0", m.clone());
        let text = "[    0.000000] Linux version 6.1.0 (gcc)\r\n\
                    [    0.5] Trying to unpack rootfs image as initramfs...\r\n\
                    [    0.9] Freeing unused kernel image (initmem) memory: 1024K\r\n\
                    [    0.9] Run /init as init process\r\n\
                    Linux version again\r\n\
                    box login: ";
        // Byte by byte, as the UART sends it.
        for b in text.as_bytes() {
            tap.write_all(std::slice::from_ref(b)).unwrap();
        }
        assert_eq!(out.0.lock().unwrap().as_slice(), text.as_bytes());
        let want: Vec<(String, String)> = [
            "console-first-byte",
            "linux-banner",
            "linux-initramfs",
            "linux-free-initmem",
            "linux-run-init",
            "booted",
        ]
        .iter()
        .map(|n| (n.to_string(), "serial0".to_string()))
        .collect();
        assert_eq!(seen(&m), want);
        m.new_boot();
        tap.write_all(b"Linux version 6.1.0\n").unwrap();
        assert_eq!(
            seen(&m),
            [
                ("console-first-byte".into(), "serial0".into()),
                ("linux-banner".into(), "serial0".into())
            ]
        );
    }

    #[test]
    fn each_console_has_its_first_byte_and_long_lines_are_bounded() {
        let m = milestones(Some("READY"));
        let mut a = ConsoleTap::new(Box::new(std::io::sink()), "serial0", m.clone());
        let mut b = ConsoleTap::new(Box::new(std::io::sink()), "hvc0", m.clone());
        a.write_all(&[b'x'; 5000]).unwrap();
        assert!(a.line.len() <= LINE_MAX);
        b.write_all(b"...READY").unwrap();
        let got = seen(&m);
        assert_eq!(
            got,
            [
                ("console-first-byte".into(), "serial0".into()),
                ("console-first-byte".into(), "hvc0".into()),
                ("booted".into(), "hvc0".into())
            ]
        );
        let _: Value = m.report();
    }
}
