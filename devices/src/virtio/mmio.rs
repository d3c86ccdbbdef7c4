//! The virtio-mmio transport, version 2: QEMU microvm's 512-byte windows.

use std::sync::Arc;

use cpu::{GuestMemory, GuestWrites};
use virtio_queue::{Queue, QueueT};

use super::{VirtioDevice, F_VERSION_1};
use crate::bus::{BusAccessInfo, BusDevice};
use crate::irq::Irq;

/// Size of one transport window.
pub const MMIO_WINDOW: u64 = 0x200;
const MAGIC: u32 = 0x7472_6976;
const VERSION: u32 = 2;
/// QEMU's vendor ID ("QEMU").
const VENDOR: u32 = 0x554d_4551;

const STATUS_ACKNOWLEDGE: u32 = 1;
const STATUS_DRIVER: u32 = 2;
const STATUS_DRIVER_OK: u32 = 4;
const STATUS_FEATURES_OK: u32 = 8;
/// The device hit an error and needs a reset.
pub const STATUS_NEEDS_RESET: u32 = 0x40;
const STATUS_FAILED: u32 = 0x80;

const INT_USED_RING: u32 = 1;
const INT_CONFIG: u32 = 2;

/// One transport window, empty or holding a device.
pub struct MmioTransport {
    device: Option<Box<dyn VirtioDevice>>,
    mem: Arc<GuestMemory>,
    /// Where the device's writes to guest RAM are reported (the software
    /// CPU's code-page tracker), if anywhere.
    writes: Option<Arc<dyn GuestWrites>>,
    irq: Irq,
    queues: Vec<Queue>,
    queue_sel: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    status: u32,
    interrupt_status: u32,
    config_generation: u32,
}

impl std::fmt::Debug for MmioTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmioTransport")
            .field(
                "device",
                &self.device.as_ref().map(|d| d.name().to_string()),
            )
            .field("status", &self.status)
            .finish()
    }
}

impl MmioTransport {
    /// A transport for `device` (None: an empty slot, device ID 0).
    pub fn new(device: Option<Box<dyn VirtioDevice>>, mem: Arc<GuestMemory>, irq: Irq) -> Self {
        let queues = device
            .as_ref()
            .map(|d| {
                d.queue_max_sizes()
                    .iter()
                    .filter_map(|&n| Queue::new(n).ok())
                    .collect()
            })
            .unwrap_or_default();
        MmioTransport {
            device,
            mem,
            writes: None,
            irq,
            queues,
            queue_sel: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            status: 0,
            interrupt_status: 0,
            config_generation: 0,
        }
    }

    /// Report the device's writes to guest RAM to `writes` (see
    /// `dma_report`).
    pub fn set_guest_writes(&mut self, writes: Option<Arc<dyn GuestWrites>>) {
        self.writes = writes;
    }

    /// Whether a device sits in this slot.
    pub fn populated(&self) -> bool {
        self.device.is_some()
    }

    /// The device status register (for tests and `info qtree`).
    pub fn status(&self) -> u32 {
        self.status
    }

    fn update_irq(&self) {
        self.irq.set_level(self.interrupt_status != 0);
    }

    fn reset(&mut self) {
        for q in &mut self.queues {
            q.reset();
        }
        if let Some(d) = &mut self.device {
            d.reset();
        }
        self.queue_sel = 0;
        self.driver_features = 0;
        self.status = 0;
        self.interrupt_status = 0;
        self.update_irq();
    }

    fn queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    fn device_features(&self) -> u64 {
        self.device
            .as_ref()
            .map(|d| d.features() | F_VERSION_1)
            .unwrap_or(0)
    }

    /// Process queue `index` now, as if the driver had notified it (a
    /// device with work from the host side, e.g. console input).
    pub fn process(&mut self, index: usize) {
        self.notify(index);
    }

    fn notify(&mut self, index: usize) {
        if self.status & STATUS_DRIVER_OK == 0 || self.status & STATUS_NEEDS_RESET != 0 {
            return;
        }
        let (Some(dev), Some(q)) = (self.device.as_mut(), self.queues.get_mut(index)) else {
            return;
        };
        if !q.ready() {
            return;
        }
        let from = q.next_used();
        let r = dev.process_queue(index, q, &self.mem);
        if let Some(w) = &self.writes {
            super::dma_report::report_used(q, &self.mem, from, w.as_ref());
        }
        match r {
            Ok(true) => {
                self.interrupt_status |= INT_USED_RING;
                self.update_irq();
            }
            Ok(false) => {}
            Err(e) => {
                log::warn!(
                    "virtio-{}: queue {index}: {e}; device needs reset",
                    dev.name()
                );
                self.status |= STATUS_NEEDS_RESET;
                self.interrupt_status |= INT_CONFIG;
                self.update_irq();
            }
        }
    }

    fn read_reg(&self, offset: u64) -> u32 {
        let q = self.queues.get(self.queue_sel as usize);
        match offset {
            0x000 => MAGIC,
            0x004 => VERSION,
            0x008 => self.device.as_ref().map(|d| d.device_type()).unwrap_or(0),
            0x00c => VENDOR,
            0x010 => match self.device_features_sel {
                0 => self.device_features() as u32,
                1 => (self.device_features() >> 32) as u32,
                _ => 0,
            },
            0x034 => q.map(|q| u32::from(q.max_size())).unwrap_or(0),
            0x044 => q.map(|q| u32::from(q.ready())).unwrap_or(0),
            0x060 => self.interrupt_status,
            0x070 => self.status,
            0x0fc => self.config_generation,
            _ => 0,
        }
    }

    fn write_reg(&mut self, offset: u64, v: u32) {
        // Queue setup is only legal before DRIVER_OK on a live device.
        let configuring = self.status & STATUS_DRIVER_OK == 0;
        match offset {
            0x014 => self.device_features_sel = v,
            0x020 => {
                if self.status & STATUS_FEATURES_OK == 0 {
                    let shift = match self.driver_features_sel {
                        0 => 0,
                        1 => 32,
                        _ => return,
                    };
                    self.driver_features &= !(0xffff_ffffu64 << shift);
                    self.driver_features |= u64::from(v) << shift;
                }
            }
            0x024 => self.driver_features_sel = v,
            0x030 => self.queue_sel = v,
            0x038 if configuring => {
                if let Some(q) = self.queue() {
                    q.set_size(v as u16);
                }
            }
            0x044 if configuring => {
                if let Some(q) = self.queue() {
                    q.set_ready(v == 1);
                }
            }
            0x050 => self.notify(v as usize),
            0x064 => {
                self.interrupt_status &= !v;
                self.update_irq();
            }
            0x070 => self.write_status(v),
            0x080 | 0x084 | 0x090 | 0x094 | 0x0a0 | 0x0a4 if configuring => {
                let Some(q) = self.queue() else { return };
                let (lo, hi) = if offset & 4 == 0 {
                    (Some(v), None)
                } else {
                    (None, Some(v))
                };
                match offset & !4 {
                    0x080 => q.set_desc_table_address(lo, hi),
                    0x090 => q.set_avail_ring_address(lo, hi),
                    _ => q.set_used_ring_address(lo, hi),
                }
            }
            _ => log::debug!("virtio-mmio: ignored write {v:#x} at {offset:#x}"),
        }
    }

    fn write_status(&mut self, v: u32) {
        if v == 0 {
            self.reset();
            return;
        }
        if v & STATUS_FEATURES_OK != 0 && self.status & STATUS_FEATURES_OK == 0 {
            // Refuse features we didn't offer, and legacy drivers.
            let offered = self.device_features();
            if self.driver_features & !offered != 0 || self.driver_features & F_VERSION_1 == 0 {
                self.status = v & !STATUS_FEATURES_OK;
                return;
            }
            let event_idx = self.driver_features & (1 << 29) != 0;
            for q in &mut self.queues {
                q.set_event_idx(event_idx);
            }
        }
        let _ = (STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_FAILED);
        self.status = v | (self.status & STATUS_NEEDS_RESET);
    }
}

impl BusDevice for MmioTransport {
    fn name(&self) -> &str {
        "virtio-mmio"
    }

    fn read(&mut self, info: BusAccessInfo, data: &mut [u8]) {
        if info.offset >= 0x100 {
            if let Some(d) = &self.device {
                d.read_config(info.offset - 0x100, data);
            }
            return;
        }
        if data.len() != 4 {
            log::debug!("virtio-mmio: {}-byte register read ignored", data.len());
            return;
        }
        data.copy_from_slice(&self.read_reg(info.offset).to_le_bytes());
    }

    fn write(&mut self, info: BusAccessInfo, data: &[u8]) {
        if info.offset >= 0x100 {
            if let Some(d) = &mut self.device {
                d.write_config(info.offset - 0x100, data);
                self.config_generation = self.config_generation.wrapping_add(1);
            }
            return;
        }
        if data.len() != 4 {
            log::debug!("virtio-mmio: {}-byte register write ignored", data.len());
            return;
        }
        let v = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        self.write_reg(info.offset, v);
    }
}
