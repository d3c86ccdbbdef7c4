//! The interpreter as a [`Vcpu`] and an [`Accelerator`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::cpu::{Cpu, Stop};
use super::cpuid::CpuidTable;
use super::state::flags::IF;
use super::state::Seg;
use crate::features::CpuModel;
use crate::{
    Accelerator, Clock, CpuError, CpuidEntry, GuestMemory, IoBus, LapicLocation, Msi, Regs,
    Segment, Sregs, Vcpu, VcpuExit, VcpuKick,
};

/// How long `run` executes before returning to the vCPU loop.
const SLICE: Duration = Duration::from_millis(5);
/// Instructions between checks of the kick flag and the slice clock.
const BATCH: u32 = 1024;
/// Longest run, in instructions, with instruction-counted time.
const ICOUNT_SLICE: u64 = 1 << 20;

/// The interpreter's kick: a flag checked per batch of instructions.
#[derive(Debug, Default)]
pub struct InterpKick(AtomicBool);

impl VcpuKick for InterpKick {
    fn kick(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// One software vCPU.
#[derive(Debug)]
pub struct InterpVcpu {
    cpu: Cpu,
    kick: Arc<InterpKick>,
    halted: bool,
    wait_for_sipi: bool,
    shadow: bool,
    want_window: bool,
    pending_nmi: bool,
}

impl InterpVcpu {
    /// vCPU `id` on `mem`, timed by `clock`.
    pub fn new(id: u32, mem: Arc<GuestMemory>, clock: Arc<Clock>) -> Self {
        InterpVcpu {
            cpu: Cpu::new(id, mem, clock),
            kick: Arc::new(InterpKick::default()),
            halted: false,
            wait_for_sipi: id != 0,
            shadow: false,
            want_window: false,
            pending_nmi: false,
        }
    }

    /// The CPU's state (tests).
    pub fn cpu(&mut self) -> &mut Cpu {
        &mut self.cpu
    }

    fn interruptible(&self) -> bool {
        self.cpu.st.rflags & IF != 0 && !self.shadow
    }
}

impl Vcpu for InterpVcpu {
    fn id(&self) -> u32 {
        self.cpu.id
    }

    fn run(&mut self, io: &dyn IoBus) -> Result<VcpuExit, CpuError> {
        if self.kick.0.swap(false, Ordering::SeqCst) {
            return Ok(VcpuExit::Kicked);
        }
        if self.wait_for_sipi {
            return Ok(VcpuExit::Halted);
        }
        if self.pending_nmi {
            self.pending_nmi = false;
            self.halted = false;
            if self
                .cpu
                .raise(super::mem::Exception {
                    vector: 2,
                    error_code: None,
                })
                .is_err()
            {
                return Ok(VcpuExit::TripleFault);
            }
        }
        if self.halted {
            return Ok(VcpuExit::Halted);
        }
        if self.want_window && self.interruptible() {
            self.want_window = false;
            return Ok(VcpuExit::IrqWindowOpen);
        }
        self.cpu.attach_io(Some(io));
        let start = Instant::now();
        let counted = self.cpu.clock().is_instruction_counted();
        // Instruction-counted time: stop exactly at the next timer deadline
        // and slice by instructions, never by host time, so every run of
        // the same guest takes interrupts at the same instruction.
        let mut budget = if counted { ICOUNT_SLICE } else { u64::MAX };
        let mut exit = VcpuExit::Continue;
        let mut done: u64;
        'outer: loop {
            let n = if counted {
                // Re-read per batch: the guest may have armed a nearer timer.
                budget.min(self.cpu.clock().instruction_budget())
            } else {
                budget
            }
            .min(u64::from(BATCH));
            done = 0;
            while done < n {
                // Counted time stops exactly at the budget; otherwise a
                // block may end a batch a few instructions late.
                // After STI or MOV SS exactly one instruction runs before
                // interrupts are looked at again, as in single-stepping.
                let (ran, result) = if self.shadow {
                    self.cpu.step_block(1, true)
                } else {
                    self.cpu.step_block(n - done, counted)
                };
                done += ran;
                match result {
                    Ok((None, shadow)) => {
                        let was = self.shadow;
                        self.shadow = shadow;
                        if (was || !shadow) && self.want_window && self.interruptible() {
                            self.want_window = false;
                            exit = VcpuExit::IrqWindowOpen;
                            break 'outer;
                        }
                    }
                    Ok((Some(Stop::Halt), _)) => {
                        self.halted = true;
                        self.shadow = false;
                        exit = VcpuExit::Halted;
                        break 'outer;
                    }
                    Ok((Some(Stop::TripleFault), _)) | Err(_) => {
                        exit = VcpuExit::TripleFault;
                        break 'outer;
                    }
                }
            }
            self.cpu.account(done);
            done = 0;
            budget -= n;
            if self.kick.0.swap(false, Ordering::SeqCst) {
                exit = VcpuExit::Kicked;
                break;
            }
            if budget == 0 || (counted && self.cpu.clock().instruction_budget() <= 1) {
                // At the deadline: back to the vCPU loop to fire the timers.
                break;
            }
            if !counted && start.elapsed() >= SLICE {
                break;
            }
        }
        self.cpu.account(done);
        self.cpu.attach_io(None);
        Ok(exit)
    }

    fn kicker(&self) -> Arc<dyn VcpuKick> {
        self.kick.clone()
    }

    fn ready_for_interrupt(&self) -> bool {
        !self.wait_for_sipi && self.interruptible()
    }

    fn inject_interrupt(&mut self, vector: u8) -> Result<(), CpuError> {
        self.halted = false;
        if self.cpu.deliver(vector, None, false).is_err() {
            // A broken IDT: what real hardware turns into #DF / shutdown.
            let _ = self.cpu.raise(super::mem::Exception {
                vector: 8,
                error_code: Some(0),
            });
        }
        Ok(())
    }

    fn inject_nmi(&mut self) -> Result<(), CpuError> {
        self.pending_nmi = true;
        self.halted = false;
        Ok(())
    }

    fn request_interrupt_window(&mut self, enable: bool) {
        self.want_window = enable;
    }

    fn regs(&self) -> Result<Regs, CpuError> {
        Ok(self.cpu.st.regs())
    }

    fn set_regs(&mut self, regs: &Regs) -> Result<(), CpuError> {
        self.cpu.st.set_regs(regs);
        Ok(())
    }

    fn sregs(&self) -> Result<Sregs, CpuError> {
        Ok(self.cpu.st.sregs())
    }

    fn set_sregs(&mut self, sregs: &Sregs) -> Result<(), CpuError> {
        self.cpu.st.set_sregs(sregs);
        self.cpu.flush_tlb();
        Ok(())
    }

    fn set_cpuid(&mut self, _entries: &[CpuidEntry]) -> Result<(), CpuError> {
        // The software CPU's CPUID describes what it implements: its table
        // comes from the `-cpu` model when the vCPU is created.
        Ok(())
    }

    fn set_msrs(&mut self, msrs: &[(u32, u64)]) -> Result<(), CpuError> {
        for (m, v) in msrs {
            let _ = self.cpu.wrmsr(*m, *v);
        }
        Ok(())
    }

    fn set_runnable(&mut self, runnable: bool) -> Result<(), CpuError> {
        self.wait_for_sipi = !runnable;
        self.halted = false;
        if !runnable {
            self.cpu.st = super::state::CpuState::default();
        }
        Ok(())
    }

    fn deliver_init(&mut self) -> Result<(), CpuError> {
        self.cpu.st = super::state::CpuState::default();
        self.wait_for_sipi = true;
        self.halted = false;
        Ok(())
    }

    fn deliver_sipi(&mut self, vector: u8) -> Result<(), CpuError> {
        if self.wait_for_sipi {
            self.wait_for_sipi = false;
            self.halted = false;
            let sel = u16::from(vector) << 8;
            self.cpu.st.seg[Seg::Cs as usize] = Segment::real_mode(sel, true);
            self.cpu.st.rip = 0;
        }
        Ok(())
    }

    fn translate(&self, gva: u64) -> Option<u64> {
        let mut st = self.cpu.st.clone();
        // A debugger's look-up, not a guest access: no SMEP/SMAP.
        st.cr4 &= !((1 << 20) | (1 << 21));
        self.cpu
            .mmu()
            .translate(&mut st, gva, super::mem::Access::Read)
            .ok()
    }
}

/// The software CPU accelerator (`-accel tcg`).
#[derive(Debug)]
pub struct InterpAccelerator {
    mem: Arc<GuestMemory>,
    clock: Arc<Clock>,
    /// The `-cpu` model and feature adjustments for new vCPUs.
    model: Mutex<(CpuModel, Vec<(String, bool)>)>,
    options: super::TcgOptions,
    /// The read-only range (`protect_rom`) of new vCPUs.
    rom: Mutex<Option<(u64, u64)>>,
}

impl InterpAccelerator {
    /// An accelerator on `mem`, timed by `clock`.
    pub fn new(mem: Arc<GuestMemory>, clock: Arc<Clock>) -> Self {
        Self::with_options(mem, clock, super::TcgOptions::default())
    }

    /// An accelerator with `-accel tcg,...` options.
    pub fn with_options(
        mem: Arc<GuestMemory>,
        clock: Arc<Clock>,
        options: super::TcgOptions,
    ) -> Self {
        InterpAccelerator {
            mem,
            clock,
            options,
            model: Mutex::new((CpuModel::Max, Vec::new())),
            rom: Mutex::new(None),
        }
    }
}

impl Accelerator for InterpAccelerator {
    fn name(&self) -> &'static str {
        "tcg"
    }

    fn lapic_location(&self) -> LapicLocation {
        LapicLocation::Userspace
    }

    fn create_vcpu(&self, id: u32, _count: u32) -> Result<Box<dyn Vcpu>, CpuError> {
        let mut v = InterpVcpu::new(id, self.mem.clone(), self.clock.clone());
        let (model, features) = self.model.lock().map(|m| m.clone()).unwrap_or_default();
        let (table, _) = CpuidTable::new(model, id, self.clock.tsc_khz(), &features);
        v.cpu.set_cpuid(table);
        v.cpu().configure(&self.options);
        if let Some((start, len)) = self.rom.lock().ok().and_then(|r| *r) {
            v.cpu.ram.set_read_only(start, len);
        }
        Ok(Box::new(v))
    }

    fn protect_rom(&self, start: u64, len: u64) -> Result<(), CpuError> {
        if let Ok(mut r) = self.rom.lock() {
            *r = Some((start, len));
        }
        Ok(())
    }

    fn set_cpu_model(&self, model: CpuModel) {
        if let Ok(mut m) = self.model.lock() {
            m.0 = model;
        }
    }

    fn set_cpu_features(&self, features: &[(String, bool)]) -> Vec<String> {
        let Ok(mut m) = self.model.lock() else {
            return Vec::new();
        };
        m.1 = features.to_vec();
        CpuidTable::new(m.0, 0, self.clock.tsc_khz(), features).1
    }

    fn signal_msi(&self, _msi: Msi) -> Result<(), CpuError> {
        Err(CpuError::Unsupported("tcg"))
    }

    fn guest_writes(&self) -> Option<Arc<dyn crate::GuestWrites>> {
        Some(super::codemap::CodePages::of(&self.mem))
    }

    fn supported_cpuid(&self) -> Vec<CpuidEntry> {
        let tsc_khz = self.clock.tsc_khz();
        let (max, _) = CpuidTable::new(CpuModel::Max, 0, tsc_khz, &[]);
        max.entries().to_vec()
    }
}
