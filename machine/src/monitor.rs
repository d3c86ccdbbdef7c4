//! The board's side of QMP: commands answered from the machine's state or
//! carried out by the control loop, and HMP text for `human-monitor-command`.

use std::sync::mpsc::{sync_channel, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpu::{GuestMemory, Regs, Sregs};
use qmp::{CommandHandler, MonitorConfig, QmpError};
use serde_json::{json, Map, Value};
use vm_memory::{Bytes, GuestAddress};

use crate::config::{AccelKind, CharBackend, MachineConfig};
use crate::events::EventListener;
use crate::hmp;
use crate::runstate::{BoardEvent, MonitorRequest, RunState};
use crate::vcpu_thread::RegisterSnapshots;

/// Everything the monitor reads or asks of the board.
pub struct MonitorContext {
    /// Posts requests to the control loop.
    pub requests: Mutex<Sender<BoardEvent>>,
    /// Current run state.
    pub state: Arc<Mutex<RunState>>,
    /// vCPU host thread ids.
    pub tids: Arc<Mutex<Vec<i32>>>,
    /// Register snapshots taken at each pause.
    pub snapshots: RegisterSnapshots,
    /// Guest RAM.
    pub mem: Arc<GuestMemory>,
    /// `-name`.
    pub name: Option<String>,
    /// The accelerator in use.
    pub accel: AccelKind,
    /// Number of vCPUs.
    pub cpus: u32,
    /// COM1's backend, for `query-chardev`.
    pub serial: Option<CharBackend>,
    /// The monitors, for `query-chardev`.
    pub monitors: Vec<MonitorConfig>,
    /// `-uuid`, or QEMU's all-zero default, for `query-uuid`.
    pub uuid: String,
    /// Block backends, for `query-block`.
    pub drives: Vec<crate::config::DriveConfig>,
    /// The guest clock (`query-replay` reports its instruction count).
    pub clock: Arc<cpu::Clock>,
    /// Boot milestones (`x-query-boot-milestones`).
    pub milestones: Option<Arc<crate::milestones::Milestones>>,
    /// The machine's configuration (HMP `info block|network|mtree`).
    pub config: MachineConfig,
    /// The virtio-mmio transports (HMP `info mtree|qtree`).
    pub transports: Vec<firmware::VirtioMmioTransport>,
    /// The interrupt controllers (HMP `info pic`).
    pub irqchip: Option<devices::irqchip::IrqChip>,
    /// HMP `x`/`xp`'s remembered format, shared by every monitor as in QEMU.
    hmp_format: Mutex<hmp::FormatState>,
}

impl std::fmt::Debug for MonitorContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorContext")
            .field("cpus", &self.cpus)
            .finish()
    }
}

impl MonitorContext {
    /// Build from the machine's configuration and shared handles.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: &MachineConfig,
        accel: AccelKind,
        requests: Sender<BoardEvent>,
        state: Arc<Mutex<RunState>>,
        tids: Arc<Mutex<Vec<i32>>>,
        snapshots: RegisterSnapshots,
        mem: Arc<GuestMemory>,
        monitors: Vec<MonitorConfig>,
        clock: Arc<cpu::Clock>,
    ) -> Self {
        MonitorContext {
            requests: Mutex::new(requests),
            state,
            tids,
            snapshots,
            mem,
            name: cfg.name.clone(),
            accel,
            cpus: cfg.cpus,
            serial: cfg.serial.clone(),
            monitors,
            uuid: cfg
                .uuid
                .clone()
                .unwrap_or_else(|| "00000000-0000-0000-0000-000000000000".into()),
            drives: cfg.drives.clone(),
            clock,
            milestones: None,
            config: cfg.clone(),
            transports: Vec::new(),
            irqchip: None,
            hmp_format: Mutex::new(hmp::FormatState::default()),
        }
    }

    /// HMP's remembered `x` format.
    pub(crate) fn hmp_format(&self) -> hmp::FormatState {
        self.hmp_format.lock().map(|f| *f).unwrap_or_default()
    }

    /// Remember HMP's `x` format.
    pub(crate) fn set_hmp_format(&self, f: hmp::FormatState) {
        if let Ok(mut g) = self.hmp_format.lock() {
            *g = f;
        }
    }

    /// Answer `x-query-boot-milestones` from `m`.
    pub fn with_milestones(mut self, m: Arc<crate::milestones::Milestones>) -> Self {
        self.milestones = Some(m);
        self
    }

    /// Ask the control loop to do something and wait until it is done.
    pub(crate) fn request(&self, request: MonitorRequest) -> Result<(), QmpError> {
        let (tx, rx) = sync_channel(1);
        let sent = self
            .requests
            .lock()
            .map(|r| {
                r.send(BoardEvent::Monitor {
                    request,
                    done: Some(tx),
                })
                .is_ok()
            })
            .unwrap_or(false);
        if !sent {
            return Err(QmpError::generic("the machine is shutting down"));
        }
        // `quit` ends the process before answering; don't hang on it.
        let _ = rx.recv_timeout(Duration::from_secs(30));
        Ok(())
    }

    pub(crate) fn state(&self) -> RunState {
        self.state.lock().map(|s| *s).unwrap_or(RunState::Running)
    }

    fn status(&self) -> Value {
        let s = self.state();
        // QEMU 10's shape (the version Kindling reports): `singlestep` was
        // deprecated in 8.1 and is gone.
        json!({"status": s.as_str(), "running": s == RunState::Running})
    }

    pub(crate) fn registers(&self) -> Vec<Option<(Regs, Sregs)>> {
        if self.state() == RunState::Running {
            let _ = self.request(MonitorRequest::Snapshot);
        }
        self.snapshots.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Every character device as (label, filename), QEMU's `query-chardev`.
    pub(crate) fn chardev_list(&self) -> Vec<(String, String)> {
        let mut v = Vec::new();
        if let Some(b) = &self.serial {
            let filename = match b {
                _ if self.config.serial_mux => "mux".to_string(),
                CharBackend::Stdio => "stdio".to_string(),
                CharBackend::Null => "null".to_string(),
                CharBackend::File(p) => format!("file:{}", p.display()),
                CharBackend::Socket(_) => "socket".to_string(),
            };
            v.push(("serial0".to_string(), filename));
        }
        if self.config.serial_mux {
            v.push(("compat_monitor0".to_string(), "stdio".to_string()));
        }
        v.extend(
            self.monitors
                .iter()
                .map(|m| (m.label.clone(), m.filename())),
        );
        v
    }

    fn chardevs(&self) -> Vec<Value> {
        self.chardev_list()
            .into_iter()
            .map(|(label, filename)| {
                json!({"frontend-open": true, "filename": filename, "label": label})
            })
            .collect()
    }

    fn cpus_fast(&self) -> Value {
        let tids = self.tids.lock().map(|t| t.clone()).unwrap_or_default();
        Value::Array(
            (0..self.cpus)
                .map(|i| {
                    json!({
                        "thread-id": tids.get(i as usize).copied().unwrap_or(0),
                        "props": {"core-id": i, "thread-id": 0, "socket-id": 0},
                        "qom-path": format!("/machine/unattached/device[{i}]"),
                        "cpu-index": i,
                        "target": "x86_64"
                    })
                })
                .collect(),
        )
    }

    fn memsave(&self, addr: u64, size: u64, file: &str, cpu: u64) -> Result<(), QmpError> {
        let regs = self.registers();
        let Some(Some((_, sregs))) = regs.get(cpu as usize) else {
            return Err(QmpError::generic(
                "Parameter 'cpu-index' expects a CPU index",
            ));
        };
        crate::memdump::memsave(&self.mem, sregs, addr, size, file, translate)
    }
}

/// Guest-virtual → guest-physical with the vCPU's paging mode
/// (no paging, 32-bit, PAE or 4-level).
pub fn translate(mem: &GuestMemory, s: &Sregs, va: u64) -> Option<u64> {
    const PG: u64 = 1 << 31;
    const PAE: u64 = 1 << 5;
    const PSE: u64 = 1 << 4;
    const LMA: u64 = 1 << 10;
    let rd64 = |a: u64| -> Option<u64> { mem.read_obj::<u64>(GuestAddress(a)).ok() };
    let rd32 = |a: u64| -> Option<u64> { mem.read_obj::<u32>(GuestAddress(a)).ok().map(u64::from) };
    if s.cr0 & PG == 0 {
        return Some(va);
    }
    let addr_mask = 0x000f_ffff_ffff_f000u64;
    if s.efer & LMA != 0 || s.cr4 & PAE != 0 {
        let levels: &[(u32, bool)] = if s.efer & LMA != 0 {
            &[(39, false), (30, true), (21, true), (12, false)]
        } else {
            &[(30, false), (21, true), (12, false)]
        };
        let mut table = if s.efer & LMA != 0 {
            s.cr3 & addr_mask
        } else {
            s.cr3 & 0xffff_ffe0
        };
        for (i, (shift, large_ok)) in levels.iter().enumerate() {
            let idx_mask = if s.efer & LMA == 0 && i == 0 {
                3
            } else {
                0x1ff
            };
            let e = rd64(table + ((va >> shift) & idx_mask) * 8)?;
            if e & 1 == 0 {
                return None;
            }
            if *large_ok && e & 0x80 != 0 {
                let size = 1u64 << shift;
                return Some((e & addr_mask & !(size - 1)) | (va & (size - 1)));
            }
            table = e & addr_mask;
        }
        return Some(table | (va & 0xfff));
    }
    let pde = rd32((s.cr3 & 0xffff_f000) + ((va >> 22) & 0x3ff) * 4)?;
    if pde & 1 == 0 {
        return None;
    }
    if pde & 0x80 != 0 && s.cr4 & PSE != 0 {
        return Some((pde & 0xffc0_0000) | (va & 0x3f_ffff));
    }
    let pte = rd32((pde & 0xffff_f000) + ((va >> 12) & 0x3ff) * 4)?;
    (pte & 1 != 0).then_some((pte & 0xffff_f000) | (va & 0xfff))
}

impl CommandHandler for MonitorContext {
    fn execute(&self, name: &str, args: &Map<String, Value>) -> Result<Value, QmpError> {
        let int = |k: &str| args.get(k).and_then(Value::as_u64).unwrap_or(0);
        let s = |k: &str| {
            args.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        match name {
            "query-status" => Ok(self.status()),
            "query-name" => Ok(match &self.name {
                Some(n) => json!({"name": n}),
                None => json!({}),
            }),
            "query-uuid" => Ok(json!({"UUID": self.uuid})),
            "query-target" => Ok(json!({"arch": "x86_64"})),
            // No record/replay; as in QEMU, `icount` is the number of
            // instructions executed under `-icount` (0 without it).
            "query-replay" => Ok(json!({"mode": "none", "icount": self.clock.instructions()})),
            "x-query-boot-milestones" => self
                .milestones
                .as_ref()
                .map(|m| m.report())
                .ok_or_else(|| QmpError::generic("boot milestones are not recorded")),
            "query-kvm" => Ok(json!({
                "enabled": self.accel == AccelKind::Kvm,
                "present": std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok()
            })),
            "query-machines" => Ok(json!([{
                "name": "microvm", "hotpluggable-cpus": false, "numa-mem-supported": false,
                "default-cpu-type": "qemu64-x86_64-cpu", "cpu-max": 288, "deprecated": false,
                "default-ram-id": "microvm.ram", "acpi": true
            }])),
            "query-cpus-fast" => Ok(self.cpus_fast()),
            "query-chardev" => Ok(Value::Array(self.chardevs())),
            "query-block" => Ok(Value::Array(
                self.drives.iter().map(crate::block_info::entry).collect(),
            )),
            "stop" => self.request(MonitorRequest::Stop).map(|_| json!({})),
            "cont" => self.request(MonitorRequest::Cont).map(|_| json!({})),
            "system_reset" => self.request(MonitorRequest::Reset).map(|_| json!({})),
            "system_powerdown" => self.request(MonitorRequest::Powerdown).map(|_| json!({})),
            "inject-nmi" => self.request(MonitorRequest::Nmi).map(|_| json!({})),
            "quit" => self.request(MonitorRequest::Quit).map(|_| json!({})),
            "pmemsave" => {
                crate::memdump::pmemsave(&self.mem, int("val"), int("size"), &s("filename"))
                    .map(|_| json!({}))
            }
            "memsave" => self
                .memsave(int("val"), int("size"), &s("filename"), int("cpu-index"))
                .map(|_| json!({})),
            "human-monitor-command" => Ok(Value::String(hmp::session::crlf(&hmp::execute(
                self,
                &s("command-line"),
            )))),
            other => Err(QmpError::not_found(format!(
                "The command {other} has not been found"
            ))),
        }
    }
}

/// Forwards board events to the QMP server.
pub struct QmpEvents(pub qmp::QmpServer);

impl std::fmt::Debug for QmpEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QmpEvents")
    }
}

impl EventListener for QmpEvents {
    fn event(&self, name: &str, data: Option<Value>) {
        self.0.emit(name, data);
    }
}
