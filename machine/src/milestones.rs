//! Boot milestones: the moments of each boot, with no guest changes (VM
//! created, first guest instruction, kernel entry, first byte on each
//! console, Linux's well-known lines, power-off, reset, exit), the markers
//! guests built for Firecracker and Cloud Hypervisor already write (the
//! boot timer, debug-port codes) and a user's "booted" pattern. Each has
//! its time since process start and, under `-icount`, the guest's
//! instruction count and virtual time, which repeat exactly from run to
//! run. Every milestone is published as a QMP event ([`EVENT`]), the
//! current boot is answered by `x-query-boot-milestones`, and each boot
//! ends as one JSON line on the `-kindling-boot-report` sink.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cpu::{Clock, ClockMode};
use serde_json::{json, Map, Value};

use crate::error::MachineError;
use crate::events::Events;

/// The QMP event each milestone is published as (`x`: Kindling's own, as
/// QEMU marks non-standard interfaces).
pub const EVENT: &str = "X_BOOT_MILESTONE";
/// Guest-written markers kept per boot: Linux's `io_delay` writes port
/// 0x80 too, and a report must stay small.
const MAX_MARKERS: usize = 256;

/// Where `-kindling-boot-report` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportTarget {
    /// The process's stderr.
    Stderr,
    /// A file, created (truncated) at start.
    File(PathBuf),
}

/// `-kindling-boot-report`'s settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootReportConfig {
    /// Where reports go (`None`: milestones are still recorded for QMP).
    pub target: Option<ReportTarget>,
    /// Console text whose appearance means "booted" (e.g. `login:`).
    pub booted: Option<String>,
}

struct ProcessStart {
    at: Instant,
    unix_us: u64,
}

static PROCESS_START: OnceLock<ProcessStart> = OnceLock::new();

fn process_start() -> &'static ProcessStart {
    PROCESS_START.get_or_init(|| {
        // `main` runs after the exec and the dynamic loader, which take a
        // millisecond or more of a large binary: their CPU time (the
        // process's own, counted from the spawn) moves the start back to
        // the spawn, where an outside stopwatch starts.
        let before_main = process_cpu_time();
        let at = Instant::now();
        let at = at.checked_sub(before_main).unwrap_or(at);
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_sub(before_main);
        ProcessStart {
            at,
            unix_us: unix.as_micros() as u64,
        }
    })
}

/// CPU time this process has used so far.
fn process_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Note the moment the process started (its spawn: the time `main` is
/// reached less the CPU time the exec took); `main` calls it first thing
/// (later calls change nothing).
pub fn mark_process_start() {
    process_start();
}

/// The machine's recorder, reachable from the process's exit paths.
static ACTIVE: OnceLock<Arc<Milestones>> = OnceLock::new();

/// Record `exit` and write the last report, if a machine was built; every
/// exit path calls it just before the process ends.
pub fn at_exit(status: i32) {
    if let Some(m) = ACTIVE.get() {
        m.finish(status);
    }
}

/// One boot's milestones so far.
#[derive(Default)]
struct Boot {
    list: Vec<Value>,
    /// Names (with their console) of the once-per-boot milestones seen.
    seen: HashSet<String>,
    markers: usize,
    dropped: u64,
}

/// The recorder, shared by the vCPUs, the consoles and the control loop.
pub struct Milestones {
    clock: Arc<Clock>,
    accel: &'static str,
    kernel: bool,
    booted: Option<Vec<u8>>,
    events: Arc<Events>,
    sink: Mutex<Option<Box<dyn Write + Send>>>,
    generation: AtomicU64,
    boot: Mutex<Boot>,
    finished: Mutex<bool>,
}

impl std::fmt::Debug for Milestones {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Milestones")
            .field("boot", &self.generation())
            .finish()
    }
}

impl Milestones {
    /// A recorder for a machine on `accel` whose guest time is `clock`;
    /// `kernel`: a `-kernel` is booted (so the first instruction is the
    /// kernel's entry point). Opens the report file, if any.
    pub fn new(
        clock: Arc<Clock>,
        accel: &'static str,
        kernel: bool,
        cfg: &BootReportConfig,
        events: Arc<Events>,
    ) -> Result<Self, MachineError> {
        let sink: Option<Box<dyn Write + Send>> = match &cfg.target {
            None => None,
            Some(ReportTarget::Stderr) => Some(Box::new(std::io::stderr())),
            Some(ReportTarget::File(p)) => {
                Some(Box::new(std::fs::File::create(p).map_err(|e| {
                    MachineError::host(
                        format!("-kindling-boot-report: Could not open '{}'", p.display()),
                        e,
                    )
                })?))
            }
        };
        Ok(Milestones {
            clock,
            accel,
            kernel,
            booted: cfg.booted.as_ref().map(|s| s.as_bytes().to_vec()),
            events,
            sink: Mutex::new(sink),
            generation: AtomicU64::new(0),
            boot: Mutex::new(Boot::default()),
            finished: Mutex::new(false),
        })
    }

    /// Make this the recorder [`at_exit`] finishes (the first one wins).
    pub fn install(self: &Arc<Self>) {
        let _ = ACTIVE.set(self.clone());
    }

    /// The boot number: 0, then one more at each reset.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// The "booted" pattern, if the user gave one.
    pub fn booted_pattern(&self) -> Option<&[u8]> {
        self.booted.as_deref()
    }

    /// Whether figures are exact (instruction-counted time).
    fn exact(&self) -> bool {
        self.clock.is_instruction_counted()
    }

    /// Record `name` with `extra` members; `once`: only its first
    /// occurrence in this boot counts (the key adds a console name).
    /// Returns whether it was recorded.
    fn record(&self, name: &str, once: Option<&str>, extra: Value) -> bool {
        let t_us = process_start().at.elapsed().as_micros() as u64;
        let mut m = Map::new();
        m.insert("name".into(), name.into());
        m.insert("t-us".into(), t_us.into());
        if self.exact() {
            m.insert("icount".into(), self.clock.instructions().into());
            m.insert("guest-ns".into(), self.clock.now_ns().into());
        }
        if let Value::Object(x) = extra {
            m.extend(x);
        }
        let m = Value::Object(m);
        let generation = {
            let Ok(mut b) = self.boot.lock() else {
                return false;
            };
            if let Some(key) = once {
                if !b.seen.insert(format!("{name}/{key}")) {
                    return false;
                }
            }
            b.list.push(m.clone());
            self.generation()
        };
        let mut ev = m;
        ev["boot"] = generation.into();
        self.events.emit(EVENT, Some(ev));
        true
    }

    /// A guest-written marker: kept up to a bound per boot, the rest counted.
    fn marker(&self, name: &str, extra: Value) {
        if let Ok(mut b) = self.boot.lock() {
            if b.markers >= MAX_MARKERS {
                b.dropped += 1;
                return;
            }
            b.markers += 1;
        }
        self.record(name, None, extra);
    }

    /// The board is built.
    pub fn vm_created(&self) {
        self.record("vm-created", Some(""), json!({}));
    }

    /// The boot vCPU is about to run its first instruction at `rip`: with a
    /// `-kernel`, that is the kernel's entry point (Kindling runs no
    /// firmware in between, so the two coincide).
    pub fn first_instruction(&self, rip: u64) {
        self.record("first-instruction", Some(""), json!({}));
        if self.kernel {
            self.record("kernel-entry", Some(""), json!({ "rip": rip }));
        }
    }

    /// The first byte the guest wrote on `console` in this boot.
    pub fn console_first_byte(&self, console: &str) {
        self.record(
            "console-first-byte",
            Some(console),
            json!({ "console": console }),
        );
    }

    /// A well-known console line (`name`) appeared on `console`; returns
    /// whether it was new in this boot.
    pub fn console_line(&self, name: &str, console: &str) -> bool {
        self.record(name, Some(""), json!({ "console": console }))
    }

    /// The user's "booted" pattern appeared on `console`.
    pub fn booted(&self, console: &str) {
        self.record("booted", Some(""), json!({ "console": console }));
    }

    /// Firecracker's boot timer was written (at `address`).
    pub fn boot_timer(&self, address: u64) {
        self.marker(
            "boot-timer",
            json!({ "value": devices::boot_timer::BOOT_COMPLETE, "address": address }),
        );
    }

    /// A Cloud Hypervisor debug-port code was written to port 0x80.
    pub fn debug_port(&self, code: u8) {
        self.marker(
            "debug-port",
            json!({ "code": code, "range": devices::port80::debug_port_range(code) }),
        );
    }

    /// The guest powered off (ACPI S5).
    pub fn power_off(&self) {
        self.record("power-off", Some(""), json!({}));
    }

    /// The guest or a monitor reset the machine (`cause`: QEMU's
    /// ShutdownCause spelling).
    pub fn reset(&self, cause: &str) {
        self.record("reset", Some(""), json!({ "cause": cause }));
    }

    /// The machine was reset: write this boot's report and start the next.
    pub fn new_boot(&self) {
        self.write_report();
        if let Ok(mut b) = self.boot.lock() {
            *b = Boot::default();
            self.generation.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The process ends with `status`: record `exit` and write the report
    /// (once).
    pub fn finish(&self, status: i32) {
        let Ok(mut done) = self.finished.lock() else {
            return;
        };
        if std::mem::replace(&mut *done, true) {
            return;
        }
        self.record("exit", Some(""), json!({ "status": status }));
        self.write_report();
    }

    /// This boot's report: figures' kind, the process start and every
    /// milestone so far.
    pub fn report(&self) -> Value {
        let (list, dropped) = self
            .boot
            .lock()
            .map(|b| (b.list.clone(), b.dropped))
            .unwrap_or_default();
        let mut r = json!({
            "kindling-boot-report": 1,
            "boot": self.generation(),
            "accel": self.accel,
            "figures": if self.exact() { "exact" } else { "wall-clock" },
            "process-start-unix-us": process_start().unix_us,
            "milestones": list,
            "markers-dropped": dropped,
        });
        if let ClockMode::InstructionCounted { shift } = self.clock.mode() {
            r["icount-shift"] = shift.into();
        }
        r
    }

    fn write_report(&self) {
        let line = self.report().to_string();
        if let Ok(mut s) = self.sink.lock() {
            if let Some(w) = s.as_mut() {
                let _ = writeln!(w, "{line}").and_then(|_| w.flush());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventListener;

    #[derive(Default)]
    struct Rec(Mutex<Vec<Value>>);
    impl EventListener for Rec {
        fn event(&self, name: &str, data: Option<Value>) {
            assert_eq!(name, EVENT);
            self.0.lock().unwrap().push(data.unwrap());
        }
    }

    fn recorder(mode: ClockMode, target: Option<ReportTarget>) -> (Milestones, Arc<Rec>) {
        let events = Arc::new(Events::default());
        let rec = Arc::new(Rec::default());
        events.subscribe(rec.clone());
        let cfg = BootReportConfig {
            target,
            booted: Some("login:".into()),
        };
        let clock = Arc::new(Clock::new(mode, 1_000_000));
        (
            Milestones::new(clock, "tcg", true, &cfg, events).unwrap(),
            rec,
        )
    }

    fn names(v: &Value) -> Vec<String> {
        v["milestones"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn once_per_boot_milestones_repeat_only_after_a_reset() {
        let (m, events) = recorder(ClockMode::Host, None);
        m.vm_created();
        m.first_instruction(0x100_0000);
        m.console_first_byte("serial0");
        m.console_first_byte("serial0");
        m.console_first_byte("hvc0");
        assert!(m.console_line("linux-banner", "serial0"));
        assert!(!m.console_line("linux-banner", "hvc0"));
        m.reset("guest-reset");
        let r = m.report();
        assert_eq!(
            names(&r),
            [
                "vm-created",
                "first-instruction",
                "kernel-entry",
                "console-first-byte",
                "console-first-byte",
                "linux-banner",
                "reset"
            ]
        );
        assert_eq!(r["figures"], "wall-clock");
        assert_eq!(r["milestones"][2]["rip"], 0x100_0000);
        assert_eq!(r["milestones"][4]["console"], "hvc0");
        assert!(r["milestones"][0].get("icount").is_none());
        let t: Vec<u64> = r["milestones"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["t-us"].as_u64().unwrap())
            .collect();
        assert!(t.windows(2).all(|w| w[0] <= w[1]), "{t:?}");
        m.new_boot();
        m.first_instruction(0x100_0000);
        let r2 = m.report();
        assert_eq!(r2["boot"], 1);
        assert_eq!(names(&r2), ["first-instruction", "kernel-entry"]);
        let ev = events.0.lock().unwrap();
        assert_eq!(ev.len(), 9, "one event per recorded milestone");
        assert_eq!(ev[8]["boot"], 1);
        assert_eq!(ev[0]["name"], "vm-created");
    }

    #[test]
    fn markers_carry_their_values_and_are_bounded() {
        let (m, _) = recorder(ClockMode::Host, None);
        m.boot_timer(0xd000_0000);
        m.debug_port(0x41);
        m.debug_port(0x62);
        let r = m.report();
        assert_eq!(r["milestones"][0]["value"], 123);
        assert_eq!(r["milestones"][0]["address"], 0xd000_0000u64);
        assert_eq!(r["milestones"][1]["code"], 0x41);
        assert_eq!(r["milestones"][1]["range"], "kernel");
        assert_eq!(r["milestones"][2]["range"], "userspace");
        for _ in 0..MAX_MARKERS {
            m.debug_port(0x80);
        }
        let r = m.report();
        assert_eq!(r["milestones"].as_array().unwrap().len(), MAX_MARKERS);
        assert_eq!(r["markers-dropped"], 3);
    }

    #[test]
    fn counted_time_gives_instruction_counts_and_the_report_goes_to_its_file() {
        let path =
            std::env::temp_dir().join(format!("kindling-milestones-{}.json", std::process::id()));
        let (m, _) = recorder(
            ClockMode::InstructionCounted { shift: 2 },
            Some(ReportTarget::File(path.clone())),
        );
        m.vm_created();
        m.clock.add_instructions(1000);
        m.booted("serial0");
        m.new_boot();
        m.clock.add_instructions(500);
        m.finish(3);
        m.finish(4);
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "one object per boot:\n{text}");
        assert_eq!(lines[0]["figures"], "exact");
        assert_eq!(lines[0]["icount-shift"], 2);
        assert_eq!(names(&lines[0]), ["vm-created", "booted"]);
        assert_eq!(lines[0]["milestones"][1]["icount"], 1000);
        assert_eq!(lines[0]["milestones"][1]["guest-ns"], 4000);
        assert_eq!(lines[1]["boot"], 1);
        assert_eq!(names(&lines[1]), ["exit"]);
        assert_eq!(lines[1]["milestones"][0]["icount"], 1500);
        assert_eq!(lines[1]["milestones"][0]["status"], 3);
    }
}
