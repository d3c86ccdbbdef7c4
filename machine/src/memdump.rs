//! QMP `pmemsave` and `memsave`: guest memory streamed to a file through a
//! fixed 64 KiB buffer, so what a client asks for never decides how much
//! the VMM allocates. Ranges are checked before the file is created:
//! `pmemsave` must lie in the guest's physical address space (the CPU
//! model's 40 physical address bits) and `memsave` must translate page by
//! page; a bad range gets QEMU's "Invalid addr .../size ... specified" at
//! once and the VM runs on.

use std::io::Write;

use cpu::{GuestMemory, Sregs};
use qmp::QmpError;
use vm_memory::{Bytes, GuestAddress};

/// The guest's physical address space: CPUID 0x80000008 reports 40 bits.
pub const PHYS_ADDR_LIMIT: u64 = 1 << 40;

/// Bytes copied per step.
const CHUNK: usize = 64 << 10;

fn invalid(addr: u64, size: u64) -> QmpError {
    QmpError::generic(format!("Invalid addr 0x{addr:016x}/size {size} specified"))
}

fn os_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    s.find(" (os error")
        .map(|i| s[..i].to_string())
        .unwrap_or(s)
}

fn create(file: &str) -> Result<std::fs::File, QmpError> {
    std::fs::File::create(file)
        .map_err(|e| QmpError::generic(format!("Could not open '{file}': {}", os_text(&e))))
}

/// Copy `len` bytes of guest-physical memory at `gpa` to `f`; memory that
/// is not RAM reads as zeros, like QEMU's unassigned memory.
fn copy(
    mem: &GuestMemory,
    f: &mut impl Write,
    file: &str,
    gpa: u64,
    len: u64,
    buf: &mut [u8],
) -> Result<(), QmpError> {
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        let chunk = &mut buf[..n];
        chunk.fill(0);
        let _ = mem.read_slice(chunk, GuestAddress(gpa + done));
        f.write_all(chunk)
            .map_err(|e| QmpError::generic(format!("writing file '{file}': {}", os_text(&e))))?;
        done += n as u64;
    }
    Ok(())
}

/// `pmemsave`: `size` bytes of guest-physical memory from `addr`.
pub fn pmemsave(mem: &GuestMemory, addr: u64, size: u64, file: &str) -> Result<(), QmpError> {
    if addr
        .checked_add(size)
        .is_none_or(|end| end > PHYS_ADDR_LIMIT)
    {
        return Err(invalid(addr, size));
    }
    let mut f = std::io::BufWriter::new(create(file)?);
    let mut buf = vec![0u8; CHUNK];
    copy(mem, &mut f, file, addr, size, &mut buf)?;
    f.flush()
        .map_err(|e| QmpError::generic(format!("writing file '{file}': {}", os_text(&e))))
}

/// `memsave`: `size` bytes of the vCPU's virtual memory from `addr`,
/// translated page by page with `translate`.
pub fn memsave(
    mem: &GuestMemory,
    sregs: &Sregs,
    addr: u64,
    size: u64,
    file: &str,
    translate: impl Fn(&GuestMemory, &Sregs, u64) -> Option<u64>,
) -> Result<(), QmpError> {
    let end = addr.checked_add(size).ok_or_else(|| invalid(addr, size))?;
    // The first page is checked before the file is created.
    if size > 0 && translate(mem, sregs, addr).is_none() {
        return Err(invalid(addr, size));
    }
    let mut f = std::io::BufWriter::new(create(file)?);
    let mut buf = vec![0u8; CHUNK];
    let mut a = addr;
    while a < end {
        let page_end = ((a | 0xfff) + 1).min(end);
        let gpa = translate(mem, sregs, a).ok_or_else(|| invalid(addr, size))?;
        copy(mem, &mut f, file, gpa, page_end - a, &mut buf)?;
        a = page_end;
    }
    f.flush()
        .map_err(|e| QmpError::generic(format!("writing file '{file}': {}", os_text(&e))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ram() -> GuestMemory {
        let m = crate::memory::create(1 << 20).unwrap();
        m.write_slice(b"KINDLING", GuestAddress(0x1000)).unwrap();
        m
    }

    fn scratch(name: &str) -> String {
        std::env::temp_dir()
            .join(format!("kindling-memdump-{name}-{}", std::process::id()))
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn pmemsave_streams_ram_and_zero_fills_holes() {
        let m = ram();
        let f = scratch("p");
        // Crosses the end of RAM: the tail reads as zeros.
        pmemsave(&m, 0x1000, (1 << 20) - 0x1000 + 0x3000, &f).unwrap();
        let got = std::fs::read(&f).unwrap();
        std::fs::remove_file(&f).ok();
        assert_eq!(got.len(), (1 << 20) - 0x1000 + 0x3000);
        assert_eq!(&got[..8], b"KINDLING");
        assert!(got[got.len() - 0x3000..].iter().all(|&b| b == 0));
    }

    #[test]
    fn out_of_range_is_refused_before_any_file_exists() {
        let m = ram();
        let f = scratch("huge");
        let e = pmemsave(&m, 0, 1 << 63, &f).unwrap_err();
        assert_eq!(
            e.to_json()["desc"],
            "Invalid addr 0x0000000000000000/size 9223372036854775808 specified"
        );
        assert!(!std::path::Path::new(&f).exists());
        assert!(pmemsave(&m, u64::MAX, 2, &f).is_err());
    }

    #[test]
    fn memsave_translates_each_page() {
        let m = ram();
        let f = scratch("v");
        let sregs = Sregs::default();
        // An identity map that ends at 8 KiB.
        let tr = |_: &GuestMemory, _: &Sregs, va: u64| (va < 0x2000).then_some(va);
        memsave(&m, &sregs, 0x1000, 0x1000, &f, tr).unwrap();
        assert_eq!(&std::fs::read(&f).unwrap()[..8], b"KINDLING");
        let e = memsave(&m, &sregs, 0x1000, 1 << 40, &f, tr).unwrap_err();
        assert!(e.to_json()["desc"]
            .as_str()
            .unwrap()
            .starts_with("Invalid addr 0x0000000000001000/size"));
        std::fs::remove_file(&f).ok();
        let e = memsave(&m, &sregs, 0x5000, 16, &f, tr).unwrap_err();
        assert!(e.to_json()["desc"]
            .as_str()
            .unwrap()
            .contains("0x0000000000005000"));
        assert!(!std::path::Path::new(&f).exists());
    }
}
