//! QEMU's `isa-debug-exit`: a write of V to its port ends the process with
//! status `(V << 1) | 1`.

use crate::bus::{BusAccessInfo, BusDevice};

/// QEMU's default port.
pub const DEFAULT_IOBASE: u16 = 0x501;
/// QEMU's default port count.
pub const DEFAULT_IOSIZE: u16 = 2;

/// The exit device; `on_exit` receives the process exit status.
pub struct DebugExit {
    on_exit: Box<dyn Fn(i32) + Send>,
}

impl std::fmt::Debug for DebugExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DebugExit")
    }
}

impl DebugExit {
    /// A device that reports exit requests to `on_exit`.
    pub fn new(on_exit: Box<dyn Fn(i32) + Send>) -> Self {
        DebugExit { on_exit }
    }

    /// The exit status for a written value, as QEMU computes it.
    pub fn status(value: u32) -> i32 {
        ((value << 1) | 1) as i32
    }
}

impl BusDevice for DebugExit {
    fn name(&self) -> &str {
        "isa-debug-exit"
    }

    fn read(&mut self, _info: BusAccessInfo, data: &mut [u8]) {
        data.fill(0xff);
    }

    fn write(&mut self, _info: BusAccessInfo, data: &[u8]) {
        let mut v = [0u8; 4];
        let n = data.len().min(4);
        v[..n].copy_from_slice(&data[..n]);
        (self.on_exit)(Self::status(u32::from_le_bytes(v)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn write_of_v_exits_with_2v_plus_1() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let mut d = DebugExit::new(Box::new(move |s| g.lock().unwrap().push(s)));
        let info = BusAccessInfo {
            address: 0x501,
            offset: 0,
            vcpu: 0,
        };
        d.write(info, &[0x21]);
        d.write(info, &[0]);
        d.write(info, &[0x34, 0x12]);
        assert_eq!(*got.lock().unwrap(), vec![67, 1, 0x2469]);
    }
}
