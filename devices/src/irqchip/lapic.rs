//! A userspace local APIC (xAPIC, version 0x50014) for the interpreter
//! backend: the register page at 0xFEE00000, interrupt acceptance and
//! priority (IRR/ISR/TMR, TPR/PPR), EOI, IPIs through the ICR, the LVTs and
//! the timer, INIT/SIPI as events for the board, and the APIC_BASE and
//! TSC_DEADLINE MSRs.
//!
//! A `Lapic` does not know its peers: a register write that sends an IPI or
//! EOIs a level-triggered vector returns a [`LapicAction`] that the
//! [`super::IrqChip`] carries out (after releasing this LAPIC's lock).

use std::collections::VecDeque;
use std::sync::Arc;

use cpu::Clock;

use super::lapic_timer::{LapicTimer, TimerMode};
use super::message::{DeliveryMode, DestinationMode, InterruptMessage, VcpuNotifier};
use crate::timer::Timed;

/// Guest-physical base of the local APIC page.
pub const LAPIC_BASE: u64 = 0xfee0_0000;
/// Size of the local APIC page.
pub const LAPIC_SIZE: u64 = 0x1000;
/// The version register: version 0x14 (integrated xAPIC), 6 LVT entries.
pub const LAPIC_VERSION: u32 = 0x0005_0014;
/// IA32_APIC_BASE.
pub const MSR_APIC_BASE: u32 = 0x1b;
/// IA32_TSC_DEADLINE.
pub const MSR_TSC_DEADLINE: u32 = 0x6e0;

/// IA32_APIC_BASE: this is the bootstrap processor.
pub const APIC_BASE_BSP: u64 = 1 << 8;
/// IA32_APIC_BASE: x2APIC mode (not supported: writing it set is a #GP).
pub const APIC_BASE_EXTD: u64 = 1 << 10;
/// IA32_APIC_BASE: the APIC is globally enabled.
pub const APIC_BASE_ENABLE: u64 = 1 << 11;
/// Bits of IA32_APIC_BASE holding the page address (36-bit physical).
const APIC_BASE_ADDRESS: u64 = 0x0000_000f_ffff_f000;

const REG_ID: u64 = 0x20;
const REG_VERSION: u64 = 0x30;
const REG_TPR: u64 = 0x80;
const REG_APR: u64 = 0x90;
const REG_PPR: u64 = 0xa0;
const REG_EOI: u64 = 0xb0;
const REG_LDR: u64 = 0xd0;
const REG_DFR: u64 = 0xe0;
const REG_SVR: u64 = 0xf0;
const REG_ISR: u64 = 0x100;
const REG_TMR: u64 = 0x180;
const REG_IRR: u64 = 0x200;
const REG_ESR: u64 = 0x280;
const REG_ICR_LOW: u64 = 0x300;
const REG_ICR_HIGH: u64 = 0x310;
const REG_LVT_TIMER: u64 = 0x320;
const REG_LVT_ERROR: u64 = 0x370;
const REG_TIMER_INITIAL: u64 = 0x380;
const REG_TIMER_CURRENT: u64 = 0x390;
const REG_TIMER_DIVIDE: u64 = 0x3e0;

/// LVT indices, in register order from 0x320.
const LVT_TIMER: usize = 0;
const LVT_LINT0: usize = 3;
const LVT_LINT1: usize = 4;
const LVT_ERROR: usize = 5;
const LVT_COUNT: usize = 6;
/// Writable bits of each LVT register (timer, thermal, perf, LINT0, LINT1, error).
const LVT_WRITABLE: [u32; LVT_COUNT] = [0x7_00ff, 0x1_07ff, 0x1_07ff, 0x1_a7ff, 0x1_a7ff, 0x1_00ff];
const LVT_MASKED: u32 = 1 << 16;

const SVR_ENABLE: u32 = 1 << 8;
/// SVR bits software can write (vector, enable, focus check).
const SVR_WRITABLE: u32 = 0x3ff;

/// ESR: a sent IPI had a vector below 16.
const ESR_SEND_ILLEGAL_VECTOR: u32 = 1 << 5;
/// ESR: a received interrupt had a vector below 16.
const ESR_RECEIVE_ILLEGAL_VECTOR: u32 = 1 << 6;

/// An INIT or STARTUP this vCPU received; only the board can act on it
/// (reset the vCPU's registers, start it at `vector << 12`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitSipi {
    /// INIT: reset the vCPU and wait for a SIPI.
    Init,
    /// STARTUP: start in real mode at CS = `vector << 8`, IP = 0.
    Startup {
        /// The SIPI vector (start page number).
        vector: u8,
    },
}

/// The ICR destination shorthand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shorthand {
    /// Use the destination field.
    None,
    /// The sending APIC only.
    SelfOnly,
    /// Every APIC.
    AllIncludingSelf,
    /// Every APIC except the sender.
    AllExcludingSelf,
}

/// An inter-processor interrupt a LAPIC asks the board to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipi {
    /// The message (destination from ICR high).
    pub message: InterruptMessage,
    /// Who gets it, if not the destination field.
    pub shorthand: Shorthand,
    /// vCPU index of the sender.
    pub source: u32,
}

/// What a register write needs from the rest of the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LapicAction {
    /// Nothing.
    None,
    /// A level-triggered vector was EOI'd: broadcast it to the IOAPICs.
    LevelEoi(u8),
    /// Send this IPI.
    Ipi(Ipi),
}

/// A 256-bit vector register (IRR, ISR, TMR).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct VectorSet([u32; 8]);

impl VectorSet {
    fn set(&mut self, v: u8) {
        self.0[usize::from(v >> 5)] |= 1 << (v & 31);
    }
    fn clear(&mut self, v: u8) {
        self.0[usize::from(v >> 5)] &= !(1 << (v & 31));
    }
    fn contains(&self, v: u8) -> bool {
        self.0[usize::from(v >> 5)] & (1 << (v & 31)) != 0
    }
    fn highest(&self) -> Option<u8> {
        (0..8).rev().find(|&i| self.0[i] != 0).map(|i| {
            // i < 8 and the bit index < 32, so this fits in a u8.
            (i * 32 + 31 - self.0[i].leading_zeros() as usize) as u8
        })
    }
    fn word(&self, i: usize) -> u32 {
        self.0.get(i).copied().unwrap_or(0)
    }
}

/// One vCPU's local APIC.
pub struct Lapic {
    vcpu: u32,
    apic_id: u8,
    apic_base: u64,
    tpr: u32,
    ldr: u32,
    dfr: u32,
    svr: u32,
    irr: VectorSet,
    isr: VectorSet,
    tmr: VectorSet,
    esr: u32,
    esr_pending: u32,
    icr_low: u32,
    icr_high: u32,
    lvt: [u32; LVT_COUNT],
    timer: LapicTimer,
    nmi_pending: bool,
    extint_pending: bool,
    init_sipi: VecDeque<InitSipi>,
    wait_for_sipi: bool,
    clock: Arc<Clock>,
    notifier: Arc<dyn VcpuNotifier>,
}

impl std::fmt::Debug for Lapic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lapic")
            .field("vcpu", &self.vcpu)
            .field("apic_id", &self.apic_id)
            .field("apic_base", &format_args!("{:#x}", self.apic_base))
            .field("irr", &self.irr.highest())
            .field("isr", &self.isr.highest())
            .field("tpr", &self.tpr)
            .finish()
    }
}

impl Lapic {
    /// The power-on LAPIC of vCPU `vcpu` (APIC ID = `vcpu`). `bsp` marks the
    /// bootstrap processor; the others wait for INIT/SIPI. The timer runs on
    /// `clock`; `notifier` is told whenever something becomes pending.
    pub fn new(vcpu: u32, bsp: bool, clock: Arc<Clock>, notifier: Arc<dyn VcpuNotifier>) -> Self {
        let mut l = Lapic {
            vcpu,
            apic_id: (vcpu & 0xff) as u8,
            apic_base: LAPIC_BASE | APIC_BASE_ENABLE | if bsp { APIC_BASE_BSP } else { 0 },
            tpr: 0,
            ldr: 0,
            dfr: 0xffff_ffff,
            svr: 0xff,
            irr: VectorSet::default(),
            isr: VectorSet::default(),
            tmr: VectorSet::default(),
            esr: 0,
            esr_pending: 0,
            icr_low: 0,
            icr_high: 0,
            lvt: [LVT_MASKED; LVT_COUNT],
            timer: LapicTimer::default(),
            nmi_pending: false,
            extint_pending: false,
            init_sipi: VecDeque::new(),
            wait_for_sipi: !bsp,
            clock,
            notifier,
        };
        l.init_registers();
        l
    }

    /// Machine reset: power-on state (APIC ID back to the vCPU index).
    pub fn reset(&mut self) {
        let bsp = self.is_bsp();
        self.apic_id = (self.vcpu & 0xff) as u8;
        self.apic_base = LAPIC_BASE | APIC_BASE_ENABLE | if bsp { APIC_BASE_BSP } else { 0 };
        self.init_sipi.clear();
        self.wait_for_sipi = !bsp;
        self.init_registers();
    }

    /// The register state INIT and reset leave (APIC ID and base kept).
    fn init_registers(&mut self) {
        self.tpr = 0;
        self.ldr = 0;
        self.dfr = 0xffff_ffff;
        self.svr = 0xff;
        self.irr = VectorSet::default();
        self.isr = VectorSet::default();
        self.tmr = VectorSet::default();
        self.esr = 0;
        self.esr_pending = 0;
        self.icr_low = 0;
        self.icr_high = 0;
        self.lvt = [LVT_MASKED; LVT_COUNT];
        if self.is_bsp() {
            // As firmware leaves it (and QEMU resets it): the PIC reaches the
            // BSP through LINT0 in ExtINT mode (virtual wire).
            self.lvt[LVT_LINT0] = 0x700;
        }
        self.timer = LapicTimer::default();
        self.nmi_pending = false;
        self.extint_pending = false;
    }

    /// The vCPU index this LAPIC belongs to.
    pub fn vcpu(&self) -> u32 {
        self.vcpu
    }

    /// The APIC ID (ID register bits 31:24).
    pub fn apic_id(&self) -> u8 {
        self.apic_id
    }

    fn is_bsp(&self) -> bool {
        self.apic_base & APIC_BASE_BSP != 0
    }

    /// Globally enabled through IA32_APIC_BASE.
    pub fn hardware_enabled(&self) -> bool {
        self.apic_base & APIC_BASE_ENABLE != 0
    }

    /// Software-enabled through the spurious-interrupt vector register.
    pub fn software_enabled(&self) -> bool {
        self.svr & SVR_ENABLE != 0
    }

    /// RDMSR IA32_APIC_BASE.
    pub fn apic_base(&self) -> u64 {
        self.apic_base
    }

    /// WRMSR IA32_APIC_BASE. Returns false (the CPU raises #GP) for x2APIC
    /// mode or reserved bits. The BSP bit is read-only; a moved base is
    /// recorded but the page stays at 0xFEE00000.
    pub fn set_apic_base(&mut self, value: u64) -> bool {
        let writable = APIC_BASE_ENABLE | APIC_BASE_ADDRESS;
        if value & APIC_BASE_EXTD != 0 || value & !(writable | APIC_BASE_BSP) != 0 {
            return false;
        }
        if value & APIC_BASE_ADDRESS != LAPIC_BASE {
            log::warn!(
                "lapic {}: relocation to {:#x} not supported",
                self.vcpu,
                value & APIC_BASE_ADDRESS
            );
        }
        let was_enabled = self.hardware_enabled();
        self.apic_base = (value & writable) | (self.apic_base & APIC_BASE_BSP);
        if was_enabled && !self.hardware_enabled() {
            // Global disable also software-disables, masking every LVT.
            self.set_svr(self.svr & !SVR_ENABLE);
        }
        true
    }

    /// RDMSR IA32_TSC_DEADLINE.
    pub fn read_tsc_deadline(&self) -> u64 {
        self.timer.tsc_deadline()
    }

    /// WRMSR IA32_TSC_DEADLINE (effective in TSC-deadline mode only).
    pub fn write_tsc_deadline(&mut self, value: u64) {
        let now = self.clock.now_ns();
        self.timer.write_tsc_deadline(value);
        // A deadline already in the past fires at once.
        self.advance(now);
    }

    /// Processor priority: the higher class of TPR and the highest
    /// in-service vector.
    pub fn ppr(&self) -> u8 {
        let tpr = (self.tpr & 0xff) as u8;
        let isrv = self.isr.highest().unwrap_or(0);
        if tpr >> 4 >= isrv >> 4 {
            tpr
        } else {
            isrv & 0xf0
        }
    }

    /// Arbitration priority (for lowest-priority delivery).
    pub fn apr(&self) -> u8 {
        let tpr = (self.tpr & 0xff) as u8;
        let top = self
            .isr
            .highest()
            .unwrap_or(0)
            .max(self.irr.highest().unwrap_or(0));
        if tpr >> 4 >= top >> 4 {
            tpr
        } else {
            top & 0xf0
        }
    }

    /// Does a message with `destination`/`mode` address this LAPIC?
    pub fn matches(&self, destination: u32, mode: DestinationMode) -> bool {
        let dest = (destination & 0xff) as u8;
        if dest == 0xff {
            return true;
        }
        match mode {
            DestinationMode::Physical => dest == self.apic_id,
            DestinationMode::Logical => {
                let logical = (self.ldr >> 24) as u8;
                if self.dfr >> 28 == 0xf {
                    // Flat model: 8-bit mask.
                    logical & dest != 0
                } else {
                    // Cluster model: cluster in the high nibble, mask in the low.
                    let cluster_ok = dest >> 4 == logical >> 4 || dest >> 4 == 0xf;
                    cluster_ok && logical & dest & 0x0f != 0
                }
            }
        }
    }

    /// Accept a message already routed to this LAPIC.
    pub fn accept(&mut self, msg: InterruptMessage) {
        if !self.hardware_enabled() {
            return;
        }
        match msg.delivery_mode {
            DeliveryMode::Fixed | DeliveryMode::LowestPriority => {
                self.set_irr(msg.vector, msg.level_triggered);
            }
            DeliveryMode::Nmi => {
                self.nmi_pending = true;
                self.notifier.notify(self.vcpu);
            }
            DeliveryMode::Init => {
                self.init_registers();
                self.wait_for_sipi = true;
                self.init_sipi.push_back(InitSipi::Init);
                self.notifier.notify(self.vcpu);
            }
            DeliveryMode::Startup => {
                if self.wait_for_sipi {
                    self.wait_for_sipi = false;
                    self.init_sipi
                        .push_back(InitSipi::Startup { vector: msg.vector });
                    self.notifier.notify(self.vcpu);
                }
            }
            DeliveryMode::ExtInt => {
                self.extint_pending = true;
                self.notifier.notify(self.vcpu);
            }
            DeliveryMode::Smi | DeliveryMode::Reserved => {
                log::debug!(
                    "lapic {}: {:?} delivery dropped",
                    self.vcpu,
                    msg.delivery_mode
                );
            }
        }
    }

    /// Record `vector` in IRR (and TMR for level) and wake the vCPU.
    fn set_irr(&mut self, vector: u8, level: bool) {
        if vector < 16 {
            self.signal_error(ESR_RECEIVE_ILLEGAL_VECTOR);
            return;
        }
        self.irr.set(vector);
        if level {
            self.tmr.set(vector);
        } else {
            self.tmr.clear(vector);
        }
        self.notifier.notify(self.vcpu);
    }

    /// Latch an error and raise the LVT error interrupt.
    fn signal_error(&mut self, bit: u32) {
        self.esr_pending |= bit;
        let lvt = self.lvt[LVT_ERROR];
        if lvt & LVT_MASKED == 0 && (lvt & 0xff) >= 16 {
            self.irr.set((lvt & 0xff) as u8);
            self.tmr.clear((lvt & 0xff) as u8);
            self.notifier.notify(self.vcpu);
        }
    }

    /// The vector the CPU should take now: the highest requested vector
    /// whose class is above the processor priority, if software-enabled.
    pub fn pending_vector(&self) -> Option<u8> {
        if !self.hardware_enabled() || !self.software_enabled() {
            return None;
        }
        let v = self.irr.highest()?;
        (v >> 4 > self.ppr() >> 4).then_some(v)
    }

    /// The CPU takes `vector`: IRR to ISR. False if it was not requested.
    pub fn acknowledge(&mut self, vector: u8) -> bool {
        if !self.irr.contains(vector) {
            return false;
        }
        self.irr.clear(vector);
        self.isr.set(vector);
        true
    }

    /// The spurious-interrupt vector (SVR bits 7:0).
    pub fn spurious_vector(&self) -> u8 {
        (self.svr & 0xff) as u8
    }

    /// EOI: retire the highest in-service vector. Returns it if it was
    /// level-triggered, for the IOAPIC broadcast.
    pub fn end_of_interrupt(&mut self) -> Option<u8> {
        let v = self.isr.highest()?;
        self.isr.clear(v);
        self.tmr.contains(v).then_some(v)
    }

    /// Take the latched NMI, if any.
    pub fn take_nmi(&mut self) -> bool {
        std::mem::take(&mut self.nmi_pending)
    }

    /// An NMI is latched.
    pub fn nmi_pending(&self) -> bool {
        self.nmi_pending
    }

    /// Take the oldest INIT/SIPI event for the board.
    pub fn take_init_sipi(&mut self) -> Option<InitSipi> {
        self.init_sipi.pop_front()
    }

    /// The vCPU is in wait-for-SIPI state (an AP before its STARTUP).
    pub fn waiting_for_sipi(&self) -> bool {
        self.wait_for_sipi
    }

    /// Does the PIC's INTR reach this CPU? Yes if the APIC is globally
    /// disabled (the PIC is wired straight to the core), if LINT0 is
    /// unmasked in ExtINT mode (virtual wire), or if an IOAPIC sent an
    /// ExtINT message.
    pub fn accepts_pic_interrupt(&self) -> bool {
        let lint0 = self.lvt[LVT_LINT0];
        !self.hardware_enabled()
            || self.extint_pending
            || (lint0 & LVT_MASKED == 0 && (lint0 >> 8) & 7 == DeliveryMode::ExtInt.bits())
    }

    /// The ExtINT was taken from the PIC.
    pub fn clear_extint(&mut self) {
        self.extint_pending = false;
    }

    /// LINT1 was asserted (an NMI source, if so programmed).
    pub fn assert_lint1(&mut self) {
        let lvt = self.lvt[LVT_LINT1];
        if lvt & LVT_MASKED != 0 {
            return;
        }
        match DeliveryMode::from_bits(lvt >> 8) {
            DeliveryMode::Nmi => {
                self.nmi_pending = true;
                self.notifier.notify(self.vcpu);
            }
            DeliveryMode::Fixed => self.set_irr((lvt & 0xff) as u8, false),
            other => log::debug!("lapic {}: LINT1 {other:?} ignored", self.vcpu),
        }
    }

    fn set_svr(&mut self, val: u32) {
        self.svr = val & SVR_WRITABLE;
        if !self.software_enabled() {
            for lvt in &mut self.lvt {
                *lvt |= LVT_MASKED;
            }
        }
    }

    fn write_lvt(&mut self, index: usize, val: u32) {
        let mut val = val & LVT_WRITABLE[index];
        if !self.software_enabled() {
            val |= LVT_MASKED;
        }
        if index == LVT_TIMER {
            // Expiries while masked must not fire once unmasked.
            self.advance(self.clock.now_ns());
            self.timer.set_mode(TimerMode::from_lvt(val));
        }
        self.lvt[index] = val;
    }

    /// A 32-bit register read at `offset` in the APIC page.
    pub fn read_register(&self, offset: u64) -> u32 {
        if !self.hardware_enabled() {
            return 0;
        }
        match offset {
            REG_ID => u32::from(self.apic_id) << 24,
            REG_VERSION => LAPIC_VERSION,
            REG_TPR => self.tpr,
            REG_APR => u32::from(self.apr()),
            REG_PPR => u32::from(self.ppr()),
            REG_LDR => self.ldr,
            REG_DFR => self.dfr,
            REG_SVR => self.svr,
            0x100..=0x170 => self.isr.word(((offset - REG_ISR) >> 4) as usize),
            0x180..=0x1f0 => self.tmr.word(((offset - REG_TMR) >> 4) as usize),
            0x200..=0x270 => self.irr.word(((offset - REG_IRR) >> 4) as usize),
            REG_ESR => self.esr,
            REG_ICR_LOW => self.icr_low,
            REG_ICR_HIGH => self.icr_high,
            0x320..=0x370 => self.lvt[((offset - REG_LVT_TIMER) >> 4) as usize],
            REG_TIMER_INITIAL => self.timer.initial(),
            REG_TIMER_CURRENT => self.timer.current_count(self.clock.now_ns()),
            REG_TIMER_DIVIDE => self.timer.divide_conf(),
            _ => 0,
        }
    }

    /// A 32-bit register write at `offset` in the APIC page.
    pub fn write_register(&mut self, offset: u64, val: u32) -> LapicAction {
        if !self.hardware_enabled() {
            return LapicAction::None;
        }
        match offset {
            REG_ID => self.apic_id = (val >> 24) as u8,
            REG_TPR => self.tpr = val & 0xff,
            REG_EOI => {
                if let Some(v) = self.end_of_interrupt() {
                    return LapicAction::LevelEoi(v);
                }
            }
            REG_LDR => self.ldr = val & 0xff00_0000,
            REG_DFR => self.dfr = val | 0x0fff_ffff,
            REG_SVR => self.set_svr(val),
            REG_ESR => self.esr = std::mem::take(&mut self.esr_pending),
            REG_ICR_LOW => return self.write_icr(val),
            REG_ICR_HIGH => self.icr_high = val & 0xff00_0000,
            0x320..=REG_LVT_ERROR if offset & 0xf == 0 => {
                self.write_lvt(((offset - REG_LVT_TIMER) >> 4) as usize, val);
            }
            REG_TIMER_INITIAL => self.timer.write_initial(val, self.clock.now_ns()),
            REG_TIMER_DIVIDE => self.timer.write_divide(val, self.clock.now_ns()),
            _ => log::debug!("lapic {}: write {val:#x} to {offset:#x} ignored", self.vcpu),
        }
        LapicAction::None
    }

    /// ICR low written: build the IPI.
    fn write_icr(&mut self, val: u32) -> LapicAction {
        // Delivery status (bit 12) always reads idle: sends complete at once.
        self.icr_low = val & 0x000c_cfff;
        let delivery_mode = DeliveryMode::from_bits(val >> 8);
        let level_assert = val & (1 << 14) != 0;
        let level_triggered = val & (1 << 15) != 0;
        if delivery_mode == DeliveryMode::Init && !level_assert && level_triggered {
            // INIT level de-assert: only resynchronizes arbitration IDs.
            return LapicAction::None;
        }
        let vector = (val & 0xff) as u8;
        if matches!(
            delivery_mode,
            DeliveryMode::Fixed | DeliveryMode::LowestPriority
        ) && vector < 16
        {
            self.signal_error(ESR_SEND_ILLEGAL_VECTOR);
            return LapicAction::None;
        }
        let shorthand = match (val >> 18) & 3 {
            0 => Shorthand::None,
            1 => Shorthand::SelfOnly,
            2 => Shorthand::AllIncludingSelf,
            _ => Shorthand::AllExcludingSelf,
        };
        LapicAction::Ipi(Ipi {
            message: InterruptMessage {
                destination: self.icr_high >> 24,
                dest_mode: if val & (1 << 11) != 0 {
                    DestinationMode::Logical
                } else {
                    DestinationMode::Physical
                },
                delivery_mode,
                vector,
                level_triggered: false,
            },
            shorthand,
            source: self.vcpu,
        })
    }

    /// A read of `data.len()` bytes at `offset`: any width within one
    /// 32-bit register; other shapes read as zero.
    pub fn read_mmio(&self, offset: u64, data: &mut [u8]) {
        let within = (offset & 0xf) as usize;
        if within + data.len() > 4 {
            log::debug!(
                "lapic {}: {}-byte read at {offset:#x} ignored",
                self.vcpu,
                data.len()
            );
            return;
        }
        let bytes = self.read_register(offset & !0xf).to_le_bytes();
        data.copy_from_slice(&bytes[within..within + data.len()]);
    }

    /// A write at `offset`: only aligned 32-bit writes take effect.
    pub fn write_mmio(&mut self, offset: u64, data: &[u8]) -> LapicAction {
        match <[u8; 4]>::try_from(data) {
            Ok(bytes) if offset & 0xf == 0 => {
                self.write_register(offset, u32::from_le_bytes(bytes))
            }
            _ => {
                log::debug!(
                    "lapic {}: {}-byte write at {offset:#x} ignored",
                    self.vcpu,
                    data.len()
                );
                LapicAction::None
            }
        }
    }
}

impl Timed for Lapic {
    fn next_deadline(&self) -> Option<u64> {
        if self.lvt[LVT_TIMER] & LVT_MASKED != 0 {
            return None;
        }
        self.timer.deadline_ns(&self.clock)
    }

    fn advance(&mut self, now_ns: u64) {
        if self.timer.advance(now_ns, &self.clock) {
            let lvt = self.lvt[LVT_TIMER];
            if lvt & LVT_MASKED == 0 {
                self.set_irr((lvt & 0xff) as u8, false);
            }
        }
    }
}

#[cfg(test)]
#[path = "lapic_tests.rs"]
mod tests;
