//! The board's devices in QEMU microvm's slots, wired to the buses and the
//! interrupt controllers, and the per-backend interrupt glue.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use cpu::{Accelerator, Clock, CpuError, GuestMemory, Vcpu, VcpuKick};
use devices::bus::Bus;
use devices::irqchip::lapic::InitSipi;
use devices::irqchip::{
    Injection, InterruptMessage, InterruptSink, IrqChip, IrqChipConfig, LapicMode,
    PendingInterrupt, VcpuNotifier,
};

use crate::accel::ChosenAccel;
use crate::config::{CharBackend, MachineConfig, NetdevKind};
use crate::control::VcpuControl;
use crate::error::MachineError;
use crate::io::{BoardIo, MsrHandler};
use crate::runstate::BoardEvent;
use crate::timers::TimerService;
use crate::vcpu_thread::VcpuInterrupts;
use crate::virtio_console::VirtioConsolePort;

/// COM1's interrupt.
pub const SERIAL_GSI: u32 = 4;
/// The RTC's interrupt.
pub const RTC_GSI: u32 = 8;
/// The ACPI GED's interrupt.
pub const GED_GSI: u32 = 9;
/// The PIT's interrupt (ISA IRQ 0; the IOAPIC sees it on pin 2).
pub const PIT_GSI: u32 = 0;

/// Wakes vCPUs: kicks them out of `run` and out of a halt sleep.
#[derive(Default)]
pub struct BoardNotifier {
    kickers: OnceLock<Vec<Arc<dyn VcpuKick>>>,
    parkers: Mutex<Vec<bool>>,
    cond: Condvar,
}

impl std::fmt::Debug for BoardNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoardNotifier")
    }
}

impl BoardNotifier {
    fn wake(&self, vcpu: u32) {
        if let Ok(mut p) = self.parkers.lock() {
            if p.len() <= vcpu as usize {
                p.resize(vcpu as usize + 1, false);
            }
            p[vcpu as usize] = true;
            self.cond.notify_all();
        }
    }

    /// Sleep until `vcpu` is woken or `timeout` passes.
    fn park(&self, vcpu: u32, timeout: Duration) {
        let i = vcpu as usize;
        let Ok(mut p) = self.parkers.lock() else {
            return;
        };
        if p.len() <= i {
            p.resize(i + 1, false);
        }
        if !p[i] {
            p = match self.cond.wait_timeout(p, timeout) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
        if let Some(w) = p.get_mut(i) {
            *w = false;
        }
    }
}

impl VcpuNotifier for BoardNotifier {
    fn notify(&self, vcpu: u32) {
        self.wake(vcpu);
        if let Some(k) = self.kickers.get().and_then(|k| k.get(vcpu as usize)) {
            k.kick();
        }
    }
}

/// KVM split irqchip: IOAPIC messages become MSIs to the in-kernel LAPICs.
struct KvmSink {
    accel: Arc<dyn Accelerator>,
}

impl InterruptSink for KvmSink {
    fn deliver(&self, msg: InterruptMessage) {
        if let Err(e) = self.accel.signal_msi(msg.to_msi()) {
            log::warn!("MSI delivery failed: {e}");
        }
    }

    fn deliver_from_gsi(&self, gsi: u32, msg: InterruptMessage) {
        // A routed GSI goes through KVM's routing table, so KVM knows which
        // vectors are level-triggered and reports their EOIs.
        match self.accel.set_irq_line(gsi, true) {
            Ok(()) => {
                let _ = self.accel.set_irq_line(gsi, false);
            }
            Err(_) => self.deliver(msg),
        }
    }

    fn route_changed(&self, gsi: u32, route: Option<InterruptMessage>) {
        if let Err(e) = self.accel.set_msi_route(gsi, route.map(|m| m.to_msi())) {
            log::warn!("GSI {gsi} route update failed: {e}");
        }
    }
}

/// In-kernel LAPICs: only the PIC's ExtINT is injected from userspace.
struct KvmInterrupts {
    chip: IrqChip,
}

impl VcpuInterrupts for KvmInterrupts {
    fn inject(&self, vcpu: &mut dyn Vcpu) -> Result<(), CpuError> {
        if vcpu.id() != 0 {
            return Ok(());
        }
        if self.chip.pic_has_interrupt() {
            if vcpu.ready_for_interrupt() {
                if let Some(v) = self.chip.pic_acknowledge() {
                    vcpu.inject_interrupt(v)?;
                }
                vcpu.request_interrupt_window(false);
            } else {
                vcpu.request_interrupt_window(true);
            }
        } else {
            vcpu.request_interrupt_window(false);
        }
        Ok(())
    }

    fn eoi(&self, vector: u8) {
        self.chip.end_of_interrupt(vector);
    }

    fn halted(&self, _vcpu: u32, _interruptible: bool, _control: &VcpuControl) {}
}

/// Userspace LAPICs (the software CPU): everything is delivered here.
struct InterpInterrupts {
    chip: IrqChip,
    notifier: Arc<BoardNotifier>,
    clock: Arc<Clock>,
    /// Instruction-counted time: the vCPU threads service the timers.
    icount: Option<IcountTimers>,
}

/// `-icount`: timers are serviced on the vCPU threads at deterministic
/// points instead of by the host-time timer thread.
struct IcountTimers {
    timers: Arc<TimerService>,
    /// `sleep=on`: an idle guest's time follows the host's; `off`: it
    /// jumps straight to the next deadline.
    sleep: bool,
}

/// Longest a halted vCPU sleeps before re-checking the control state.
const HALT_POLL: Duration = Duration::from_millis(20);

impl VcpuInterrupts for InterpInterrupts {
    fn inject(&self, vcpu: &mut dyn Vcpu) -> Result<(), CpuError> {
        let id = vcpu.id();
        if let Some(ic) = &self.icount {
            self.clock.set_deadline(ic.timers.service());
        }
        while let Some(ev) = self.chip.take_init_sipi(id) {
            match ev {
                InitSipi::Init => vcpu.deliver_init()?,
                InitSipi::Startup { vector } => vcpu.deliver_sipi(vector)?,
            }
        }
        let Some(pending) = self.chip.pending_interrupt(id) else {
            vcpu.request_interrupt_window(false);
            return Ok(());
        };
        if pending != PendingInterrupt::Nmi && !vcpu.ready_for_interrupt() {
            vcpu.request_interrupt_window(true);
            return Ok(());
        }
        match self.chip.acknowledge(id, pending) {
            Some(Injection::Nmi) => vcpu.inject_nmi()?,
            Some(Injection::Vector(v)) => vcpu.inject_interrupt(v)?,
            None => {}
        }
        vcpu.request_interrupt_window(false);
        Ok(())
    }

    fn eoi(&self, vector: u8) {
        self.chip.end_of_interrupt(vector);
    }

    fn halted(&self, vcpu: u32, interruptible: bool, control: &VcpuControl) {
        let wakes = match self.chip.pending_interrupt(vcpu) {
            Some(PendingInterrupt::Nmi) => true,
            Some(_) => interruptible,
            None => false,
        };
        if wakes || control.should_stop() {
            return;
        }
        if let Some(ic) = &self.icount {
            // Idle with instruction-counted time: no instruction will move
            // the clock, so move it to the next deadline (paced by the
            // host's clock with sleep=on). The guest is halted meanwhile,
            // so its instruction stream is the same either way.
            if let Some(t) = ic.timers.service() {
                let now = self.clock.now_ns();
                if ic.sleep {
                    let wait = Duration::from_nanos(t.saturating_sub(now)).min(HALT_POLL);
                    let slept = std::time::Instant::now();
                    self.notifier.park(vcpu, wait);
                    let elapsed = u64::try_from(slept.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    self.clock.warp_to(t.min(now.saturating_add(elapsed)));
                } else {
                    self.clock.warp_to(t);
                }
                return;
            }
            self.notifier.park(vcpu, HALT_POLL);
            return;
        }
        let wait = match (self.chip.next_timer_deadline(vcpu), self.clock.mode()) {
            (Some(t), cpu::ClockMode::Host) => {
                Duration::from_nanos(t.saturating_sub(self.clock.now_ns())).min(HALT_POLL)
            }
            _ => HALT_POLL,
        };
        self.notifier.park(vcpu, wait);
    }
}

/// The interpreter's LAPIC MSRs (APIC base, TSC deadline).
struct LapicMsrs {
    chip: IrqChip,
}

impl MsrHandler for LapicMsrs {
    fn read(&self, vcpu: u32, msr: u32) -> Option<u64> {
        self.chip.msr_read(vcpu, msr)
    }
    fn write(&self, vcpu: u32, msr: u32, value: u64) -> bool {
        self.chip.msr_write(vcpu, msr, value)
    }
}

/// The board's devices and glue.
pub struct Platform {
    /// What the vCPUs see.
    pub io: Arc<BoardIo>,
    /// Interrupt delivery for the vCPU loop.
    pub interrupts: Arc<dyn VcpuInterrupts>,
    /// The interrupt controllers.
    pub irqchip: IrqChip,
    notifier: Arc<BoardNotifier>,
    devices: crate::platform_devices::PlatformDevices,
    transports: Vec<firmware::VirtioMmioTransport>,
    consoles: Vec<VirtioConsolePort>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform").field("io", &self.io).finish()
    }
}

impl Platform {
    /// Hand the vCPUs' kickers to the interrupt notifier.
    pub fn connect_vcpus(&self, kickers: Vec<Arc<dyn VcpuKick>>) {
        let _ = self.notifier.kickers.set(kickers);
    }

    /// Machine reset: controllers and devices to power-on state, then the
    /// firmware's setup of the interrupt controllers.
    pub fn reset(&self) {
        self.irqchip.reset();
        self.devices.reset();
        self.firmware_setup();
    }

    /// The reset line (triple faults pull it too).
    pub fn reset_line(&self) -> crate::reset_line::ResetLine {
        self.devices.reset_line()
    }

    /// What a BIOS leaves behind before booting the OS: the 8259 pair
    /// initialised (vectors 0x08/0x70, as SeaBIOS) and fully masked, so a
    /// kernel that never programs it (PVH entry, hardware-reduced ACPI)
    /// takes no stray ExtINT at a bogus vector. Linux reprograms it when
    /// it uses it.
    pub fn firmware_setup(&self) {
        use cpu::IoBus;
        let io = &self.io;
        for (port, value) in [
            (0x20u16, 0x11u8), // ICW1: edge, cascade, ICW4 follows
            (0x21, 0x08),      // ICW2: vectors 0x08-0x0f
            (0x21, 0x04),      // ICW3: slave on IRQ2
            (0x21, 0x01),      // ICW4: 8086 mode
            (0xa0, 0x11),
            (0xa1, 0x70), // vectors 0x70-0x77
            (0xa1, 0x02),
            (0xa1, 0x01),
            (0x21, 0xff), // mask everything
            (0xa1, 0xff),
        ] {
            io.pio_write(0, port, &[value]);
        }
    }

    /// Press the ACPI power button (no-op without ACPI, as in QEMU).
    pub fn power_button(&self) {
        self.devices.power_button();
    }

    /// Deliver an NMI to every vCPU (QMP `inject-nmi`).
    pub fn nmi(&self) {
        self.irqchip.deliver(InterruptMessage {
            destination: 0xff,
            dest_mode: devices::irqchip::DestinationMode::Physical,
            delivery_mode: devices::irqchip::DeliveryMode::Nmi,
            vector: 2,
            level_triggered: false,
        });
    }

    /// Feed console input to COM1; returns how many bytes it took.
    pub fn serial_input(&self, bytes: &[u8]) -> usize {
        self.devices.serial_input(bytes)
    }

    /// The virtio console reading stdin, if any.
    pub fn stdio_console(&self) -> Option<VirtioConsolePort> {
        crate::virtio_console::stdio_port(&self.consoles)
    }

    /// The populated virtio-mmio transports (window and GSI).
    pub fn virtio_transports(&self) -> Vec<firmware::VirtioMmioTransport> {
        self.transports.clone()
    }
}

/// Build the board's devices for `cfg` on the chosen accelerator.
pub fn build(
    cfg: &MachineConfig,
    accel: &ChosenAccel,
    mem: &Arc<GuestMemory>,
    clock: &Arc<Clock>,
    timers: &Arc<TimerService>,
    events: &Sender<BoardEvent>,
    milestones: &Arc<crate::milestones::Milestones>,
) -> Result<Platform, MachineError> {
    let notifier = Arc::new(BoardNotifier::default());
    let userspace = accel.accel.lapic_location() == cpu::LapicLocation::Userspace;
    let lapics = if userspace {
        LapicMode::Userspace {
            vcpus: cfg.cpus,
            clock: clock.clone(),
        }
    } else {
        LapicMode::InKernel {
            sink: Arc::new(KvmSink {
                accel: accel.accel.clone(),
            }),
        }
    };
    let irqchip = IrqChip::new(IrqChipConfig {
        pic: cfg.pic_enabled(),
        ioapics: if cfg.acpi_enabled() { 2 } else { 1 },
        first_ioapic_id: 0,
        lapics,
        notifier: notifier.clone(),
    })
    .map_err(|e| MachineError::Config(e.to_string()))?;
    let mut pio = Bus::new();
    let mut mmio = Bus::new();
    irqchip
        .register_pio(&mut pio)
        .map_err(|e| MachineError::Config(e.to_string()))?;
    irqchip
        .register_mmio(&mut mmio)
        .map_err(|e| MachineError::Config(e.to_string()))?;
    if let Some(t) = irqchip.lapic_timers() {
        timers.add(Arc::new(Mutex::new(t)));
    }
    let devices = crate::platform_devices::PlatformDevices::build(
        cfg, accel.kind, &irqchip, clock, timers, events, milestones, &mut pio, &mut mmio,
    )?;
    let writes = accel.accel.guest_writes();
    let (transports, consoles) = build_virtio(cfg, mem, writes, &irqchip, &mut mmio, milestones)?;
    let mut io = BoardIo::new(pio, mmio);
    let t = timers.clone();
    let c = clock.clone();
    // A guest that programs a timer moves the next deadline: the timer
    // thread re-plans, or (instruction-counted time) the running vCPU's
    // budget shrinks to it.
    let wake: Arc<dyn Fn() + Send + Sync> = if clock.is_instruction_counted() {
        Arc::new(move || c.set_deadline(t.service()))
    } else {
        Arc::new(move || t.wake())
    };
    io.set_timer_hooks(devices.timer_ports(), vec![(0xfee0_0000, 0x1000)], wake);
    let interrupts: Arc<dyn VcpuInterrupts> = if userspace {
        io.set_msr_handler(Arc::new(LapicMsrs {
            chip: irqchip.clone(),
        }));
        Arc::new(InterpInterrupts {
            chip: irqchip.clone(),
            notifier: notifier.clone(),
            clock: clock.clone(),
            icount: clock.is_instruction_counted().then(|| IcountTimers {
                timers: timers.clone(),
                sleep: cfg.icount_sleep,
            }),
        })
    } else {
        Arc::new(KvmInterrupts {
            chip: irqchip.clone(),
        })
    };
    let platform = Platform {
        io: Arc::new(io),
        interrupts,
        irqchip,
        notifier,
        devices,
        transports,
        consoles,
    };
    platform.firmware_setup();
    Ok(platform)
}

fn read_file(what: &str, path: &std::path::Path) -> Result<Vec<u8>, MachineError> {
    std::fs::read(path).map_err(|e| {
        MachineError::host(
            format!("could not open {what} file '{}'", path.display()),
            e,
        )
    })
}

/// Load the kernel, initrd and boot structures into guest memory and
/// return the boot processor's entry state.
pub fn load_kernel(
    cfg: &MachineConfig,
    mem: &GuestMemory,
    platform: &Platform,
) -> Result<firmware::EntryState, MachineError> {
    let Some(kernel_path) = &cfg.kernel else {
        return Err(MachineError::Config("no kernel".into()));
    };
    let kernel = read_file("kernel", kernel_path)?;
    let initrd = cfg
        .initrd
        .as_deref()
        .map(|p| read_file("initrd", p))
        .transpose()?;
    let transports = if cfg.acpi_enabled() || cfg.auto_kernel_cmdline {
        platform.virtio_transports()
    } else {
        Vec::new()
    };
    let info = firmware::boot::load(
        mem,
        &firmware::boot::BootConfig {
            kernel: &kernel,
            initrd: initrd.as_deref(),
            cmdline: &cfg.append,
            ram_size: cfg.ram_bytes,
            num_cpus: cfg.cpus,
            acpi: cfg.acpi_enabled(),
            ioapic2: cfg.acpi_enabled(),
            rtc: platform.devices.has_rtc(),
            serial: cfg.serial.is_some(),
            fw_cfg: false,
            transports: &transports,
        },
    )
    .map_err(|e| MachineError::Firmware(e.to_string()))?;
    Ok(info.entry)
}

/// Forward console input to COM1 (or a virtio console on stdio), through
/// QEMU's Ctrl-A mux when there is one (`-nographic`, `mon:stdio`).
pub fn spawn_console_input(
    platform: &Platform,
    serial_on_stdio: bool,
    mut mux: Option<crate::mux::Mux>,
    events: &Sender<BoardEvent>,
) -> std::io::Result<()> {
    use std::io::{Read, Write};

    use crate::mux::MuxAction;

    let devices = platform.devices.clone();
    // stdin feeds COM1 when it is on stdio, else a virtio console on stdio.
    let virtio = if serial_on_stdio {
        None
    } else {
        platform.stdio_console()
    };
    let events = events.clone();
    // The UART's FIFO is small: hand bytes over as the guest drains it.
    let feed_guest = move |bytes: &[u8]| {
        let mut rest = bytes;
        while !rest.is_empty() {
            let taken = match &virtio {
                Some(port) => port.feed(rest),
                None => devices.serial_input(rest),
            };
            rest = &rest[taken..];
            if !rest.is_empty() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    };
    std::thread::Builder::new()
        .name("console".into())
        .spawn(move || {
            crate::sandbox::enter_or_exit(crate::sandbox::ThreadKind::Io);
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 256];
            loop {
                let n = match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                // Line by line: a monitor reply must be out before the next
                // line runs (`quit` ends the process).
                for line in buf[..n].split_inclusive(|b| *b == b'\r' || *b == b'\n') {
                    let actions = match &mut mux {
                        Some(m) => m.feed(line),
                        None => vec![MuxAction::Guest(line.to_vec())],
                    };
                    for action in actions {
                        match action {
                            MuxAction::Guest(g) => feed_guest(&g),
                            MuxAction::Terminal(t) => {
                                let _ = crate::chardev::StdoutWriter.write_all(&t);
                            }
                            MuxAction::Quit => {
                                let _ = events.send(BoardEvent::ConsoleQuit);
                                return;
                            }
                        }
                    }
                }
            }
        })
        .map(|_| ())
}

/// QEMU microvm's virtio-mmio transports: 8 (GSI 5+n) without ACPI, 24
/// (GSI 24+n, on the second IOAPIC) with it. Every slot gets a transport
/// (empty ones read device ID 0); devices fill the highest free slot first,
/// as QEMU's bus ordering does, unless pinned with `bus=virtio-mmio-bus.N`.
fn build_virtio(
    cfg: &MachineConfig,
    mem: &Arc<GuestMemory>,
    writes: Option<Arc<dyn cpu::GuestWrites>>,
    chip: &IrqChip,
    mmio: &mut Bus,
    milestones: &Arc<crate::milestones::Milestones>,
) -> Result<(Vec<firmware::VirtioMmioTransport>, Vec<VirtioConsolePort>), MachineError> {
    use devices::virtio::blk::Block;
    use devices::virtio::console::Console;
    use devices::virtio::mmio::{MmioTransport, MMIO_WINDOW};
    use devices::virtio::rng::Rng;
    use devices::virtio::VirtioDevice;

    use crate::config::VirtioKind;

    let (count, gsi_base) = if cfg.acpi_enabled() {
        (24u32, 24u32)
    } else {
        (8, 5)
    };
    let mut slots: Vec<Option<Box<dyn VirtioDevice>>> = (0..count).map(|_| None).collect();
    type ConsoleSlot = (
        Arc<devices::virtio::console::ConsoleInput>,
        Option<CharBackend>,
    );
    let mut console_slots: Vec<Option<ConsoleSlot>> = (0..count).map(|_| None).collect();
    type NetSlot = (Arc<devices::virtio::net::NetInput>, NetReceiver);
    let mut net_slots: Vec<Option<NetSlot>> = (0..count).map(|_| None).collect();
    let mut order = Vec::new();
    let mut nic = 0;
    for nd in &cfg.netdevs {
        let used = cfg
            .virtio
            .iter()
            .any(|d| matches!(&d.kind, VirtioKind::Net { netdev: Some(id), .. } if id == &nd.id));
        if !used {
            eprintln!("kindling: warning: netdev {} has no peer", nd.id);
        }
    }
    for d in &cfg.virtio {
        let bad = |m: String| MachineError::Config(format!("{}: {m}", d.location));
        let mut console = None;
        let mut net_rx = None;
        let dev: Box<dyn VirtioDevice> = match &d.kind {
            VirtioKind::Rng => Box::new(Rng),
            VirtioKind::Net { netdev: None, mac } => {
                eprintln!("kindling: warning: nic virtio-net-device.{nic} has no peer");
                nic += 1;
                let (dev, _) = devices::virtio::net::Net::new(*mac, Box::new(NoPeer));
                Box::new(dev)
            }
            VirtioKind::Net {
                netdev: Some(netdev),
                mac,
            } => {
                nic += 1;
                let nd = cfg
                    .netdevs
                    .iter()
                    .find(|n| &n.id == netdev)
                    .ok_or_else(|| bad(format!("netdev '{netdev}' not found")))?;
                let fail = |e: String| MachineError::Config(format!("{}: {e}", nd.location));
                let (backend, receiver): (Box<dyn devices::virtio::net::NetBackend>, NetReceiver) =
                    match &nd.kind {
                        NetdevKind::Tap { ifname } => {
                            let tap = devices::virtio::tap::Tap::open(ifname).map_err(fail)?;
                            let rx = tap.try_clone().map_err(|e| MachineError::host("tap", e))?;
                            (Box::new(TapSender(tap)), NetReceiver::Tap(rx))
                        }
                        NetdevKind::User { hostfwd, options } => {
                            let (tx, pending) =
                                devices::virtio::slirp::user_net(hostfwd.clone(), *options)
                                    .map_err(fail)?;
                            (
                                Box::new(tx),
                                NetReceiver::User(pending, nd.location.clone()),
                            )
                        }
                    };
                let (dev, input) = devices::virtio::net::Net::new(*mac, backend);
                net_rx = Some((input, receiver));
                Box::new(dev)
            }
            VirtioKind::Console { chardev } => {
                let backend = chardev.as_ref().and_then(|id| {
                    cfg.chardevs
                        .iter()
                        .find(|c| &c.id == id)
                        .map(|c| c.backend.clone())
                });
                let out =
                    crate::chardev::open_output(backend.as_ref().unwrap_or(&CharBackend::Null))?;
                let name = format!("hvc{}", console_slots.iter().flatten().count());
                let out = crate::console_tap::ConsoleTap::new(out, &name, milestones.clone());
                let (dev, input) = Console::new(Box::new(out));
                console = Some((input, backend));
                Box::new(dev)
            }
            VirtioKind::Block { drive, serial } => {
                let drv = cfg
                    .drives
                    .iter()
                    .find(|x| &x.id == drive)
                    .ok_or_else(|| bad(format!("drive '{drive}' not found")))?;
                let opts = devices::virtio::blk::BlockOptions {
                    read_only: drv.read_only,
                    serial: serial.clone(),
                    cache: drv.cache,
                    format: drv.format,
                };
                // QEMU reports open errors at the -drive and lock
                // conflicts at the -device.
                let mut blk = Block::open_with(&drv.file, &opts).map_err(|e| match e {
                    devices::virtio::blk::BlockError::Locked { .. } => bad(e.to_string()),
                    _ => MachineError::Config(format!("{}: {e}", drv.location)),
                })?;
                if let Some(w) = blk.take_warning() {
                    eprintln!("kindling: {}: warning: {w}", drv.location);
                }
                Box::new(blk)
            }
        };
        let slot = match d.bus {
            Some(n) if n >= count => {
                return Err(bad(format!("Bus 'virtio-mmio-bus.{n}' not found")))
            }
            Some(n) if slots[n as usize].is_some() => {
                return Err(bad(format!("Bus 'virtio-mmio-bus.{n}' is full")))
            }
            Some(n) => n as usize,
            None => (0..count as usize)
                .rev()
                .find(|&i| slots[i].is_none())
                .ok_or_else(|| bad("no free virtio-mmio transport".into()))?,
        };
        slots[slot] = Some(dev);
        console_slots[slot] = console;
        net_slots[slot] = net_rx;
        order.push(slot as u32);
    }
    let mut consoles = Vec::new();
    for (i, dev) in slots.into_iter().enumerate() {
        let i = i as u32;
        let gsi = gsi_base + i;
        let t = firmware::VirtioMmioTransport::slot(i, gsi);
        let irq = chip
            .irq_line(gsi)
            .map_err(|e| MachineError::Config(e.to_string()))?;
        let mut transport = MmioTransport::new(dev, mem.clone(), irq);
        transport.set_guest_writes(writes.clone());
        let transport = Arc::new(Mutex::new(transport));
        match net_slots[i as usize].take() {
            Some((input, NetReceiver::Tap(tap))) => {
                spawn_net_receiver(tap, input, transport.clone())?
            }
            Some((input, NetReceiver::User(pending, location))) => {
                let t = transport.clone();
                let deliver = Box::new(move || {
                    if let Ok(mut t) = t.lock() {
                        t.process(0);
                    }
                });
                pending
                    .start(input, deliver, || {
                        crate::sandbox::enter_or_exit(crate::sandbox::ThreadKind::Slirp)
                    })
                    .map_err(|e| MachineError::Config(format!("{location}: {e}")))?;
            }
            None => {}
        }
        if let Some((input, backend)) = console_slots[i as usize].take() {
            consoles.push(VirtioConsolePort {
                input,
                transport: transport.clone(),
                backend,
            });
        }
        mmio.insert(transport, t.base, MMIO_WINDOW)?;
    }
    // QEMU announces them in -device order (first device, highest slot, first).
    let announced = order
        .into_iter()
        .map(|i| firmware::VirtioMmioTransport::slot(i, gsi_base + i))
        .collect();
    Ok((announced, consoles))
}

/// A NIC without a netdev: what it sends is dropped, nothing arrives.
struct NoPeer;

impl devices::virtio::net::NetBackend for NoPeer {
    fn send(&mut self, _frame: &[u8]) {}
}

/// Where a NIC's received frames come from.
enum NetReceiver {
    /// A thread reading the TAP interface.
    Tap(devices::virtio::tap::Tap),
    /// libslirp's thread (with the option as typed, for errors).
    User(devices::virtio::slirp::PendingUserNet, String),
}

/// Sends a NIC's frames to its TAP interface.
struct TapSender(devices::virtio::tap::Tap);

impl devices::virtio::net::NetBackend for TapSender {
    fn send(&mut self, frame: &[u8]) {
        if let Err(e) = self.0.send(frame) {
            log::debug!("tap {}: frame dropped: {e}", self.0.name());
        }
    }
}

/// A thread per TAP interface: each frame the host sends is queued for the
/// guest and the receive queue processed at once (interrupting the guest
/// when a buffer was filled).
fn spawn_net_receiver(
    mut tap: devices::virtio::tap::Tap,
    input: Arc<devices::virtio::net::NetInput>,
    transport: Arc<Mutex<devices::virtio::mmio::MmioTransport>>,
) -> Result<(), MachineError> {
    std::thread::Builder::new()
        .name(format!("net-{}", tap.name()))
        .spawn(move || {
            crate::sandbox::enter_or_exit(crate::sandbox::ThreadKind::Tap);
            let mut buf = vec![0u8; 65_550];
            loop {
                let n = match tap.recv(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                input.push(buf[..n].to_vec());
                if let Ok(mut t) = transport.lock() {
                    t.process(0);
                }
            }
        })
        .map(|_| ())
        .map_err(|e| MachineError::host("spawn the network receiver", e))
}
