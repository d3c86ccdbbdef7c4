//! Port 0x80, the POST-code port. Nothing listens there on a microvm;
//! Linux writes it (`outb_p`, `io_delay`) only to pause for an I/O cycle.

use crate::bus::{BusAccessInfo, BusDevice};

/// The port, one byte wide.
pub const PORT80: u64 = 0x80;

/// A sink: writes are dropped, reads return zero.
#[derive(Debug, Default, Clone, Copy)]
pub struct Port80;

impl BusDevice for Port80 {
    fn name(&self) -> &str {
        "port80"
    }

    fn read(&mut self, _info: BusAccessInfo, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, _info: BusAccessInfo, _data: &[u8]) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_zero_whatever_was_written() {
        let info = BusAccessInfo {
            address: PORT80,
            offset: 0,
            vcpu: 0,
        };
        let mut p = Port80;
        p.write(info, &[0xaa]);
        let mut b = [0xffu8; 2];
        p.read(info, &mut b);
        assert_eq!(b, [0, 0]);
    }
}
