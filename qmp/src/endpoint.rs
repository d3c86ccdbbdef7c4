//! Where a monitor listens, from QEMU's `-qmp`, `-mon` and `-chardev
//! socket` spellings.

use std::path::PathBuf;

/// A monitor's transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A listening Unix socket.
    Unix(PathBuf),
    /// A listening TCP socket.
    Tcp {
        /// Host name or address ("" = all addresses).
        host: String,
        /// Port.
        port: u16,
    },
    /// The process's stdin/stdout.
    Stdio,
}

/// One monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorConfig {
    /// Transport.
    pub endpoint: Endpoint,
    /// Hold the guest until a client connects (`wait=on`).
    pub wait: bool,
    /// Pretty-print replies.
    pub pretty: bool,
    /// The chardev label (`query-chardev`).
    pub label: String,
}

impl MonitorConfig {
    /// QEMU's `filename` for `query-chardev`.
    pub fn filename(&self) -> String {
        match &self.endpoint {
            Endpoint::Unix(p) => format!("unix:{},server=on", p.display()),
            Endpoint::Tcp { host, port } => format!("tcp:{host}:{port},server=on"),
            Endpoint::Stdio => "stdio".into(),
        }
    }
}

fn boolean(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "on" | "yes" | "true" | "y" => Ok(true),
        "off" | "no" | "false" | "n" => Ok(false),
        _ => Err(format!("Parameter '{key}' expects 'on' or 'off'")),
    }
}

/// Socket options shared by `-qmp` and `-chardev socket`.
#[derive(Debug, Default)]
struct SocketOpts {
    server: Option<bool>,
    wait: Option<bool>,
}

impl SocketOpts {
    fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
        match key {
            "server" => self.server = Some(boolean(key, value)?),
            "wait" => self.wait = Some(boolean(key, value)?),
            "nowait" => self.wait = Some(false),
            "nodelay" | "ipv4" | "ipv6" | "reconnect" | "telnet" | "websocket" | "mux"
            | "logfile" | "logappend" | "signal" => {}
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn wait(&self) -> Result<bool, String> {
        if self.server != Some(true) {
            return Err(
                "monitor sockets must be servers: add server=on (client sockets are not supported)"
                    .into(),
            );
        }
        // QEMU's default for a server socket is to wait for a client.
        Ok(self.wait.unwrap_or(true))
    }
}

/// Split QEMU's `a,b=c,,d` option syntax (`,,` is a literal comma; a bare
/// word is `word=on`, a `noword` is `word=off`).
fn split_opts(s: &str) -> Vec<(String, String)> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == ',' {
            if it.peek() == Some(&',') {
                it.next();
                cur.push(',');
            } else {
                parts.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => match p.strip_prefix("no") {
                Some(k) if k == "wait" || k == "delay" || k == "server" => {
                    (k.to_string(), "off".into())
                }
                _ => (p, "on".into()),
            },
        })
        .collect()
}

fn tcp(addr: &str) -> Result<Endpoint, String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("'tcp:{addr}': port is missing"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("'{port}' is not a valid port"))?;
    Ok(Endpoint::Tcp {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
    })
}

/// Parse a `-qmp` (or `-qmp-pretty`) value: `unix:PATH,server=on,wait=off`,
/// `tcp:HOST:PORT,server=on,wait=off`, or `stdio`.
pub fn parse_qmp_arg(value: &str, pretty: bool, index: usize) -> Result<MonitorConfig, String> {
    let label = format!("compat_monitor{index}");
    if value == "stdio" {
        return Ok(MonitorConfig {
            endpoint: Endpoint::Stdio,
            wait: false,
            pretty,
            label,
        });
    }
    let mut opts = split_opts(value).into_iter();
    let (first, _) = opts.next().ok_or("empty monitor specification")?;
    let endpoint = if let Some(p) = first.strip_prefix("unix:") {
        if p.is_empty() {
            return Err("unix socket path is missing".into());
        }
        Endpoint::Unix(PathBuf::from(p))
    } else if let Some(a) = first.strip_prefix("tcp:") {
        tcp(a)?
    } else {
        return Err(format!("'{first}' is not a valid char driver"));
    };
    let mut so = SocketOpts::default();
    for (k, v) in opts {
        if !so.set(&k, &v)? {
            return Err(format!("Invalid parameter '{k}'"));
        }
    }
    Ok(MonitorConfig {
        endpoint,
        wait: so.wait()?,
        pretty,
        label,
    })
}

/// A `-chardev socket,id=ID,...` definition (parameters without `backend`).
pub fn parse_socket_chardev(
    id: &str,
    params: &[(String, String)],
) -> Result<MonitorConfig, String> {
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let endpoint = match (get("path"), get("host"), get("port")) {
        (Some(p), _, _) => Endpoint::Unix(PathBuf::from(p)),
        (None, host, Some(port)) => Endpoint::Tcp {
            host: host.unwrap_or("").to_string(),
            port: port
                .parse()
                .map_err(|_| format!("'{port}' is not a valid port"))?,
        },
        _ => return Err("chardev: socket: no address given (path= or host=,port=)".into()),
    };
    let mut so = SocketOpts::default();
    for (k, v) in params {
        if k == "id" || k == "path" || k == "host" || k == "port" {
            continue;
        }
        if !so.set(k, v)? {
            return Err(format!("Invalid parameter '{k}'"));
        }
    }
    Ok(MonitorConfig {
        endpoint,
        wait: so.wait()?,
        pretty: false,
        label: id.to_string(),
    })
}

/// A `-mon chardev=ID,mode=control[,pretty=on]` value: the chardev id and
/// whether replies are pretty-printed.
pub fn parse_mon_arg(value: &str) -> Result<(String, bool), String> {
    let mut chardev = None;
    let mut pretty = false;
    let mut control = false;
    for (i, (k, v)) in split_opts(value).into_iter().enumerate() {
        match k.as_str() {
            "chardev" => chardev = Some(v),
            "mode" => match v.as_str() {
                "control" => control = true,
                "readline" => return Err(
                    "the human monitor (mode=readline) is not supported; use mode=control (QMP)"
                        .into(),
                ),
                other => return Err(format!("Parameter 'mode' does not accept value '{other}'")),
            },
            "pretty" => pretty = boolean("pretty", &v)?,
            "default" => {}
            _ if i == 0 && v == "on" => chardev = Some(k),
            _ => return Err(format!("Invalid parameter '{k}'")),
        }
    }
    if !control {
        return Err(
            "the human monitor (mode=readline) is not supported; use mode=control (QMP)".into(),
        );
    }
    Ok((chardev.ok_or("Parameter 'chardev' is missing")?, pretty))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qmp_spellings() {
        let m = parse_qmp_arg("unix:/tmp/q.sock,server=on,wait=off", false, 0).unwrap();
        assert_eq!(m.endpoint, Endpoint::Unix("/tmp/q.sock".into()));
        assert!(!m.wait);
        assert_eq!(m.filename(), "unix:/tmp/q.sock,server=on");
        let m = parse_qmp_arg("unix:/tmp/q.sock,server,nowait", true, 1).unwrap();
        assert!(!m.wait && m.pretty);
        assert_eq!(m.label, "compat_monitor1");
        assert!(
            parse_qmp_arg("unix:/tmp/q.sock,server=on", false, 0)
                .unwrap()
                .wait
        );
        let m = parse_qmp_arg("tcp:127.0.0.1:4444,server=on,wait=off", false, 0).unwrap();
        assert_eq!(
            m.endpoint,
            Endpoint::Tcp {
                host: "127.0.0.1".into(),
                port: 4444
            }
        );
        assert_eq!(
            parse_qmp_arg("stdio", false, 0).unwrap().endpoint,
            Endpoint::Stdio
        );
        assert!(parse_qmp_arg("unix:/tmp/q.sock", false, 0).is_err());
        assert!(parse_qmp_arg("bogus:x", false, 0).is_err());
        assert!(parse_qmp_arg("tcp:host:notaport,server=on", false, 0).is_err());
    }

    #[test]
    fn chardev_and_mon() {
        let p = vec![
            ("path".to_string(), "/tmp/m.sock".to_string()),
            ("server".to_string(), "on".to_string()),
            ("wait".to_string(), "off".to_string()),
        ];
        let m = parse_socket_chardev("mon0", &p).unwrap();
        assert_eq!(m.endpoint, Endpoint::Unix("/tmp/m.sock".into()));
        assert_eq!(m.label, "mon0");
        assert!(!m.wait);
        assert_eq!(
            parse_mon_arg("chardev=mon0,mode=control,pretty=on").unwrap(),
            ("mon0".to_string(), true)
        );
        assert!(parse_mon_arg("chardev=mon0").is_err());
    }
}
