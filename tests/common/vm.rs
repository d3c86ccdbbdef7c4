//! Running the `kindling` binary as a child and watching its console.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `kindling` process whose stdout (the serial console) and
/// stderr are collected in the background.
pub struct Vm {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

fn collect(mut r: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            b.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    buf
}

impl Vm {
    /// Start `kindling` with `args`.
    pub fn start(args: &[&str]) -> Vm {
        Self::spawn(args, Stdio::null())
    }

    /// Start `kindling` with a pipe on its stdin (the serial console's input).
    pub fn start_interactive(args: &[&str]) -> Vm {
        Self::spawn(args, Stdio::piped())
    }

    /// Type `text` on the console.
    pub fn type_text(&mut self, text: &str) {
        use std::io::Write;
        if let Some(stdin) = self.child.stdin.as_mut() {
            stdin
                .write_all(text.as_bytes())
                .expect("write console input");
            stdin.flush().ok();
        }
    }

    /// Start `program` (which runs kindling, e.g. `ip netns exec`) with a
    /// pipe on its stdin.
    pub fn start_program(program: &str, args: &[&str]) -> Vm {
        Self::spawn_program(program.as_ref(), args, Stdio::piped())
    }

    fn spawn(args: &[&str], stdin: Stdio) -> Vm {
        Self::spawn_program(&super::kindling(), args, stdin)
    }

    fn spawn_program(program: &std::path::Path, args: &[&str], stdin: Stdio) -> Vm {
        let mut child = Command::new(program)
            .args(args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kindling");
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Vm {
            child,
            stdout,
            stderr,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Console output so far, lossily decoded.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    /// stderr so far.
    pub fn errors(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Wait until the console shows `text` `times` times; false on timeout
    /// or if the process exits first.
    pub fn wait_for(&mut self, text: &str, times: usize, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.output().matches(text).count() >= times {
                return true;
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(50));
                return self.output().matches(text).count() >= times;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Wait for the process to exit; kills it after `timeout` and panics.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                // Let the collector threads drain the pipes.
                std::thread::sleep(Duration::from_millis(50));
                return s;
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "kindling did not exit within {timeout:?}\nconsole:\n{}\nstderr:\n{}",
                    self.output(),
                    self.errors()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Send a signal to the process.
    pub fn signal(&self, signo: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, signo) };
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `kindling` with `args` to completion (bounded by `timeout`).
pub fn run(args: &[&str], timeout: Duration) -> (ExitStatus, String, String) {
    let mut vm = Vm::start(args);
    let status = vm.wait_exit(timeout);
    (status, vm.output(), vm.errors())
}
