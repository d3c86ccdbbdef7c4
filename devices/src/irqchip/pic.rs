//! The 8259A programmable interrupt controller pair (master at ports
//! 0x20-0x21, slave at 0xA0-0xA1 cascaded on master IRQ2) and the ELCR
//! edge/level control registers at 0x4D0-0x4D1.
//!
//! One [`Pic`] device answers all three port ranges: the board registers
//! the same shared device at [`PIC_MASTER_PORT`], [`PIC_SLAVE_PORT`] and
//! [`ELCR_PORT`] (two ports each) and the device decodes the absolute port.
//! Its INTR output is an [`crate::irq::IrqLine`] driven on every change.

use crate::bus::{BusAccessInfo, BusDevice};
use crate::irq::Irq;

/// First port of the master 8259 (command; +1 is data).
pub const PIC_MASTER_PORT: u16 = 0x20;
/// First port of the slave 8259.
pub const PIC_SLAVE_PORT: u16 = 0xa0;
/// ELCR1 (master); ELCR2 (slave) is the next port.
pub const ELCR_PORT: u16 = 0x4d0;
/// Ports each of the three ranges spans.
pub const PIC_PORT_SPAN: u64 = 2;

/// ELCR bits the chipset lets software set (IRQ0-2, 8 and 13 are always
/// edge), as on the PIIX/ICH.
const ELCR_MASK: [u8; 2] = [0xf8, 0xde];
/// The master input the slave's INTR is wired to.
const CASCADE_PIN: u8 = 2;

/// Where a chip is in its ICW1..ICW4 initialization sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum InitState {
    #[default]
    Ready,
    Icw2,
    Icw3,
    Icw4,
}

/// One 8259A.
#[derive(Debug, Default, Clone)]
struct Chip {
    /// Interrupt request register.
    irr: u8,
    /// In-service register.
    isr: u8,
    /// Interrupt mask register (OCW1).
    imr: u8,
    /// Input levels last seen, for edge detection.
    last_level: u8,
    /// Edge/level control (1 = level).
    elcr: u8,
    /// Vector of IR0 (ICW2 & 0xF8).
    vector_base: u8,
    /// Lowest-priority rotation offset: IRn has priority (n - rotation) & 7.
    rotation: u8,
    init: InitState,
    needs_icw4: bool,
    single: bool,
    auto_eoi: bool,
    rotate_on_auto_eoi: bool,
    special_fully_nested: bool,
    special_mask: bool,
    /// OCW3 RR/RIS: read ISR (true) or IRR (false) from the command port.
    read_isr: bool,
    /// OCW3 poll command armed for the next read.
    poll: bool,
    is_master: bool,
}

impl Chip {
    fn new(is_master: bool) -> Self {
        Chip {
            is_master,
            ..Chip::default()
        }
    }

    /// Reset by ICW1 (and at power-on): everything except ELCR. Pending
    /// level-triggered requests survive.
    fn init_reset(&mut self) {
        *self = Chip {
            irr: self.irr & self.elcr,
            last_level: self.last_level & self.elcr,
            elcr: self.elcr,
            is_master: self.is_master,
            ..Chip::default()
        };
    }

    /// Priority (0 = highest) of the highest-priority bit in `mask`, or 8.
    fn priority(&self, mask: u8) -> u8 {
        (0..8)
            .find(|p| mask & (1 << ((p + self.rotation) & 7)) != 0)
            .unwrap_or(8)
    }

    /// The IR line this chip wants serviced, if any beats what is in service.
    fn wanted(&self) -> Option<u8> {
        let p = self.priority(self.irr & !self.imr);
        if p == 8 {
            return None;
        }
        let mut in_service = self.isr;
        if self.special_mask {
            in_service &= !self.imr;
        }
        if self.special_fully_nested && self.is_master {
            in_service &= !(1 << CASCADE_PIN);
        }
        (p < self.priority(in_service)).then_some((p + self.rotation) & 7)
    }

    fn set_input(&mut self, pin: u8, level: bool) {
        let bit = 1u8 << (pin & 7);
        if self.elcr & bit != 0 {
            if level {
                self.irr |= bit;
            } else {
                self.irr &= !bit;
            }
        } else if level && self.last_level & bit == 0 {
            self.irr |= bit;
        }
        if level {
            self.last_level |= bit;
        } else {
            self.last_level &= !bit;
        }
    }

    /// The INTA cycle's effect on this chip for line `irq`.
    fn intack(&mut self, irq: u8) {
        let bit = 1u8 << irq;
        if self.auto_eoi {
            if self.rotate_on_auto_eoi {
                self.rotation = (irq + 1) & 7;
            }
        } else {
            self.isr |= bit;
        }
        // A level-triggered request stays in IRR while the line is high.
        if self.elcr & bit == 0 {
            self.irr &= !bit;
        }
    }

    fn write_command(&mut self, val: u8) {
        if val & 0x10 != 0 {
            // ICW1.
            self.init_reset();
            self.init = InitState::Icw2;
            self.needs_icw4 = val & 0x01 != 0;
            self.single = val & 0x02 != 0;
            if val & 0x08 != 0 {
                log::debug!("i8259: ICW1 LTIM ignored; the ELCR selects level mode");
            }
        } else if val & 0x08 != 0 {
            // OCW3.
            if val & 0x04 != 0 {
                self.poll = true;
            }
            if val & 0x02 != 0 {
                self.read_isr = val & 0x01 != 0;
            }
            if val & 0x40 != 0 {
                self.special_mask = val & 0x20 != 0;
            }
        } else {
            // OCW2.
            let irq = val & 7;
            match val >> 5 {
                0 => self.rotate_on_auto_eoi = false,
                4 => self.rotate_on_auto_eoi = true,
                1 | 5 => {
                    // Non-specific EOI (5: and rotate).
                    let p = self.priority(self.isr);
                    if p != 8 {
                        let done = (p + self.rotation) & 7;
                        self.isr &= !(1 << done);
                        if val >> 5 == 5 {
                            self.rotation = (done + 1) & 7;
                        }
                    }
                }
                3 => self.isr &= !(1 << irq),
                6 => self.rotation = (irq + 1) & 7,
                7 => {
                    self.isr &= !(1 << irq);
                    self.rotation = (irq + 1) & 7;
                }
                _ => {}
            }
        }
    }

    fn write_data(&mut self, val: u8) {
        match self.init {
            InitState::Ready => self.imr = val,
            InitState::Icw2 => {
                self.vector_base = val & 0xf8;
                self.init = match (self.single, self.needs_icw4) {
                    (false, _) => InitState::Icw3,
                    (true, true) => InitState::Icw4,
                    (true, false) => InitState::Ready,
                };
            }
            InitState::Icw3 => {
                // The cascade wiring is fixed on a PC; ICW3 is accepted as is.
                self.init = if self.needs_icw4 {
                    InitState::Icw4
                } else {
                    InitState::Ready
                };
            }
            InitState::Icw4 => {
                if val & 0x01 == 0 {
                    log::debug!("i8259: ICW4 selects 8080 mode; treated as 8086");
                }
                self.auto_eoi = val & 0x02 != 0;
                self.special_fully_nested = val & 0x10 != 0;
                self.init = InitState::Ready;
            }
        }
    }

    /// A read of the command (`port_offset` 0) or data port.
    fn read(&mut self, port_offset: u64) -> u8 {
        if self.poll {
            self.poll = false;
            return match self.wanted() {
                Some(irq) => {
                    self.intack(irq);
                    0x80 | irq
                }
                None => 0,
            };
        }
        match (port_offset, self.read_isr) {
            (0, true) => self.isr,
            (0, false) => self.irr,
            _ => self.imr,
        }
    }
}

/// The master/slave 8259A pair with its ELCRs.
pub struct Pic {
    chips: [Chip; 2],
    /// INTR output to the CPU (LINT0 / KVM_INTERRUPT).
    intr: Irq,
    intr_level: bool,
}

impl std::fmt::Debug for Pic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pic")
            .field("chips", &self.chips)
            .field("intr_level", &self.intr_level)
            .finish()
    }
}

const MASTER: usize = 0;
const SLAVE: usize = 1;

impl Pic {
    /// A pair in power-on state whose INTR output drives `intr`.
    pub fn new(intr: Irq) -> Self {
        Pic {
            chips: [Chip::new(true), Chip::new(false)],
            intr,
            intr_level: false,
        }
    }

    /// Machine reset: both chips and the ELCRs to power-on state.
    pub fn reset(&mut self) {
        self.chips = [Chip::new(true), Chip::new(false)];
        self.update();
    }

    /// Drive input `pin` (0-15; 8-15 are the slave's IR0-7).
    pub fn set_irq(&mut self, pin: u8, level: bool) {
        match pin {
            0..=7 => self.chips[MASTER].set_input(pin, level),
            8..=15 => {
                self.chips[SLAVE].set_input(pin - 8, level);
                self.update_cascade();
            }
            _ => log::warn!("i8259: no input pin {pin}"),
        }
        self.update();
    }

    /// The INTR output: the master has an unmasked request that beats what
    /// it has in service.
    pub fn has_interrupt(&self) -> bool {
        self.chips[MASTER].wanted().is_some()
    }

    /// The INTA cycle: the vector to deliver, with IRR/ISR updated as the
    /// hardware does. With nothing pending it returns the spurious IRQ7
    /// (or IRQ15 from the slave) vector.
    pub fn acknowledge(&mut self) -> u8 {
        let vector = match self.chips[MASTER].wanted() {
            Some(CASCADE_PIN) => {
                let slave = &mut self.chips[SLAVE];
                let v = match slave.wanted() {
                    Some(irq) => {
                        slave.intack(irq);
                        slave.vector_base | irq
                    }
                    None => slave.vector_base | 7,
                };
                self.update_cascade();
                self.chips[MASTER].intack(CASCADE_PIN);
                v
            }
            Some(irq) => {
                self.chips[MASTER].intack(irq);
                self.chips[MASTER].vector_base | irq
            }
            None => self.chips[MASTER].vector_base | 7,
        };
        self.update();
        vector
    }

    /// The ELCR as a 16-bit mask (bit n = IRQn level-triggered).
    pub fn elcr(&self) -> u16 {
        u16::from(self.chips[MASTER].elcr) | (u16::from(self.chips[SLAVE].elcr) << 8)
    }

    /// Feed the slave's INTR into master IR2.
    fn update_cascade(&mut self) {
        let out = self.chips[SLAVE].wanted().is_some();
        self.chips[MASTER].set_input(CASCADE_PIN, out);
    }

    /// Recompute INTR and drive the output line on a change.
    fn update(&mut self) {
        self.update_cascade();
        let level = self.has_interrupt();
        if level != self.intr_level {
            self.intr_level = level;
            self.intr.set_level(level);
        }
    }

    /// Read one byte from absolute `port`.
    pub fn read_port(&mut self, port: u64) -> u8 {
        let v = match port {
            0x20 | 0x21 => self.chips[MASTER].read(port - 0x20),
            0xa0 | 0xa1 => self.chips[SLAVE].read(port - 0xa0),
            0x4d0 => self.chips[MASTER].elcr,
            0x4d1 => self.chips[SLAVE].elcr,
            _ => 0xff,
        };
        // A poll read acknowledges.
        self.update();
        v
    }

    /// Write one byte to absolute `port`.
    pub fn write_port(&mut self, port: u64, val: u8) {
        match port {
            0x20 => self.chips[MASTER].write_command(val),
            0x21 => self.chips[MASTER].write_data(val),
            0xa0 => self.chips[SLAVE].write_command(val),
            0xa1 => self.chips[SLAVE].write_data(val),
            0x4d0 => self.chips[MASTER].elcr = val & ELCR_MASK[MASTER],
            0x4d1 => self.chips[SLAVE].elcr = val & ELCR_MASK[SLAVE],
            _ => log::debug!("i8259: write to unknown port {port:#x}"),
        }
        self.update();
    }
}

impl BusDevice for Pic {
    fn name(&self) -> &str {
        "i8259"
    }

    fn read(&mut self, info: BusAccessInfo, data: &mut [u8]) {
        // Wider accesses read consecutive ports, as on ISA.
        for (i, b) in data.iter_mut().enumerate() {
            *b = self.read_port(info.address + i as u64);
        }
    }

    fn write(&mut self, info: BusAccessInfo, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            self.write_port(info.address + i as u64, *b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::RecordingIrq;
    use std::sync::Arc;

    fn pic() -> (Pic, Arc<RecordingIrq>) {
        let intr = Arc::new(RecordingIrq::default());
        (Pic::new(intr.clone()), intr)
    }

    /// The sequence `init_8259A()` in arch/x86/kernel/i8259.c writes.
    fn linux_init(p: &mut Pic, auto_eoi: bool) {
        p.write_port(0x21, 0xff);
        p.write_port(0xa1, 0xff);
        p.write_port(0x20, 0x11); // ICW1: edge, cascade, ICW4
        p.write_port(0x21, 0x30); // ICW2: vectors 0x30-0x37
        p.write_port(0x21, 0x04); // ICW3: slave on IR2
        p.write_port(0x21, if auto_eoi { 0x03 } else { 0x01 }); // ICW4
        p.write_port(0xa0, 0x11);
        p.write_port(0xa1, 0x38);
        p.write_port(0xa1, 0x02); // ICW3: cascade identity
        p.write_port(0xa1, 0x01);
        p.write_port(0x21, 0xfb); // all masked but the cascade
        p.write_port(0xa1, 0xff);
    }

    fn unmask(p: &mut Pic, irq: u8) {
        if irq < 8 {
            let m = p.read_port(0x21) & !(1 << irq);
            p.write_port(0x21, m);
        } else {
            let m = p.read_port(0xa1) & !(1 << (irq - 8));
            p.write_port(0xa1, m);
        }
    }

    #[test]
    fn linux_init_sequence_sets_vectors_and_masks() {
        let (mut p, intr) = pic();
        linux_init(&mut p, false);
        // The probe in probe_8259A(): IMR reads back what was written.
        assert_eq!(p.read_port(0x21), 0xfb);
        assert_eq!(p.read_port(0xa1), 0xff);
        p.set_irq(4, true);
        assert!(!p.has_interrupt(), "IRQ4 is masked");
        unmask(&mut p, 4);
        assert!(p.has_interrupt());
        assert!(intr.level());
        assert_eq!(p.acknowledge(), 0x34);
        assert!(!p.has_interrupt());
        assert!(!intr.level());
    }

    #[test]
    fn masked_edge_is_latched_and_delivered_on_unmask() {
        let (mut p, _) = pic();
        linux_init(&mut p, false);
        p.set_irq(3, true);
        p.set_irq(3, false);
        assert!(!p.has_interrupt());
        unmask(&mut p, 3);
        assert!(p.has_interrupt());
        assert_eq!(p.acknowledge(), 0x33);
    }

    #[test]
    fn priority_order_and_nesting_until_eoi() {
        let (mut p, _) = pic();
        linux_init(&mut p, false);
        p.write_port(0x21, 0x00);
        p.set_irq(5, true);
        p.set_irq(1, true);
        assert_eq!(p.acknowledge(), 0x31, "IRQ1 beats IRQ5");
        assert!(!p.has_interrupt(), "IRQ5 waits behind in-service IRQ1");
        p.set_irq(0, true);
        assert!(p.has_interrupt(), "IRQ0 nests above IRQ1");
        assert_eq!(p.acknowledge(), 0x30);
        p.write_port(0x20, 0x20); // non-specific EOI clears IRQ0 (highest)
        assert!(!p.has_interrupt());
        p.write_port(0x20, 0x20); // then IRQ1
        assert!(p.has_interrupt());
        assert_eq!(p.acknowledge(), 0x35);
        // Read ISR via OCW3.
        p.write_port(0x20, 0x0b);
        assert_eq!(p.read_port(0x20), 1 << 5);
        p.write_port(0x20, 0x65); // specific EOI IRQ5
        assert_eq!(p.read_port(0x20), 0);
    }

    #[test]
    fn slave_interrupt_cascades_through_irq2() {
        let (mut p, intr) = pic();
        linux_init(&mut p, false);
        unmask(&mut p, 12);
        p.set_irq(12, true);
        assert!(p.has_interrupt());
        assert_eq!(p.acknowledge(), 0x3c);
        // Linux's mask_and_ack: specific EOI on the slave, then IRQ2 on master.
        p.write_port(0xa0, 0x60 | 4);
        p.write_port(0x20, 0x60 | 2);
        p.write_port(0xa0, 0x0b);
        p.write_port(0x20, 0x0b);
        assert_eq!((p.read_port(0xa0), p.read_port(0x20)), (0, 0));
        assert!(!p.has_interrupt());
        // Another edge gets through again.
        p.set_irq(12, false);
        p.set_irq(12, true);
        assert_eq!(p.acknowledge(), 0x3c);
        assert_eq!(intr.rising_edges(), 2);
    }

    #[test]
    fn edge_input_needs_a_new_rising_edge() {
        let (mut p, _) = pic();
        linux_init(&mut p, false);
        unmask(&mut p, 4);
        p.set_irq(4, true);
        assert_eq!(p.acknowledge(), 0x34);
        p.write_port(0x20, 0x20);
        p.set_irq(4, true); // still high: no new edge
        assert!(!p.has_interrupt());
        p.set_irq(4, false);
        p.set_irq(4, true);
        assert!(p.has_interrupt());
    }

    #[test]
    fn level_input_reasserts_after_eoi_while_high() {
        let (mut p, _) = pic();
        linux_init(&mut p, false);
        p.write_port(0x4d1, 0xff);
        assert_eq!(p.read_port(0x4d1), 0xde, "IRQ8 and IRQ13 stay edge");
        p.write_port(0x4d0, 0x20);
        assert_eq!(p.elcr(), 0xde20);
        unmask(&mut p, 5);
        p.set_irq(5, true);
        assert_eq!(p.acknowledge(), 0x35);
        assert!(!p.has_interrupt(), "in service");
        p.write_port(0x20, 0x20);
        assert!(p.has_interrupt(), "line still high after EOI");
        p.set_irq(5, false);
        assert!(!p.has_interrupt(), "level request drops with the line");
    }

    #[test]
    fn auto_eoi_leaves_isr_clear() {
        let (mut p, _) = pic();
        linux_init(&mut p, true);
        unmask(&mut p, 6);
        p.set_irq(6, true);
        assert_eq!(p.acknowledge(), 0x36);
        p.write_port(0x20, 0x0b);
        assert_eq!(p.read_port(0x20), 0);
    }

    #[test]
    fn spurious_vectors_when_nothing_pending() {
        let (mut p, _) = pic();
        linux_init(&mut p, false);
        assert_eq!(p.acknowledge(), 0x37);
        // Slave request that vanishes before INTA: spurious IRQ15.
        p.write_port(0x4d1, 0x02); // IRQ9 level
        unmask(&mut p, 9);
        p.set_irq(9, true);
        assert!(p.has_interrupt());
        p.set_irq(9, false);
        // The master latched the cascade edge; the slave has nothing.
        assert_eq!(p.acknowledge(), 0x3f);
    }

    #[test]
    fn poll_mode_reads_and_acknowledges() {
        let (mut p, _) = pic();
        linux_init(&mut p, false);
        unmask(&mut p, 1);
        p.set_irq(1, true);
        p.write_port(0x20, 0x0c); // OCW3 poll
        assert_eq!(p.read_port(0x20), 0x81);
        assert!(!p.has_interrupt());
        p.write_port(0x20, 0x0c);
        assert_eq!(p.read_port(0x20), 0, "nothing pending");
        p.write_port(0x20, 0x0b);
        assert_eq!(p.read_port(0x20), 0x02, "poll put IRQ1 in service");
    }

    #[test]
    fn irr_is_readable_and_reset_clears_state() {
        let (mut p, intr) = pic();
        linux_init(&mut p, false);
        p.set_irq(7, true);
        p.write_port(0x20, 0x0a);
        assert_eq!(p.read_port(0x20), 0x80);
        unmask(&mut p, 7);
        assert!(intr.level());
        p.reset();
        assert!(!intr.level());
        assert_eq!(p.read_port(0x21), 0);
        assert_eq!(p.read_port(0x20), 0);
    }

    #[test]
    fn bus_access_decodes_absolute_ports() {
        let (mut p, _) = pic();
        let info = |address| BusAccessInfo {
            address,
            offset: address & 1,
            vcpu: 0,
        };
        p.write(info(0xa1), &[0x5a]);
        let mut b = [0u8; 1];
        p.read(info(0xa1), &mut b);
        assert_eq!(b[0], 0x5a);
        p.write(info(0x4d0), &[0xff, 0xff]);
        let mut w = [0u8; 2];
        p.read(info(0x4d0), &mut w);
        assert_eq!(w, [0xf8, 0xde]);
    }
}
