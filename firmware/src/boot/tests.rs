//! End-to-end tests of [`load`]: synthetic images always, the shared guest images when
//! `/work/shared/guest` is present.

use std::path::Path;

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::*;
use crate::bzimage::tests::fake_bzimage;
use crate::bzimage::XLF_KERNEL_64;
use crate::e820::E820Type;
use crate::elf::tests::fake_elf32;
use crate::entry::EntryMode;
use crate::layout::{ram_ranges, PVH_MEMMAP_ADDR, PVH_MODLIST_ADDR, PVH_START_INFO_ADDR};

const GUEST_DIR: &str = "/work/shared/guest";

fn guest_memory(ram_size: u64) -> GuestMemoryMmap<()> {
    let ranges: Vec<_> = ram_ranges(ram_size)
        .into_iter()
        .map(|(start, size)| (GuestAddress(start), size as usize))
        .collect();
    GuestMemoryMmap::from_ranges(&ranges).unwrap()
}

fn config<'a>(kernel: &'a [u8], initrd: Option<&'a [u8]>, acpi: bool) -> BootConfig<'a> {
    BootConfig {
        kernel,
        initrd,
        cmdline: "console=ttyS0 panic=-1",
        ram_size: 256 << 20,
        num_cpus: 2,
        acpi,
        ioapic2: acpi,
        rtc: false,
        serial: true,
        fw_cfg: false,
        transports: &[],
    }
}

fn r8(m: &GuestMemoryMmap<()>, a: u64) -> u8 {
    m.read_obj(GuestAddress(a)).unwrap()
}
fn r16(m: &GuestMemoryMmap<()>, a: u64) -> u16 {
    m.read_obj(GuestAddress(a)).unwrap()
}
fn r32(m: &GuestMemoryMmap<()>, a: u64) -> u32 {
    m.read_obj(GuestAddress(a)).unwrap()
}
fn r64(m: &GuestMemoryMmap<()>, a: u64) -> u64 {
    m.read_obj(GuestAddress(a)).unwrap()
}
fn read(m: &GuestMemoryMmap<()>, a: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    m.read_slice(&mut v, GuestAddress(a)).unwrap();
    v
}
fn cstr(m: &GuestMemoryMmap<()>, a: u64) -> String {
    let bytes = read(m, a, 4096);
    let end = bytes.iter().position(|&b| b == 0).unwrap();
    String::from_utf8(bytes[..end].to_vec()).unwrap()
}

/// The zero-page e820 table as the kernel reads it.
fn zero_page_e820(m: &GuestMemoryMmap<()>) -> Vec<(u64, u64, u32)> {
    let n = r8(m, ZERO_PAGE_ADDR + 0x1e8) as u64;
    (0..n)
        .map(|i| {
            let at = ZERO_PAGE_ADDR + 0x2d0 + 20 * i;
            (r64(m, at), r64(m, at + 8), r32(m, at + 16))
        })
        .collect()
}

/// The PVH memmap as the kernel reads it.
fn pvh_memmap(m: &GuestMemoryMmap<()>) -> Vec<(u64, u64, u32)> {
    let at = r64(m, PVH_START_INFO_ADDR + 40);
    let n = r32(m, PVH_START_INFO_ADDR + 48) as u64;
    (0..n)
        .map(|i| {
            let e = at + 24 * i;
            (r64(m, e), r64(m, e + 8), r32(m, e + 16))
        })
        .collect()
}

fn expected_e820(ram: u64) -> Vec<(u64, u64, u32)> {
    build_e820(ram)
        .unwrap()
        .iter()
        .map(|e| (e.addr, e.size, e.kind as u32))
        .collect()
}

fn read_guest_file(name: &str) -> Option<Vec<u8>> {
    let path = Path::new(GUEST_DIR).join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            println!("skipping: cannot read {} ({e})", path.display());
            None
        }
    }
}

#[test]
fn synthetic_bzimage_without_acpi() {
    let payload: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
    let kernel = fake_bzimage(0x20f, XLF_KERNEL_64, &payload);
    let initrd = b"070701 not really a cpio".repeat(100);
    let transports = [VirtioMmioTransport::slot(7, 12)];
    let cfg = BootConfig {
        transports: &transports,
        ..config(&kernel, Some(&initrd), false)
    };
    let mem = guest_memory(cfg.ram_size);
    let info = load(&mem, &cfg).unwrap();

    assert_eq!(info.format, KernelFormat::BzImage);
    assert_eq!(info.entry.mode, EntryMode::Long64);
    assert_eq!(info.entry.rip, 0x10_0200);
    assert_eq!(info.entry.rsi, ZERO_PAGE_ADDR);
    assert_eq!(
        info.cmdline,
        "console=ttyS0 panic=-1 virtio_mmio.device=512@0xfeb00e00:12"
    );
    assert_eq!(cstr(&mem, CMDLINE_ADDR), info.cmdline);
    let (addr, size) = info.initrd.unwrap();
    assert_eq!(addr, ((256u64 << 20) - 1 - initrd.len() as u64) & !0xfff);
    assert_eq!(read(&mem, addr, size as usize), initrd);
    assert_eq!(read(&mem, 0x10_0000, payload.len()), payload);
    assert_eq!(r32(&mem, ZERO_PAGE_ADDR + 0x218) as u64, addr);
    assert_eq!(r32(&mem, ZERO_PAGE_ADDR + 0x21c) as u64, size);
    assert_eq!(zero_page_e820(&mem), expected_e820(256 << 20));
    assert_eq!(r64(&mem, ZERO_PAGE_ADDR + 0x70), 0, "no RSDP without ACPI");
    assert_eq!(info.mptable, Some(0x9fc00));
    assert_eq!(&read(&mem, 0x9fc00, 4), b"_MP_");
    assert_eq!(info.rsdp, None);
}

#[test]
fn synthetic_bzimage_with_acpi() {
    let kernel = fake_bzimage(0x20f, XLF_KERNEL_64, &[0x90; 512]);
    let transports = [VirtioMmioTransport::slot(23, 47)];
    let cfg = BootConfig {
        transports: &transports,
        ..config(&kernel, None, true)
    };
    let mem = guest_memory(cfg.ram_size);
    let info = load(&mem, &cfg).unwrap();
    assert_eq!(info.rsdp, Some(0xe0000));
    assert_eq!(r64(&mem, ZERO_PAGE_ADDR + 0x70), 0xe0000);
    assert_eq!(&read(&mem, 0xe0000, 8), b"RSD PTR ");
    assert_eq!(info.mptable, None);
    assert_ne!(&read(&mem, 0x9fc00, 4), b"_MP_");
    // With ACPI the devices are in the DSDT, not on the command line.
    assert_eq!(info.cmdline, "console=ttyS0 panic=-1");
    assert_eq!(info.initrd, None);
    assert_eq!(r32(&mem, ZERO_PAGE_ADDR + 0x218), 0);
}

#[test]
fn synthetic_pvh_elf32() {
    let kernel = fake_elf32(0x10_0000, &[0xf4; 64], 0x1000, Some(0x10_0000));
    let initrd = vec![0x5a; 10000];
    let mem = guest_memory(64 << 20);
    let cfg = BootConfig {
        ram_size: 64 << 20,
        ..config(&kernel, Some(&initrd), true)
    };
    let info = load(&mem, &cfg).unwrap();
    assert_eq!(info.format, KernelFormat::PvhElf);
    assert_eq!(info.entry.mode, EntryMode::Protected32);
    assert_eq!(
        (info.entry.rip, info.entry.rbx),
        (0x10_0000, PVH_START_INFO_ADDR)
    );
    assert_eq!(info.kernel_range, (0x10_0000, 0x10_1040));
    let (addr, size) = info.initrd.unwrap();
    assert_eq!(addr, ((64u64 << 20) - 1 - 10000) & !0xfff);
    assert_eq!(r64(&mem, PVH_MODLIST_ADDR), addr);
    assert_eq!(r64(&mem, PVH_MODLIST_ADDR + 8), size);
    assert_eq!(r64(&mem, PVH_START_INFO_ADDR + 32), 0xe0000, "rsdp_paddr");
    assert_eq!(pvh_memmap(&mem), expected_e820(64 << 20));
    assert_eq!(r64(&mem, PVH_START_INFO_ADDR + 40), PVH_MEMMAP_ADDR);
}

#[test]
fn not_a_kernel_and_empty_files() {
    let mem = guest_memory(64 << 20);
    let junk = vec![0x11u8; 4096];
    let err = load(&mem, &config(&junk, None, false)).unwrap_err();
    assert!(matches!(err, FirmwareError::NotAKernel), "{err}");
    let err = load(&mem, &config(&[], None, false)).unwrap_err();
    assert!(matches!(err, FirmwareError::EmptyKernel), "{err}");
}

#[test]
fn too_large_initrd_is_refused_with_qemus_words() {
    let kernel = fake_elf32(0x10_0000, &[0xf4; 64], 0, Some(0x10_0000));
    let mem = guest_memory(64 << 20);
    let initrd = vec![0u8; 64 << 20];
    let cfg = BootConfig {
        ram_size: 64 << 20,
        ..config(&kernel, Some(&initrd), false)
    };
    let err = load(&mem, &cfg).unwrap_err();
    assert_eq!(
        err.to_string(),
        "initrd is too large, cannot support.(max: 67108863, need 67108864)"
    );
}

#[test]
fn real_bzimage_with_initramfs_acpi_off() {
    let (Some(kernel), Some(initrd)) = (
        read_guest_file("bzImage"),
        read_guest_file("initramfs.cpio"),
    ) else {
        return;
    };
    let transports = [VirtioMmioTransport::slot(7, 12)];
    let cfg = BootConfig {
        transports: &transports,
        ..config(&kernel, Some(&initrd), false)
    };
    let mem = guest_memory(cfg.ram_size);
    let info = load(&mem, &cfg).unwrap();

    assert_eq!(info.format, KernelFormat::BzImage);
    assert_eq!(info.entry.rip, 0x10_0200);
    assert_eq!(info.entry.rsi, ZERO_PAGE_ADDR);
    assert_eq!(info.entry.cr3, 0x9000);
    // Protocol 2.15 header copied from the image, patched like QEMU.
    assert_eq!(r32(&mem, ZERO_PAGE_ADDR + 0x202), 0x5372_6448);
    assert_eq!(r16(&mem, ZERO_PAGE_ADDR + 0x206), 0x20f);
    assert_eq!(r8(&mem, ZERO_PAGE_ADDR + 0x210), 0xb0);
    assert_eq!(r8(&mem, ZERO_PAGE_ADDR + 0x211) & 0x81, 0x81);
    assert_eq!(r32(&mem, ZERO_PAGE_ADDR + 0x214), 0x10_0000);
    assert_eq!(r32(&mem, ZERO_PAGE_ADDR + 0x228), 0x20000);
    assert_eq!(zero_page_e820(&mem), expected_e820(256 << 20));
    // The protected-mode kernel follows the (31 + 1) setup sectors in the file.
    let setup = (usize::from(kernel[0x1f1]) + 1) * 512;
    assert_eq!(read(&mem, 0x10_0000, 4096), kernel[setup..setup + 4096]);
    // initrd at QEMU's address, byte for byte.
    let (addr, size) = info.initrd.unwrap();
    assert_eq!(size, initrd.len() as u64);
    assert_eq!(addr, (0x0fff_ffff - size) & !0xfff);
    assert_eq!(r32(&mem, ZERO_PAGE_ADDR + 0x218) as u64, addr);
    assert_eq!(read(&mem, addr, initrd.len()), initrd);
    assert_eq!(
        cstr(&mem, CMDLINE_ADDR),
        "console=ttyS0 panic=-1 virtio_mmio.device=512@0xfeb00e00:12"
    );
    // The kernel decompresses to 16 MiB; the initrd must be clear of it.
    assert!(info.kernel_range.1 <= addr);
}

#[test]
fn real_bzimage_acpi_on() {
    let Some(kernel) = read_guest_file("bzImage") else {
        return;
    };
    let mem = guest_memory(256 << 20);
    let info = load(&mem, &config(&kernel, None, true)).unwrap();
    assert_eq!(r64(&mem, ZERO_PAGE_ADDR + 0x70), 0xe0000);
    assert_eq!(info.rsdp, Some(0xe0000));
}

#[test]
fn real_vmlinux_pvh() {
    let (Some(kernel), Some(initrd)) = (
        read_guest_file("vmlinux"),
        read_guest_file("initramfs.cpio"),
    ) else {
        return;
    };
    let mem = guest_memory(256 << 20);
    let info = load(&mem, &config(&kernel, Some(&initrd), true)).unwrap();
    assert_eq!(info.format, KernelFormat::PvhElf);
    assert_eq!(info.entry.mode, EntryMode::Protected32);
    assert_eq!(info.entry.rip, 0x100_04a0, "pvh_start_xen");
    assert_eq!(info.entry.rbx, PVH_START_INFO_ADDR);
    assert_eq!(info.kernel_range.0, 0x100_0000);
    assert_eq!(r32(&mem, PVH_START_INFO_ADDR), 0x336e_c578);
    assert_eq!(r32(&mem, PVH_START_INFO_ADDR + 4), 1);
    assert_eq!(r32(&mem, PVH_START_INFO_ADDR + 12), 1, "nr_modules");
    assert_eq!(r64(&mem, PVH_START_INFO_ADDR + 24), CMDLINE_ADDR);
    assert_eq!(r64(&mem, PVH_START_INFO_ADDR + 32), 0xe0000);
    assert_eq!(pvh_memmap(&mem), expected_e820(256 << 20));
    let (addr, size) = info.initrd.unwrap();
    assert_eq!(addr, (0x0fff_ffff - size) & !0xfff);
    assert_eq!(r64(&mem, PVH_MODLIST_ADDR), addr);
    assert_eq!(read(&mem, addr, initrd.len()), initrd);
    // First PT_LOAD: file offset 0x200000 -> 16 MiB.
    assert_eq!(read(&mem, 0x100_0000, 4096), kernel[0x20_0000..0x20_1000]);
    assert_eq!(cstr(&mem, CMDLINE_ADDR), "console=ttyS0 panic=-1");
}

#[test]
fn real_tiny_pvh() {
    let Some(kernel) = read_guest_file("tiny-pvh.elf") else {
        return;
    };
    let mem = guest_memory(256 << 20);
    let cfg = BootConfig {
        cmdline: "hold",
        ..config(&kernel, None, false)
    };
    let info = load(&mem, &cfg).unwrap();
    let e_entry = u32::from_le_bytes(kernel[24..28].try_into().unwrap());
    assert_eq!(info.entry.rip, u64::from(e_entry), "its _start");
    assert_eq!(info.entry.rip, 0x10_0000);
    assert_eq!(info.entry.rbx, PVH_START_INFO_ADDR);
    assert_eq!(info.entry.cr0, 0x11);
    // tiny-pvh reads cmdline_paddr at start_info+24 and looks for "hold".
    assert_eq!(cstr(&mem, r64(&mem, PVH_START_INFO_ADDR + 24)), "hold");
    // Its one PT_LOAD: the text and rodata, then a zeroed bss.
    let phoff = u32::from_le_bytes(kernel[28..32].try_into().unwrap()) as usize;
    let field = |o: usize| u32::from_le_bytes(kernel[phoff + o..phoff + o + 4].try_into().unwrap());
    let (offset, paddr, filesz, memsz) = (field(4), field(12), field(16), field(20));
    let text = &kernel[offset as usize..(offset + filesz) as usize];
    assert_eq!(read(&mem, u64::from(paddr), text.len()), text);
    let tail = read(&mem, u64::from(paddr + filesz), (memsz - filesz) as usize);
    assert!(tail.iter().all(|&b| b == 0));
    let message = read(&mem, u64::from(paddr), filesz as usize);
    assert!(message.windows(7).any(|w| w == b"BOOT-OK"));
    assert_eq!(info.e820[4].kind, E820Type::Ram);
}
