//! bzImage loading for the Linux 64-bit boot protocol.
//!
//! linux-loader parses the setup header and copies the protected-mode kernel to its
//! `code32_start`; this module adds the checks QEMU's `x86_load_linux` makes and the ones the
//! 64-bit entry needs (a 2.12+ header with `XLF_KERNEL_64`, and room in RAM to decompress).

use std::io::Cursor;

use linux_loader::loader::bootparam::setup_header;
use linux_loader::loader::{BzImage, KernelLoader};
use vm_memory::{GuestAddress, GuestMemoryMmap};

use crate::layout::HIMEM_START;

/// "HdrS" at offset 0x202 marks a kernel with a boot-protocol header.
pub const HDRS_MAGIC: u32 = 0x5372_6448;
/// `loadflags` bit: the protected-mode kernel is loaded at 1 MiB.
pub const LOADED_HIGH: u8 = 0x01;
/// `xloadflags` bit: the kernel has the 64-bit entry at `code32_start + 0x200`.
pub const XLF_KERNEL_64: u16 = 0x01;
/// `xloadflags` bit: the initrd may live above 4 GiB.
pub const XLF_CAN_BE_LOADED_ABOVE_4G: u16 = 0x02;
/// Offset of the 64-bit entry from the start of the protected-mode kernel.
pub const STARTUP_64_OFFSET: u64 = 0x200;

/// Errors loading a bzImage.
#[derive(Debug, thiserror::Error)]
pub enum BzImageError {
    /// QEMU's message when the setup sectors exceed the file.
    #[error("invalid kernel header")]
    InvalidHeader,
    /// The header predates the 64-bit boot protocol we enter through.
    #[error(
        "kernel boot protocol {major}.{minor:02} has no 64-bit entry point \
         (need protocol 2.12+ with XLF_KERNEL_64)"
    )]
    No64BitEntry {
        /// Protocol major version.
        major: u16,
        /// Protocol minor version.
        minor: u16,
    },
    /// The kernel, or the room it decompresses into, does not fit in RAM below 4 GiB.
    #[error("kernel too big for guest RAM: it needs memory up to {need:#x}, RAM below 4 GiB ends at {ram_end:#x}")]
    TooBig {
        /// End of the memory the kernel needs.
        need: u64,
        /// End of RAM below 4 GiB.
        ram_end: u64,
    },
    /// linux-loader refused the image.
    #[error("cannot load bzImage")]
    Load(#[source] linux_loader::loader::Error),
}

/// A bzImage placed in guest memory.
#[derive(Debug, Clone, Copy)]
pub struct LoadedBzImage {
    /// The image's setup header (with `code32_start` = the load address).
    pub header: setup_header,
    /// Where the protected-mode kernel was copied.
    pub load_addr: u64,
    /// End of the memory the kernel will use (the larger of the copied image and its
    /// decompression area `pref_address + init_size`); the initrd must stay above it.
    pub end: u64,
    /// The 64-bit entry point.
    pub entry64: u64,
}

/// True if `bytes` carry a Linux boot-protocol header.
pub fn is_bzimage(bytes: &[u8]) -> bool {
    bytes
        .get(0x202..0x206)
        .is_some_and(|m| m == HDRS_MAGIC.to_le_bytes())
}

/// Loads the protected-mode part of a bzImage at its `code32_start`.
pub fn load_bzimage(
    mem: &GuestMemoryMmap<()>,
    bytes: &[u8],
    below_4g: u64,
) -> Result<LoadedBzImage, BzImageError> {
    let setup_sects = match bytes.get(0x1f1) {
        Some(0) => 4,
        Some(&n) => usize::from(n),
        None => return Err(BzImageError::InvalidHeader),
    };
    let setup_size = (setup_sects + 1) * 512;
    if setup_size > bytes.len() {
        return Err(BzImageError::InvalidHeader);
    }
    let version = u16::from_le_bytes([bytes[0x206], bytes[0x207]]);
    let loadflags = bytes.get(0x211).copied().unwrap_or(0);
    let xloadflags = bytes
        .get(0x236..0x238)
        .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
    if version < 0x20c || loadflags & LOADED_HIGH == 0 || xloadflags & XLF_KERNEL_64 == 0 {
        return Err(BzImageError::No64BitEntry {
            major: version >> 8,
            minor: version & 0xff,
        });
    }
    let read_u32 = |at: usize| {
        bytes.get(at..at + 4).map_or(0, |b| {
            u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        })
    };
    let read_u64 = |at: usize| {
        bytes.get(at..at + 8).map_or(0, |b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        })
    };
    let code32_start = read_u32(0x214);
    let pref_address = read_u64(0x258);
    let init_size = read_u32(0x260);
    let image_end = code32_start + (bytes.len() - setup_size) as u64;
    let need = image_end.max(pref_address.max(code32_start) + init_size);
    if need > below_4g {
        return Err(BzImageError::TooBig {
            need,
            ram_end: below_4g,
        });
    }

    let result = BzImage::load(
        mem,
        None,
        &mut Cursor::new(bytes),
        Some(GuestAddress(HIMEM_START)),
    )
    .map_err(BzImageError::Load)?;
    let header = result.setup_header.ok_or(BzImageError::InvalidHeader)?;
    let load_addr = result.kernel_load.0;
    Ok(LoadedBzImage {
        header,
        load_addr,
        end: need,
        entry64: load_addr + STARTUP_64_OFFSET,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use vm_memory::Bytes;

    /// A minimal synthetic bzImage: 1 setup sector + boot sector, then `payload`.
    pub(crate) fn fake_bzimage(version: u16, xloadflags: u16, payload: &[u8]) -> Vec<u8> {
        let mut img = vec![0u8; 1024];
        img[0x1f1] = 1; // setup_sects
        img[0x1fe] = 0x55;
        img[0x1ff] = 0xaa;
        img[0x202..0x206].copy_from_slice(&HDRS_MAGIC.to_le_bytes());
        img[0x206..0x208].copy_from_slice(&version.to_le_bytes());
        img[0x211] = LOADED_HIGH;
        img[0x214..0x218].copy_from_slice(&0x10_0000u32.to_le_bytes());
        img[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        img[0x236..0x238].copy_from_slice(&xloadflags.to_le_bytes());
        img[0x238..0x23c].copy_from_slice(&2047u32.to_le_bytes());
        img[0x258..0x260].copy_from_slice(&0x100_0000u64.to_le_bytes());
        img[0x260..0x264].copy_from_slice(&0x10_0000u32.to_le_bytes());
        img.extend_from_slice(payload);
        img
    }

    fn mem(size: usize) -> GuestMemoryMmap<()> {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size)]).unwrap()
    }

    #[test]
    fn loads_payload_at_code32_start() {
        let payload: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let img = fake_bzimage(0x20f, XLF_KERNEL_64, &payload);
        assert!(is_bzimage(&img));
        let m = mem(64 << 20);
        let k = load_bzimage(&m, &img, 64 << 20).unwrap();
        assert_eq!(k.load_addr, 0x10_0000);
        assert_eq!(k.entry64, 0x10_0200);
        // pref_address + init_size dominates the copied image.
        assert_eq!(k.end, 0x110_0000);
        let mut back = vec![0u8; payload.len()];
        m.read_slice(&mut back, GuestAddress(0x10_0000)).unwrap();
        assert_eq!(back, payload);
        assert_eq!({ k.header.version }, 0x20f);
    }

    #[test]
    fn old_or_32bit_only_kernels_are_refused() {
        let m = mem(64 << 20);
        let old = fake_bzimage(0x20b, XLF_KERNEL_64, &[0; 16]);
        let err = load_bzimage(&m, &old, 64 << 20).unwrap_err();
        assert_eq!(
            err.to_string(),
            "kernel boot protocol 2.11 has no 64-bit entry point (need protocol 2.12+ with XLF_KERNEL_64)"
        );
        let no64 = fake_bzimage(0x20f, 0, &[0; 16]);
        assert!(matches!(
            load_bzimage(&m, &no64, 64 << 20),
            Err(BzImageError::No64BitEntry { .. })
        ));
    }

    #[test]
    fn truncated_setup_is_an_invalid_header() {
        let mut img = fake_bzimage(0x20f, XLF_KERNEL_64, &[]);
        img[0x1f1] = 10; // claims 10 setup sectors, file has 2
        let err = load_bzimage(&mem(64 << 20), &img, 64 << 20).unwrap_err();
        assert_eq!(err.to_string(), "invalid kernel header");
    }

    #[test]
    fn kernel_larger_than_ram_is_refused() {
        let img = fake_bzimage(0x20f, XLF_KERNEL_64, &[0; 16]);
        let err = load_bzimage(&mem(16 << 20), &img, 16 << 20).unwrap_err();
        assert!(
            matches!(
                err,
                BzImageError::TooBig {
                    need: 0x110_0000,
                    ram_end: 0x100_0000
                }
            ),
            "{err}"
        );
    }
}
