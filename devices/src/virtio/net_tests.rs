//! virtio-net against hand-built rings on both queues, programmed through
//! the transport's registers as Linux's virtio_mmio driver does: frames the
//! guest transmits reach the backend without their header, frames from the
//! backend land in receive buffers behind a v1 header, and malformed chains
//! mark the device broken without a panic or a stray write.

use std::sync::{Arc, Mutex};

use cpu::GuestMemory;
use vm_memory::{Bytes, GuestAddress};

use super::{Net, NetBackend, NetInput};
use crate::bus::{BusAccessInfo, BusDevice};
use crate::irq::RecordingIrq;
use crate::virtio::mmio::{MmioTransport, STATUS_NEEDS_RESET};

const QSIZE: u16 = 8;
const WRITE: u16 = 2;
const NEXT: u16 = 1;
/// Ring addresses of queue `q`: descriptors, available, used.
const fn rings(q: u64) -> (u64, u64, u64) {
    let base = 0x1_0000 + q * 0x1000;
    (base, base + 0x400, base + 0x800)
}

/// Records what the guest sent.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Vec<u8>>>>);

impl NetBackend for Capture {
    fn send(&mut self, frame: &[u8]) {
        self.0.lock().unwrap().push(frame.to_vec());
    }
}

impl Capture {
    fn frames(&self) -> Vec<Vec<u8>> {
        self.0.lock().unwrap().clone()
    }
}

struct Driver {
    t: MmioTransport,
    mem: Arc<GuestMemory>,
    irq: Arc<RecordingIrq>,
    avail: [u16; 2],
    sent: Capture,
    input: Arc<NetInput>,
}

fn at(offset: u64) -> BusAccessInfo {
    BusAccessInfo {
        address: 0xfeb0_0000 + offset,
        offset,
        vcpu: 0,
    }
}

impl Driver {
    fn new() -> Driver {
        let sent = Capture::default();
        let (net, input) = Net::new([0x52, 0x54, 0, 0x12, 0x34, 0x56], Box::new(sent.clone()));
        let mem = Arc::new(GuestMemory::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap());
        let irq = Arc::new(RecordingIrq::default());
        let t = MmioTransport::new(Some(Box::new(net)), mem.clone(), irq.clone());
        let mut d = Driver {
            t,
            mem,
            irq,
            avail: [0; 2],
            sent,
            input,
        };
        assert_eq!(d.rd(8), 1, "device id: network card");
        d.wr(0x70, 1 | 2);
        d.wr(0x14, 1);
        let hi = d.rd(0x10);
        d.wr(0x14, 0);
        let lo = d.rd(0x10);
        assert_eq!(lo & (1 << 5), 1 << 5, "VIRTIO_NET_F_MAC");
        assert_eq!(lo & (1 << 16), 1 << 16, "VIRTIO_NET_F_STATUS");
        assert_eq!(lo & 0xc7, 0, "no checksum or segmentation offloads");
        d.wr(0x24, 0);
        d.wr(0x20, lo);
        d.wr(0x24, 1);
        d.wr(0x20, hi);
        d.wr(0x70, 1 | 2 | 8);
        for q in 0..2u32 {
            let (desc, avail, used) = rings(u64::from(q));
            d.wr(0x30, q);
            assert!(d.rd(0x34) >= u32::from(QSIZE));
            d.wr(0x38, u32::from(QSIZE));
            d.wr(0x80, desc as u32);
            d.wr(0x84, 0);
            d.wr(0x90, avail as u32);
            d.wr(0x94, 0);
            d.wr(0xa0, used as u32);
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

    fn broken(&mut self) -> bool {
        self.rd(0x70) & STATUS_NEEDS_RESET != 0
    }

    /// Make a chain of (addr, len, flags) available on queue `q` from
    /// descriptor `first`, and notify the queue.
    fn post(&mut self, q: usize, first: u16, descs: &[(u64, u32, u16)]) {
        let (desc, avail, _) = rings(q as u64);
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
        let slot = avail + 4 + u64::from(self.avail[q] % QSIZE) * 2;
        self.mem.write_obj(first, GuestAddress(slot)).unwrap();
        self.avail[q] = self.avail[q].wrapping_add(1);
        self.mem
            .write_obj(self.avail[q], GuestAddress(avail + 2))
            .unwrap();
        self.wr(0x50, q as u32);
    }

    /// Used index of queue `q` and its `n`th element (id, len).
    fn used(&self, q: usize, n: u16) -> (u16, u32, u32) {
        let (_, _, used) = rings(q as u64);
        let idx: u16 = self.mem.read_obj(GuestAddress(used + 2)).unwrap();
        let e = used + 4 + u64::from(n % QSIZE) * 8;
        (
            idx,
            self.mem.read_obj(GuestAddress(e)).unwrap(),
            self.mem.read_obj(GuestAddress(e + 4)).unwrap(),
        )
    }

    fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        self.mem.read_slice(&mut b, GuestAddress(addr)).unwrap();
        b
    }
}

fn frame(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn config_space_holds_the_mac_and_link_up() {
    let mut d = Driver::new();
    let mut cfg = [0u8; 8];
    d.t.read(at(0x100), &mut cfg);
    assert_eq!(cfg, [0x52, 0x54, 0, 0x12, 0x34, 0x56, 1, 0]);
    // Byte-wise reads, as the driver does for the MAC.
    let mut b = [0u8; 1];
    d.t.read(at(0x105), &mut b);
    assert_eq!(b[0], 0x56);
}

#[test]
fn transmitted_frames_reach_the_backend_without_their_header() {
    let mut d = Driver::new();
    // Header and frame in one buffer (Linux's usual layout).
    let f1 = frame(60, 1);
    d.mem.write_slice(&[0; 12], GuestAddress(0x4000)).unwrap();
    d.mem.write_slice(&f1, GuestAddress(0x400c)).unwrap();
    d.post(1, 0, &[(0x4000, 12 + 60, 0)]);
    assert_eq!(d.used(1, 0), (1, 0, 0));
    assert!(d.irq.level(), "used-buffer interrupt");
    // Header and frame split across three buffers.
    let f2 = frame(1514, 2);
    d.mem.write_slice(&[0; 12], GuestAddress(0x5000)).unwrap();
    d.mem.write_slice(&f2[..100], GuestAddress(0x6000)).unwrap();
    d.mem.write_slice(&f2[100..], GuestAddress(0x7000)).unwrap();
    d.post(
        1,
        2,
        &[(0x5000, 12, 0), (0x6000, 100, 0), (0x7000, 1414, 0)],
    );
    assert_eq!(d.used(1, 1), (2, 2, 0));
    assert_eq!(d.sent.frames(), vec![f1, f2]);
    assert!(!d.broken());
}

#[test]
fn received_frames_land_behind_a_v1_header_in_order() {
    let mut d = Driver::new();
    // Buffers first, the way the driver fills the queue at probe time.
    d.post(0, 0, &[(0x4000, 1526, WRITE)]);
    // Header and data in separate buffers.
    d.post(0, 1, &[(0x5000, 12, WRITE), (0x6000, 1514, WRITE)]);
    assert_eq!(d.used(0, 0).0, 0, "nothing to deliver yet");
    let (a, b, c) = (frame(60, 3), frame(1514, 4), frame(98, 5));
    for f in [&a, &b, &c] {
        assert!(d.input.push(f.clone()));
    }
    // The backend's thread tells the transport; two buffers, three frames.
    d.t.process(0);
    assert_eq!(d.used(0, 0), (2, 0, 12 + 60));
    assert_eq!(d.used(0, 1), (2, 1, 12 + 1514));
    assert_eq!(d.read(0x4000, 12), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    assert_eq!(d.read(0x400c, 60), a);
    assert_eq!(d.read(0x5000, 12)[10], 1, "num_buffers = 1");
    assert_eq!(d.read(0x6000, 1514), b);
    assert!(d.irq.level());
    // The third frame waits for the next buffer.
    d.post(0, 3, &[(0x8000, 2048, WRITE)]);
    assert_eq!(d.used(0, 2), (3, 3, 12 + 98));
    assert_eq!(d.read(0x800c, 98), c);
}

#[test]
fn a_frame_too_big_for_the_buffer_is_dropped_and_the_buffer_reused() {
    let mut d = Driver::new();
    d.post(0, 0, &[(0x4000, 200, WRITE)]);
    d.mem
        .write_slice(&[0x77; 200], GuestAddress(0x4000))
        .unwrap();
    d.input.push(frame(1000, 6));
    let small = frame(100, 7);
    d.input.push(small.clone());
    d.t.process(0);
    assert_eq!(d.used(0, 0), (1, 0, 12 + 100), "the small frame got it");
    assert_eq!(d.read(0x400c, 100), small);
    assert!(!d.broken());
}

#[test]
fn the_receive_backlog_is_bounded() {
    let d = Driver::new();
    let mut accepted = 0;
    for i in 0..1000 {
        if d.input.push(frame(60, i as u8)) {
            accepted += 1;
        }
    }
    assert_eq!(accepted, super::RX_BACKLOG);
}

#[test]
fn malformed_chains_break_the_device_without_a_panic_or_stray_writes() {
    type Chain = Vec<(u64, u32, u16)>;
    let cases: [(usize, Chain); 4] = [
        // Transmit buffer the device would write into.
        (1, vec![(0x4000, 12, 0), (0x5000, 60, WRITE)]),
        // Transmit buffer outside guest RAM.
        (1, vec![(0x4000, 12, 0), (0x7fff_0000, 60, 0)]),
        // Receive buffer the device may only read.
        (0, vec![(0x5000, 12, WRITE), (0x6000, 1514, 0)]),
        // Receive buffer outside guest RAM.
        (0, vec![(0x7fff_0000, 1526, WRITE)]),
    ];
    for (q, chain) in cases {
        let mut d = Driver::new();
        d.mem
            .write_slice(&[0x11; 64], GuestAddress(0x6000))
            .unwrap();
        d.input.push(frame(60, 8));
        d.post(q, 0, &chain);
        assert!(d.broken(), "queue {q}: {chain:?}");
        assert!(d.sent.frames().is_empty(), "nothing sent for {chain:?}");
        assert_eq!(d.read(0x6000, 64), [0x11; 64], "no stray write");
        assert_eq!(d.rd(0x60) & 2, 2, "config-change interrupt");
        // A broken device ignores further work until reset.
        d.post(1, 4, &[(0x4000, 72, 0)]);
        assert!(d.sent.frames().is_empty());
        // Reset and set up again: it works.
        d.wr(0x70, 0);
        assert!(!d.broken());
    }
}
