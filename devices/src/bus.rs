//! Address-decoded buses (port I/O and MMIO) and the device trait on them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use thiserror::Error;

/// Where an access landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusAccessInfo {
    /// The absolute address (port or guest-physical).
    pub address: u64,
    /// Offset from the start of the device's range.
    pub offset: u64,
    /// The vCPU doing the access.
    pub vcpu: u32,
}

/// A device on a bus. Bad widths or offsets from the guest are ignored or
/// logged, never a panic.
pub trait BusDevice: Send {
    /// Short name for logs and `info qtree`.
    fn name(&self) -> &str;
    /// Handle a read; `data` is pre-filled with zeros.
    fn read(&mut self, info: BusAccessInfo, data: &mut [u8]);
    /// Handle a write.
    fn write(&mut self, info: BusAccessInfo, data: &[u8]);
}

/// Shared, lockable device handle as the bus stores it.
pub type SharedDevice = Arc<Mutex<dyn BusDevice>>;

/// Errors registering a device.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BusError {
    /// The new range is empty or wraps around.
    #[error("invalid range {base:#x}+{len:#x}")]
    InvalidRange {
        /// Start.
        base: u64,
        /// Length.
        len: u64,
    },
    /// The new range overlaps one already registered.
    #[error("range {base:#x}+{len:#x} overlaps an existing device")]
    Overlap {
        /// Start.
        base: u64,
        /// Length.
        len: u64,
    },
}

#[derive(Clone)]
struct Entry {
    len: u64,
    device: SharedDevice,
}

/// Maps address ranges to devices.
#[derive(Default, Clone)]
pub struct Bus {
    ranges: BTreeMap<u64, Entry>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut l = f.debug_list();
        for (base, e) in &self.ranges {
            let name = e
                .device
                .lock()
                .map(|d| d.name().to_string())
                .unwrap_or_default();
            l.entry(&format_args!("{base:#x}+{:#x} {name}", e.len));
        }
        l.finish()
    }
}

impl Bus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register `device` at `[base, base+len)`.
    pub fn insert(&mut self, device: SharedDevice, base: u64, len: u64) -> Result<(), BusError> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(BusError::InvalidRange { base, len })?;
        if let Some((b, e)) = self.ranges.range(..end).next_back() {
            if b + e.len > base {
                return Err(BusError::Overlap { base, len });
            }
        }
        self.ranges.insert(base, Entry { len, device });
        Ok(())
    }

    /// The device covering `address`, with the access info for it.
    fn find(&self, address: u64, vcpu: u32) -> Option<(BusAccessInfo, &SharedDevice)> {
        let (base, e) = self.ranges.range(..=address).next_back()?;
        let offset = address - base;
        (offset < e.len).then_some((
            BusAccessInfo {
                address,
                offset,
                vcpu,
            },
            &e.device,
        ))
    }

    /// Read from `address`. Returns false (and leaves `data` untouched) if
    /// no device claims it.
    pub fn read(&self, vcpu: u32, address: u64, data: &mut [u8]) -> bool {
        match self.find(address, vcpu) {
            Some((info, dev)) => {
                data.fill(0);
                if let Ok(mut d) = dev.lock() {
                    d.read(info, data);
                }
                true
            }
            None => false,
        }
    }

    /// Write to `address`. Returns false if no device claims it.
    pub fn write(&self, vcpu: u32, address: u64, data: &[u8]) -> bool {
        match self.find(address, vcpu) {
            Some((info, dev)) => {
                if let Ok(mut d) = dev.lock() {
                    d.write(info, data);
                }
                true
            }
            None => false,
        }
    }

    /// Every registered range with its device name, in address order.
    pub fn describe(&self) -> Vec<(u64, u64, String)> {
        self.ranges
            .iter()
            .map(|(b, e)| {
                let name = e
                    .device
                    .lock()
                    .map(|d| d.name().to_string())
                    .unwrap_or_default();
                (*b, e.len, name)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Scratch {
        bytes: [u8; 4],
        last: Option<BusAccessInfo>,
    }

    impl BusDevice for Scratch {
        fn name(&self) -> &str {
            "scratch"
        }
        fn read(&mut self, info: BusAccessInfo, data: &mut [u8]) {
            self.last = Some(info);
            let o = info.offset as usize;
            for (i, b) in data.iter_mut().enumerate() {
                *b = self.bytes.get(o + i).copied().unwrap_or(0xff);
            }
        }
        fn write(&mut self, info: BusAccessInfo, data: &[u8]) {
            self.last = Some(info);
            let o = info.offset as usize;
            for (i, b) in data.iter().enumerate() {
                if let Some(s) = self.bytes.get_mut(o + i) {
                    *s = *b;
                }
            }
        }
    }

    fn scratch() -> Arc<Mutex<Scratch>> {
        Arc::new(Mutex::new(Scratch {
            bytes: [0; 4],
            last: None,
        }))
    }

    #[test]
    fn routes_by_range_and_reports_offset() {
        let mut bus = Bus::new();
        let dev = scratch();
        bus.insert(dev.clone(), 0x100, 4).unwrap();
        assert!(bus.write(1, 0x102, &[0xab]));
        let mut b = [0u8; 2];
        assert!(bus.read(0, 0x101, &mut b));
        assert_eq!(b, [0, 0xab]);
        let last = dev.lock().unwrap().last.unwrap();
        assert_eq!((last.address, last.offset, last.vcpu), (0x101, 1, 0));
        assert!(!bus.read(0, 0x104, &mut b));
        assert!(!bus.read(0, 0xff, &mut b));
    }

    #[test]
    fn rejects_overlaps_and_empty_ranges() {
        let mut bus = Bus::new();
        bus.insert(scratch(), 0x100, 4).unwrap();
        assert_eq!(
            bus.insert(scratch(), 0x103, 1),
            Err(BusError::Overlap {
                base: 0x103,
                len: 1
            })
        );
        assert_eq!(
            bus.insert(scratch(), 0xfe, 4),
            Err(BusError::Overlap { base: 0xfe, len: 4 })
        );
        assert!(bus.insert(scratch(), 0x104, 0).is_err());
        assert!(bus.insert(scratch(), u64::MAX, 2).is_err());
        bus.insert(scratch(), 0x104, 4).unwrap();
        bus.insert(scratch(), 0xfc, 4).unwrap();
    }
}
