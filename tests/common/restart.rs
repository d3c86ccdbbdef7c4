//! Checks shared by the guest-restart tests (issue 14): how soon the
//! process ends after the guest's last console line, how many times a
//! guest booted, and how much CPU time a (halted) process uses.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::qmp::Qmp;
use super::vm::Vm;

/// How long after the guest's restart request `-no-reboot` may take.
pub const PROMPT: Duration = Duration::from_secs(1);

/// Run `args` (which hold `-no-reboot`) until the process exits (or
/// `timeout`, then panic). Returns the exit code, the console, stderr, and
/// how long the process lived after the console last changed (the guest
/// prints right before its restart request).
pub fn run_until_exit(args: &[&str], timeout: Duration) -> (Option<i32>, String, String, Duration) {
    let mut vm = Vm::start(args);
    let start = Instant::now();
    let (mut seen, mut changed) = (0, Instant::now());
    while vm.running() {
        let n = vm.output().len();
        if n != seen {
            (seen, changed) = (n, Instant::now());
        }
        assert!(
            start.elapsed() < timeout,
            "still running after {timeout:?}\nconsole:\n{}\nstderr:\n{}",
            vm.output(),
            vm.errors()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let after = changed.elapsed();
    let status = vm.wait_exit(timeout);
    (status.code(), vm.output(), vm.errors(), after)
}

/// A QMP socket path unique to this test process and `tag`.
fn qmp_socket(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "kindling-restart-{tag}-{}.sock",
        std::process::id()
    ))
}

/// Start `args` plus a QMP server on a fresh socket, connected.
fn start_with_qmp(args: &[&str], tag: &str) -> (Vm, Qmp, PathBuf) {
    let sock = qmp_socket(tag);
    let _ = std::fs::remove_file(&sock);
    let qmp_arg = format!("unix:{},server=on,wait=off", sock.display());
    let mut all = args.to_vec();
    all.extend(["-qmp", qmp_arg.as_str()]);
    let vm = Vm::start(&all);
    let qmp = Qmp::connect(&sock);
    (vm, qmp, sock)
}

/// Start `args` plus a QMP server on a fresh socket; wait until the
/// console shows `boot` `times` times (panics with the console if not
/// within `timeout`), then `quit` over QMP and check the process ends with
/// status 0.
pub fn boots_again(args: &[&str], tag: &str, boot: &str, times: usize, timeout: Duration) {
    let (mut vm, mut qmp, sock) = start_with_qmp(args, tag);
    assert!(
        vm.wait_for(boot, times, timeout),
        "{tag}: expected {times} boots\nconsole:\n{}\nstderr:\n{}",
        vm.output(),
        vm.errors()
    );
    let r = qmp.execute("quit");
    assert!(r.get("return").is_some(), "{r}");
    let status = vm.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{tag}: {}", vm.errors());
    let _ = std::fs::remove_file(&sock);
}

/// User plus system CPU time of process `pid` so far (/proc/PID/stat).
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the command name (which may hold spaces) start at 3.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// What a halted-guest check looks for on the console.
#[derive(Debug, Clone, Copy)]
pub struct HaltMarks<'a> {
    /// Printed once the guest is about to halt.
    pub halted: &'a str,
    /// Printed at every boot.
    pub boot: &'a str,
    /// Printed by the guest's NMI handler, if it has one.
    pub nmi: Option<&'a str>,
}

/// A halted guest's checks: start `args` with a QMP server, wait for the
/// halt mark, then over `idle` the process must use at most `budget` of
/// CPU time; QMP must still answer `query-status` (running), `stop` and
/// `cont` must take effect, an injected NMI must wake the vCPU (its mark
/// printed), and `system_reset` must boot the guest again.
pub fn halted_sleeps_and_resets(
    args: &[&str],
    tag: &str,
    marks: HaltMarks,
    idle: Duration,
    budget: Duration,
    timeout: Duration,
) {
    let HaltMarks { halted, boot, nmi } = marks;
    let (mut vm, mut qmp, sock) = start_with_qmp(args, tag);
    assert!(
        vm.wait_for(halted, 1, timeout),
        "{tag}: never halted\nconsole:\n{}\nstderr:\n{}",
        vm.output(),
        vm.errors()
    );
    // Let the last console bytes and the halt settle, then measure.
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_time(vm.pid());
    std::thread::sleep(idle);
    let used = cpu_time(vm.pid()) - before;
    assert!(
        used <= budget,
        "{tag}: a halted guest used {used:?} of CPU in {idle:?} (budget {budget:?})"
    );
    assert!(vm.running(), "{tag}: the process ended while halted");
    for (cmd, status) in [
        ("query-status", "running"),
        ("stop", "paused"),
        ("cont", "running"),
    ] {
        let r = qmp.execute(cmd);
        assert!(r.get("return").is_some(), "{tag}: {cmd}: {r}");
        let r = qmp.execute("query-status");
        assert_eq!(r["return"]["status"], status, "{tag}: after {cmd}: {r}");
    }
    if let Some(mark) = nmi {
        let r = qmp.execute("inject-nmi");
        assert!(r.get("return").is_some(), "{tag}: {r}");
        assert!(
            vm.wait_for(mark, 1, timeout),
            "{tag}: the NMI did not wake the halted vCPU\nconsole:\n{}",
            vm.output()
        );
    }
    let r = qmp.execute("system_reset");
    assert!(r.get("return").is_some(), "{r}");
    assert!(
        vm.wait_for(boot, 2, timeout),
        "{tag}: system_reset did not boot the guest again\nconsole:\n{}",
        vm.output()
    );
    let _ = qmp.execute("quit");
    let _ = vm.wait_exit(Duration::from_secs(10));
    let _ = std::fs::remove_file(&sock);
}
