//! The virtio-mmio transports the board announces to the guest.

use crate::layout::{VIRTIO_MMIO_BASE, VIRTIO_MMIO_MAX_TRANSPORTS, VIRTIO_MMIO_SIZE};

/// A populated virtio-mmio transport: its MMIO window and interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioMmioTransport {
    /// Guest-physical base of the 512-byte window.
    pub base: u64,
    /// GSI (IOAPIC input) of the transport's interrupt.
    pub gsi: u32,
}

impl VirtioMmioTransport {
    /// The transport in QEMU's slot `index` with interrupt `gsi`.
    pub fn slot(index: u32, gsi: u32) -> Self {
        VirtioMmioTransport {
            base: VIRTIO_MMIO_BASE + u64::from(index) * VIRTIO_MMIO_SIZE,
            gsi,
        }
    }

    /// QEMU's slot number for this window, if it is one of microvm's transport windows.
    pub fn index(&self) -> Option<u32> {
        let offset = self.base.checked_sub(VIRTIO_MMIO_BASE)?;
        if offset % VIRTIO_MMIO_SIZE != 0 || offset / VIRTIO_MMIO_SIZE >= VIRTIO_MMIO_MAX_TRANSPORTS
        {
            return None;
        }
        u32::try_from(offset / VIRTIO_MMIO_SIZE).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_and_index_round_trip() {
        let t = VirtioMmioTransport::slot(7, 12);
        assert_eq!(t.base, 0xfeb0_0e00);
        assert_eq!(t.index(), Some(7));
    }

    #[test]
    fn foreign_windows_have_no_index() {
        let below = VirtioMmioTransport {
            base: 0xc000_1000,
            gsi: 5,
        };
        let odd = VirtioMmioTransport {
            base: VIRTIO_MMIO_BASE + 0x100,
            gsi: 5,
        };
        let past = VirtioMmioTransport::slot(24, 48);
        assert_eq!(below.index(), None);
        assert_eq!(odd.index(), None);
        assert_eq!(past.index(), None);
    }
}
