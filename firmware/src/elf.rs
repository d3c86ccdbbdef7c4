//! ELF kernels entered through the PVH boot ABI (an `XEN_ELFNOTE_PHYS32_ENTRY` note).
//!
//! ELF64 (`vmlinux`) goes through linux-loader, which copies the `PT_LOAD` segments to their
//! physical addresses and reads the PVH note. linux-loader only parses ELF64 (it reads an
//! `Elf64_Ehdr` and rejects any other program-header size), so ELF32 PVH images such as
//! `tiny-pvh.elf` are parsed here: the ELF32 header, program headers and notes, with every
//! offset checked against the file. QEMU loads both classes (`load_elfboot`).

use std::io::Cursor;

use linux_loader::loader::{Elf, KernelLoader, PvhBootCapability};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::layout::HIMEM_START;

/// Xen ELF note type holding the 32-bit PVH entry point.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
const ELF_MAGIC: [u8; 4] = [0x7f, b'E', b'L', b'F'];
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EM_386: u16 = 3;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
/// `e_flags` bits QEMU refuses in `load_elfboot` ("elfboot unsupported flags").
const ELFBOOT_UNSUPPORTED_FLAGS: u32 = 0x0001_0004;

/// Errors loading an ELF kernel.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// QEMU's message for an ELF without the PVH note.
    #[error("Error loading uncompressed kernel without PVH ELF Note")]
    NoPvhNote,
    /// QEMU's message for `e_flags` it does not boot.
    #[error("elfboot unsupported flags = {0:x}")]
    UnsupportedFlags(u32),
    /// Not a little-endian x86 ELF.
    #[error("not an x86 little-endian ELF kernel (class {class}, data {data}, machine {machine})")]
    NotX86 {
        /// `EI_CLASS`.
        class: u8,
        /// `EI_DATA`.
        data: u8,
        /// `e_machine`.
        machine: u16,
    },
    /// A header or note points outside the file.
    #[error("malformed ELF kernel: {0}")]
    Malformed(&'static str),
    /// A segment does not fit in RAM between 1 MiB and the end of RAM below 4 GiB.
    #[error("kernel segment [{start:#x}, {end:#x}) lies outside guest RAM [1 MiB, {ram_end:#x})")]
    SegmentOutsideRam {
        /// Segment start.
        start: u64,
        /// Segment end.
        end: u64,
        /// End of RAM below 4 GiB.
        ram_end: u64,
    },
    /// linux-loader refused the ELF64 image.
    #[error("Error while loading elf kernel")]
    Load(#[source] linux_loader::loader::Error),
    /// Guest memory refused a write.
    #[error("cannot write kernel segment")]
    Write(#[source] vm_memory::GuestMemoryError),
}

/// An ELF kernel placed in guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadedElf {
    /// The PVH 32-bit entry point.
    pub pvh_entry: u64,
    /// Lowest loaded address.
    pub start: u64,
    /// End of the highest segment (including its zero-filled tail).
    pub end: u64,
}

/// True if `bytes` start with the ELF magic.
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(&ELF_MAGIC)
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, ElfError> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(ElfError::Malformed("header past end of file"))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, ElfError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(ElfError::Malformed("header past end of file"))
}

/// Loads an ELF kernel with a PVH note (ELF32 or ELF64).
pub fn load_elf(
    mem: &GuestMemoryMmap<()>,
    bytes: &[u8],
    below_4g: u64,
) -> Result<LoadedElf, ElfError> {
    let class = *bytes.get(4).ok_or(ElfError::Malformed("truncated"))?;
    let data = *bytes.get(5).ok_or(ElfError::Malformed("truncated"))?;
    let machine = u16_at(bytes, 18)?;
    if data != ELFDATA2LSB || !(machine == EM_386 || machine == EM_X86_64) {
        return Err(ElfError::NotX86 {
            class,
            data,
            machine,
        });
    }
    let flags_at = if class == ELFCLASS64 { 48 } else { 36 };
    let flags = u32_at(bytes, flags_at)?;
    if flags & ELFBOOT_UNSUPPORTED_FLAGS != 0 {
        return Err(ElfError::UnsupportedFlags(flags));
    }
    match class {
        ELFCLASS64 => load_elf64(mem, bytes, below_4g),
        ELFCLASS32 => load_elf32(mem, bytes, below_4g),
        _ => Err(ElfError::NotX86 {
            class,
            data,
            machine,
        }),
    }
}

fn load_elf64(
    mem: &GuestMemoryMmap<()>,
    bytes: &[u8],
    below_4g: u64,
) -> Result<LoadedElf, ElfError> {
    let result = Elf::load(
        mem,
        None,
        &mut Cursor::new(bytes),
        Some(GuestAddress(HIMEM_START)),
    )
    .map_err(ElfError::Load)?;
    let start = result.kernel_load.0;
    let end = result.kernel_end;
    if end > below_4g {
        return Err(ElfError::SegmentOutsideRam {
            start,
            end,
            ram_end: below_4g,
        });
    }
    let PvhBootCapability::PvhEntryPresent(entry) = result.pvh_boot_cap else {
        return Err(ElfError::NoPvhNote);
    };
    zero_elf64_bss(mem, bytes)?;
    Ok(LoadedElf {
        pvh_entry: entry.0,
        start,
        end,
    })
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, ElfError> {
    b.get(at..at + 8)
        .map(|s| {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            u64::from_le_bytes(a)
        })
        .ok_or(ElfError::Malformed("header past end of file"))
}

/// Zeroes `len` bytes of guest memory at `start`, a chunk at a time.
fn zero_range(mem: &GuestMemoryMmap<()>, start: u64, len: u64) -> Result<(), ElfError> {
    const CHUNK: u64 = 64 * 1024;
    let zeros = [0u8; CHUNK as usize];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(CHUNK);
        mem.write_slice(&zeros[..n as usize], GuestAddress(start + done))
            .map_err(ElfError::Write)?;
        done += n;
    }
    Ok(())
}

/// linux-loader copies each segment's file bytes but leaves the `memsz - filesz` tail (the
/// bss) as it was; zero it so a reloaded kernel (after a reset) starts from a clean bss.
fn zero_elf64_bss(mem: &GuestMemoryMmap<()>, bytes: &[u8]) -> Result<(), ElfError> {
    let phoff = usize::try_from(u64_at(bytes, 32)?)
        .map_err(|_| ElfError::Malformed("program header offset too large"))?;
    let phentsize = usize::from(u16_at(bytes, 54)?);
    let phnum = usize::from(u16_at(bytes, 56)?);
    for i in 0..phnum {
        let at = phoff
            .checked_add(i * phentsize)
            .ok_or(ElfError::Malformed("program header offset overflows"))?;
        if u32_at(bytes, at)? != PT_LOAD {
            continue;
        }
        let paddr = u64_at(bytes, at + 24)?;
        let filesz = u64_at(bytes, at + 32)?;
        let memsz = u64_at(bytes, at + 40)?;
        if memsz > filesz {
            zero_range(mem, paddr + filesz, memsz - filesz)?;
        }
    }
    Ok(())
}

/// One ELF32 program header, the fields we use.
struct Phdr32 {
    kind: u32,
    offset: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
}

fn phdrs32(bytes: &[u8]) -> Result<Vec<Phdr32>, ElfError> {
    let phoff = u32_at(bytes, 28)? as usize;
    let phentsize = usize::from(u16_at(bytes, 42)?);
    let phnum = usize::from(u16_at(bytes, 44)?);
    if phentsize < 32 {
        return Err(ElfError::Malformed("program header entries too small"));
    }
    (0..phnum)
        .map(|i| {
            let at = phoff
                .checked_add(i * phentsize)
                .ok_or(ElfError::Malformed("program header offset overflows"))?;
            Ok(Phdr32 {
                kind: u32_at(bytes, at)?,
                offset: u64::from(u32_at(bytes, at + 4)?),
                paddr: u64::from(u32_at(bytes, at + 12)?),
                filesz: u64::from(u32_at(bytes, at + 16)?),
                memsz: u64::from(u32_at(bytes, at + 20)?),
            })
        })
        .collect()
}

fn file_range(bytes: &[u8], offset: u64, len: u64) -> Result<&[u8], ElfError> {
    let start = usize::try_from(offset).map_err(|_| ElfError::Malformed("offset too large"))?;
    let len = usize::try_from(len).map_err(|_| ElfError::Malformed("size too large"))?;
    start
        .checked_add(len)
        .and_then(|end| bytes.get(start..end))
        .ok_or(ElfError::Malformed("segment past end of file"))
}

/// Finds the PVH entry in a note segment: notes are (namesz, descsz, type, name, desc) with
/// name and desc each padded to 4 bytes.
fn find_pvh_note(notes: &[u8]) -> Option<u64> {
    let align4 = |n: usize| n.checked_add(3).map(|v| v & !3);
    let mut at = 0usize;
    while at + 12 <= notes.len() {
        let word = |o: usize| u32_at(notes, at + o).ok();
        let namesz = word(0)? as usize;
        let descsz = word(4)? as usize;
        let kind = word(8)?;
        let name_at = at + 12;
        let desc_at = name_at.checked_add(align4(namesz)?)?;
        let next = desc_at.checked_add(align4(descsz)?)?;
        let name = notes.get(name_at..name_at.checked_add(namesz)?)?;
        if kind == XEN_ELFNOTE_PHYS32_ENTRY && name == b"Xen\0" && descsz >= 4 {
            return u32_at(notes, desc_at).ok().map(u64::from);
        }
        at = next;
    }
    None
}

fn load_elf32(
    mem: &GuestMemoryMmap<()>,
    bytes: &[u8],
    below_4g: u64,
) -> Result<LoadedElf, ElfError> {
    let phdrs = phdrs32(bytes)?;
    let mut pvh_entry = None;
    for ph in phdrs.iter().filter(|p| p.kind == PT_NOTE) {
        if let Some(entry) = find_pvh_note(file_range(bytes, ph.offset, ph.filesz)?) {
            pvh_entry = Some(entry);
        }
    }
    // Like QEMU, an ELF without the note is refused, but only after checking it is loadable.
    let mut start = u64::MAX;
    let mut end = 0u64;
    let loads: Vec<&Phdr32> = phdrs.iter().filter(|p| p.kind == PT_LOAD).collect();
    for ph in &loads {
        let seg_end = ph.paddr + ph.memsz.max(ph.filesz);
        if ph.paddr < HIMEM_START || seg_end > below_4g {
            return Err(ElfError::SegmentOutsideRam {
                start: ph.paddr,
                end: seg_end,
                ram_end: below_4g,
            });
        }
        file_range(bytes, ph.offset, ph.filesz)?;
        start = start.min(ph.paddr);
        end = end.max(seg_end);
    }
    let pvh_entry = pvh_entry.ok_or(ElfError::NoPvhNote)?;
    if loads.is_empty() {
        return Err(ElfError::Malformed("no loadable segment"));
    }
    for ph in loads {
        let data = file_range(bytes, ph.offset, ph.filesz)?;
        mem.write_slice(data, GuestAddress(ph.paddr))
            .map_err(ElfError::Write)?;
        if ph.memsz > ph.filesz {
            zero_range(mem, ph.paddr + ph.filesz, ph.memsz - ph.filesz)?;
        }
    }
    Ok(LoadedElf {
        pvh_entry,
        start,
        end,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal ELF32 like tiny-pvh: one PT_LOAD at `paddr` with `code` and a bss tail of
    /// `bss` bytes, plus (optionally) a PT_NOTE with the PVH entry `entry`.
    pub(crate) fn fake_elf32(paddr: u32, code: &[u8], bss: u32, entry: Option<u32>) -> Vec<u8> {
        let mut f = vec![0u8; 0x80];
        f[..4].copy_from_slice(&ELF_MAGIC);
        f[4] = ELFCLASS32;
        f[5] = ELFDATA2LSB;
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        f[18..20].copy_from_slice(&EM_386.to_le_bytes());
        f[24..28].copy_from_slice(&paddr.to_le_bytes());
        f[28..32].copy_from_slice(&52u32.to_le_bytes()); // phoff
        f[40..42].copy_from_slice(&52u16.to_le_bytes());
        f[42..44].copy_from_slice(&32u16.to_le_bytes());
        f[44..46].copy_from_slice(&2u16.to_le_bytes());
        let code_off = 0x80u32;
        let note_off = code_off + code.len() as u32;
        let ph = |kind: u32, off: u32, addr: u32, filesz: u32, memsz: u32| {
            let mut p = Vec::new();
            for v in [kind, off, addr, addr, filesz, memsz, 7, 4] {
                p.extend_from_slice(&v.to_le_bytes());
            }
            p
        };
        // Without an entry, the note is a Xen note of another type (1), which must not count.
        let note_type = if entry.is_some() {
            XEN_ELFNOTE_PHYS32_ENTRY
        } else {
            1
        };
        let mut note = Vec::new();
        for v in [4u32, 4, note_type] {
            note.extend_from_slice(&v.to_le_bytes());
        }
        note.extend_from_slice(b"Xen\0");
        note.extend_from_slice(&entry.unwrap_or(0).to_le_bytes());
        let load = ph(
            PT_LOAD,
            code_off,
            paddr,
            code.len() as u32,
            code.len() as u32 + bss,
        );
        let notes = ph(PT_NOTE, note_off, 0, note.len() as u32, note.len() as u32);
        f[52..84].copy_from_slice(&load);
        f[84..116].copy_from_slice(&notes);
        f.extend_from_slice(code);
        f.extend_from_slice(&note);
        f
    }

    fn mem() -> GuestMemoryMmap<()> {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 4 << 20)]).unwrap()
    }

    /// A minimal ELF64 vmlinux: one PT_LOAD of `code` at `paddr`, and a PT_NOTE holding a
    /// GNU note then (optionally) the Xen PVH note.
    pub(crate) fn fake_elf64(paddr: u64, code: &[u8], entry: Option<u32>) -> Vec<u8> {
        let mut f = vec![0u8; 0x100];
        f[..4].copy_from_slice(&ELF_MAGIC);
        f[4] = ELFCLASS64;
        f[5] = ELFDATA2LSB;
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes());
        f[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        f[24..32].copy_from_slice(&paddr.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[52..54].copy_from_slice(&64u16.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&2u16.to_le_bytes());
        let mut note = Vec::new();
        for v in [4u32, 4, 3] {
            note.extend_from_slice(&v.to_le_bytes());
        }
        note.extend_from_slice(b"GNU\0");
        note.extend_from_slice(&[1, 2, 3, 4]);
        if let Some(e) = entry {
            for v in [4u32, 8, XEN_ELFNOTE_PHYS32_ENTRY] {
                note.extend_from_slice(&v.to_le_bytes());
            }
            note.extend_from_slice(b"Xen\0");
            note.extend_from_slice(&u64::from(e).to_le_bytes());
        }
        let code_off = 0x100u64;
        let note_off = code_off + code.len() as u64;
        let ph = |kind: u32, off: u64, addr: u64, size: u64| {
            let mut p = Vec::new();
            p.extend_from_slice(&kind.to_le_bytes());
            p.extend_from_slice(&7u32.to_le_bytes());
            for v in [off, addr, addr, size, size, 4] {
                p.extend_from_slice(&v.to_le_bytes());
            }
            p
        };
        f[64..120].copy_from_slice(&ph(PT_LOAD, code_off, paddr, code.len() as u64));
        f[120..176].copy_from_slice(&ph(PT_NOTE, note_off, 0, note.len() as u64));
        f.extend_from_slice(code);
        f.extend_from_slice(&note);
        f
    }

    #[test]
    fn elf64_pvh_loads_through_linux_loader() {
        let m = mem();
        let img = fake_elf64(0x20_0000, &[0xcc; 32], Some(0x20_0010));
        let k = load_elf(&m, &img, 4 << 20).unwrap();
        assert_eq!(k.pvh_entry, 0x20_0010);
        assert_eq!((k.start, k.end), (0x20_0000, 0x20_0020));
        let mut back = [0u8; 32];
        m.read_slice(&mut back, GuestAddress(0x20_0000)).unwrap();
        assert_eq!(back, [0xcc; 32]);
    }

    #[test]
    fn elf64_bss_is_zeroed() {
        let m = mem();
        let mut img = fake_elf64(0x20_0000, &[0xcc; 32], Some(0x20_0010));
        // Grow the PT_LOAD's memsz (program header 0 at 64, p_memsz at +40) by 0x100.
        img[104..112].copy_from_slice(&(32u64 + 0x100).to_le_bytes());
        m.write_slice(&[0xee; 0x100], GuestAddress(0x20_0020))
            .unwrap();
        let k = load_elf(&m, &img, 4 << 20).unwrap();
        assert_eq!(k.end, 0x20_0120);
        let mut back = [0xffu8; 0x100];
        m.read_slice(&mut back, GuestAddress(0x20_0020)).unwrap();
        assert_eq!(back, [0u8; 0x100]);
    }

    #[test]
    fn elf64_without_pvh_note_gets_qemus_error() {
        let img = fake_elf64(0x20_0000, &[0xcc; 32], None);
        let err = load_elf(&mem(), &img, 4 << 20).unwrap_err();
        assert!(matches!(err, ElfError::NoPvhNote));
        assert_eq!(
            err.to_string(),
            "Error loading uncompressed kernel without PVH ELF Note"
        );
    }

    #[test]
    fn elf32_pvh_loads_segment_and_zeroes_bss() {
        let m = mem();
        // Dirty the bss range first: the loader must clear it.
        m.write_slice(&[0xaa; 64], GuestAddress(0x10_0010)).unwrap();
        let img = fake_elf32(0x10_0000, &[0x90; 16], 64, Some(0x10_0004));
        assert!(is_elf(&img));
        let k = load_elf(&m, &img, 4 << 20).unwrap();
        assert_eq!(
            k,
            LoadedElf {
                pvh_entry: 0x10_0004,
                start: 0x10_0000,
                end: 0x10_0050
            }
        );
        let mut back = [0u8; 80];
        m.read_slice(&mut back, GuestAddress(0x10_0000)).unwrap();
        assert_eq!(&back[..16], &[0x90; 16]);
        assert_eq!(&back[16..], &[0u8; 64]);
    }

    #[test]
    fn elf32_without_note_gets_qemus_error() {
        let img = fake_elf32(0x10_0000, &[0x90; 16], 0, None);
        let err = load_elf(&mem(), &img, 4 << 20).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Error loading uncompressed kernel without PVH ELF Note"
        );
    }

    #[test]
    fn elf32_segment_below_1m_or_past_ram_is_refused() {
        let low = fake_elf32(0x8000, &[0x90; 16], 0, Some(0x8000));
        assert!(matches!(
            load_elf(&mem(), &low, 4 << 20),
            Err(ElfError::SegmentOutsideRam { start: 0x8000, .. })
        ));
        let high = fake_elf32(0x3f_fff0, &[0x90; 16], 1, Some(0x3f_fff0));
        assert!(matches!(
            load_elf(&mem(), &high, 4 << 20),
            Err(ElfError::SegmentOutsideRam { .. })
        ));
    }

    #[test]
    fn truncated_elf32_is_malformed_not_a_panic() {
        let img = fake_elf32(0x10_0000, &[0x90; 16], 0, Some(0x10_0000));
        for cut in [6, 20, 40, 60, 100, 140] {
            let r = load_elf(&mem(), &img[..cut], 4 << 20);
            assert!(r.is_err(), "cut at {cut} loaded");
        }
    }

    #[test]
    fn linux_loader_cannot_parse_elf32() {
        // The reason this module parses ELF32 itself.
        let img = fake_elf32(0x10_0000, &[0x90; 16], 0, Some(0x10_0000));
        let r = Elf::load(&mem(), None, &mut Cursor::new(&img[..]), None);
        assert!(r.is_err());
    }

    #[test]
    fn unsupported_flags_use_qemus_wording() {
        let mut img = fake_elf32(0x10_0000, &[0x90; 16], 0, Some(0x10_0000));
        img[36..40].copy_from_slice(&0x10000u32.to_le_bytes());
        let err = load_elf(&mem(), &img, 4 << 20).unwrap_err();
        assert_eq!(err.to_string(), "elfboot unsupported flags = 10000");
    }

    #[test]
    fn big_endian_or_foreign_machine_is_refused() {
        let mut img = fake_elf32(0x10_0000, &[0x90; 16], 0, Some(0x10_0000));
        img[18] = 40; // EM_ARM
        assert!(matches!(
            load_elf(&mem(), &img, 4 << 20),
            Err(ElfError::NotX86 { machine: 40, .. })
        ));
    }
}
