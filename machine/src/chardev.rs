//! Character backends (`-serial`, `-chardev`): where a device's output goes
//! and where its input comes from.

use std::fs::File;
use std::io::Write;

use crate::config::CharBackend;
use crate::error::MachineError;

/// Unbuffered writes to the process's stdout (an interactive console must
/// show each byte as the guest sends it).
#[derive(Debug, Default)]
pub struct StdoutWriter;

impl Write for StdoutWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // SAFETY: writing from a valid buffer to fd 1.
        let n = unsafe { libc::write(1, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(0);
            }
            // A closed console must not stop the guest: drop the output.
            return Ok(buf.len());
        }
        Ok(n as usize)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Open the output side of a backend.
pub fn open_output(backend: &CharBackend) -> Result<Box<dyn Write + Send>, MachineError> {
    Ok(match backend {
        CharBackend::Stdio => Box::new(StdoutWriter),
        CharBackend::Null | CharBackend::Socket(_) => Box::new(std::io::sink()),
        CharBackend::File(p) => Box::new(
            File::create(p)
                .map_err(|e| MachineError::host(format!("Could not open '{}'", p.display()), e))?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_backend_receives_bytes() {
        let p = std::env::temp_dir().join(format!("kindling-chardev-{}", std::process::id()));
        let mut w = open_output(&CharBackend::File(p.clone())).unwrap();
        w.write_all(b"BOOT-OK\r\n").unwrap();
        drop(w);
        assert_eq!(std::fs::read(&p).unwrap(), b"BOOT-OK\r\n");
        let _ = std::fs::remove_file(p);
    }
}
