//! Unit tests of [`Lapic`]: registers, priorities, IPIs, INIT/SIPI and
//! the timer modes on an instruction-counted clock.

use super::*;
use crate::irqchip::message::testing::RecordingNotifier;
use cpu::ClockMode;

fn lapic(vcpu: u32, bsp: bool) -> (Lapic, Arc<Clock>, Arc<RecordingNotifier>) {
    let clock = Arc::new(Clock::new(
        ClockMode::InstructionCounted { shift: 0 },
        2_000_000,
    ));
    let n = Arc::new(RecordingNotifier::default());
    (Lapic::new(vcpu, bsp, clock.clone(), n.clone()), clock, n)
}

fn enable(l: &mut Lapic) {
    l.write_register(REG_SVR, 0x1ff);
}

#[test]
fn reset_state_registers() {
    let (l, _, _) = lapic(2, false);
    assert_eq!(l.read_register(REG_ID), 2 << 24);
    assert_eq!(l.read_register(REG_VERSION), 0x0005_0014);
    assert_eq!(l.read_register(REG_SVR), 0xff);
    assert_eq!(l.read_register(REG_DFR), 0xffff_ffff);
    assert_eq!(l.read_register(0x350), LVT_MASKED, "AP LINT0 masked");
    assert_eq!(l.apic_base(), 0xfee0_0800);
    let (b, _, _) = lapic(0, true);
    assert_eq!(b.apic_base(), 0xfee0_0900);
    assert_eq!(b.read_register(0x350), 0x700, "BSP LINT0 ExtINT");
    assert!(b.accepts_pic_interrupt());
    assert!(!l.accepts_pic_interrupt());
}

#[test]
fn irr_isr_priority_and_eoi() {
    let (mut l, _, n) = lapic(0, true);
    enable(&mut l);
    l.accept(InterruptMessage::fixed(0, 0x31));
    l.accept(InterruptMessage::fixed(0, 0x52));
    assert_eq!(n.take(), vec![0, 0]);
    assert_eq!(l.pending_vector(), Some(0x52));
    assert!(l.acknowledge(0x52));
    assert_eq!(l.read_register(0x100 + 0x20), 1 << 0x12, "ISR word 2");
    assert_eq!(l.ppr(), 0x50);
    assert_eq!(
        l.pending_vector(),
        None,
        "0x31 is below the in-service class"
    );
    l.accept(InterruptMessage::fixed(0, 0x55));
    assert_eq!(l.pending_vector(), None, "same class as in service");
    l.accept(InterruptMessage::fixed(0, 0x61));
    assert_eq!(l.pending_vector(), Some(0x61), "higher class nests");
    assert!(l.acknowledge(0x61));
    assert_eq!(l.write_register(REG_EOI, 0), LapicAction::None);
    assert_eq!(l.read_register(0x100 + 0x30), 0, "0x61 retired first");
    assert_eq!(l.write_register(REG_EOI, 0), LapicAction::None);
    assert_eq!(l.pending_vector(), Some(0x55));
    assert!(!l.acknowledge(0x99));
}

#[test]
fn tpr_blocks_lower_classes() {
    let (mut l, _, _) = lapic(0, true);
    enable(&mut l);
    l.write_register(REG_TPR, 0x40);
    l.accept(InterruptMessage::fixed(0, 0x45));
    assert_eq!(l.pending_vector(), None);
    assert_eq!(l.read_register(REG_PPR), 0x40);
    l.write_register(REG_TPR, 0x30);
    assert_eq!(l.pending_vector(), Some(0x45));
    assert_eq!(l.read_register(REG_APR), 0x40);
}

#[test]
fn software_disabled_apic_delivers_nothing_and_masks_lvts() {
    let (mut l, _, _) = lapic(0, true);
    l.accept(InterruptMessage::fixed(0, 0x40));
    assert_eq!(l.pending_vector(), None);
    l.write_register(0x370, 0xfe); // error LVT, unmasked attempt
    assert_eq!(
        l.read_register(0x370),
        0x1_00fe,
        "mask forced while disabled"
    );
    enable(&mut l);
    assert_eq!(l.pending_vector(), Some(0x40));
    l.write_register(REG_SVR, 0x0ff);
    assert_ne!(l.read_register(0x350) & LVT_MASKED, 0);
}

#[test]
fn level_eoi_reports_vector_for_broadcast() {
    let (mut l, _, _) = lapic(0, true);
    enable(&mut l);
    let mut m = InterruptMessage::fixed(0, 0x41);
    m.level_triggered = true;
    l.accept(m);
    assert_eq!(l.read_register(0x180 + 0x20), 1 << 1, "TMR set");
    assert!(l.acknowledge(0x41));
    assert_eq!(l.write_register(REG_EOI, 0), LapicAction::LevelEoi(0x41));
    // Edge re-use of the vector clears TMR.
    l.accept(InterruptMessage::fixed(0, 0x41));
    assert!(l.acknowledge(0x41));
    assert_eq!(l.write_register(REG_EOI, 0), LapicAction::None);
}

#[test]
fn illegal_vector_sets_esr_and_error_interrupt() {
    let (mut l, _, _) = lapic(0, true);
    enable(&mut l);
    l.write_register(0x370, 0xfe);
    l.accept(InterruptMessage::fixed(0, 0x05));
    assert_eq!(l.pending_vector(), Some(0xfe));
    assert_eq!(l.read_register(REG_ESR), 0);
    l.write_register(REG_ESR, 0);
    assert_eq!(l.read_register(REG_ESR), ESR_RECEIVE_ILLEGAL_VECTOR);
}

#[test]
fn icr_builds_ipis() {
    let (mut l, _, _) = lapic(1, false);
    enable(&mut l);
    l.write_register(REG_ICR_HIGH, 0x0300_0000);
    let a = l.write_register(REG_ICR_LOW, 0x0000_4042);
    assert_eq!(
        a,
        LapicAction::Ipi(Ipi {
            message: InterruptMessage::fixed(3, 0x42),
            shorthand: Shorthand::None,
            source: 1,
        })
    );
    assert_eq!(l.read_register(REG_ICR_LOW) & (1 << 12), 0, "idle");
    // INIT level de-assert is not sent.
    assert_eq!(
        l.write_register(REG_ICR_LOW, 0x0000_8500),
        LapicAction::None
    );
    // SIPI to all but self, vector 0x9a.
    let LapicAction::Ipi(ipi) = l.write_register(REG_ICR_LOW, 0x000c_469a) else {
        panic!("no IPI");
    };
    assert_eq!(ipi.shorthand, Shorthand::AllExcludingSelf);
    assert_eq!(ipi.message.delivery_mode, DeliveryMode::Startup);
    assert_eq!(ipi.message.vector, 0x9a);
    // Fixed vector below 16: send error, nothing sent.
    assert_eq!(
        l.write_register(REG_ICR_LOW, 0x0000_0003),
        LapicAction::None
    );
    l.write_register(REG_ESR, 0);
    assert_eq!(l.read_register(REG_ESR), ESR_SEND_ILLEGAL_VECTOR);
}

#[test]
fn init_then_sipi_events() {
    let (mut l, _, n) = lapic(1, false);
    enable(&mut l);
    l.write_register(REG_TPR, 0x20);
    let init = InterruptMessage {
        delivery_mode: DeliveryMode::Init,
        ..InterruptMessage::fixed(1, 0)
    };
    let sipi = InterruptMessage {
        delivery_mode: DeliveryMode::Startup,
        ..InterruptMessage::fixed(1, 0x9a)
    };
    l.accept(init);
    assert_eq!(l.read_register(REG_TPR), 0, "INIT resets registers");
    assert_eq!(l.read_register(REG_ID), 1 << 24, "but keeps the ID");
    l.accept(sipi);
    l.accept(sipi); // the second SIPI finds the CPU running
    assert_eq!(l.take_init_sipi(), Some(InitSipi::Init));
    assert_eq!(l.take_init_sipi(), Some(InitSipi::Startup { vector: 0x9a }));
    assert_eq!(l.take_init_sipi(), None);
    assert!(!l.waiting_for_sipi());
    assert_eq!(n.take(), vec![1, 1]);
}

#[test]
fn logical_destinations_flat_and_cluster() {
    let (mut l, _, _) = lapic(0, true);
    l.write_register(REG_LDR, 0x0400_0000);
    assert!(l.matches(0x04, DestinationMode::Logical));
    assert!(l.matches(0x0c, DestinationMode::Logical));
    assert!(!l.matches(0x03, DestinationMode::Logical));
    assert!(l.matches(0xff, DestinationMode::Physical));
    assert!(l.matches(0x00, DestinationMode::Physical));
    assert!(!l.matches(0x01, DestinationMode::Physical));
    l.write_register(REG_DFR, 0x0fff_ffff); // cluster model
    l.write_register(REG_LDR, 0x2100_0000); // cluster 2, member bit 0
    assert!(l.matches(0x21, DestinationMode::Logical));
    assert!(l.matches(0xf1, DestinationMode::Logical));
    assert!(!l.matches(0x11, DestinationMode::Logical));
    assert!(!l.matches(0x22, DestinationMode::Logical));
}

#[test]
fn apic_base_msr_rules() {
    let (mut l, _, _) = lapic(0, true);
    assert!(!l.set_apic_base(0xfee0_0d00), "x2APIC is a #GP");
    assert!(!l.set_apic_base(0xfee0_0801), "reserved bits");
    enable(&mut l);
    assert!(l.set_apic_base(0xfee0_0000));
    assert_eq!(l.apic_base(), 0xfee0_0100, "BSP bit is read-only");
    assert!(!l.software_enabled());
    l.accept(InterruptMessage::fixed(0, 0x40));
    assert_eq!(l.read_register(0x200 + 0x20), 0, "disabled: ignores both");
    assert!(l.accepts_pic_interrupt(), "PIC wired straight through");
    assert!(l.set_apic_base(0xfee0_0900));
    assert!(l.hardware_enabled());
}

#[test]
fn one_shot_timer_fires_at_the_programmed_time() {
    let (mut l, clock, n) = lapic(0, true);
    enable(&mut l);
    l.write_register(REG_TIMER_DIVIDE, 0x3); // divide by 16
    l.write_register(REG_LVT_TIMER, 0xec);
    l.write_register(REG_TIMER_INITIAL, 100);
    assert_eq!(l.next_deadline(), Some(1600));
    clock.add_instructions(800);
    assert_eq!(l.read_register(REG_TIMER_CURRENT), 50);
    l.advance(clock.now_ns());
    assert_eq!(l.pending_vector(), None);
    clock.add_instructions(800);
    n.take();
    l.advance(clock.now_ns());
    assert_eq!(l.pending_vector(), Some(0xec));
    assert_eq!(n.take(), vec![0]);
    assert_eq!(l.next_deadline(), None);
    assert_eq!(l.read_register(REG_TIMER_CURRENT), 0);
}

#[test]
fn periodic_timer_reloads_on_schedule() {
    let (mut l, clock, _) = lapic(0, true);
    enable(&mut l);
    l.write_register(REG_TIMER_DIVIDE, 0xb); // divide by 1
    l.write_register(REG_LVT_TIMER, 0x2_00ef);
    l.write_register(REG_TIMER_INITIAL, 1000);
    let mut fired = Vec::new();
    for _ in 0..35 {
        clock.add_instructions(100);
        l.advance(clock.now_ns());
        if l.acknowledge(0xef) {
            fired.push(clock.now_ns());
            l.end_of_interrupt();
        }
    }
    assert_eq!(fired, vec![1000, 2000, 3000]);
    assert_eq!(l.next_deadline(), Some(4000));
    assert_eq!(l.read_register(REG_TIMER_CURRENT), 500);
    // A long stall coalesces missed periods and keeps the phase.
    clock.add_instructions(5250);
    l.advance(clock.now_ns());
    assert!(l.acknowledge(0xef));
    assert!(!l.acknowledge(0xef));
    assert_eq!(l.next_deadline(), Some(9000));
}

#[test]
fn tsc_deadline_timer_fires_at_the_deadline() {
    let (mut l, clock, _) = lapic(0, true);
    enable(&mut l);
    // 2 GHz TSC: 2 TSC ticks per ns.
    l.write_tsc_deadline(5000); // ignored outside TSC-deadline mode
    assert_eq!(l.read_tsc_deadline(), 0);
    l.write_register(REG_LVT_TIMER, 0x4_00ee);
    l.write_tsc_deadline(5000);
    assert_eq!(l.read_tsc_deadline(), 5000);
    assert_eq!(l.next_deadline(), Some(2500));
    assert_eq!(l.read_register(REG_TIMER_CURRENT), 0);
    clock.add_instructions(2499);
    l.advance(clock.now_ns());
    assert_eq!(l.pending_vector(), None);
    clock.add_instructions(1);
    l.advance(clock.now_ns());
    assert_eq!(l.pending_vector(), Some(0xee));
    assert_eq!(l.read_tsc_deadline(), 0, "disarmed after firing");
    // A deadline in the past fires at once.
    l.acknowledge(0xee);
    l.end_of_interrupt();
    l.write_tsc_deadline(1);
    assert_eq!(l.pending_vector(), Some(0xee));
}

#[test]
fn lint1_in_nmi_mode_latches_an_nmi() {
    let (mut l, _, _) = lapic(0, true);
    l.assert_lint1();
    assert!(!l.nmi_pending(), "LINT1 masked at reset");
    enable(&mut l);
    l.write_register(0x360, 0x400);
    l.assert_lint1();
    assert!(l.take_nmi());
    assert!(!l.take_nmi());
}

#[test]
fn masked_timer_expiry_does_not_fire_after_unmask() {
    let (mut l, clock, _) = lapic(0, true);
    enable(&mut l);
    l.write_register(REG_TIMER_DIVIDE, 0xb);
    l.write_register(REG_LVT_TIMER, 0x1_00e0);
    l.write_register(REG_TIMER_INITIAL, 10);
    assert_eq!(l.next_deadline(), None, "masked: nothing to wake for");
    clock.add_instructions(20);
    l.write_register(REG_LVT_TIMER, 0xe0);
    l.advance(clock.now_ns());
    assert_eq!(l.pending_vector(), None);
}
