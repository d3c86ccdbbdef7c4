//! Board-level tests of [`IrqChip`]: devices' lines through the PIC and
//! IOAPICs to userspace LAPICs or a recording in-kernel sink, driven
//! through the buses as the guest would.

use std::sync::Arc;

use cpu::{ClockMode, Msi};

use super::*;
use crate::irqchip::message::testing::{RecordingNotifier, RecordingSink};
use crate::irqchip::message::DestinationMode;

struct Board {
    chip: IrqChip,
    pio: Bus,
    mmio: Bus,
    clock: Arc<Clock>,
    notifier: Arc<RecordingNotifier>,
}

impl Board {
    fn userspace(vcpus: u32, pic: bool, ioapics: usize) -> Self {
        let clock = Arc::new(Clock::new(
            ClockMode::InstructionCounted { shift: 0 },
            1_000_000,
        ));
        let notifier = Arc::new(RecordingNotifier::default());
        let chip = IrqChip::new(IrqChipConfig {
            pic,
            ioapics,
            first_ioapic_id: 0,
            lapics: LapicMode::Userspace {
                vcpus,
                clock: clock.clone(),
            },
            notifier: notifier.clone(),
        })
        .unwrap();
        Self::wire(chip, clock, notifier)
    }

    fn in_kernel(sink: Arc<RecordingSink>) -> Self {
        let clock = Arc::new(Clock::new(
            ClockMode::InstructionCounted { shift: 0 },
            1_000_000,
        ));
        let notifier = Arc::new(RecordingNotifier::default());
        let chip = IrqChip::new(IrqChipConfig {
            pic: true,
            ioapics: 1,
            first_ioapic_id: 0,
            lapics: LapicMode::InKernel { sink },
            notifier: notifier.clone(),
        })
        .unwrap();
        Self::wire(chip, clock, notifier)
    }

    fn wire(chip: IrqChip, clock: Arc<Clock>, notifier: Arc<RecordingNotifier>) -> Self {
        let mut pio = Bus::new();
        let mut mmio = Bus::new();
        chip.register_pio(&mut pio).unwrap();
        chip.register_mmio(&mut mmio).unwrap();
        Board {
            chip,
            pio,
            mmio,
            clock,
            notifier,
        }
    }

    fn out(&self, port: u16, val: u8) {
        assert!(self.pio.write(0, u64::from(port), &[val]));
    }

    fn mmio_write(&self, vcpu: u32, gpa: u64, val: u32) {
        assert!(self.mmio.write(vcpu, gpa, &val.to_le_bytes()));
    }

    fn mmio_read(&self, vcpu: u32, gpa: u64) -> u32 {
        let mut d = [0u8; 4];
        assert!(self.mmio.read(vcpu, gpa, &mut d));
        u32::from_le_bytes(d)
    }

    fn program_ioapic(&self, base: u64, pin: u32, low: u32, dest: u8) {
        self.mmio_write(0, base, 0x10 + 2 * pin + 1);
        self.mmio_write(0, base + 0x10, u32::from(dest) << 24);
        self.mmio_write(0, base, 0x10 + 2 * pin);
        self.mmio_write(0, base + 0x10, low);
    }

    fn enable_lapic(&self, vcpu: u32) {
        self.mmio_write(vcpu, LAPIC_BASE + 0xf0, 0x1ff);
    }

    fn eoi(&self, vcpu: u32) {
        self.mmio_write(vcpu, LAPIC_BASE + 0xb0, 0);
    }

    /// The interpreter loop's step: poll, then take it.
    fn take(&self, vcpu: u32) -> Option<Injection> {
        let p = self.chip.pending_interrupt(vcpu)?;
        self.chip.acknowledge(vcpu, p)
    }
}

#[test]
fn serial_irq_reaches_the_lapic_through_the_ioapic() {
    let b = Board::userspace(1, false, 1);
    b.enable_lapic(0);
    b.program_ioapic(IOAPIC_BASE, 4, 0x24, 0);
    let serial = b.chip.irq_line(4).unwrap();
    b.notifier.take();
    serial.pulse();
    assert_eq!(b.notifier.take(), vec![0]);
    assert_eq!(
        b.chip.pending_interrupt(0),
        Some(PendingInterrupt::Vector(0x24))
    );
    assert_eq!(b.take(0), Some(Injection::Vector(0x24)));
    assert_eq!(b.chip.pending_interrupt(0), None);
    assert_eq!(b.mmio_read(0, LAPIC_BASE + 0x110), 1 << 4, "ISR word 1");
    b.eoi(0);
    assert_eq!(b.mmio_read(0, LAPIC_BASE + 0x110), 0);
}

#[test]
fn level_interrupt_eoi_is_broadcast_and_reasserts() {
    let b = Board::userspace(1, false, 1);
    b.enable_lapic(0);
    b.program_ioapic(IOAPIC_BASE, 9, 0x8039, 0);
    let ged = b.chip.irq_line(9).unwrap();
    ged.set_level(true);
    assert_eq!(b.take(0), Some(Injection::Vector(0x39)));
    b.eoi(0); // line still high: the IOAPIC sends it again
    assert_eq!(b.take(0), Some(Injection::Vector(0x39)));
    ged.set_level(false);
    b.eoi(0);
    assert_eq!(b.chip.pending_interrupt(0), None);
    let rte = b
        .chip
        .ioapic(0)
        .unwrap()
        .lock()
        .unwrap()
        .redirection_entry(9);
    assert_eq!(rte & (1 << 14), 0, "remote IRR cleared by the LAPIC EOI");
}

#[test]
fn pic_extint_through_lint0_on_the_bsp_only() {
    let b = Board::userspace(2, true, 1);
    for (port, val) in [
        (0x20, 0x11),
        (0x21, 0x30),
        (0x21, 0x04),
        (0x21, 0x01),
        (0xa0, 0x11),
        (0xa1, 0x38),
        (0xa1, 0x02),
        (0xa1, 0x01),
        (0x21, 0xfa), // IRQ0 and the cascade unmasked
        (0xa1, 0xff),
    ] {
        b.out(port, val);
    }
    b.notifier.take();
    b.chip.irq_line(0).unwrap().pulse();
    assert_eq!(b.notifier.take(), vec![0, 1]);
    assert_eq!(b.chip.pending_interrupt(1), None, "AP's LINT0 is masked");
    assert_eq!(b.chip.pending_interrupt(0), Some(PendingInterrupt::ExtInt));
    assert_eq!(b.take(0), Some(Injection::Vector(0x30)));
    assert_eq!(b.chip.pending_interrupt(0), None);
    b.out(0x20, 0x20);
    // Masking LINT0 (as Linux does once it uses the IOAPIC) cuts the PIC off.
    b.mmio_write(0, LAPIC_BASE + 0x350, 0x1_0700);
    b.chip.irq_line(0).unwrap().pulse();
    assert_eq!(b.chip.pending_interrupt(0), None);
    assert!(b.chip.pic_has_interrupt());
}

#[test]
fn isa_irq0_reaches_ioapic_pin_2() {
    let b = Board::userspace(1, true, 1);
    b.enable_lapic(0);
    b.mmio_write(0, LAPIC_BASE + 0x350, 0x1_0700);
    b.program_ioapic(IOAPIC_BASE, 2, 0x30, 0);
    b.chip.irq_line(0).unwrap().pulse();
    assert_eq!(b.take(0), Some(Injection::Vector(0x30)));
}

#[test]
fn second_ioapic_serves_gsi_24_to_47() {
    let b = Board::userspace(1, false, 2);
    b.enable_lapic(0);
    b.program_ioapic(IOAPIC_BASE + IOAPIC_STRIDE, 5, 0x8051, 0);
    b.chip.irq_line(29).unwrap().set_level(true);
    assert_eq!(b.take(0), Some(Injection::Vector(0x51)));
    assert_eq!(b.chip.ioapic(1).unwrap().lock().unwrap().gsi_base(), 24);
    assert!(matches!(
        b.chip.irq_line(48),
        Err(IrqChipError::NoSuchGsi(48))
    ));
    let one = Board::userspace(1, false, 1);
    assert!(one.chip.irq_line(24).is_err());
    assert!(one.chip.irq_line(23).is_ok());
}

#[test]
fn fixed_ipi_and_self_ipi_routing() {
    let b = Board::userspace(2, false, 1);
    b.enable_lapic(0);
    b.enable_lapic(1);
    b.notifier.take();
    b.mmio_write(0, LAPIC_BASE + 0x310, 1 << 24);
    b.mmio_write(0, LAPIC_BASE + 0x300, 0x4041);
    assert_eq!(b.notifier.take(), vec![1]);
    assert_eq!(b.chip.pending_interrupt(0), None);
    assert_eq!(b.take(1), Some(Injection::Vector(0x41)));
    // Self IPI from vCPU 1 (shorthand "self").
    b.mmio_write(1, LAPIC_BASE + 0x300, 0x4_0050);
    assert_eq!(
        b.chip.pending_interrupt(1),
        Some(PendingInterrupt::Vector(0x50))
    );
    assert_eq!(b.chip.pending_interrupt(0), None);
    // NMI to all but self from vCPU 0.
    b.mmio_write(0, LAPIC_BASE + 0x300, 0xc_4400);
    assert_eq!(b.chip.pending_interrupt(1), Some(PendingInterrupt::Nmi));
    assert_eq!(b.take(1), Some(Injection::Nmi));
    assert_eq!(b.chip.pending_interrupt(0), None);
}

#[test]
fn init_sipi_sequence_reaches_the_board() {
    let b = Board::userspace(3, false, 1);
    b.enable_lapic(0);
    // Linux's wakeup_secondary_cpu_via_init for APIC ID 2.
    b.mmio_write(0, LAPIC_BASE + 0x310, 2 << 24);
    b.mmio_write(0, LAPIC_BASE + 0x300, 0xc500); // INIT assert, level
    b.mmio_write(0, LAPIC_BASE + 0x300, 0x8500); // INIT de-assert
    b.mmio_write(0, LAPIC_BASE + 0x300, 0x0609); // SIPI page 9
    b.mmio_write(0, LAPIC_BASE + 0x300, 0x0609);
    assert_eq!(b.chip.take_init_sipi(2), Some(InitSipi::Init));
    assert_eq!(
        b.chip.take_init_sipi(2),
        Some(InitSipi::Startup { vector: 9 })
    );
    assert_eq!(b.chip.take_init_sipi(2), None);
    assert_eq!(b.chip.take_init_sipi(1), None);
    assert_eq!(b.chip.take_init_sipi(0), None);
}

#[test]
fn lowest_priority_picks_the_least_busy_cpu() {
    let b = Board::userspace(2, false, 1);
    for v in 0..2 {
        b.enable_lapic(v);
        b.mmio_write(v, LAPIC_BASE + 0xd0, 1 << (24 + v)); // logical IDs 1, 2
    }
    b.mmio_write(0, LAPIC_BASE + 0x80, 0x20); // vCPU 0 busier
    b.program_ioapic(IOAPIC_BASE, 6, 0x0946, 0x03); // logical, lowest priority
    b.chip.irq_line(6).unwrap().pulse();
    assert_eq!(b.chip.pending_interrupt(0), None);
    assert_eq!(b.take(1), Some(Injection::Vector(0x46)));
}

#[test]
fn in_kernel_mode_sends_ioapic_messages_to_the_sink() {
    let sink = Arc::new(RecordingSink::default());
    let b = Board::in_kernel(sink.clone());
    assert!(b.mmio.describe().iter().all(|(_, _, n)| n != "lapic"));
    b.program_ioapic(IOAPIC_BASE, 10, 0x8062, 1);
    let line = b.chip.irq_line(10).unwrap();
    line.set_level(true);
    let msgs = sink.take();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].dest_mode, DestinationMode::Physical);
    assert_eq!(
        msgs[0].to_msi(),
        Msi {
            address: 0xfee0_1000,
            data: 0xc062
        }
    );
    // KVM_EXIT_IOAPIC_EOI with the line still high: sent again.
    b.chip.end_of_interrupt(0x62);
    assert_eq!(sink.take().len(), 1);
    line.set_level(false);
    b.chip.end_of_interrupt(0x62);
    assert!(sink.take().is_empty());
    assert_eq!(sink.take_gsis(), vec![10, 10]);
    let routes = b.chip.ioapic_routes();
    assert_eq!(routes.len(), 24);
    assert_eq!(routes[10].0, 10);
    assert_eq!(routes[10].1.map(|m| m.vector), Some(0x62));
    assert_eq!(routes[11], (11, None));
    // The userspace-LAPIC calls have nothing to act on.
    assert_eq!(b.chip.pending_interrupt(0), None);
    assert_eq!(b.chip.msr_read(0, MSR_APIC_BASE), None);
}

#[test]
fn in_kernel_mode_pic_interrupts_wake_the_bsp() {
    let sink = Arc::new(RecordingSink::default());
    let b = Board::in_kernel(sink);
    for (port, val) in [(0x20, 0x11), (0x21, 0x20), (0x21, 0x04), (0x21, 0x01)] {
        b.out(port, val);
    }
    b.out(0x21, 0xef); // IRQ4 only
    b.notifier.take();
    b.chip.irq_line(4).unwrap().pulse();
    assert_eq!(b.notifier.take(), vec![0]);
    assert!(b.chip.pic_has_interrupt());
    assert_eq!(b.chip.pic_acknowledge(), Some(0x24));
    assert!(!b.chip.pic_has_interrupt());
}

#[test]
fn apic_msrs_and_timers_through_the_chip() {
    let b = Board::userspace(2, false, 1);
    assert_eq!(b.chip.msr_read(1, MSR_APIC_BASE), Some(0xfee0_0800));
    assert_eq!(b.chip.msr_read(0, MSR_APIC_BASE), Some(0xfee0_0900));
    assert!(!b.chip.msr_write(0, MSR_APIC_BASE, 0xfee0_0d00));
    assert_eq!(b.chip.msr_read(0, 0x10), None);
    assert!(!b.chip.msr_write(0, 0x10, 0));
    b.enable_lapic(1);
    b.mmio_write(1, LAPIC_BASE + 0x320, 0x4_00ec); // TSC-deadline mode
                                                   // 1 GHz TSC: deadline 700 is 700 ns.
    assert!(b.chip.msr_write(1, MSR_TSC_DEADLINE, 700));
    assert_eq!(b.chip.msr_read(1, MSR_TSC_DEADLINE), Some(700));
    let mut timers = b.chip.lapic_timers().unwrap();
    assert_eq!(timers.next_deadline(), Some(700));
    assert_eq!(b.chip.next_timer_deadline(1), Some(700));
    assert_eq!(b.chip.next_timer_deadline(0), None);
    b.clock.add_instructions(699);
    timers.advance(b.clock.now_ns());
    assert_eq!(b.chip.pending_interrupt(1), None);
    // pending_interrupt itself catches up with the clock.
    b.clock.add_instructions(1);
    assert_eq!(
        b.chip.pending_interrupt(1),
        Some(PendingInterrupt::Vector(0xec))
    );
    assert_eq!(timers.next_deadline(), None);
}

#[test]
fn reset_returns_everything_to_power_on() {
    let b = Board::userspace(1, true, 1);
    b.enable_lapic(0);
    b.program_ioapic(IOAPIC_BASE, 4, 0x24, 0);
    b.out(0x21, 0x00);
    b.chip.irq_line(4).unwrap().set_level(true);
    b.chip.reset();
    assert_eq!(b.chip.pending_interrupt(0), None);
    let rte = b
        .chip
        .ioapic(0)
        .unwrap()
        .lock()
        .unwrap()
        .redirection_entry(4);
    assert_eq!(rte, 1 << 16);
    assert_eq!(b.mmio_read(0, LAPIC_BASE + 0xf0), 0xff);
    assert!(!b.chip.pic_has_interrupt());
}

#[test]
fn bad_configurations_are_errors() {
    let notifier = Arc::new(RecordingNotifier::default());
    let clock = Arc::new(Clock::new(ClockMode::Host, 1_000_000));
    let cfg = |ioapics, vcpus| IrqChipConfig {
        pic: false,
        ioapics,
        first_ioapic_id: 0,
        lapics: LapicMode::Userspace {
            vcpus,
            clock: clock.clone(),
        },
        notifier: notifier.clone(),
    };
    assert!(matches!(
        IrqChip::new(cfg(3, 1)),
        Err(IrqChipError::IoapicCount(3))
    ));
    assert!(matches!(
        IrqChip::new(cfg(1, 0)),
        Err(IrqChipError::NoVcpus)
    ));
    let chip = IrqChip::new(cfg(1, 1)).unwrap();
    let mut mmio = Bus::new();
    chip.register_mmio(&mut mmio).unwrap();
    assert!(matches!(
        chip.register_mmio(&mut mmio),
        Err(IrqChipError::Bus { name: "ioapic", .. })
    ));
}

#[test]
fn acknowledge_takes_the_highest_vector_at_inta_time() {
    let b = Board::userspace(1, false, 1);
    b.enable_lapic(0);
    b.chip.deliver(InterruptMessage::fixed(0, 0x40));
    let p = b.chip.pending_interrupt(0).unwrap();
    assert_eq!(p, PendingInterrupt::Vector(0x40));
    b.chip.deliver(InterruptMessage::fixed(0, 0x80));
    assert_eq!(b.chip.acknowledge(0, p), Some(Injection::Vector(0x80)));
    assert_eq!(b.chip.pending_interrupt(0), None, "0x40 waits for the EOI");
    b.eoi(0);
    assert_eq!(b.take(0), Some(Injection::Vector(0x40)));
}

#[test]
fn ioapic_extint_entry_fetches_the_vector_from_the_pic() {
    let b = Board::userspace(1, true, 1);
    b.enable_lapic(0);
    b.mmio_write(0, LAPIC_BASE + 0x350, 0x1_0700); // LINT0 masked
    for (port, val) in [(0x20, 0x11), (0x21, 0x20), (0x21, 0x04), (0x21, 0x01)] {
        b.out(port, val);
    }
    b.out(0x21, 0xfe); // IRQ0 only
    b.program_ioapic(IOAPIC_BASE, 2, 0x700, 0); // ExtINT
    b.chip.irq_line(0).unwrap().pulse();
    assert_eq!(b.chip.pending_interrupt(0), Some(PendingInterrupt::ExtInt));
    assert_eq!(b.take(0), Some(Injection::Vector(0x20)));
    assert_eq!(b.chip.pending_interrupt(0), None);
}

#[test]
fn handles_cross_threads() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    fn bus_device<T: BusDevice + 'static>() {}
    fn timed<T: Timed + 'static>() {}
    shareable::<IrqChip>();
    bus_device::<Pic>();
    bus_device::<Ioapic>();
    bus_device::<LapicMmio>();
    timed::<LapicTimers>();
    timed::<Lapic>();
    // A device thread raising a line while the vCPU thread polls.
    let b = Board::userspace(1, false, 1);
    b.enable_lapic(0);
    b.program_ioapic(IOAPIC_BASE, 4, 0x8024, 0); // level
    let line = b.chip.irq_line(4).unwrap();
    let t = std::thread::spawn(move || line.set_level(true));
    t.join().unwrap();
    assert_eq!(b.take(0), Some(Injection::Vector(0x24)));
}
