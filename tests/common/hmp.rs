//! A human-monitor client for tests: types a command line as a terminal
//! would (ending in CR) and returns the reply without the echo and the
//! prompt, with `\n` line ends. Talks to QEMU and Kindling alike.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// The prompt both monitors print.
pub const PROMPT: &str = "(qemu) ";

/// A connected monitor.
pub struct Hmp {
    stream: Box<dyn ReadWrite>,
    /// The greeting line (`QEMU X.Y.Z monitor - type 'help' ...`).
    pub banner: String,
}

/// A byte stream both ways.
pub trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

/// Bytes up to and including the next prompt that ends the output.
fn read_to_prompt(s: &mut dyn ReadWrite) -> String {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < Duration::from_secs(30) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("monitor read: {e}"),
        }
        if got.ends_with(PROMPT.as_bytes()) {
            break;
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// The reply part of a monitor's output for one typed line: after the
/// echo's line end, before the prompt.
pub fn reply_of(raw: &str) -> String {
    let body = raw.strip_suffix(PROMPT).unwrap_or(raw);
    let after_echo = body.split_once("\r\n").map(|(_, r)| r).unwrap_or("");
    after_echo.replace("\r\n", "\n")
}

impl Hmp {
    /// Wrap a connected stream and read the greeting.
    pub fn over(mut stream: Box<dyn ReadWrite>) -> Hmp {
        let banner = read_to_prompt(stream.as_mut());
        assert!(banner.contains("monitor - type 'help'"), "{banner:?}");
        Hmp { stream, banner }
    }

    /// Connect to a Unix-socket monitor (retrying until it listens).
    pub fn unix(path: &Path) -> Hmp {
        let start = Instant::now();
        let s = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if start.elapsed() > Duration::from_secs(20) => {
                    panic!("connect {}: {e}", path.display())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Hmp::over(Box::new(s))
    }

    /// Connect to a TCP monitor.
    pub fn tcp(port: u16) -> Hmp {
        let start = Instant::now();
        let s = loop {
            match std::net::TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(e) if start.elapsed() > Duration::from_secs(20) => panic!("connect: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Hmp::over(Box::new(s))
    }

    /// Type `line` and Enter; returns the reply.
    pub fn cmd(&mut self, line: &str) -> String {
        self.stream
            .write_all(format!("{line}\r").as_bytes())
            .unwrap();
        reply_of(&read_to_prompt(self.stream.as_mut()))
    }
}
