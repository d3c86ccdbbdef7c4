//! Reporting device writes to guest RAM: after a device has put chains on
//! a used ring, the device-writable buffers of each newly used chain are
//! reported to the backend (the software CPU invalidates code decoded from
//! them, so a disk read over code that already ran is seen). Devices write
//! only into device-writable descriptors, so this covers every virtio
//! device in one place. Only split rings with direct descriptors are
//! offered (no VIRTIO_F_INDIRECT_DESC), so the walk needs nothing else.

use cpu::{GuestMemory, GuestWrites};
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};

const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;

/// Report the writable buffers of the chains used since `from` (the used
/// index before the device ran). A malformed chain (a loop, an index out
/// of the table) ends its walk: the device has already rejected it.
pub(super) fn report_used(q: &Queue, mem: &GuestMemory, from: u16, writes: &dyn GuestWrites) {
    let size = q.size();
    if size == 0 {
        return;
    }
    let mut idx = from;
    while idx != q.next_used() {
        let elem = q.used_ring() + 4 + 8 * u64::from(idx % size);
        idx = idx.wrapping_add(1);
        let Ok(mut head) = mem.read_obj::<u32>(GuestAddress(elem)) else {
            continue;
        };
        for _ in 0..size {
            if head >= u32::from(size) {
                break;
            }
            let d = q.desc_table() + 16 * u64::from(head);
            let (Ok(addr), Ok(len), Ok(flags), Ok(next)) = (
                mem.read_obj::<u64>(GuestAddress(d)),
                mem.read_obj::<u32>(GuestAddress(d + 8)),
                mem.read_obj::<u16>(GuestAddress(d + 12)),
                mem.read_obj::<u16>(GuestAddress(d + 14)),
            ) else {
                break;
            };
            if flags & DESC_F_WRITE != 0 {
                writes.written(addr, u64::from(len));
            }
            if flags & DESC_F_NEXT == 0 {
                break;
            }
            head = u32::from(next);
        }
    }
}
