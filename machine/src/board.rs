//! The machine: builds the board from a [`MachineConfig`], starts the vCPU
//! threads and runs the control loop that reacts to guest and host events.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use cpu::{Clock, ClockMode, GuestMemory, Regs, Segment, Sregs};
use serde_json::json;
use vm_memory::{Bytes, GuestAddress};

use crate::accel::{self, ChosenAccel};
use crate::boot::entry_registers;
use crate::config::{AccelKind, CharBackend, MachineConfig};
use crate::control::VcpuControl;
use crate::error::MachineError;
use crate::events::Events;
use crate::platform::{self, Platform};
use crate::process::PidFile;
use crate::runstate::{BoardEvent, MonitorRequest, RunState, ShutdownCause};
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
        let tsc_khz = host_tsc_khz().unwrap_or(INTERP_TSC_KHZ);
        let clock = Arc::new(Clock::new(icount.unwrap_or(ClockMode::Host), tsc_khz));
        let ioapic_pins = if cfg.acpi_enabled() { 48 } else { 24 };
        let accel = accel::choose(&cfg.accel, &mem, &clock, cfg.cpus, ioapic_pins, prog)?;
        if icount.is_some() && accel.kind == AccelKind::Kvm {
            return Err(MachineError::Config(
                "-icount is not allowed with hardware virtualization".into(),
            ));
        }
        let timers = TimerService::new(clock.clone());
        let platform = platform::build(&cfg, &accel, &mem, &clock, &timers, &events_tx)?;
        let control = Arc::new(VcpuControl::new(cfg.cpus as usize));
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
            events: Arc::new(Events::default()),
            timers,
            state: Arc::new(Mutex::new(RunState::Prelaunch)),
            vcpu_tids: Arc::new(Mutex::new(Vec::new())),
            snapshots: Arc::new(Mutex::new(Vec::new())),
            _pidfile: pidfile,
        };
        m.load_boot_state()?;
        m.create_vcpus()?;
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
                boot: self.boot.clone(),
                snapshots: self.snapshots.clone(),
            };
            let tids = self.vcpu_tids.clone();
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
        let was_running = self.control.running();
        self.control.pause_all();
        self.platform.reset();
        self.load_boot_state()?;
        self.control.new_generation();
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
        if self.cfg.serial == Some(CharBackend::Stdio) && !self.cfg.daemonize {
            terminal::enter_raw_mode();
            platform::spawn_console_input(&self.platform, self.cfg.nographic, &self.events_tx)
                .map_err(|e| MachineError::host("spawn console thread", e))?;
        }
        Ok(())
    }

    /// Run until the machine ends; returns the process exit status.
    pub fn run(mut self) -> i32 {
        if let Err(e) = self.start_host_threads() {
            eprintln!("{}: {e}", self.prog);
            return 1;
        }
        if self.cfg.start_paused {
            self.set_state(RunState::Prelaunch);
        } else {
            self.start_vcpus();
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
                self.control.pause_all();
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
