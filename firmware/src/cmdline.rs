//! The kernel command line: the user's `-append` text plus, without ACPI, one
//! `virtio_mmio.device=512@0x...:N` word per populated transport (QEMU's
//! `microvm_fix_kernel_cmdline`, the `auto-kernel-cmdline` behaviour).
//!
//! Validation (printable ASCII only) and the device words come from linux-loader's `Cmdline`.
//! As in QEMU, the device words go at the very end, after any ` -- ` init arguments.

use linux_loader::cmdline::{Cmdline, Error as LinuxCmdlineError};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::transport::VirtioMmioTransport;

/// Errors building or writing the command line.
#[derive(Debug, thiserror::Error)]
pub enum CmdlineError {
    /// The text does not fit what the kernel accepts.
    #[error("kernel command line too long: the kernel accepts at most {max} bytes")]
    TooLong {
        /// Largest length the kernel takes, without the terminating NUL.
        max: usize,
    },
    /// The text has characters a kernel command line cannot carry.
    #[error("invalid kernel command line")]
    Invalid(#[source] LinuxCmdlineError),
    /// Guest memory refused the write.
    #[error("cannot write the kernel command line at {addr:#x}")]
    Write {
        /// Where it was being written.
        addr: u64,
        /// The memory error.
        #[source]
        source: vm_memory::GuestMemoryError,
    },
}

fn map_err(max_len: usize) -> impl Fn(LinuxCmdlineError) -> CmdlineError {
    move |e| match e {
        LinuxCmdlineError::TooLarge | LinuxCmdlineError::InvalidCapacity => {
            CmdlineError::TooLong { max: max_len }
        }
        other => CmdlineError::Invalid(other),
    }
}

/// Builds the final command line from the user's text and the transports to announce
/// (pass an empty slice with ACPI on). `max_len` excludes the terminating NUL.
pub fn build_cmdline(
    user: &str,
    max_len: usize,
    transports: &[VirtioMmioTransport],
) -> Result<Cmdline, CmdlineError> {
    let capacity = max_len.saturating_add(1);
    let mut cmdline = Cmdline::new(capacity).map_err(map_err(max_len))?;
    if !user.trim().is_empty() {
        // `insert_str` validates the characters; `Cmdline::try_from` would not.
        cmdline.insert_str(user).map_err(map_err(max_len))?;
    }
    for t in transports {
        cmdline
            .add_virtio_mmio_device(512, GuestAddress(t.base), t.gsi, None)
            .map_err(map_err(max_len))?;
    }
    Ok(cmdline)
}

/// Writes `cmdline` NUL-terminated at `addr`; returns the text written (without the NUL).
pub fn write_cmdline(
    mem: &GuestMemoryMmap<()>,
    addr: u64,
    cmdline: &Cmdline,
) -> Result<String, CmdlineError> {
    let text = cmdline.as_cstring().map_err(CmdlineError::Invalid)?;
    mem.write_slice(text.as_bytes_with_nul(), GuestAddress(addr))
        .map_err(|source| CmdlineError::Write { addr, source })?;
    Ok(text.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem() -> GuestMemoryMmap<()> {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x40000)]).unwrap()
    }

    #[test]
    fn appends_qemu_virtio_words() {
        let transports = [
            VirtioMmioTransport::slot(7, 12),
            VirtioMmioTransport::slot(6, 11),
        ];
        let cl = build_cmdline("console=ttyS0 quiet", 2047, &transports).unwrap();
        let m = mem();
        let text = write_cmdline(&m, 0x20000, &cl).unwrap();
        let expected = "console=ttyS0 quiet virtio_mmio.device=512@0xfeb00e00:12 \
                        virtio_mmio.device=512@0xfeb00c00:11";
        assert_eq!(text, expected);
        let mut buf = vec![0u8; expected.len() + 1];
        m.read_slice(&mut buf, GuestAddress(0x20000)).unwrap();
        assert_eq!(&buf[..expected.len()], expected.as_bytes());
        assert_eq!(buf[expected.len()], 0);
    }

    #[test]
    fn device_words_follow_init_args_like_qemu() {
        let cl = build_cmdline("quiet -- hold", 100, &[VirtioMmioTransport::slot(0, 5)]).unwrap();
        let text = write_cmdline(&mem(), 0x20000, &cl).unwrap();
        assert_eq!(text, "quiet -- hold virtio_mmio.device=512@0xfeb00000:5");
    }

    #[test]
    fn empty_user_text_is_fine() {
        let cl = build_cmdline("", 2047, &[]).unwrap();
        let text = write_cmdline(&mem(), 0x20000, &cl).unwrap();
        assert_eq!(text, "");
    }

    #[test]
    fn too_long_is_refused_with_the_limit() {
        let long = "a".repeat(20);
        let err = build_cmdline(&long, 10, &[]).unwrap_err();
        assert!(matches!(err, CmdlineError::TooLong { max: 10 }), "{err}");
        // Exactly at the limit fits.
        assert!(build_cmdline(&"a".repeat(10), 10, &[]).is_ok());
        // The device words count too.
        let err = build_cmdline("x", 20, &[VirtioMmioTransport::slot(0, 5)]).unwrap_err();
        assert!(matches!(err, CmdlineError::TooLong { max: 20 }));
    }

    #[test]
    fn control_characters_are_refused() {
        let err = build_cmdline("a\u{1}b", 100, &[]).unwrap_err();
        assert!(matches!(err, CmdlineError::Invalid(_)), "{err}");
    }
}
