//! The monitor server: listeners, connections, negotiation, dispatch and
//! event delivery.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::endpoint::{Endpoint, MonitorConfig};
use crate::error::QmpError;
use crate::schema;
use crate::stream::{Input, Splitter};

/// What the board implements: every command the crate does not answer itself.
pub trait CommandHandler: Send + Sync {
    /// Run `name` with validated `args`; the reply's `return` value or an error.
    fn execute(&self, name: &str, args: &Map<String, Value>) -> Result<Value, QmpError>;
}

/// The version the greeting and `query-version` report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Micro.
    pub micro: u64,
    /// Package string (names Kindling).
    pub package: String,
}

impl VersionInfo {
    /// QEMU's version object.
    pub fn to_json(&self) -> Value {
        json!({"qemu": {"micro": self.micro, "minor": self.minor, "major": self.major}, "package": self.package})
    }
}

struct Conn {
    out: Mutex<Box<dyn Write + Send>>,
    negotiated: AtomicBool,
    pretty: bool,
    alive: AtomicBool,
}

impl Conn {
    fn send(&self, v: &Value) -> bool {
        let mut text = if self.pretty {
            let mut buf = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            if v.serialize(&mut ser).is_err() {
                return false;
            }
            buf
        } else {
            match serde_json::to_vec(v) {
                Ok(b) => b,
                Err(_) => return false,
            }
        };
        text.extend_from_slice(b"\r\n");
        let ok = match self.out.lock() {
            Ok(mut o) => o.write_all(&text).and_then(|_| o.flush()).is_ok(),
            Err(_) => false,
        };
        if !ok {
            self.alive.store(false, Ordering::SeqCst);
        }
        ok
    }
}

struct Shared {
    handler: Arc<dyn CommandHandler>,
    version: VersionInfo,
    conns: Mutex<Vec<Arc<Conn>>>,
    /// Serialises event delivery so every client sees the same order.
    event_lock: Mutex<()>,
    inflight: AtomicUsize,
    /// Per monitor: has a client ever connected (for `wait=on`).
    connected: Mutex<Vec<bool>>,
    connected_cond: Condvar,
    monitors: Vec<MonitorConfig>,
}

/// A running set of monitors. Cheap to clone.
#[derive(Clone)]
pub struct QmpServer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for QmpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QmpServer")
            .field("monitors", &self.shared.monitors)
            .finish()
    }
}

/// Error from starting a monitor.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct StartError {
    /// Which endpoint.
    pub what: String,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

impl QmpServer {
    /// Bind every monitor's endpoint and start serving.
    pub fn start(
        monitors: Vec<MonitorConfig>,
        handler: Arc<dyn CommandHandler>,
        version: VersionInfo,
    ) -> Result<QmpServer, StartError> {
        let shared = Arc::new(Shared {
            handler,
            version,
            conns: Mutex::new(Vec::new()),
            event_lock: Mutex::new(()),
            inflight: AtomicUsize::new(0),
            connected: Mutex::new(vec![false; monitors.len()]),
            connected_cond: Condvar::new(),
            monitors: monitors.clone(),
        });
        for (i, m) in monitors.iter().enumerate() {
            let err = |e: std::io::Error| StartError {
                what: format!("-qmp {}", m.filename()),
                source: e,
            };
            match &m.endpoint {
                Endpoint::Unix(path) => {
                    let _ = std::fs::remove_file(path);
                    let l = UnixListener::bind(path).map_err(err)?;
                    let s = shared.clone();
                    let pretty = m.pretty;
                    spawn(format!("qmp-listen-{i}"), move || loop {
                        match l.accept() {
                            Ok((stream, _)) => match stream.try_clone() {
                                Ok(w) => s.clone().serve(i, Box::new(stream), Box::new(w), pretty),
                                Err(e) => log::warn!("qmp: {e}"),
                            },
                            Err(e) => log::warn!("qmp accept: {e}"),
                        }
                    })
                    .map_err(err)?;
                }
                Endpoint::Tcp { host, port } => {
                    let h = if host.is_empty() { "0.0.0.0" } else { host };
                    let l = std::net::TcpListener::bind((h, *port)).map_err(err)?;
                    let s = shared.clone();
                    let pretty = m.pretty;
                    spawn(format!("qmp-listen-{i}"), move || loop {
                        match l.accept() {
                            Ok((stream, _)) => {
                                let _ = stream.set_nodelay(true);
                                match stream.try_clone() {
                                    Ok(w) => {
                                        s.clone().serve(i, Box::new(stream), Box::new(w), pretty)
                                    }
                                    Err(e) => log::warn!("qmp: {e}"),
                                }
                            }
                            Err(e) => log::warn!("qmp accept: {e}"),
                        }
                    })
                    .map_err(err)?;
                }
                Endpoint::Stdio => {
                    shared.clone().serve(
                        i,
                        Box::new(std::io::stdin()),
                        Box::new(std::io::stdout()),
                        m.pretty,
                    );
                }
            }
        }
        Ok(QmpServer { shared })
    }

    /// Publish an event to every negotiated client of every monitor.
    pub fn emit(&self, name: &str, data: Option<Value>) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH);
        let (secs, micros) = match now {
            Ok(d) => (d.as_secs() as i64, i64::from(d.subsec_micros())),
            Err(_) => (-1, -1),
        };
        let mut ev = json!({"timestamp": {"seconds": secs, "microseconds": micros}, "event": name});
        if let Some(d) = data {
            ev["data"] = d;
        }
        let _order = self.shared.event_lock.lock();
        let conns = self
            .shared
            .conns
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        for c in conns {
            if c.alive.load(Ordering::SeqCst) && c.negotiated.load(Ordering::SeqCst) {
                c.send(&ev);
            }
        }
    }

    /// Block until every `wait=on` monitor has had a client (QEMU holds
    /// the machine until then).
    pub fn wait_for_clients(&self) {
        let waits: Vec<bool> = self.shared.monitors.iter().map(|m| m.wait).collect();
        let mut c = self
            .shared
            .connected
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        while waits.iter().zip(c.iter()).any(|(w, c)| *w && !*c) {
            c = self
                .shared
                .connected_cond
                .wait(c)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Wait (up to `timeout`) for commands being executed to send their
    /// replies, e.g. `quit`'s, before the process exits.
    pub fn drain(&self, timeout: Duration) {
        let start = Instant::now();
        while self.shared.inflight.load(Ordering::SeqCst) > 0 && start.elapsed() < timeout {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// `query-chardev` entries for the monitors.
    pub fn chardevs(&self) -> Vec<Value> {
        self.shared
            .monitors
            .iter()
            .map(|m| json!({"frontend-open": true, "filename": m.filename(), "label": m.label}))
            .collect()
    }

    /// The monitors being served.
    pub fn monitors(&self) -> &[MonitorConfig] {
        &self.shared.monitors
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new().name(name).spawn(f).map(|_| ())
}

impl Shared {
    fn serve(
        self: Arc<Self>,
        monitor: usize,
        mut input: Box<dyn Read + Send>,
        output: Box<dyn Write + Send>,
        pretty: bool,
    ) {
        let conn = Arc::new(Conn {
            out: Mutex::new(output),
            negotiated: AtomicBool::new(false),
            pretty,
            alive: AtomicBool::new(true),
        });
        let me = self.clone();
        let c = conn.clone();
        let r = spawn(format!("qmp-conn-{monitor}"), move || {
            if let Ok(mut v) = me.conns.lock() {
                v.push(c.clone());
            }
            c.send(&json!({"QMP": {"version": me.version.to_json(), "capabilities": ["oob"]}}));
            if let Ok(mut cs) = me.connected.lock() {
                if let Some(x) = cs.get_mut(monitor) {
                    *x = true;
                }
                me.connected_cond.notify_all();
            }
            let mut splitter = Splitter::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut inputs = Vec::new();
            while c.alive.load(Ordering::SeqCst) {
                let n = match input.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                splitter.feed(&buf[..n], &mut inputs);
                for i in inputs.drain(..) {
                    me.inflight.fetch_add(1, Ordering::SeqCst);
                    let reply = me.dispatch(&c, i);
                    c.send(&reply);
                    me.inflight.fetch_sub(1, Ordering::SeqCst);
                }
            }
            c.alive.store(false, Ordering::SeqCst);
            if let Ok(mut v) = me.conns.lock() {
                v.retain(|x| !Arc::ptr_eq(x, &c));
            }
        });
        if let Err(e) = r {
            log::warn!("qmp: cannot start connection thread: {e}");
        }
    }

    /// Turn one input into its reply.
    fn dispatch(&self, conn: &Conn, input: Input) -> Value {
        let v = match input {
            Input::Value(v) => v,
            Input::Error(desc) => return json!({"error": QmpError::generic(desc).to_json()}),
        };
        let Value::Object(req) = v else {
            return json!({"error": QmpError::generic("QMP input must be a JSON object").to_json()});
        };
        let id = req.get("id").cloned();
        let reply = |r: Result<Value, QmpError>| -> Value {
            let mut out = match r {
                Ok(v) => json!({"return": v}),
                Err(e) => json!({"error": e.to_json()}),
            };
            if let Some(id) = &id {
                out["id"] = id.clone();
            }
            out
        };
        reply(self.run(conn, &req))
    }

    fn run(&self, conn: &Conn, req: &Map<String, Value>) -> Result<Value, QmpError> {
        let mut name = None;
        let mut oob = false;
        for (k, v) in req {
            match k.as_str() {
                "execute" | "exec-oob" => {
                    oob = k == "exec-oob";
                    name = Some(v.as_str().ok_or_else(|| {
                        QmpError::generic(format!("QMP input member '{k}' must be a string"))
                    })?);
                }
                "arguments" => {
                    if !v.is_object() {
                        return Err(QmpError::generic(
                            "QMP input member 'arguments' must be an object",
                        ));
                    }
                }
                "id" | "control" => {}
                _ => {
                    return Err(QmpError::generic(format!(
                        "QMP input member '{k}' is unexpected"
                    )))
                }
            }
        }
        let name = name.ok_or_else(|| QmpError::generic("QMP input lacks member 'execute'"))?;
        let empty = Map::new();
        let args = req
            .get("arguments")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let negotiated = conn.negotiated.load(Ordering::SeqCst);
        if !negotiated {
            if name != "qmp_capabilities" {
                return Err(QmpError::not_found(
                    "Expecting capabilities negotiation with 'qmp_capabilities'",
                ));
            }
        } else if name == "qmp_capabilities" {
            return Err(QmpError::not_found(
                "Capabilities negotiation is already complete, command ignored",
            ));
        }
        let cmd = schema::command(name)
            .ok_or_else(|| QmpError::not_found(format!("The command {name} has not been found")))?;
        if oob && !cmd.allow_oob {
            return Err(QmpError::generic(format!(
                "The command {name} does not support OOB"
            )));
        }
        schema::validate(cmd, args)?;
        match name {
            "qmp_capabilities" => {
                if let Some(list) = args.get("enable").and_then(Value::as_array) {
                    for (i, c) in list.iter().enumerate() {
                        if c.as_str() != Some("oob") {
                            return Err(QmpError::generic(format!(
                                "Parameter 'enable[{i}]' does not accept value '{}'",
                                c.as_str().unwrap_or("")
                            )));
                        }
                    }
                }
                conn.negotiated.store(true, Ordering::SeqCst);
                Ok(json!({}))
            }
            "query-commands" => Ok(schema::query_commands()),
            "query-qmp-schema" => Ok(schema::query_qmp_schema()),
            "query-version" => Ok(self.version.to_json()),
            _ => self.handler.execute(name, args),
        }
    }
}
