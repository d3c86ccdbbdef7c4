//! The one vCPU loop both backends run (crosvm's `vcpu_loop` order):
//! control → wait while halted → inject interrupts → run → handle the exit.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use cpu::{CpuError, IoBus, Regs, Sregs, Vcpu, VcpuExit};

use crate::control::{Directive, VcpuControl};
use crate::milestones::Milestones;
use crate::reset_line::ResetLine;
use crate::runstate::BoardEvent;

/// How a vCPU gets its interrupts; one implementation per LAPIC location.
pub trait VcpuInterrupts: Send + Sync {
    /// Deliver what is pending for this vCPU before it runs (or ask for an
    /// interrupt window).
    fn inject(&self, vcpu: &mut dyn Vcpu) -> Result<(), CpuError>;
    /// An in-kernel LAPIC acknowledged a level-triggered vector.
    fn eoi(&self, vector: u8);
    /// The vCPU executed HLT: block until it has something to do or the
    /// control state changes. With `interruptible` false (HLT with IF=0)
    /// only an NMI, INIT/SIPI or the control state wakes it; a pending
    /// maskable interrupt does not. Returns at once for in-kernel LAPICs.
    fn halted(&self, vcpu: u32, interruptible: bool, control: &VcpuControl);
}

/// The register state a vCPU takes at (re)boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootState {
    /// Start executing with these registers (the BSP).
    Start(Box<(Regs, Sregs)>),
    /// Wait for INIT/SIPI (application processors).
    WaitForSipi,
}

/// Boot states for every vCPU, replaced by the board at each reset.
pub type BootStates = Arc<Mutex<Vec<BootState>>>;

/// Everything a vCPU thread needs.
pub struct VcpuThread {
    /// The vCPU, owned by its thread.
    pub vcpu: Box<dyn Vcpu>,
    /// Guest I/O.
    pub io: Arc<dyn IoBus>,
    /// Pause/resume/reset/exit.
    pub control: Arc<VcpuControl>,
    /// Interrupt delivery.
    pub interrupts: Arc<dyn VcpuInterrupts>,
    /// Where failures are reported.
    pub events: Sender<BoardEvent>,
    /// Pulled when the guest triple-faults or asks for a reset.
    pub reset: ResetLine,
    /// Boot register state per vCPU.
    pub boot: BootStates,
    /// Register snapshots taken whenever the vCPU parks (monitor reads).
    pub snapshots: RegisterSnapshots,
    /// Boot milestones (first instruction, guest reset).
    pub milestones: Arc<Milestones>,
}

/// The registers of each vCPU as of its last pause.
pub type RegisterSnapshots = Arc<Mutex<Vec<Option<(Regs, Sregs)>>>>;

impl std::fmt::Debug for VcpuThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VcpuThread")
            .field("vcpu", &self.vcpu.id())
            .finish()
    }
}

impl VcpuThread {
    /// Apply this vCPU's boot state; returns the RIP it starts at, if it
    /// starts running (the BSP).
    fn apply_boot_state(&mut self) -> Result<Option<u64>, CpuError> {
        let id = self.vcpu.id() as usize;
        let state = self
            .boot
            .lock()
            .ok()
            .and_then(|b| b.get(id).cloned())
            .unwrap_or(BootState::WaitForSipi);
        match state {
            BootState::Start(state) => {
                let (regs, sregs) = *state;
                self.vcpu.set_sregs(&sregs)?;
                self.vcpu.set_regs(&regs)?;
                self.vcpu.set_runnable(true)?;
                Ok(Some(regs.rip))
            }
            BootState::WaitForSipi => self.vcpu.set_runnable(false).map(|_| None),
        }
    }

    /// Run until told to exit.
    pub fn run(mut self) {
        let mut generation = u64::MAX;
        let mut first_rip = None;
        let id = self.vcpu.id();
        loop {
            if self.control.should_stop() {
                self.snapshot();
            }
            match self.control.checkpoint() {
                Directive::Exit => return,
                Directive::Run { generation: g } if g != generation => {
                    generation = g;
                    match self.apply_boot_state() {
                        Ok(rip) => first_rip = rip,
                        Err(e) => {
                            self.fail(id, e);
                            return;
                        }
                    }
                }
                Directive::Run { .. } => {}
            }
            if let Err(e) = self.interrupts.inject(self.vcpu.as_mut()) {
                self.fail(id, e);
                return;
            }
            if let Some(rip) = first_rip.take() {
                self.milestones.first_instruction(rip);
            }
            match self.vcpu.run(self.io.as_ref()) {
                Ok(VcpuExit::Continue | VcpuExit::Kicked | VcpuExit::IrqWindowOpen) => {}
                Ok(VcpuExit::Halted) => {
                    let interruptible = self.vcpu.ready_for_interrupt();
                    self.interrupts.halted(id, interruptible, &self.control)
                }
                Ok(VcpuExit::IoapicEoi { vector }) => self.interrupts.eoi(vector),
                Ok(VcpuExit::TripleFault | VcpuExit::Reset) => {
                    self.reset.pull();
                    // Park until the board has reset (or ended) the machine.
                    self.control.wait_until_paused_or_exit();
                }
                Err(e) => {
                    self.fail(id, e);
                    return;
                }
            }
        }
    }

    fn snapshot(&self) {
        let id = self.vcpu.id() as usize;
        let regs = self.vcpu.regs().ok().zip(self.vcpu.sregs().ok());
        if let Ok(mut s) = self.snapshots.lock() {
            if s.len() <= id {
                s.resize(id + 1, None);
            }
            s[id] = regs;
        }
    }

    fn fail(&self, id: u32, e: CpuError) {
        let _ = self.events.send(BoardEvent::VcpuFailed {
            vcpu: id,
            error: e.to_string(),
        });
    }
}
