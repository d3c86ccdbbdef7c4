//! Where the devices' `log` records go: stderr, in QEMU's message style
//! (`kindling: warning: ...`), warnings and errors by default, more with
//! `KINDLING_LOG=info|debug|trace`. Hand-written rather than env_logger:
//! it is one `eprint!` in QEMU's format, and on a terminal it ends lines
//! with CR LF so messages stay readable while `-serial stdio` holds the
//! terminal in raw mode.

use log::{Level, LevelFilter, Log, Metadata, Record};

struct StderrLog {
    prog: String,
    crlf: bool,
}

impl Log for StderrLog {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let kind = match record.level() {
            Level::Error => "",
            Level::Warn => "warning: ",
            Level::Info => "info: ",
            Level::Debug | Level::Trace => "debug: ",
        };
        let end = if self.crlf { "\r\n" } else { "\n" };
        eprint!("{}: {kind}{}{end}", self.prog, record.args());
    }

    fn flush(&self) {}
}

/// Send log records to stderr as `prog: warning: message`.
pub fn init(prog: &str) {
    let level = match std::env::var("KINDLING_LOG").as_deref() {
        Ok("error") => LevelFilter::Error,
        Ok("info") => LevelFilter::Info,
        Ok("debug") => LevelFilter::Debug,
        Ok("trace") => LevelFilter::Trace,
        Ok("off") => LevelFilter::Off,
        _ => LevelFilter::Warn,
    };
    // SAFETY: isatty only inspects the descriptor.
    let crlf = unsafe { libc::isatty(2) } == 1;
    let logger = Box::new(StderrLog {
        prog: prog.to_string(),
        crlf,
    });
    if log::set_logger(Box::leak(logger)).is_ok() {
        log::set_max_level(level);
    }
}
