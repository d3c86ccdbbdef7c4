//! A test driver: programs the transport through its registers as Linux's
//! virtio_mmio driver does and posts descriptor chains by hand.

use std::io::Write;
use std::sync::Arc;

use cpu::GuestMemory;
use vm_memory::{Bytes, GuestAddress};

use super::blk::{Block, BlockOptions, CacheMode, ImageFormat};
use super::console::Console;
use super::mmio::{MmioTransport, STATUS_NEEDS_RESET};
use super::rng::Rng;
use super::VirtioDevice;
use crate::bus::{BusAccessInfo, BusDevice};
use crate::irq::RecordingIrq;

const DESC: u64 = 0x1000;
const AVAIL: u64 = 0x2000;
const USED: u64 = 0x3000;
const QSIZE: u16 = 16;
const WRITE: u16 = 2;
const NEXT: u16 = 1;

struct Driver {
    t: MmioTransport,
    mem: Arc<GuestMemory>,
    irq: Arc<RecordingIrq>,
    avail_idx: u16,
    /// The queue `post` and `used` work on; queue q's rings are at the
    /// DESC/AVAIL/USED addresses plus `q * QSTRIDE`.
    q: u16,
    avail: Vec<u16>,
}

const QSTRIDE: u64 = 0x10_0000;

fn at(offset: u64) -> BusAccessInfo {
    BusAccessInfo {
        address: 0xfeb0_0e00 + offset,
        offset,
        vcpu: 0,
    }
}

impl Driver {
    fn new(dev: Box<dyn VirtioDevice>) -> Driver {
        Self::with_queues(dev, 1)
    }

    fn with_queues(dev: Box<dyn VirtioDevice>, queues: u16) -> Driver {
        let mem = Arc::new(
            GuestMemory::from_ranges(&[(GuestAddress(0), usize::from(queues) * QSTRIDE as usize)])
                .unwrap(),
        );
        let irq = Arc::new(RecordingIrq::default());
        let t = MmioTransport::new(Some(dev), mem.clone(), irq.clone());
        let mut d = Driver {
            t,
            mem,
            irq,
            avail_idx: 0,
            q: 0,
            avail: vec![0; usize::from(queues)],
        };
        assert_eq!(d.rd(0), 0x7472_6976);
        assert_eq!(d.rd(4), 2);
        d.wr(0x70, 1 | 2);
        d.wr(0x14, 1);
        let hi = d.rd(0x10);
        d.wr(0x14, 0);
        let lo = d.rd(0x10);
        d.wr(0x24, 0);
        d.wr(0x20, lo);
        d.wr(0x24, 1);
        d.wr(0x20, hi);
        d.wr(0x70, 1 | 2 | 8);
        assert_eq!(d.rd(0x70) & 8, 8, "FEATURES_OK accepted");
        for q in 0..queues {
            let base = u64::from(q) * QSTRIDE;
            d.wr(0x30, u32::from(q));
            assert!(d.rd(0x34) >= u32::from(QSIZE));
            d.wr(0x38, u32::from(QSIZE));
            d.wr(0x80, (base + DESC) as u32);
            d.wr(0x84, 0);
            d.wr(0x90, (base + AVAIL) as u32);
            d.wr(0x94, 0);
            d.wr(0xa0, (base + USED) as u32);
            d.wr(0xa4, 0);
            d.wr(0x44, 1);
        }
        d.wr(0x70, 1 | 2 | 8 | 4);
        d
    }

    fn rd(&mut self, off: u64) -> u32 {
        let mut b = [0u8; 4];
        self.t.read(at(off), &mut b);
        u32::from_le_bytes(b)
    }

    fn wr(&mut self, off: u64, v: u32) {
        self.t.write(at(off), &v.to_le_bytes());
    }

    /// Work on queue `q` from now on.
    fn select(&mut self, q: u16) {
        self.avail[usize::from(self.q)] = self.avail_idx;
        self.q = q;
        self.avail_idx = self.avail[usize::from(q)];
    }

    fn qbase(&self) -> u64 {
        u64::from(self.q) * QSTRIDE
    }

    /// Post a chain of (addr, len, flags) starting at descriptor `first`.
    fn post(&mut self, first: u16, descs: &[(u64, u32, u16)]) {
        let (desc, avail) = (self.qbase() + DESC, self.qbase() + AVAIL);
        for (i, (addr, len, flags)) in descs.iter().enumerate() {
            let idx = first + i as u16;
            let last = i + 1 == descs.len();
            let f = flags | if last { 0 } else { NEXT };
            let base = desc + u64::from(idx) * 16;
            self.mem.write_obj(*addr, GuestAddress(base)).unwrap();
            self.mem.write_obj(*len, GuestAddress(base + 8)).unwrap();
            self.mem.write_obj(f, GuestAddress(base + 12)).unwrap();
            self.mem
                .write_obj(idx + 1, GuestAddress(base + 14))
                .unwrap();
        }
        let slot = avail + 4 + u64::from(self.avail_idx % QSIZE) * 2;
        self.mem.write_obj(first, GuestAddress(slot)).unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.mem
            .write_obj(self.avail_idx, GuestAddress(avail + 2))
            .unwrap();
        self.wr(0x50, u32::from(self.q));
    }

    fn used(&self) -> (u16, u32, u32) {
        let used = self.qbase() + USED;
        let idx: u16 = self.mem.read_obj(GuestAddress(used + 2)).unwrap();
        let e = used + 4 + u64::from((idx.wrapping_sub(1)) % QSIZE) * 8;
        (
            idx,
            self.mem.read_obj(GuestAddress(e)).unwrap(),
            self.mem.read_obj(GuestAddress(e + 4)).unwrap(),
        )
    }

    fn header(&self, at: u64, kind: u32, sector: u64) {
        self.mem.write_obj(kind, GuestAddress(at)).unwrap();
        self.mem.write_obj(0u32, GuestAddress(at + 4)).unwrap();
        self.mem.write_obj(sector, GuestAddress(at + 8)).unwrap();
    }
}

fn image(bytes: &[u8]) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let p = std::env::temp_dir().join(format!(
        "kindling-blk-{}-{}.img",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
    p
}

#[test]
fn rng_fills_the_buffer_and_interrupts() {
    let mut d = Driver::new(Box::new(Rng));
    d.post(0, &[(0x8000, 64, WRITE)]);
    let (idx, id, len) = d.used();
    assert_eq!((idx, id, len), (1, 0, 64));
    let mut b = [0u8; 64];
    d.mem.read_slice(&mut b, GuestAddress(0x8000)).unwrap();
    assert!(b.iter().any(|&x| x != 0));
    assert!(d.irq.level(), "used-buffer interrupt is level and raised");
    assert_eq!(d.rd(0x60), 1);
    d.wr(0x64, 1);
    assert!(!d.irq.level(), "ACK lowers the line");
}

#[test]
fn blk_reads_writes_and_flushes_the_image() {
    let mut content = vec![0u8; 4096];
    for (i, b) in content.iter_mut().enumerate() {
        *b = (i * 7) as u8;
    }
    let path = image(&content);
    let mut d = Driver::new(Box::new(Block::open(&path, false, "KINDLING0").unwrap()));
    assert!(d.t.populated());
    let mut cap = [0u8; 8];
    d.t.read(at(0x100), &mut cap);
    assert_eq!(u64::from_le_bytes(cap), 8, "capacity in sectors");
    // Read sector 1.
    d.header(0x5000, 0, 1);
    d.post(
        0,
        &[(0x5000, 16, 0), (0x6000, 512, WRITE), (0x7000, 1, WRITE)],
    );
    let mut got = vec![0u8; 512];
    d.mem.read_slice(&mut got, GuestAddress(0x6000)).unwrap();
    assert_eq!(got, content[512..1024]);
    assert_eq!(d.mem.read_obj::<u8>(GuestAddress(0x7000)).unwrap(), 0);
    assert_eq!(d.used().2, 513);
    // Write sector 2, flush.
    d.mem
        .write_slice(&[0xab; 512], GuestAddress(0x6000))
        .unwrap();
    d.header(0x5000, 1, 2);
    d.post(3, &[(0x5000, 16, 0), (0x6000, 512, 0), (0x7000, 1, WRITE)]);
    d.header(0x5100, 4, 0);
    d.post(6, &[(0x5100, 16, 0), (0x7100, 1, WRITE)]);
    assert_eq!(d.mem.read_obj::<u8>(GuestAddress(0x7100)).unwrap(), 0);
    let disk = std::fs::read(&path).unwrap();
    assert_eq!(&disk[1024..1536], &[0xab; 512][..]);
    // Get ID, out-of-range read, unknown request.
    d.header(0x5000, 8, 0);
    d.post(
        8,
        &[(0x5000, 16, 0), (0x6000, 20, WRITE), (0x7000, 1, WRITE)],
    );
    let mut id = [0u8; 9];
    d.mem.read_slice(&mut id, GuestAddress(0x6000)).unwrap();
    assert_eq!(&id, b"KINDLING0");
    d.header(0x5000, 0, 8);
    d.post(
        0,
        &[(0x5000, 16, 0), (0x6000, 512, WRITE), (0x7000, 1, WRITE)],
    );
    assert_eq!(
        d.mem.read_obj::<u8>(GuestAddress(0x7000)).unwrap(),
        1,
        "IOERR past the end"
    );
    d.header(0x5000, 99, 0);
    d.post(3, &[(0x5000, 16, 0), (0x7000, 1, WRITE)]);
    assert_eq!(
        d.mem.read_obj::<u8>(GuestAddress(0x7000)).unwrap(),
        2,
        "UNSUPP"
    );
    let _ = std::fs::remove_file(path);
}

#[test]
fn read_only_drive_refuses_writes_and_is_locked_shared() {
    let path = image(&[0x11; 1024]);
    let mut d = Driver::new(Box::new(Block::open(&path, true, "").unwrap()));
    assert!(
        Block::open(&path, true, "").is_ok(),
        "two readers may share"
    );
    assert!(
        Block::open(&path, false, "").is_err(),
        "a writer is refused"
    );
    d.mem
        .write_slice(&[0x22; 512], GuestAddress(0x6000))
        .unwrap();
    d.header(0x5000, 1, 0);
    d.post(0, &[(0x5000, 16, 0), (0x6000, 512, 0), (0x7000, 1, WRITE)]);
    assert_eq!(d.mem.read_obj::<u8>(GuestAddress(0x7000)).unwrap(), 1);
    assert_eq!(std::fs::read(&path).unwrap(), vec![0x11; 1024]);
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_second_writer_is_refused_with_qemus_message() {
    let path = image(&[0; 512]);
    let _first = Block::open(&path, false, "").unwrap();
    let e = Block::open(&path, false, "").unwrap_err().to_string();
    assert!(e.starts_with("Failed to get \"write\" lock"), "{e}");
    let _ = std::fs::remove_file(path);
}

#[test]
fn corrupt_chains_mark_the_device_broken_without_touching_other_memory() {
    let path = image(&[0x33; 4096]);
    for bad in [
        // Data buffer outside guest RAM.
        vec![
            (0x5000, 16, 0),
            (0x7fff_0000, 512, WRITE),
            (0x7000, 1, WRITE),
        ],
        // Status byte read-only.
        vec![(0x5000, 16, 0), (0x6000, 512, WRITE), (0x7000, 1, 0)],
        // Header missing (single descriptor).
        vec![(0x7000, 1, WRITE)],
    ] {
        let mut d = Driver::new(Box::new(Block::open(&path, true, "").unwrap()));
        d.header(0x5000, 0, 0);
        d.post(0, &bad);
        assert_ne!(d.rd(0x70) & STATUS_NEEDS_RESET, 0, "{bad:?}");
        assert_eq!(d.rd(0x60) & 2, 2, "config-change interrupt");
        // Further notifies are ignored until reset; reset recovers.
        d.wr(0x70, 0);
        assert_eq!(d.rd(0x70), 0);
    }
    // A descriptor loop: next points back to itself.
    let mut d = Driver::new(Box::new(Block::open(&path, true, "").unwrap()));
    d.header(0x5000, 0, 0);
    d.mem.write_obj(0x5000u64, GuestAddress(DESC)).unwrap();
    d.mem.write_obj(16u32, GuestAddress(DESC + 8)).unwrap();
    d.mem.write_obj(NEXT, GuestAddress(DESC + 12)).unwrap();
    d.mem.write_obj(0u16, GuestAddress(DESC + 14)).unwrap();
    d.mem.write_obj(0u16, GuestAddress(AVAIL + 4)).unwrap();
    d.mem.write_obj(1u16, GuestAddress(AVAIL + 2)).unwrap();
    d.wr(0x50, 0);
    assert_ne!(d.rd(0x70) & STATUS_NEEDS_RESET, 0);
    let _ = std::fs::remove_file(path);
}

#[test]
fn empty_slot_reads_device_id_zero() {
    let mem = Arc::new(GuestMemory::from_ranges(&[(GuestAddress(0), 1 << 16)]).unwrap());
    let mut t = MmioTransport::new(None, mem, Arc::new(RecordingIrq::default()));
    let mut b = [0u8; 4];
    t.read(at(0), &mut b);
    assert_eq!(u32::from_le_bytes(b), 0x7472_6976);
    t.read(at(8), &mut b);
    assert_eq!(u32::from_le_bytes(b), 0);
}

#[test]
fn blk_discard_and_write_zeroes_clear_ranges_and_respect_limits() {
    let content = vec![0x5au8; 8 * 512];
    let path = image(&content);
    let mut d = Driver::new(Box::new(Block::open(&path, false, "").unwrap()));
    assert_eq!(
        d.rd(0x10) & (1 << 13 | 1 << 14),
        1 << 13 | 1 << 14,
        "offered"
    );
    let mut limits = [0u8; 24];
    d.t.read(at(0x100 + 36), &mut limits[..4]);
    assert!(
        u32::from_le_bytes(limits[..4].try_into().unwrap()) > 0,
        "max_discard_sectors"
    );
    let segment = |d: &Driver, at: u64, sector: u64, count: u32, flags: u32| {
        d.mem.write_obj(sector, GuestAddress(at)).unwrap();
        d.mem.write_obj(count, GuestAddress(at + 8)).unwrap();
        d.mem.write_obj(flags, GuestAddress(at + 12)).unwrap();
    };
    let status = |d: &Driver| d.mem.read_obj::<u8>(GuestAddress(0x7000)).unwrap();
    // Write-zeroes sectors 1-2 (no unmap), discard sectors 4-5.
    d.header(0x5000, 13, 0);
    segment(&d, 0x6000, 1, 2, 0);
    d.post(0, &[(0x5000, 16, 0), (0x6000, 16, 0), (0x7000, 1, WRITE)]);
    assert_eq!(status(&d), 0);
    d.header(0x5000, 11, 0);
    segment(&d, 0x6000, 4, 2, 0);
    d.post(3, &[(0x5000, 16, 0), (0x6000, 16, 0), (0x7000, 1, WRITE)]);
    assert_eq!(status(&d), 0);
    let disk = std::fs::read(&path).unwrap();
    assert_eq!(disk.len(), content.len(), "the image keeps its size");
    assert!(disk[512..1536].iter().all(|&b| b == 0), "write-zeroes");
    assert!(
        disk[..512]
            .iter()
            .chain(&disk[1536..2048])
            .all(|&b| b == 0x5a),
        "neighbours kept"
    );
    // Discard may keep the data on file systems without holes; if it
    // punched, the range reads as zeros.
    assert!(
        disk[2048..3072].iter().all(|&b| b == 0) || disk[2048..3072].iter().all(|&b| b == 0x5a)
    );
    assert!(disk[3072..].iter().all(|&b| b == 0x5a));
    // Write-zeroes with unmap, then a range past the end and a bad flag.
    d.header(0x5000, 13, 0);
    segment(&d, 0x6000, 7, 1, 1);
    d.post(6, &[(0x5000, 16, 0), (0x6000, 16, 0), (0x7000, 1, WRITE)]);
    assert_eq!(status(&d), 0);
    assert!(std::fs::read(&path).unwrap()[3584..]
        .iter()
        .all(|&b| b == 0));
    d.header(0x5000, 13, 0);
    segment(&d, 0x6000, 7, 2, 0);
    d.post(9, &[(0x5000, 16, 0), (0x6000, 16, 0), (0x7000, 1, WRITE)]);
    assert_eq!(status(&d), 1, "IOERR past the end");
    d.header(0x5000, 11, 0);
    segment(&d, 0x6000, 0, 1, 1);
    d.post(12, &[(0x5000, 16, 0), (0x6000, 16, 0), (0x7000, 1, WRITE)]);
    assert_eq!(status(&d), 2, "UNSUPP: unmap is not a discard flag");
    let _ = std::fs::remove_file(path);
}

#[test]
fn read_only_drive_refuses_discard_and_write_zeroes() {
    let content = vec![0x77u8; 4 * 512];
    let path = image(&content);
    let mut d = Driver::new(Box::new(Block::open(&path, true, "").unwrap()));
    assert_eq!(
        d.rd(0x10) & (1 << 13 | 1 << 14),
        0,
        "not offered when read-only"
    );
    for (i, kind) in [11u32, 13].into_iter().enumerate() {
        d.header(0x5000, kind, 0);
        d.mem.write_obj(0u64, GuestAddress(0x6000)).unwrap();
        d.mem.write_obj(1u32, GuestAddress(0x6008)).unwrap();
        d.mem.write_obj(0u32, GuestAddress(0x600c)).unwrap();
        d.post(
            3 * i as u16,
            &[(0x5000, 16, 0), (0x6000, 16, 0), (0x7000, 1, WRITE)],
        );
        assert_eq!(
            d.mem.read_obj::<u8>(GuestAddress(0x7000)).unwrap(),
            1,
            "IOERR"
        );
    }
    assert_eq!(std::fs::read(&path).unwrap(), content);
    let _ = std::fs::remove_file(path);
}

/// A NIC backend that records what the guest sent.
#[derive(Clone, Default)]
struct Capture(Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

impl super::net::NetBackend for Capture {
    fn send(&mut self, frame: &[u8]) {
        self.0.lock().unwrap().push(frame.to_vec());
    }
}

#[test]
fn net_delivers_received_frames_with_a_header_and_keeps_them_until_buffers_exist() {
    let (net, input) = super::net::Net::new(
        [0x52, 0x54, 0, 0x12, 0x34, 0x56],
        Box::new(Capture::default()),
    );
    let mut d = Driver::new(Box::new(net));
    let mut mac = [0u8; 8];
    d.t.read(at(0x100), &mut mac);
    assert_eq!(&mac[..6], &[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    assert_eq!(u16::from_le_bytes([mac[6], mac[7]]), 1, "link up");
    // A frame arrives before the driver posted any buffer: it waits.
    let frame: Vec<u8> = (0..60u8).collect();
    assert!(input.push(frame.clone()));
    d.t.process(0);
    assert_eq!(d.used().0, 0, "nothing used without buffers");
    // The driver posts a buffer: the waiting frame lands with its header.
    d.post(0, &[(0x6000, 2048, WRITE)]);
    let (idx, head, len) = d.used();
    assert_eq!((idx, head, len), (1, 0, 12 + 60));
    let mut hdr = [0u8; 12];
    d.mem.read_slice(&mut hdr, GuestAddress(0x6000)).unwrap();
    assert_eq!(hdr, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0], "num_buffers = 1");
    let mut got = vec![0u8; 60];
    d.mem.read_slice(&mut got, GuestAddress(0x600c)).unwrap();
    assert_eq!(got, frame);
    assert!(d.irq.level(), "the driver was interrupted");
}

#[test]
fn net_receive_queue_with_a_read_only_buffer_breaks_the_device_only() {
    let (net, input) = super::net::Net::new([2, 0, 0, 0, 0, 1], Box::new(Capture::default()));
    let mut d = Driver::new(Box::new(net));
    input.push(vec![0xee; 100]);
    d.mem
        .write_slice(&[0x11; 64], GuestAddress(0x9000))
        .unwrap();
    d.post(0, &[(0x9000, 64, 0)]);
    assert_eq!(d.rd(0x70) & STATUS_NEEDS_RESET, STATUS_NEEDS_RESET);
    let mut b = [0u8; 64];
    d.mem.read_slice(&mut b, GuestAddress(0x9000)).unwrap();
    assert_eq!(b, [0x11; 64], "the driver-only buffer was not written");
}

impl Driver {
    fn device_features(&mut self) -> u64 {
        self.wr(0x14, 1);
        let hi = u64::from(self.rd(0x10));
        self.wr(0x14, 0);
        (hi << 32) | u64::from(self.rd(0x10))
    }

    fn config_byte(&mut self, off: u64) -> u8 {
        let mut b = [0u8; 1];
        self.t.read(at(0x100 + off), &mut b);
        b[0]
    }

    fn status_byte(&self) -> u8 {
        self.mem.read_obj(GuestAddress(0x7000)).unwrap()
    }
}

fn blk_with(path: &std::path::Path, read_only: bool, cache: CacheMode) -> Block {
    let opts = BlockOptions {
        read_only,
        serial: String::new(),
        cache,
        format: ImageFormat::Raw,
    };
    Block::open_with(path, &opts).unwrap()
}

const F_FLUSH: u64 = 1 << 9;
const F_CONFIG_WCE: u64 = 1 << 11;
const F_DISCARD: u64 = 1 << 13;
const F_WRITE_ZEROES: u64 = 1 << 14;

#[test]
fn write_cache_feature_and_config_follow_the_cache_mode_as_in_qemu() {
    let path = image(&[0; 4096]);
    for (cache, wce) in [
        (CacheMode::Writeback, true),
        (CacheMode::None, true),
        (CacheMode::Unsafe, true),
        (CacheMode::Writethrough, false),
        (CacheMode::Directsync, false),
    ] {
        let mut d = Driver::new(Box::new(blk_with(&path, false, cache)));
        let f = d.device_features();
        assert_eq!(f & F_FLUSH != 0, wce, "{cache:?}");
        assert_ne!(f & F_CONFIG_WCE, 0, "{cache:?}");
        assert_eq!(d.config_byte(32), u8::from(wce), "{cache:?}");
        // The driver may switch it; a reset restores the mode's default.
        d.t.write(at(0x100 + 32), &[u8::from(!wce)]);
        assert_eq!(d.config_byte(32), u8::from(!wce), "{cache:?}");
        d.wr(0x70, 0);
        assert_eq!(d.config_byte(32), u8::from(wce), "{cache:?}");
    }
    let _ = std::fs::remove_file(path);
}

#[test]
fn every_cache_mode_reads_writes_and_flushes() {
    // /tmp or the target dir: O_DIRECT works on ext4/xfs/btrfs and
    // falls back (with a warning) elsewhere; the data is the same.
    for cache in [
        CacheMode::Writeback,
        CacheMode::None,
        CacheMode::Unsafe,
        CacheMode::Writethrough,
        CacheMode::Directsync,
    ] {
        let path = image(&[0x11; 8192]);
        let mut blk = blk_with(&path, false, cache);
        if cache.direct() {
            assert!(blk.is_direct() || blk.take_warning().is_some(), "{cache:?}");
        } else {
            assert!(!blk.is_direct() && blk.take_warning().is_none());
        }
        let mut d = Driver::new(Box::new(blk));
        // Write 1 KiB at sector 2 from a deliberately unaligned buffer,
        // then 4 KiB at sector 8 from an aligned one.
        d.mem
            .write_slice(&[0xa5; 1024], GuestAddress(0x6003))
            .unwrap();
        d.header(0x5000, 1, 2);
        d.post(0, &[(0x5000, 16, 0), (0x6003, 1024, 0), (0x7000, 1, WRITE)]);
        assert_eq!(d.status_byte(), 0, "{cache:?}");
        d.mem
            .write_slice(&[0x5a; 4096], GuestAddress(0x8000))
            .unwrap();
        d.header(0x5000, 1, 8);
        d.post(3, &[(0x5000, 16, 0), (0x8000, 4096, 0), (0x7000, 1, WRITE)]);
        assert_eq!(d.status_byte(), 0, "{cache:?}");
        d.header(0x5000, 4, 0);
        d.post(6, &[(0x5000, 16, 0), (0x7000, 1, WRITE)]);
        assert_eq!(d.status_byte(), 0, "flush {cache:?}");
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(on_disk[1024..2048], [0xa5; 1024], "{cache:?}");
        assert_eq!(on_disk[4096..8192], [0x5a; 4096], "{cache:?}");
        assert_eq!(on_disk[..1024], [0x11; 1024], "{cache:?}");
        // Read it back into an aligned buffer.
        d.header(0x5000, 0, 8);
        d.post(
            8,
            &[(0x5000, 16, 0), (0xa000, 4096, WRITE), (0x7000, 1, WRITE)],
        );
        assert_eq!(d.status_byte(), 0, "{cache:?}");
        let mut back = vec![0u8; 4096];
        d.mem.read_slice(&mut back, GuestAddress(0xa000)).unwrap();
        assert_eq!(back, vec![0x5a; 4096], "{cache:?}");
        let _ = std::fs::remove_file(path);
    }
}

#[test]
fn locks_use_qemus_bytes_and_words() {
    let path = image(&[0; 512]);
    {
        let _writer = Block::open(&path, false, "").unwrap();
        let e = Block::open(&path, true, "").unwrap_err().to_string();
        assert!(e.starts_with("Failed to get shared \"write\" lock"), "{e}");
        assert!(
            e.ends_with(&format!(
                "Is another process using the image [{}]?",
                path.display()
            )),
            "{e}"
        );
    }
    {
        // A reader also keeps writers out (QEMU's share-rw=off), but not
        // other readers.
        let _reader = Block::open(&path, true, "").unwrap();
        let _second = Block::open(&path, true, "").unwrap();
        let e = Block::open(&path, false, "").unwrap_err().to_string();
        assert!(e.starts_with("Failed to get \"write\" lock"), "{e}");
    }
    // Closing releases everything.
    Block::open(&path, false, "").unwrap();
    let _ = std::fs::remove_file(path);
}

#[test]
fn read_only_drive_offers_no_write_features() {
    let path = image(&[0; 4096]);
    let mut d = Driver::new(Box::new(Block::open(&path, true, "").unwrap()));
    let f = d.device_features();
    assert_ne!(f & (1 << 5), 0, "VIRTIO_BLK_F_RO");
    assert_eq!(f & (F_DISCARD | F_WRITE_ZEROES), 0);
    drop(d);
    let mut d = Driver::new(Box::new(Block::open(&path, false, "").unwrap()));
    assert_eq!(
        d.device_features() & (F_DISCARD | F_WRITE_ZEROES),
        F_DISCARD | F_WRITE_ZEROES
    );
    let _ = std::fs::remove_file(path);
}

#[test]
fn oversized_and_misdirected_chains_need_reset_and_leave_the_image_alone() {
    let path = image(&[0x33; 4096]);
    for bad in [
        // A read into a buffer the driver marked device-readable.
        vec![(0x5000, 16, 0), (0x6000, 512, 0), (0x7000, 1, WRITE)],
        // A 4 GiB - 1 buffer that runs off the end of guest RAM.
        vec![
            (0x5000, 16, 0),
            (0x6000, u32::MAX, WRITE),
            (0x7000, 1, WRITE),
        ],
        // A header that is itself device-writable.
        vec![
            (0x5000, 16, WRITE),
            (0x6000, 512, WRITE),
            (0x7000, 1, WRITE),
        ],
        // A short header.
        vec![(0x5000, 8, 0), (0x6000, 512, WRITE), (0x7000, 1, WRITE)],
        // A header address that wraps around the address space.
        vec![
            (u64::MAX - 7, 16, 0),
            (0x6000, 512, WRITE),
            (0x7000, 1, WRITE),
        ],
    ] {
        let mut d = Driver::new(Box::new(Block::open(&path, false, "").unwrap()));
        d.header(0x5000, 0, 0);
        d.post(0, &bad);
        assert_ne!(d.rd(0x70) & STATUS_NEEDS_RESET, 0, "{bad:?}");
        // Later notifications are ignored until the driver resets.
        d.post(
            4,
            &[(0x5000, 16, 0), (0x6000, 512, WRITE), (0x7000, 1, WRITE)],
        );
        assert_eq!(d.used().0, 0, "{bad:?}");
    }
    // A write whose data buffer is device-writable: refused before any byte
    // reaches the image.
    let mut d = Driver::new(Box::new(Block::open(&path, false, "").unwrap()));
    d.header(0x5000, 1, 0);
    d.post(
        0,
        &[(0x5000, 16, 0), (0x6000, 512, WRITE), (0x7000, 1, WRITE)],
    );
    assert_ne!(d.rd(0x70) & STATUS_NEEDS_RESET, 0);
    assert_eq!(std::fs::read(&path).unwrap(), vec![0x33; 4096]);
    drop(d);
    // A write past the end is an I/O error, not a broken device.
    let mut d = Driver::new(Box::new(Block::open(&path, false, "").unwrap()));
    d.header(0x5000, 1, 8);
    d.post(0, &[(0x5000, 16, 0), (0x6000, 512, 0), (0x7000, 1, WRITE)]);
    assert_eq!(d.rd(0x70) & STATUS_NEEDS_RESET, 0);
    assert_eq!(d.status_byte(), 1, "IOERR");
    let _ = std::fs::remove_file(path);
}

/// A console backend the test can read.
#[derive(Clone, Default)]
struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn console_is_type_3_with_two_queues_and_no_multiport() {
    let (c, _input) = Console::new(Box::new(Sink::default()));
    assert_eq!(c.device_type(), 3);
    assert_eq!(c.queue_max_sizes().len(), 2);
    let mut d = Driver::with_queues(Box::new(c), 2);
    assert_eq!(d.rd(8), 3);
    assert_eq!(
        d.device_features() & (1 << 1),
        0,
        "no VIRTIO_CONSOLE_F_MULTIPORT"
    );
}

#[test]
fn console_transmits_guest_output_to_the_backend() {
    let sink = Sink::default();
    let (c, _input) = Console::new(Box::new(sink.clone()));
    let mut d = Driver::with_queues(Box::new(c), 2);
    d.select(1);
    d.mem.write_slice(b"hello, ", GuestAddress(0x5000)).unwrap();
    d.mem.write_slice(b"hvc0\n", GuestAddress(0x6000)).unwrap();
    d.post(0, &[(0x5000, 7, 0), (0x6000, 5, 0)]);
    assert_eq!(sink.0.lock().unwrap().as_slice(), b"hello, hvc0\n");
    let (idx, id, len) = d.used();
    assert_eq!((idx, id, len), (1, 0, 0));
    assert!(d.irq.level());
}

#[test]
fn console_input_fills_receive_buffers_in_order_and_waits_for_more() {
    let (c, input) = Console::new(Box::new(Sink::default()));
    let mut d = Driver::with_queues(Box::new(c), 2);
    // Input that arrives before any buffer waits for one.
    assert_eq!(input.push(b"abcdef"), 6);
    d.post(0, &[(0x5000, 4, WRITE)]);
    let (idx, id, len) = d.used();
    assert_eq!((idx, id, len), (1, 0, 4));
    let mut got = [0u8; 4];
    d.mem.read_slice(&mut got, GuestAddress(0x5000)).unwrap();
    assert_eq!(&got, b"abcd");
    // The rest goes into the next buffer the driver posts.
    d.post(1, &[(0x6000, 64, WRITE)]);
    assert_eq!(d.used(), (2, 1, 2));
    let mut got = [0u8; 2];
    d.mem.read_slice(&mut got, GuestAddress(0x6000)).unwrap();
    assert_eq!(&got, b"ef");
    // A posted buffer with no input stays available until input comes
    // (the host side then processes the queue, as VirtioConsolePort::feed).
    d.post(2, &[(0x7000, 64, WRITE)]);
    assert_eq!(d.used().0, 2);
    input.push(b"xy\n");
    d.t.process(0);
    assert_eq!(d.used(), (3, 2, 3));
}

#[test]
fn console_rejects_misdirected_buffers_with_needs_reset() {
    let (c, input) = Console::new(Box::new(Sink::default()));
    let mut d = Driver::with_queues(Box::new(c), 2);
    input.push(b"x");
    d.post(0, &[(0x5000, 4, 0)]);
    assert_ne!(
        d.rd(0x70) & STATUS_NEEDS_RESET,
        0,
        "read-only receive buffer"
    );
    let (c, _input) = Console::new(Box::new(Sink::default()));
    let mut d = Driver::with_queues(Box::new(c), 2);
    d.select(1);
    d.post(0, &[(0x5000, 4, WRITE)]);
    assert_ne!(
        d.rd(0x70) & STATUS_NEEDS_RESET,
        0,
        "writable transmit buffer"
    );
    let (c, _input) = Console::new(Box::new(Sink::default()));
    let mut d = Driver::with_queues(Box::new(c), 2);
    d.select(1);
    d.post(0, &[(0x7fff_0000, 4, 0)]);
    assert_ne!(d.rd(0x70) & STATUS_NEEDS_RESET, 0, "buffer outside RAM");
}

/// A 4 KiB qcow2 v3 image with 512-byte clusters, built by hand: guest
/// cluster 0 holds 0xaa, cluster 1 is unallocated, cluster 2 is
/// compressed, cluster 5 has the zero flag over a cluster of 0xbb, cluster
/// 7 holds 0xcc.
fn tiny_qcow2() -> Vec<u8> {
    let mut img = vec![0u8; 7 * 512];
    let be32 =
        |img: &mut Vec<u8>, at: usize, v: u32| img[at..at + 4].copy_from_slice(&v.to_be_bytes());
    let be64 =
        |img: &mut Vec<u8>, at: usize, v: u64| img[at..at + 8].copy_from_slice(&v.to_be_bytes());
    img[..4].copy_from_slice(b"QFI\xfb");
    be32(&mut img, 4, 3);
    be32(&mut img, 20, 9);
    be64(&mut img, 24, 4096);
    be32(&mut img, 36, 1);
    be64(&mut img, 40, 512);
    be32(&mut img, 96, 4);
    be32(&mut img, 100, 104);
    be64(&mut img, 512, 1024 | (1 << 63));
    be64(&mut img, 1024, (3 * 512) | (1 << 63));
    be64(&mut img, 1024 + 2 * 8, (1 << 62) | (6 * 512));
    be64(&mut img, 1024 + 5 * 8, (4 * 512) | 1);
    be64(&mut img, 1024 + 7 * 8, (5 * 512) | (1 << 63));
    img[3 * 512..4 * 512].fill(0xaa);
    img[4 * 512..5 * 512].fill(0xbb);
    img[5 * 512..6 * 512].fill(0xcc);
    img
}

fn qcow2_opts() -> BlockOptions {
    BlockOptions {
        read_only: true,
        format: ImageFormat::Qcow2,
        ..Default::default()
    }
}

#[test]
fn qcow2_images_read_through_their_cluster_tables() {
    let path = image(&tiny_qcow2());
    let blk = Block::open_with(&path, &qcow2_opts()).unwrap();
    let mut d = Driver::new(Box::new(blk));
    assert_eq!(d.rd(0x100), 8, "capacity: the virtual size, 8 sectors");
    let read = |d: &mut Driver, first: u16, sector: u64, len: u32| {
        d.mem
            .write_slice(&vec![0x11; len as usize], GuestAddress(0x8000))
            .unwrap();
        d.header(0x5000, 0, sector);
        d.post(
            first,
            &[(0x5000, 16, 0), (0x8000, len, WRITE), (0x7000, 1, WRITE)],
        );
        let mut got = vec![0u8; len as usize];
        d.mem.read_slice(&mut got, GuestAddress(0x8000)).unwrap();
        (d.status_byte(), got)
    };
    // Clusters 0 and 1 in one request: data, then zeros.
    let (st, got) = read(&mut d, 0, 0, 1024);
    assert_eq!(st, 0);
    assert_eq!(got[..512], [0xaa; 512]);
    assert_eq!(got[512..], [0; 512]);
    // Zero flag wins over the cluster's bytes; cluster 7 maps to host 5.
    let (st, got) = read(&mut d, 3, 5, 1536);
    assert_eq!(st, 0);
    assert_eq!(got[..1024], [0; 1024]);
    assert_eq!(got[1024..], [0xcc; 512]);
    // A compressed cluster is an I/O error, not a broken device.
    let (st, _) = read(&mut d, 6, 2, 512);
    assert_eq!(st, 1);
    assert_eq!(d.rd(0x70) & STATUS_NEEDS_RESET, 0);
    // Writes are refused (the drive is read-only).
    d.header(0x5000, 1, 1);
    d.post(9, &[(0x5000, 16, 0), (0x8000, 512, 0), (0x7000, 1, WRITE)]);
    assert_eq!(d.status_byte(), 1);
    let _ = std::fs::remove_file(path);
}

#[test]
fn qcow2_refusals_are_clear() {
    let path = image(&tiny_qcow2());
    let writable = BlockOptions {
        read_only: false,
        ..qcow2_opts()
    };
    let e = Block::open_with(&path, &writable).unwrap_err().to_string();
    assert!(
        e.ends_with("Kindling opens qcow2 images read-only (add readonly=on)"),
        "{e}"
    );
    let mut bad = tiny_qcow2();
    bad[8..16].copy_from_slice(&4000u64.to_be_bytes());
    std::fs::write(&path, &bad).unwrap();
    let e = Block::open_with(&path, &qcow2_opts())
        .unwrap_err()
        .to_string();
    assert!(e.contains("backing file"), "{e}");
    let mut bad = tiny_qcow2();
    bad[72..80].copy_from_slice(&(1u64 << 4).to_be_bytes());
    std::fs::write(&path, &bad).unwrap();
    let e = Block::open_with(&path, &qcow2_opts())
        .unwrap_err()
        .to_string();
    assert!(e.contains("Unsupported qcow2 feature"), "{e}");
    std::fs::write(&path, [0u8; 4096]).unwrap();
    let e = Block::open_with(&path, &qcow2_opts())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "Could not open '{}': Image is not in qcow2 format",
            path.display()
        )
    );
    let _ = std::fs::remove_file(path);
}
