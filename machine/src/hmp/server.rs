//! HMP over sockets (`-monitor unix:...|tcp:...`, `-mon
//! chardev=ID,mode=readline` on a socket chardev): a listener thread per
//! monitor, a session per client, each client served on its own thread.

use std::io::{Read, Write};
use std::sync::Arc;

use qmp::{Endpoint, MonitorConfig};

use super::session::Session;
use crate::monitor::MonitorContext;

fn serve(ctx: Arc<MonitorContext>, mut reader: impl Read, mut writer: impl Write) {
    let mut session = Session::new(ctx);
    if writer.write_all(Session::banner().as_bytes()).is_err() {
        return;
    }
    let mut buf = [0u8; 512];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Line by line: a reply must be out before the next line runs
        // (`quit` ends the process).
        for line in buf[..n].split_inclusive(|b| *b == b'\r' || *b == b'\n') {
            let out = session.feed(line);
            if writer.write_all(&out).is_err() {
                return;
            }
        }
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new().name(name).spawn(f).map(|_| ())
}

/// Start listening for HMP clients on `m`'s socket.
pub fn start(ctx: Arc<MonitorContext>, m: &MonitorConfig, index: usize) -> std::io::Result<()> {
    match &m.endpoint {
        Endpoint::Unix(path) => {
            let _ = std::fs::remove_file(path);
            let l = std::os::unix::net::UnixListener::bind(path)?;
            spawn(format!("hmp-listen-{index}"), move || {
                for stream in l.incoming().flatten() {
                    let Ok(w) = stream.try_clone() else { continue };
                    let c = ctx.clone();
                    let _ = spawn("hmp".into(), move || serve(c, stream, w));
                }
            })
        }
        Endpoint::Tcp { host, port } => {
            let h = if host.is_empty() { "0.0.0.0" } else { host };
            let l = std::net::TcpListener::bind((h, *port))?;
            spawn(format!("hmp-listen-{index}"), move || {
                for stream in l.incoming().flatten() {
                    let _ = stream.set_nodelay(true);
                    let Ok(w) = stream.try_clone() else { continue };
                    let c = ctx.clone();
                    let _ = spawn("hmp".into(), move || serve(c, stream, w));
                }
            })
        }
        Endpoint::Stdio => spawn(format!("hmp-stdio-{index}"), move || {
            serve(ctx, std::io::stdin(), crate::chardev::StdoutWriter)
        }),
    }
}
