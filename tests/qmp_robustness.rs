//! The monitor survives any client: malformed bytes earn the error replies
//! QEMU 7.2 sends for the same bytes (compared side by side through a raw
//! socket) and the next command its own reply; a 1 MiB member is served;
//! 64 clients with 1000 mixed commands each get every reply right while the
//! guest runs; `pmemsave` of 2^63 bytes is refused at once.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A raw QMP connection: bytes out, one JSON reply per line in.
struct Raw {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Raw {
    fn connect(path: &Path) -> Raw {
        let start = Instant::now();
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if start.elapsed() > Duration::from_secs(20) => panic!("connect: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut r = Raw {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        assert!(r.reply().get("QMP").is_some());
        r.send(b"{\"execute\":\"qmp_capabilities\"}\n");
        assert_eq!(r.reply()["return"], json!({}));
        r
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// The next line that is not an event.
    fn reply(&mut self) -> Value {
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("read reply");
            assert!(n > 0, "the monitor closed the connection");
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
            if v.get("event").is_none() {
                return v;
            }
        }
    }

    /// Send `payload`, then a marker command; the error descriptions of
    /// the replies before the marker's (which must come, with its id).
    fn errors_before_marker(&mut self, payload: &[u8]) -> Vec<String> {
        self.send(payload);
        self.send(b"\n{\"execute\":\"query-status\",\"id\":\"marker\"}\n");
        let mut errors = Vec::new();
        loop {
            let v = self.reply();
            if v["id"] == "marker" {
                assert!(v["return"]["status"].is_string(), "{v}");
                return errors;
            }
            match v["error"]["desc"].as_str() {
                Some(d) => errors.push(d.to_string()),
                None => errors.push(v.to_string()),
            }
        }
    }
}

fn sock(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "kindling-qmprob-{name}-{}.sock",
        std::process::id()
    ))
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(program: &Path, args: &[&str], sock: &Path) -> Proc {
    let _ = std::fs::remove_file(sock);
    let qmp = format!("unix:{},server=on,wait=off", sock.display());
    Proc(
        Command::new(program)
            .args(args)
            .args(["-qmp", &qmp])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the emulator"),
    )
}

/// A running guest that never stops on its own (the echo guest polls
/// COM1, which `-serial null` never feeds).
fn kindling_with_a_running_guest(name: &str, extra: &[&str]) -> (Proc, PathBuf) {
    let guest = common::guests::build("echo");
    let s = sock(name);
    let mut args = vec![
        "-M",
        "microvm",
        "-accel",
        "tcg",
        "-smp",
        "2",
        "-m",
        "64m",
        "-nodefaults",
        "-serial",
        "null",
        "-kernel",
        guest.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let k = start(&common::kindling(), &args, &s);
    // The monitor is up before the vCPUs start: wait until they run.
    let mut c = Raw::connect(&s);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        c.send(b"{\"execute\":\"query-status\"}");
        if c.reply()["return"]["running"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "the guest never started running");
        std::thread::sleep(Duration::from_millis(10));
    }
    (k, s)
}

/// Malformed inputs from the issue and QEMU's own test cases.
fn malformed() -> Vec<(&'static str, Vec<u8>)> {
    let deep = |n: usize| [vec![b'['; n], vec![b']'; n]].concat();
    vec![
        ("control character", b"{\"execute\": \"a\x01b\"}".to_vec()),
        (
            "control character in an argument",
            b"{\"execute\":\"query-status\",\"arguments\":{\"x\":\"\x01\"}}".to_vec(),
        ),
        ("invalid UTF-8", b"{\"execute\": \"\xc3\x28\"}".to_vec()),
        ("0xFF", b"{\"execute\": \"query-status\"\xff}".to_vec()),
        ("1000-deep nesting", deep(1000)),
        ("2000-deep nesting", deep(2000)),
        ("key without value", b"{\"execute\"}".to_vec()),
        ("key and colon without value", b"{\"execute\":}".to_vec()),
        ("extra brace", b"{\"execute\":\"query-name\"}}".to_vec()),
        ("capitalised keyword", b"{\"execute\": True}".to_vec()),
        ("leading zero", b"{\"execute\": 01}".to_vec()),
        ("bad escape", b"{\"execute\": \"\\x\"}".to_vec()),
        ("lone surrogate", b"{\"execute\": \"\\ud800\"}".to_vec()),
    ]
}

#[test]
fn malformed_input_gets_the_error_replies_qemu_sends_and_no_more() {
    let qemu = Path::new("/usr/bin/qemu-system-x86_64");
    if !qemu.exists() {
        common::skip("qemu-system-x86_64 is not installed (the reference for this test)");
        return;
    }
    let Some(guest) = common::guest_file("tiny-pvh.elf") else {
        return;
    };
    let (ks, qs) = (sock("k"), sock("q"));
    let _k = start(
        &common::kindling(),
        &["-M", "microvm", "-accel", "tcg", "-nodefaults", "-S"]
            .into_iter()
            .chain(["-kernel", guest.to_str().unwrap()])
            .collect::<Vec<_>>(),
        &ks,
    );
    let _q = start(
        qemu,
        &["-M", "microvm", "-nodefaults", "-display", "none", "-S"],
        &qs,
    );
    let (mut ours, mut theirs) = (Raw::connect(&ks), Raw::connect(&qs));
    for (what, bytes) in malformed() {
        let want = theirs.errors_before_marker(&bytes);
        let got = ours.errors_before_marker(&bytes);
        assert!(!want.is_empty() || what.starts_with("extra"), "{what}");
        assert_eq!(
            got.len(),
            want.len(),
            "{what}: QEMU sent {} error replies, Kindling {}: {:?} vs {:?}",
            want.len(),
            got.len(),
            &want[..want.len().min(3)],
            &got[..got.len().min(3)]
        );
        // The JSON layer's words are QEMU's too (the command layer's
        // replies to well-formed messages may differ by version).
        for (g, w) in got.iter().zip(&want) {
            if w.starts_with("JSON") {
                assert_eq!(g, w, "{what}");
            }
        }
    }
}

#[test]
fn a_command_with_a_1_mib_member_is_served() {
    let (_k, s) = kindling_with_a_running_guest("big", &[]);
    let mut c = Raw::connect(&s);
    let id = "i".repeat(1 << 20);
    c.send(format!("{{\"execute\":\"query-status\",\"id\":\"{id}\"}}\n").as_bytes());
    let v = c.reply();
    assert_eq!(v["id"].as_str().map(str::len), Some(1 << 20));
    assert_eq!(v["return"]["running"], true);
    // And the connection goes on.
    c.send(b"{\"execute\":\"query-name\",\"id\":2}\n");
    assert_eq!(c.reply()["id"], 2);
}

/// One client's 1000 mixed commands, each reply checked against its id.
fn mixed_commands(path: &Path, client: usize) {
    let mut c = Raw::connect(path);
    for i in 0..1000 {
        let id = format!("{client}-{i}");
        match i % 7 {
            0 => {
                c.send(format!("{{\"execute\":\"query-status\",\"id\":\"{id}\"}}\n").as_bytes());
                let v = c.reply();
                assert_eq!(
                    (v["id"].as_str(), &v["return"]["running"]),
                    (Some(&*id), &json!(true))
                );
            }
            1 => {
                c.send(format!("{{'execute':'query-name','id':'{id}'}}").as_bytes());
                let v = c.reply();
                assert_eq!(v, json!({"return": {"name": "load"}, "id": id}));
            }
            2 => {
                c.send(format!("{{\"execute\":\"query-uuid\",\"id\":\"{id}\"}}\r\n").as_bytes());
                let v = c.reply();
                assert_eq!(
                    v["return"]["UUID"], "12345678-1234-1234-1234-123456789abc",
                    "{v}"
                );
                assert_eq!(v["id"], id);
            }
            3 => {
                c.send(format!("{{\"execute\":\"query-cpus-fast\",\"id\":\"{id}\"}}").as_bytes());
                let v = c.reply();
                assert_eq!(v["return"].as_array().map(Vec::len), Some(2), "{v}");
                assert_eq!(v["id"], id);
            }
            4 => {
                c.send(format!("{{\"execute\":\"no-such-command\",\"id\":\"{id}\"}}").as_bytes());
                let v = c.reply();
                assert_eq!(v["error"]["class"], "CommandNotFound", "{v}");
                assert_eq!(v["id"], id);
            }
            5 => {
                // Malformed: one error without id, then the next command.
                c.send(b"{\"execute\":}\n");
                let v = c.reply();
                assert_eq!(v["error"]["desc"], "JSON parse error, expecting value");
                assert!(v.get("id").is_none());
            }
            _ => {
                c.send(format!("{{\"execute\":\"query-version\",\"id\":\"{id}\"}}").as_bytes());
                let v = c.reply();
                assert!(v["return"]["qemu"]["major"].is_u64(), "{v}");
                assert_eq!(v["id"], id);
            }
        }
    }
}

#[test]
fn sixty_four_clients_with_a_thousand_commands_each_while_the_guest_runs() {
    let (mut k, s) = kindling_with_a_running_guest(
        "load",
        &[
            "-name",
            "load",
            "-uuid",
            "12345678-1234-1234-1234-123456789ABC",
        ],
    );
    let threads: Vec<_> = (0..64)
        .map(|n| {
            let s = s.clone();
            std::thread::spawn(move || mixed_commands(&s, n))
        })
        .collect();
    for t in threads {
        t.join().expect("a client saw a wrong reply");
    }
    let mut c = Raw::connect(&s);
    c.send(b"{\"execute\":\"query-status\"}");
    assert_eq!(c.reply()["return"]["status"], "running");
    assert!(k.0.try_wait().unwrap().is_none(), "Kindling exited");
}

#[test]
fn pmemsave_of_2_63_bytes_is_refused_at_once_and_memory_streams_in_chunks() {
    let (mut k, s) = kindling_with_a_running_guest("pmem", &[]);
    let mut c = Raw::connect(&s);
    let dir = std::env::temp_dir();
    let huge = dir.join(format!("kindling-pmem-huge-{}", std::process::id()));
    let start = Instant::now();
    c.send(
        format!(
            "{{\"execute\":\"pmemsave\",\"arguments\":{{\"val\":0,\"size\":9223372036854775808,\"filename\":\"{}\"}}}}",
            huge.display()
        )
        .as_bytes(),
    );
    let v = c.reply();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(
        v["error"]["desc"], "Invalid addr 0x0000000000000000/size 9223372036854775808 specified",
        "{v}"
    );
    assert!(!huge.exists());
    // A range that ends past the guest's physical address space.
    c.send(b"{\"execute\":\"pmemsave\",\"arguments\":{\"val\":1099511627775,\"size\":2,\"filename\":\"/dev/null\"}}");
    assert_eq!(c.reply()["error"]["class"], "GenericError");
    // 80 MiB across the end of 64 MiB of RAM: RAM, then zeros.
    let out = dir.join(format!("kindling-pmem-{}", std::process::id()));
    c.send(
        format!(
            "{{\"execute\":\"pmemsave\",\"arguments\":{{\"val\":0,\"size\":{},\"filename\":\"{}\"}}}}",
            80 << 20,
            out.display()
        )
        .as_bytes(),
    );
    assert_eq!(c.reply()["return"], json!({}));
    let data = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    assert_eq!(data.len(), 80 << 20);
    assert!(data[64 << 20..].iter().all(|&b| b == 0));
    // The echo guest's code is loaded in RAM and was saved.
    assert!(data[..64 << 20].iter().any(|&b| b != 0));
    c.send(b"{\"execute\":\"query-status\"}");
    assert_eq!(c.reply()["return"]["status"], "running");
    assert!(k.0.try_wait().unwrap().is_none(), "Kindling exited");
}
