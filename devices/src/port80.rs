//! Port 0x80, the POST-code port: Linux writes it for I/O delays.

use crate::bus::{BusAccessInfo, BusDevice};

/// Ignores writes, reads as zero.
#[derive(Debug, Default)]
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
