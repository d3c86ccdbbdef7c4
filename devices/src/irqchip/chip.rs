//! [`IrqChip`]: the board-level interrupt router. It owns the PIC (unless
//! `pic=off`), one or two IOAPICs and, for the interpreter, the userspace
//! LAPICs; hands out [`Irq`] lines per GSI; and answers the vCPU loop's
//! questions (what to inject, EOIs, INIT/SIPI, APIC MSRs).
//!
//! GSI wiring (QEMU's): GSI n < 16 drives PIC input n (except 2, the
//! cascade) and IOAPIC pin n, except ISA IRQ0, which reaches IOAPIC pin 2
//! (firmware must describe this with an interrupt source override, as
//! QEMU's `FW_CFG_IRQ0_OVERRIDE` does). GSI 16-23 are IOAPIC pins 16-23;
//! GSI 24-47 are the second IOAPIC's pins 0-23.
//!
//! Locks are taken in the order PIC, IOAPIC, LAPIC and a LAPIC lock is never
//! held while calling into an IOAPIC or another LAPIC.

use std::sync::{Arc, Mutex, MutexGuard};

use cpu::Clock;
use thiserror::Error;

use super::ioapic::{Ioapic, IOAPIC_BASE, IOAPIC_PINS, IOAPIC_SIZE};
use super::lapic::{
    InitSipi, Ipi, Lapic, LapicAction, Shorthand, LAPIC_BASE, LAPIC_SIZE, MSR_APIC_BASE,
    MSR_TSC_DEADLINE,
};
use super::message::{DeliveryMode, InterruptMessage, InterruptSink, VcpuNotifier};
use super::pic::{Pic, ELCR_PORT, PIC_MASTER_PORT, PIC_PORT_SPAN, PIC_SLAVE_PORT};
use crate::bus::{Bus, BusAccessInfo, BusDevice, BusError};
use crate::irq::{Irq, IrqLine};
use crate::timer::Timed;

/// Distance between consecutive IOAPICs' MMIO windows (0xFEC00000,
/// 0xFEC10000).
pub const IOAPIC_STRIDE: u64 = 0x1_0000;
/// The most IOAPICs a board has.
pub const MAX_IOAPICS: usize = 2;

/// Errors building or wiring the interrupt controllers.
#[derive(Debug, Error)]
pub enum IrqChipError {
    /// No controller serves this GSI.
    #[error("no interrupt controller pin for GSI {0}")]
    NoSuchGsi(u32),
    /// Only one or two IOAPICs are supported.
    #[error("{0} IOAPICs requested; 1 or 2 are supported")]
    IoapicCount(usize),
    /// A userspace-LAPIC board needs at least one vCPU.
    #[error("no vCPUs for the userspace LAPICs")]
    NoVcpus,
    /// Registering a controller on a bus failed.
    #[error("registering {name} on the bus")]
    Bus {
        /// Which controller.
        name: &'static str,
        /// Why.
        #[source]
        source: BusError,
    },
}

/// Where the local APICs live, chosen when the board is built.
#[derive(Clone)]
pub enum LapicMode {
    /// KVM split irqchip: LAPICs in the kernel. IOAPIC messages go to
    /// `sink`, which calls `Accelerator::signal_msi(msg.to_msi())`.
    InKernel {
        /// Receives every IOAPIC message.
        sink: Arc<dyn InterruptSink>,
    },
    /// Interpreter: one userspace [`Lapic`] per vCPU (vCPU 0 is the BSP),
    /// their timers on `clock`.
    Userspace {
        /// Number of vCPUs.
        vcpus: u32,
        /// The guest clock.
        clock: Arc<Clock>,
    },
}

impl std::fmt::Debug for LapicMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LapicMode::InKernel { .. } => f.write_str("InKernel"),
            LapicMode::Userspace { vcpus, .. } => write!(f, "Userspace({vcpus} vCPUs)"),
        }
    }
}

/// How to build the board's interrupt controllers.
#[derive(Clone)]
pub struct IrqChipConfig {
    /// Include the 8259 pair (microvm `pic=on`).
    pub pic: bool,
    /// 1, or 2 for microvm's ACPI layout (GSI 24-47 on 0xFEC10000).
    pub ioapics: usize,
    /// APIC ID of the first IOAPIC; the second gets the next one.
    pub first_ioapic_id: u8,
    /// Where the LAPICs are.
    pub lapics: LapicMode,
    /// Wakes a vCPU that has something pending.
    pub notifier: Arc<dyn VcpuNotifier>,
}

impl std::fmt::Debug for IrqChipConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IrqChipConfig")
            .field("pic", &self.pic)
            .field("ioapics", &self.ioapics)
            .field("first_ioapic_id", &self.first_ioapic_id)
            .field("lapics", &self.lapics)
            .finish()
    }
}

/// What the interpreter's vCPU loop should deliver next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingInterrupt {
    /// A latched NMI (deliver regardless of IF).
    Nmi,
    /// A LAPIC vector above the processor priority.
    Vector(u8),
    /// The PIC's INTR through LINT0 (ExtINT): the vector comes from the
    /// PIC at acknowledge time.
    ExtInt,
}

/// What to inject after [`IrqChip::acknowledge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injection {
    /// `Vcpu::inject_nmi`.
    Nmi,
    /// `Vcpu::inject_interrupt(vector)`.
    Vector(u8),
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves consistent-enough register
    // state; keep the machine running rather than cascading panics.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Routes messages to the userspace LAPICs by destination.
struct LapicRouter {
    lapics: Vec<Arc<Mutex<Lapic>>>,
}

impl LapicRouter {
    fn deliver_to(&self, msg: InterruptMessage, pick: impl Fn(u32) -> bool) {
        for (i, l) in self.lapics.iter().enumerate() {
            if pick(i as u32) {
                lock(l).accept(msg);
            }
        }
    }

    fn send_ipi(&self, ipi: Ipi) {
        match ipi.shorthand {
            Shorthand::None => self.deliver(ipi.message),
            Shorthand::SelfOnly => self.deliver_to(ipi.message, |i| i == ipi.source),
            Shorthand::AllIncludingSelf => self.deliver_to(ipi.message, |_| true),
            Shorthand::AllExcludingSelf => self.deliver_to(ipi.message, |i| i != ipi.source),
        }
    }
}

impl InterruptSink for LapicRouter {
    fn deliver(&self, msg: InterruptMessage) {
        let targets: Vec<usize> = self
            .lapics
            .iter()
            .enumerate()
            .filter(|(_, l)| lock(l).matches(msg.destination, msg.dest_mode))
            .map(|(i, _)| i)
            .collect();
        if msg.delivery_mode == DeliveryMode::LowestPriority {
            // The lowest arbitration priority wins; ties go to the lowest index.
            let chosen = targets.iter().min_by_key(|&&i| lock(&self.lapics[i]).apr());
            if let Some(&i) = chosen {
                lock(&self.lapics[i]).accept(msg);
            }
            return;
        }
        for i in targets {
            lock(&self.lapics[i]).accept(msg);
        }
    }
}

/// The PIC's INTR output: wakes the vCPUs that may take ExtINT.
struct PicIntr {
    notifier: Arc<dyn VcpuNotifier>,
    vcpus: Vec<u32>,
}

impl IrqLine for PicIntr {
    fn set_level(&self, high: bool) {
        if high {
            for &v in &self.vcpus {
                self.notifier.notify(v);
            }
        }
    }
}

struct Inner {
    pic: Option<Arc<Mutex<Pic>>>,
    ioapics: Vec<Arc<Mutex<Ioapic>>>,
    router: Option<Arc<LapicRouter>>,
    sink: Arc<dyn InterruptSink>,
    clock: Option<Arc<Clock>>,
}

impl Inner {
    fn lapic(&self, vcpu: u32) -> Option<&Arc<Mutex<Lapic>>> {
        self.router.as_ref()?.lapics.get(vcpu as usize)
    }

    fn set_gsi(&self, gsi: u32, level: bool) {
        if let (Some(pic), 0..=15) = (&self.pic, gsi) {
            if gsi != 2 {
                lock(pic).set_irq(gsi as u8, level);
            }
        }
        let pins = IOAPIC_PINS as u32;
        let (index, pin) = match gsi {
            0 => (0, 2),
            g => ((g / pins) as usize, (g % pins) as usize),
        };
        if let Some(io) = self.ioapics.get(index) {
            lock(io).set_irq(pin, level);
        }
    }

    fn end_of_interrupt(&self, vector: u8) {
        for io in &self.ioapics {
            lock(io).end_of_interrupt(vector);
        }
    }

    fn carry_out(&self, action: LapicAction) {
        match action {
            LapicAction::None => {}
            LapicAction::LevelEoi(v) => self.end_of_interrupt(v),
            LapicAction::Ipi(ipi) => {
                if let Some(r) = &self.router {
                    r.send_ipi(ipi);
                }
            }
        }
    }
}

/// One GSI as devices see it.
struct GsiLine {
    inner: Arc<Inner>,
    gsi: u32,
}

impl IrqLine for GsiLine {
    fn set_level(&self, high: bool) {
        self.inner.set_gsi(self.gsi, high);
    }
}

/// The LAPIC page at 0xFEE00000, routed to the accessing vCPU's LAPIC.
pub struct LapicMmio {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LapicMmio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LapicMmio")
    }
}

impl BusDevice for LapicMmio {
    fn name(&self) -> &str {
        "lapic"
    }

    fn read(&mut self, info: BusAccessInfo, data: &mut [u8]) {
        if let Some(l) = self.inner.lapic(info.vcpu) {
            lock(l).read_mmio(info.offset, data);
        }
    }

    fn write(&mut self, info: BusAccessInfo, data: &[u8]) {
        let Some(l) = self.inner.lapic(info.vcpu) else {
            return;
        };
        let action = lock(l).write_mmio(info.offset, data);
        self.inner.carry_out(action);
    }
}

/// Every userspace LAPIC timer as one [`Timed`] device for the board's
/// timer service.
#[derive(Clone)]
pub struct LapicTimers {
    lapics: Vec<Arc<Mutex<Lapic>>>,
}

impl std::fmt::Debug for LapicTimers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LapicTimers({})", self.lapics.len())
    }
}

impl Timed for LapicTimers {
    fn next_deadline(&self) -> Option<u64> {
        self.lapics
            .iter()
            .filter_map(|l| lock(l).next_deadline())
            .min()
    }

    fn advance(&mut self, now_ns: u64) {
        for l in &self.lapics {
            lock(l).advance(now_ns);
        }
    }
}

/// The board's interrupt controllers. Cheap to clone (a shared handle).
#[derive(Clone)]
pub struct IrqChip {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for IrqChip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IrqChip")
            .field("pic", &self.inner.pic.is_some())
            .field("ioapics", &self.inner.ioapics.len())
            .field(
                "lapics",
                &self.inner.router.as_ref().map_or(0, |r| r.lapics.len()),
            )
            .finish()
    }
}

impl IrqChip {
    /// Build the controllers in power-on state.
    pub fn new(config: IrqChipConfig) -> Result<Self, IrqChipError> {
        if !(1..=MAX_IOAPICS).contains(&config.ioapics) {
            return Err(IrqChipError::IoapicCount(config.ioapics));
        }
        let (router, sink, clock, pic_vcpus): (_, Arc<dyn InterruptSink>, _, _) =
            match config.lapics {
                LapicMode::InKernel { sink } => (None, sink, None, vec![0]),
                LapicMode::Userspace { vcpus, clock } => {
                    if vcpus == 0 {
                        return Err(IrqChipError::NoVcpus);
                    }
                    let lapics = (0..vcpus)
                        .map(|v| {
                            Arc::new(Mutex::new(Lapic::new(
                                v,
                                v == 0,
                                clock.clone(),
                                config.notifier.clone(),
                            )))
                        })
                        .collect();
                    let router = Arc::new(LapicRouter { lapics });
                    (
                        Some(router.clone()),
                        router,
                        Some(clock),
                        (0..vcpus).collect(),
                    )
                }
            };
        let pic = config.pic.then(|| {
            let intr: Irq = Arc::new(PicIntr {
                notifier: config.notifier.clone(),
                vcpus: pic_vcpus,
            });
            Arc::new(Mutex::new(Pic::new(intr)))
        });
        let ioapics = (0..config.ioapics)
            .map(|i| {
                Arc::new(Mutex::new(Ioapic::new(
                    config.first_ioapic_id.wrapping_add(i as u8),
                    (i * IOAPIC_PINS) as u32,
                    sink.clone(),
                )))
            })
            .collect();
        Ok(IrqChip {
            inner: Arc::new(Inner {
                pic,
                ioapics,
                router,
                sink,
                clock,
            }),
        })
    }

    /// The interrupt line of `gsi`, for a device to raise.
    pub fn irq_line(&self, gsi: u32) -> Result<Irq, IrqChipError> {
        let served = (gsi as usize) < self.inner.ioapics.len() * IOAPIC_PINS
            || (gsi < 16 && self.inner.pic.is_some());
        if !served {
            return Err(IrqChipError::NoSuchGsi(gsi));
        }
        Ok(Arc::new(GsiLine {
            inner: self.inner.clone(),
            gsi,
        }))
    }

    /// Drive `gsi` directly (what an [`IrqChip::irq_line`] line does).
    pub fn set_gsi(&self, gsi: u32, level: bool) {
        self.inner.set_gsi(gsi, level);
    }

    /// Put the PIC ports (0x20, 0xA0, ELCR 0x4D0) on the port I/O bus.
    pub fn register_pio(&self, pio: &mut Bus) -> Result<(), IrqChipError> {
        let Some(pic) = &self.inner.pic else {
            return Ok(());
        };
        for port in [PIC_MASTER_PORT, PIC_SLAVE_PORT, ELCR_PORT] {
            pio.insert(pic.clone(), u64::from(port), PIC_PORT_SPAN)
                .map_err(|source| IrqChipError::Bus {
                    name: "i8259",
                    source,
                })?;
        }
        Ok(())
    }

    /// Put the IOAPIC page(s) and, with userspace LAPICs, the LAPIC page on
    /// the MMIO bus.
    pub fn register_mmio(&self, mmio: &mut Bus) -> Result<(), IrqChipError> {
        for (i, io) in self.inner.ioapics.iter().enumerate() {
            let base = IOAPIC_BASE + i as u64 * IOAPIC_STRIDE;
            mmio.insert(io.clone(), base, IOAPIC_SIZE)
                .map_err(|source| IrqChipError::Bus {
                    name: "ioapic",
                    source,
                })?;
        }
        if self.inner.router.is_some() {
            let dev = Arc::new(Mutex::new(LapicMmio {
                inner: self.inner.clone(),
            }));
            mmio.insert(dev, LAPIC_BASE, LAPIC_SIZE)
                .map_err(|source| IrqChipError::Bus {
                    name: "lapic",
                    source,
                })?;
        }
        Ok(())
    }

    /// Every IOAPIC pin's GSI with what it sends (`None` while masked), for
    /// a KVM board installing its initial GSI routing table.
    pub fn ioapic_routes(&self) -> Vec<(u32, Option<InterruptMessage>)> {
        let mut routes = Vec::new();
        for io in &self.inner.ioapics {
            let io = lock(io);
            for pin in 0..IOAPIC_PINS {
                routes.push((io.gsi_base() + pin as u32, io.route(pin)));
            }
        }
        routes
    }

    /// The PIC, if the board has one.
    pub fn pic(&self) -> Option<Arc<Mutex<Pic>>> {
        self.inner.pic.clone()
    }

    /// IOAPIC `index` (0 or 1).
    pub fn ioapic(&self, index: usize) -> Option<Arc<Mutex<Ioapic>>> {
        self.inner.ioapics.get(index).cloned()
    }

    /// The userspace LAPIC of `vcpu` (none with in-kernel LAPICs).
    pub fn lapic(&self, vcpu: u32) -> Option<Arc<Mutex<Lapic>>> {
        self.inner.lapic(vcpu).cloned()
    }

    /// All userspace LAPIC timers as one [`Timed`] device (none with
    /// in-kernel LAPICs).
    pub fn lapic_timers(&self) -> Option<LapicTimers> {
        let r = self.inner.router.as_ref()?;
        Some(LapicTimers {
            lapics: r.lapics.clone(),
        })
    }

    /// Guest time of `vcpu`'s next LAPIC timer expiry (for a halted vCPU's
    /// sleep).
    pub fn next_timer_deadline(&self, vcpu: u32) -> Option<u64> {
        lock(self.inner.lapic(vcpu)?).next_deadline()
    }

    /// Send a message as the IOAPICs do (to the in-kernel sink or the
    /// userspace LAPICs), e.g. an MSI from a device.
    pub fn deliver(&self, msg: InterruptMessage) {
        self.inner.sink.deliver(msg);
    }

    /// KVM: does the PIC drive INTR (inject with `KVM_INTERRUPT` on the BSP)?
    pub fn pic_has_interrupt(&self) -> bool {
        self.inner
            .pic
            .as_ref()
            .is_some_and(|p| lock(p).has_interrupt())
    }

    /// KVM: the PIC's INTA cycle; the vector to inject (`None` without a PIC).
    pub fn pic_acknowledge(&self) -> Option<u8> {
        Some(lock(self.inner.pic.as_ref()?).acknowledge())
    }

    /// A LAPIC EOI'd level-triggered `vector` (`KVM_EXIT_IOAPIC_EOI`):
    /// broadcast to the IOAPICs.
    pub fn end_of_interrupt(&self, vector: u8) {
        self.inner.end_of_interrupt(vector);
    }

    /// Interpreter: what `vcpu` should take next. Brings its LAPIC timer up
    /// to date first, so a poll after an expiry never misses it.
    pub fn pending_interrupt(&self, vcpu: u32) -> Option<PendingInterrupt> {
        let lapic = self.inner.lapic(vcpu)?;
        let (nmi, vector, pic_ok) = {
            let mut l = lock(lapic);
            if let Some(clock) = &self.inner.clock {
                l.advance(clock.now_ns());
            }
            (
                l.nmi_pending(),
                l.pending_vector(),
                l.accepts_pic_interrupt(),
            )
        };
        if nmi {
            return Some(PendingInterrupt::Nmi);
        }
        if let Some(v) = vector {
            return Some(PendingInterrupt::Vector(v));
        }
        (pic_ok && self.pic_has_interrupt()).then_some(PendingInterrupt::ExtInt)
    }

    /// Interpreter: `vcpu` takes `pending` (from
    /// [`IrqChip::pending_interrupt`]): the INTA cycle. For a LAPIC vector it
    /// moves the currently highest deliverable vector from IRR to ISR (a
    /// higher one may have arrived since the poll); for ExtINT it runs the
    /// PIC's INTA. Returns what to inject; `None` if it went away meanwhile.
    pub fn acknowledge(&self, vcpu: u32, pending: PendingInterrupt) -> Option<Injection> {
        let lapic = self.inner.lapic(vcpu)?;
        match pending {
            PendingInterrupt::Nmi => lock(lapic).take_nmi().then_some(Injection::Nmi),
            PendingInterrupt::Vector(_) => {
                // INTA takes whatever is highest now (a higher vector may
                // have arrived since the poll).
                let mut l = lock(lapic);
                let v = l.pending_vector()?;
                l.acknowledge(v).then_some(Injection::Vector(v))
            }
            PendingInterrupt::ExtInt => {
                lock(lapic).clear_extint();
                self.pic_acknowledge().map(Injection::Vector)
            }
        }
    }

    /// Interpreter: the next INIT/SIPI event for `vcpu`.
    pub fn take_init_sipi(&self, vcpu: u32) -> Option<InitSipi> {
        lock(self.inner.lapic(vcpu)?).take_init_sipi()
    }

    /// Interpreter: RDMSR of the APIC MSRs (IA32_APIC_BASE,
    /// IA32_TSC_DEADLINE); `None` for others (or with in-kernel LAPICs).
    pub fn msr_read(&self, vcpu: u32, msr: u32) -> Option<u64> {
        let l = lock(self.inner.lapic(vcpu)?);
        match msr {
            MSR_APIC_BASE => Some(l.apic_base()),
            MSR_TSC_DEADLINE => Some(l.read_tsc_deadline()),
            _ => None,
        }
    }

    /// Interpreter: WRMSR of the APIC MSRs; false means #GP (or not ours).
    pub fn msr_write(&self, vcpu: u32, msr: u32, value: u64) -> bool {
        let Some(lapic) = self.inner.lapic(vcpu) else {
            return false;
        };
        let mut l = lock(lapic);
        match msr {
            MSR_APIC_BASE => l.set_apic_base(value),
            MSR_TSC_DEADLINE => {
                l.write_tsc_deadline(value);
                true
            }
            _ => false,
        }
    }

    /// Machine reset: every controller to power-on state.
    pub fn reset(&self) {
        if let Some(p) = &self.inner.pic {
            lock(p).reset();
        }
        for io in &self.inner.ioapics {
            lock(io).reset();
        }
        if let Some(r) = &self.inner.router {
            for l in &r.lapics {
                lock(l).reset();
            }
        }
    }
}

#[cfg(test)]
#[path = "chip_tests.rs"]
mod tests;
