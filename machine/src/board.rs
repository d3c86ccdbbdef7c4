//! The machine: builds the board from a [`MachineConfig`], starts the vCPU
//! threads and runs the control loop that reacts to guest and host events.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use cpu::{Clock, ClockMode, GuestMemory, Regs, Segment, Sregs};
use serde_json::json;
use vm_memory::{Bytes, GuestAddress};

use crate::accel::{self, ChosenAccel};
use crate::boot::entry_registers;
use crate::config::{AccelKind, CharBackend, CpuModel, MachineConfig};
use crate::control::VcpuControl;
use crate::error::MachineError;
use crate::events::Events;
use crate::hmp::{self, session::Session};
use crate::milestones::Milestones;
use crate::monitor::{MonitorContext, QmpEvents};
use crate::mux::Mux;
use crate::platform::{self, Platform};
use crate::process::PidFile;
use crate::runstate::{BoardEvent, MonitorRequest, RunState, ShutdownCause};
use crate::sandbox::{self, ThreadKind};
use crate::timers::TimerService;
use crate::vcpu_thread::{BootState, BootStates, RegisterSnapshots, VcpuThread};
use crate::{memory, signals, terminal};

/// TSC rate told to guests of the software CPU (KVM guests see the host's).
pub const INTERP_TSC_KHZ: u64 = 2_000_000;

/// Where the CPU idles when there is no `-kernel` (as QEMU's microvm firmware
/// does when it finds nothing to boot): `cli; hlt; jmp $-1` in real mode.
const IDLE_LOOP_ADDR: u64 = 0x1000;

/// A built machine, ready to run.
pub struct Machine {
    prog: String,
    cfg: MachineConfig,
    mem: Arc<GuestMemory>,
    accel: ChosenAccel,
    clock: Arc<Clock>,
    platform: Platform,
    control: Arc<VcpuControl>,
    boot: BootStates,
    events_tx: Sender<BoardEvent>,
    events_rx: Receiver<BoardEvent>,
    events: Arc<Events>,
    timers: Arc<TimerService>,
    state: Arc<Mutex<RunState>>,
    vcpu_tids: Arc<Mutex<Vec<i32>>>,
    snapshots: RegisterSnapshots,
    monitors: Vec<qmp::MonitorConfig>,
    milestones: Arc<Milestones>,
    hmp_monitors: Vec<qmp::MonitorConfig>,
    monitor_ctx: Option<Arc<MonitorContext>>,
    _pidfile: Option<PidFile>,
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("accel", &self.accel)
            .field("cpus", &self.cfg.cpus)
            .finish()
    }
}

impl Machine {
    /// Build the board, load the kernel and create the vCPUs (paused).
    pub fn new(cfg: MachineConfig, prog: &str) -> Result<Self, MachineError> {
        let mem = Arc::new(memory::create(cfg.ram_bytes)?);
        let (events_tx, events_rx) = channel();
        let icount = cfg
            .icount_shift
            .map(|shift| ClockMode::InstructionCounted { shift });
        // Whole MHz, so CPUID leaf 0x15 describes the rate exactly.
        let tsc_khz = host_tsc_khz().unwrap_or(INTERP_TSC_KHZ) / 1000 * 1000;
        let clock = Arc::new(Clock::new(icount.unwrap_or(ClockMode::Host), tsc_khz));
        let ioapic_pins = if cfg.acpi_enabled() { 48 } else { 24 };
        let accel = accel::choose(
            &cfg.accel,
            &mem,
            &clock,
            cfg.cpus,
            ioapic_pins,
            cfg.tcg,
            prog,
        )?;
        if icount.is_some() && accel.kind == AccelKind::Kvm {
            return Err(MachineError::Config(
                "-icount is not allowed with hardware virtualization".into(),
            ));
        }
        cpu_model(&accel, &cfg, prog)?;
        memory::protect_reset_rom(accel.accel.as_ref());
        let timers = TimerService::new(clock.clone());
        let events = Arc::new(Events::default());
        let milestones = Arc::new(Milestones::new(
            clock.clone(),
            accel.kind.name(),
            cfg.kernel.is_some(),
            &cfg.boot_report,
            events.clone(),
        )?);
        milestones.install();
        let platform =
            platform::build(&cfg, &accel, &mem, &clock, &timers, &events_tx, &milestones)?;
        let control = Arc::new(VcpuControl::new(cfg.cpus as usize));
        let (monitors, hmp_monitors) = monitor_configs(&cfg)?;
        let pidfile = cfg.pidfile.as_deref().map(PidFile::create).transpose()?;
        let mut m = Machine {
            prog: prog.to_string(),
            boot: Arc::new(Mutex::new(Vec::new())),
            cfg,
            mem,
            accel,
            clock,
            platform,
            control,
            events_tx,
            events_rx,
            events,
            timers,
            state: Arc::new(Mutex::new(RunState::Prelaunch)),
            vcpu_tids: Arc::new(Mutex::new(Vec::new())),
            snapshots: Arc::new(Mutex::new(Vec::new())),
            monitors,
            milestones,
            hmp_monitors,
            monitor_ctx: None,
            _pidfile: pidfile,
        };
        m.load_boot_state()?;
        m.create_vcpus()?;
        m.milestones.vm_created();
        Ok(m)
    }

    /// The board's event fan-out (monitors subscribe here).
    pub fn events(&self) -> Arc<Events> {
        self.events.clone()
    }

    /// A sender monitors use to post requests to the control loop.
    pub fn requests(&self) -> Sender<BoardEvent> {
        self.events_tx.clone()
    }

    /// The current run state, shared with monitors.
    pub fn run_state(&self) -> Arc<Mutex<RunState>> {
        self.state.clone()
    }

    /// Host thread ids of the vCPU threads (QMP `query-cpus-fast`).
    pub fn vcpu_thread_ids(&self) -> Arc<Mutex<Vec<i32>>> {
        self.vcpu_tids.clone()
    }

    /// Guest memory (QMP `pmemsave`).
    pub fn memory(&self) -> Arc<GuestMemory> {
        self.mem.clone()
    }

    /// The accelerator's QEMU name.
    pub fn accel_name(&self) -> &'static str {
        self.accel.kind.name()
    }

    /// The configuration the machine was built from.
    pub fn config(&self) -> &MachineConfig {
        &self.cfg
    }

    /// Load (or reload, at reset) the kernel and boot structures and
    /// compute every vCPU's boot state.
    fn load_boot_state(&mut self) -> Result<(), MachineError> {
        memory::load_reset_rom(&self.mem)?;
        let bsp = match &self.cfg.kernel {
            Some(_) => {
                let entry = platform::load_kernel(&self.cfg, &self.mem, &self.platform)?;
                entry_registers(&entry)
            }
            None => {
                self.mem
                    .write_slice(&[0xfa, 0xf4, 0xeb, 0xfd], GuestAddress(IDLE_LOOP_ADDR))
                    .map_err(|e| MachineError::Firmware(e.to_string()))?;
                let mut s = Sregs::reset_state();
                s.cs = Segment::real_mode(0, true);
                let r = Regs {
                    rip: IDLE_LOOP_ADDR,
                    rflags: 2,
                    ..Default::default()
                };
                (r, s)
            }
        };
        let mut states = vec![BootState::Start(Box::new(bsp))];
        states.resize(self.cfg.cpus as usize, BootState::WaitForSipi);
        if let Ok(mut b) = self.boot.lock() {
            *b = states;
        }
        Ok(())
    }

    fn create_vcpus(&mut self) -> Result<(), MachineError> {
        let mut kickers = Vec::new();
        for id in 0..self.cfg.cpus {
            let vcpu = self.accel.accel.create_vcpu(id, self.cfg.cpus)?;
            let kick = vcpu.kicker();
            self.control.add_kicker(kick.clone());
            kickers.push(kick);
            let thread = VcpuThread {
                vcpu,
                io: self.platform.io.clone(),
                control: self.control.clone(),
                interrupts: self.platform.interrupts.clone(),
                events: self.events_tx.clone(),
                reset: self.platform.reset_line(),
                boot: self.boot.clone(),
                snapshots: self.snapshots.clone(),
                milestones: self.milestones.clone(),
            };
            let tids = self.vcpu_tids.clone();
            let kind = ThreadKind::Vcpu {
                kvm: self.accel.kind == AccelKind::Kvm,
            };
            std::thread::Builder::new()
                .name(format!(
                    "CPU {id}/{}",
                    self.accel.kind.name().to_uppercase()
                ))
                .spawn(move || {
                    // SAFETY: gettid has no preconditions.
                    let tid = unsafe { libc::gettid() };
                    if let Ok(mut t) = tids.lock() {
                        if t.len() <= id as usize {
                            t.resize(id as usize + 1, 0);
                        }
                        t[id as usize] = tid;
                    }
                    sandbox::enter_or_exit(kind);
                    thread.run()
                })
                .map_err(|e| MachineError::host("spawn vCPU thread", e))?;
        }
        self.platform.connect_vcpus(kickers);
        Ok(())
    }

    fn set_state(&self, s: RunState) {
        if let Ok(mut st) = self.state.lock() {
            *st = s;
        }
    }

    fn get_state(&self) -> RunState {
        self.state.lock().map(|s| *s).unwrap_or(RunState::Running)
    }

    fn start_vcpus(&self) {
        self.set_state(RunState::Running);
        self.control.resume_all();
    }

    fn stop(&self) {
        if self.get_state() == RunState::Running {
            self.control.pause_all();
            self.set_state(RunState::Paused);
            self.events.emit("STOP", None);
        }
    }

    fn cont(&self) {
        if matches!(self.get_state(), RunState::Paused | RunState::Prelaunch) {
            self.start_vcpus();
            self.events.emit("RESUME", None);
        }
    }

    /// Reset the machine: every vCPU back to its boot state, devices reset,
    /// the kernel reloaded.
    fn reset(&mut self, cause: ShutdownCause) -> Result<(), MachineError> {
        self.milestones.reset(cause.as_str());
        let was_running = self.control.running();
        self.control.pause_all();
        self.platform.reset();
        self.load_boot_state()?;
        // The kernel and boot structures were rewritten behind the CPUs.
        if let Some(w) = self.accel.accel.guest_writes() {
            w.all_written();
        }
        self.control.new_generation();
        self.milestones.new_boot();
        self.events.emit(
            "RESET",
            Some(json!({"guest": cause.is_guest(), "reason": cause.as_str()})),
        );
        if was_running || cause.is_guest() {
            self.start_vcpus();
        }
        Ok(())
    }

    /// The guest or host asked to shut down: returns the exit status, or
    /// `None` if `-no-shutdown` keeps the process alive.
    fn shutdown(&self, cause: ShutdownCause) -> Option<i32> {
        match cause {
            ShutdownCause::GuestShutdown => self.milestones.power_off(),
            ShutdownCause::GuestReset => self.milestones.reset(cause.as_str()),
            _ => {}
        }
        self.events.emit(
            "SHUTDOWN",
            Some(json!({"guest": cause.is_guest(), "reason": cause.as_str()})),
        );
        if self.cfg.no_shutdown && cause.is_guest() {
            self.control.pause_all();
            self.set_state(RunState::Shutdown);
            self.events.emit("STOP", None);
            return None;
        }
        Some(0)
    }

    fn start_host_threads(&self) -> Result<(), MachineError> {
        signals::spawn_signal_thread(self.events_tx.clone())
            .map_err(|e| MachineError::host("spawn signal thread", e))?;
        if self.clock.mode() == ClockMode::Host {
            self.timers
                .spawn()
                .map_err(|e| MachineError::host("spawn timer thread", e))?;
        }
        let serial_on_stdio = self.cfg.serial == Some(CharBackend::Stdio);
        let stdin_used = serial_on_stdio || self.platform.stdio_console().is_some();
        let hmp_on_stdio = self
            .hmp_monitors
            .iter()
            .any(|m| m.endpoint == qmp::Endpoint::Stdio);
        if hmp_on_stdio && !self.cfg.daemonize {
            terminal::enter_raw_mode();
        }
        if stdin_used && !self.cfg.daemonize {
            terminal::enter_raw_mode();
            let monitor = match (&self.monitor_ctx, self.cfg.serial_mux) {
                (Some(ctx), true) => Some(Session::new(ctx.clone())),
                _ => None,
            };
            let mux = (self.cfg.nographic || self.cfg.serial_mux).then(|| Mux::new(monitor));
            platform::spawn_console_input(&self.platform, serial_on_stdio, mux, &self.events_tx)
                .map_err(|e| MachineError::host("spawn console thread", e))?;
        }
        Ok(())
    }

    /// Serve `-monitor`/`-mon mode=readline`. Started, like the QMP
    /// server, from a thread that takes the monitor filter first, so every
    /// listener and session thread inherits it (the main thread's filter
    /// allows no new threads).
    fn start_human_monitors(&self) -> Result<(), MachineError> {
        let Some(ctx) = &self.monitor_ctx else {
            return Ok(());
        };
        if self.hmp_monitors.is_empty() {
            return Ok(());
        }
        let (ctx, monitors) = (ctx.clone(), self.hmp_monitors.clone());
        std::thread::Builder::new()
            .name("hmp-start".into())
            .spawn(move || {
                sandbox::enter(ThreadKind::Monitor).map_err(|e| e.to_string())?;
                for (i, m) in monitors.iter().enumerate() {
                    hmp::server::start(ctx.clone(), m, i)
                        .map_err(|e| format!("-monitor {}: {e}", m.filename()))?;
                }
                Ok(())
            })
            .map_err(|e| MachineError::host("spawn the monitor thread", e))?
            .join()
            .unwrap_or_else(|_| Err("the monitor thread failed".into()))
            .map_err(MachineError::Config)
    }

    fn start_monitors(&mut self) -> Result<Option<qmp::QmpServer>, MachineError> {
        let mut all = self.monitors.clone();
        all.extend(self.hmp_monitors.iter().cloned());
        let mut ctx = MonitorContext::new(
            &self.cfg,
            self.accel.kind,
            self.events_tx.clone(),
            self.state.clone(),
            self.vcpu_tids.clone(),
            self.snapshots.clone(),
            self.mem.clone(),
            all,
            self.clock.clone(),
        )
        .with_milestones(self.milestones.clone());
        ctx.transports = self.platform.virtio_transports();
        ctx.irqchip = Some(self.platform.irqchip.clone());
        let ctx = Arc::new(ctx);
        self.monitor_ctx = Some(ctx.clone());
        if self.monitors.is_empty() {
            if self.cfg.start_paused && self.hmp_monitors.is_empty() && !self.cfg.serial_mux {
                eprintln!(
                    "{}: -S: the machine starts paused and no monitor (-qmp) can resume it",
                    self.prog
                );
            }
            return Ok(None);
        }
        let version = qmp::VersionInfo {
            major: 10,
            minor: 0,
            micro: 2,
            package: format!("Kindling {}", env!("CARGO_PKG_VERSION")),
        };
        // Started from a thread that takes the monitor filter first, so
        // every listener and connection thread inherits it.
        let monitors = self.monitors.clone();
        let server = std::thread::Builder::new()
            .name("qmp-start".into())
            .spawn(move || {
                sandbox::enter(ThreadKind::Monitor).map_err(|e| e.to_string())?;
                qmp::QmpServer::start(monitors, ctx, version).map_err(|e| e.to_string())
            })
            .map_err(|e| MachineError::host("spawn the monitor thread", e))?
            .join()
            .unwrap_or_else(|_| Err("the monitor thread failed".into()))
            .map_err(MachineError::Config)?;
        self.events.subscribe(Arc::new(QmpEvents(server.clone())));
        for m in self.monitors.iter().filter(|m| m.wait) {
            eprintln!(
                "{}: -qmp {}: info: QEMU waiting for connection on: disconnected:{}",
                self.prog,
                m.filename(),
                m.filename()
            );
        }
        server.wait_for_clients();
        Ok(Some(server))
    }

    /// Run until the machine ends; returns the process exit status.
    pub fn run(mut self) -> i32 {
        let server = match self.start_monitors() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{}: {e}", self.prog);
                return 1;
            }
        };
        if let Err(e) = self.start_host_threads() {
            eprintln!("{}: {e}", self.prog);
            return 1;
        }
        if self.cfg.start_paused {
            self.set_state(RunState::Prelaunch);
        } else {
            self.start_vcpus();
        }
        // Once the machine runs, as QEMU's main loop answers them.
        if let Err(e) = self.start_human_monitors() {
            eprintln!("{}: {e}", self.prog);
            return 1;
        }
        if let Err(e) = sandbox::enter(ThreadKind::Main) {
            eprintln!("{}: {e}", self.prog);
            return 1;
        }
        let status = loop {
            let Ok(ev) = self.events_rx.recv() else {
                break 1;
            };
            if let Some(code) = self.handle(ev) {
                break code;
            }
        };
        self.control.exit_all();
        self.timers.stop();
        terminal::restore();
        if let Some(s) = server {
            // Let the reply to `quit` reach its client.
            s.drain(std::time::Duration::from_millis(500));
        }
        status
    }

    /// React to one event; `Some(status)` ends the process.
    fn handle(&mut self, ev: BoardEvent) -> Option<i32> {
        match ev {
            BoardEvent::GuestReset => {
                if self.cfg.no_reboot {
                    return self.shutdown(ShutdownCause::GuestReset);
                }
                if let Err(e) = self.reset(ShutdownCause::GuestReset) {
                    eprintln!("{}: reset failed: {e}", self.prog);
                    return Some(1);
                }
                None
            }
            BoardEvent::GuestPowerOff => self.shutdown(ShutdownCause::GuestShutdown),
            BoardEvent::DebugExit(code) => Some(code),
            BoardEvent::Signal { signo, pid } => {
                terminal::restore();
                eprintln!("{}", signals::termination_message(&self.prog, signo, pid));
                self.shutdown(ShutdownCause::HostSignal).or(Some(0))
            }
            BoardEvent::ConsoleQuit => {
                terminal::restore();
                eprintln!("{}: terminating on console request (Ctrl-A X)", self.prog);
                self.shutdown(ShutdownCause::HostUi).or(Some(0))
            }
            BoardEvent::VcpuFailed { vcpu, error } => {
                terminal::restore();
                eprintln!("{}: vCPU {vcpu}: {error}", self.prog);
                // The failed vCPU's thread has ended; the others stop at exit.
                self.set_state(RunState::InternalError);
                Some(1)
            }
            BoardEvent::Monitor { request, done } => {
                let r = self.monitor_request(request);
                if let Some(d) = done {
                    let _ = d.send(());
                }
                r
            }
        }
    }

    fn monitor_request(&mut self, request: MonitorRequest) -> Option<i32> {
        match request {
            MonitorRequest::Quit => self.shutdown(ShutdownCause::HostQmpQuit).or(Some(0)),
            MonitorRequest::Stop => {
                self.stop();
                None
            }
            MonitorRequest::Cont => {
                self.cont();
                None
            }
            MonitorRequest::Reset => {
                if let Err(e) = self.reset(ShutdownCause::HostQmpSystemReset) {
                    eprintln!("{}: reset failed: {e}", self.prog);
                    return Some(1);
                }
                None
            }
            MonitorRequest::Powerdown => {
                self.events.emit("POWERDOWN", None);
                self.platform.power_button();
                None
            }
            MonitorRequest::Nmi => {
                self.platform.nmi();
                None
            }
            MonitorRequest::Snapshot => {
                if self.get_state() == RunState::Running {
                    self.control.pause_all();
                    self.control.resume_all();
                }
                None
            }
        }
    }
}

/// The host's TSC rate in kHz, if the kernel tells it (used for the
/// software CPU's TSC so guests see a familiar rate).
fn host_tsc_khz() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = s
        .lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()?;
    Some((mhz * 1000.0) as u64)
}

/// A chardev that can carry a monitor, as an endpoint.
fn chardev_endpoint(
    cfg: &MachineConfig,
    id: &str,
    bad: &dyn Fn(String) -> MachineError,
) -> Result<qmp::MonitorConfig, MachineError> {
    let dev = cfg
        .chardevs
        .iter()
        .find(|c| c.id == id)
        .ok_or_else(|| bad(format!("chardev '{id}' not found")))?;
    match &dev.backend {
        CharBackend::Socket(params) => qmp::parse_socket_chardev(id, params).map_err(bad),
        CharBackend::Stdio => Ok(qmp::MonitorConfig {
            endpoint: qmp::Endpoint::Stdio,
            wait: false,
            pretty: false,
            label: id.to_string(),
        }),
        _ => Err(bad(format!("chardev '{id}' cannot carry a monitor"))),
    }
}

/// An HMP monitor's `-monitor` value as an endpoint.
fn hmp_endpoint(
    cfg: &MachineConfig,
    value: &str,
    index: usize,
    bad: &dyn Fn(String) -> MachineError,
) -> Result<qmp::MonitorConfig, MachineError> {
    if let Some(id) = value.strip_prefix("chardev:") {
        return chardev_endpoint(cfg, id, bad);
    }
    let label = format!("compat_monitor{index}");
    if value == "stdio" {
        return Ok(qmp::MonitorConfig {
            endpoint: qmp::Endpoint::Stdio,
            wait: false,
            pretty: false,
            label,
        });
    }
    if value.starts_with("unix:") || value.starts_with("tcp:") {
        let mut mc = qmp::parse_qmp_arg(value, false, index).map_err(bad)?;
        mc.label = label;
        return Ok(mc);
    }
    Err(bad(format!("'{value}' is not a valid char driver")))
}

/// The monitors the command line asks for, resolved against `-chardev`:
/// QMP monitors, then human monitors.
fn monitor_configs(
    cfg: &MachineConfig,
) -> Result<(Vec<qmp::MonitorConfig>, Vec<qmp::MonitorConfig>), MachineError> {
    let mut qmp_out = Vec::new();
    let mut hmp_out = Vec::new();
    for (i, m) in cfg.monitors.iter().enumerate() {
        let loc = format!("-{} {}", m.option, m.value);
        let bad = |e: String| MachineError::Config(format!("{loc}: {e}"));
        let mc = match m.option.as_str() {
            "qmp" | "qmp-pretty" => {
                qmp::parse_qmp_arg(&m.value, m.option == "qmp-pretty", i).map_err(bad)?
            }
            "mon" => {
                let (id, pretty) = qmp::parse_mon_arg(&m.value).map_err(bad)?;
                let mut mc = chardev_endpoint(cfg, &id, &bad)?;
                mc.pretty = pretty;
                mc
            }
            _ => hmp_endpoint(cfg, &m.value, hmp_out.len(), &bad)?,
        };
        if mc.endpoint == qmp::Endpoint::Stdio && cfg.serial == Some(CharBackend::Stdio) {
            return Err(bad("cannot use stdio by multiple character devices".into()));
        }
        if m.option == "monitor" {
            hmp_out.push(mc);
        } else {
            qmp_out.push(mc);
        }
    }
    Ok((qmp_out, hmp_out))
}

/// Apply `-cpu model,+feat,-feat`: QEMU's error for an unknown feature
/// name, its warning for one the accelerator cannot provide.
fn cpu_model(accel: &ChosenAccel, cfg: &MachineConfig, prog: &str) -> Result<(), MachineError> {
    let (model, name) = match cfg.cpu.model {
        CpuModel::Host => (cpu::features::CpuModel::Host, "host"),
        CpuModel::Max => (cpu::features::CpuModel::Max, "max"),
        CpuModel::Qemu64 => (cpu::features::CpuModel::Qemu64, "qemu64"),
    };
    if let Some((f, _)) = cfg
        .cpu
        .features
        .iter()
        .find(|(f, _)| cpu::features::locate(f).is_none())
    {
        return Err(MachineError::Config(format!(
            "Property '{name}-x86_64-cpu.{f}' not found"
        )));
    }
    accel.accel.set_cpu_model(model);
    let who = if accel.kind == AccelKind::Kvm {
        "host"
    } else {
        "TCG"
    };
    for f in accel.accel.set_cpu_features(&cfg.cpu.features) {
        let what = cpu::features::describe(&f).unwrap_or(f);
        eprintln!("{prog}: warning: {who} doesn't support requested feature: {what}");
    }
    Ok(())
}
