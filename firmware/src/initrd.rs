//! initrd placement, QEMU's way (`x86_load_linux` in `hw/i386/x86-common.c`): at the highest
//! page-aligned address that ends below `initrd_max`, i.e. `(initrd_max - size) & !4095`.
//!
//! `initrd_max` comes from the bzImage header (`initrd_addr_max`, or 4 GiB - 1 with
//! `XLF_CAN_BE_LOADED_ABOVE_4G`, or 0x37ffffff before protocol 2.03) and is capped at
//! `below_4g - 1`; for PVH it is `below_4g - 1`. (QEMU subtracts `acpi_data_size` from
//! `below_4g`, which is 0 on microvm.)

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::bzimage::XLF_CAN_BE_LOADED_ABOVE_4G;

/// Where the initrd limit comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitrdLimit {
    /// A bzImage header's fields.
    BzImage {
        /// Boot protocol version (`0x20f` for 2.15).
        protocol: u16,
        /// `initrd_addr_max`.
        initrd_addr_max: u32,
        /// `xloadflags`.
        xloadflags: u16,
    },
    /// A PVH kernel (no header).
    Pvh,
}

/// Errors placing the initrd.
#[derive(Debug, thiserror::Error)]
pub enum InitrdError {
    /// QEMU's message (protocol < 2.00).
    #[error("linux kernel too old to load a ram disk")]
    KernelTooOld,
    /// QEMU's message, verbatim after its "qemu: " prefix.
    #[error("initrd is too large, cannot support.(max: {max}, need {need})")]
    TooLarge {
        /// `initrd_max`.
        max: u64,
        /// initrd size.
        need: u64,
    },
    /// The computed place would overwrite the kernel.
    #[error("initrd at {initrd:#x} would overlap the kernel, which needs memory up to {kernel_end:#x}: give the guest more RAM")]
    OverlapsKernel {
        /// Where the initrd would go.
        initrd: u64,
        /// End of the kernel's memory.
        kernel_end: u64,
    },
    /// Guest memory refused the write.
    #[error("cannot write the initrd at {addr:#x}")]
    Write {
        /// Target address.
        addr: u64,
        /// The memory error.
        #[source]
        source: vm_memory::GuestMemoryError,
    },
}

/// The highest address (inclusive) the initrd may reach.
pub fn initrd_max(below_4g: u64, limit: InitrdLimit) -> u64 {
    let max = match limit {
        InitrdLimit::BzImage {
            protocol,
            initrd_addr_max,
            xloadflags,
        } => {
            if protocol >= 0x20c && xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G != 0 {
                u64::from(u32::MAX)
            } else if protocol >= 0x203 {
                u64::from(initrd_addr_max)
            } else {
                0x37ff_ffff
            }
        }
        InitrdLimit::Pvh => u64::MAX,
    };
    if max >= below_4g {
        below_4g - 1
    } else {
        max
    }
}

/// Where an initrd of `size` bytes goes.
pub fn place_initrd(
    below_4g: u64,
    limit: InitrdLimit,
    size: u64,
    kernel_end: u64,
) -> Result<u64, InitrdError> {
    if let InitrdLimit::BzImage { protocol, .. } = limit {
        if protocol < 0x200 {
            return Err(InitrdError::KernelTooOld);
        }
    }
    let max = initrd_max(below_4g, limit);
    if size >= max {
        return Err(InitrdError::TooLarge { max, need: size });
    }
    let addr = (max - size) & !4095;
    if addr < kernel_end {
        return Err(InitrdError::OverlapsKernel {
            initrd: addr,
            kernel_end,
        });
    }
    Ok(addr)
}

/// Copies the initrd into guest memory at `addr`.
pub fn write_initrd(mem: &GuestMemoryMmap<()>, addr: u64, data: &[u8]) -> Result<(), InitrdError> {
    mem.write_slice(data, GuestAddress(addr))
        .map_err(|source| InitrdError::Write { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BZ_2_15: InitrdLimit = InitrdLimit::BzImage {
        protocol: 0x20f,
        initrd_addr_max: 0x7fff_ffff,
        xloadflags: 0x21,
    };

    #[test]
    fn bzimage_initrd_goes_to_top_of_small_ram() {
        let ram = 256u64 << 20;
        assert_eq!(initrd_max(ram, BZ_2_15), ram - 1);
        // 1986560 bytes (the test initramfs): (0x0fffffff - 0x1e5000) & ~0xfff.
        let addr = place_initrd(ram, BZ_2_15, 1_986_560, 0x200_0000).unwrap();
        assert_eq!(addr, (0x0fff_ffff - 1_986_560) & !0xfff);
        assert_eq!(addr % 4096, 0);
        assert!(addr + 1_986_560 <= ram);
    }

    #[test]
    fn header_limit_applies_when_ram_is_larger() {
        let ram = 3u64 << 30;
        assert_eq!(initrd_max(ram, BZ_2_15), 0x7fff_ffff);
        let above4g = InitrdLimit::BzImage {
            protocol: 0x20f,
            initrd_addr_max: 0x7fff_ffff,
            xloadflags: 0x3,
        };
        assert_eq!(initrd_max(ram, above4g), ram - 1);
        let ancient = InitrdLimit::BzImage {
            protocol: 0x202,
            initrd_addr_max: 0x1234,
            xloadflags: 0,
        };
        assert_eq!(initrd_max(ram, ancient), 0x37ff_ffff);
        assert_eq!(initrd_max(ram, InitrdLimit::Pvh), ram - 1);
    }

    #[test]
    fn too_large_uses_qemus_message() {
        let err = place_initrd(64 << 20, InitrdLimit::Pvh, 64 << 20, 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "initrd is too large, cannot support.(max: 67108863, need 67108864)"
        );
    }

    #[test]
    fn too_old_and_overlap_are_refused() {
        let old = InitrdLimit::BzImage {
            protocol: 0x1ff,
            initrd_addr_max: 0,
            xloadflags: 0,
        };
        assert!(matches!(
            place_initrd(64 << 20, old, 10, 0),
            Err(InitrdError::KernelTooOld)
        ));
        assert!(matches!(
            place_initrd(32 << 20, InitrdLimit::Pvh, 8 << 20, 30 << 20),
            Err(InitrdError::OverlapsKernel { .. })
        ));
    }

    #[test]
    fn bytes_land_at_the_address() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        write_initrd(&mem, 0x8_0000, b"070701initrd").unwrap();
        let mut back = [0u8; 12];
        mem.read_slice(&mut back, GuestAddress(0x8_0000)).unwrap();
        assert_eq!(&back, b"070701initrd");
        assert!(write_initrd(&mem, (1 << 20) - 4, b"too long").is_err());
    }
}
