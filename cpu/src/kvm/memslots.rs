//! KVM memory slots: one per guest-RAM region at VM creation, and the
//! split that turns part of a slot into a read-only ROM (the reset-vector
//! ROM below 1 MiB, as QEMU maps its firmware).
//!
//! A ROM is the same host pages as the RAM around it, so the board writes
//! it through guest memory as before; only the guest's view changes: KVM
//! serves its reads and instruction fetches and turns its stores into MMIO
//! exits (`KVM_MEM_READONLY`), which the bus drops.

use kvm_bindings::{kvm_userspace_memory_region, KVM_MEM_READONLY};
use kvm_ioctls::VmFd;
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

use crate::{CpuError, GuestMemory};

/// The slots of one VM, as last given to KVM.
#[derive(Debug, Default)]
pub struct MemSlots {
    slots: Vec<kvm_userspace_memory_region>,
}

impl MemSlots {
    /// Map every region of `mem` into `vm`, one slot each.
    pub fn map(vm: &VmFd, mem: &GuestMemory) -> Result<Self, CpuError> {
        let mut s = MemSlots::default();
        for (slot, region) in mem.iter().enumerate() {
            s.set(
                vm,
                kvm_userspace_memory_region {
                    slot: slot as u32,
                    flags: 0,
                    guest_phys_addr: region.start_addr().0,
                    memory_size: region.len(),
                    userspace_addr: region.as_ptr() as u64,
                },
            )?;
        }
        Ok(s)
    }

    fn set(&mut self, vm: &VmFd, r: kvm_userspace_memory_region) -> Result<(), CpuError> {
        // SAFETY: every slot addresses (part of) a live mmap owned by the
        // board's guest memory, which stays alive as long as the VM; a
        // zero-sized slot deletes one.
        unsafe { vm.set_user_memory_region(r) }
            .map_err(|e| CpuError::kvm("KVM_SET_USER_MEMORY_REGION", e))?;
        self.slots.retain(|s| s.slot != r.slot);
        if r.memory_size > 0 {
            self.slots.push(r);
        }
        Ok(())
    }

    /// Make `[start, start + len)`, which must lie inside one slot, a
    /// read-only slot of its own: the slot is deleted and re-created as
    /// the part below, the ROM and the part above. Call it before any vCPU
    /// runs (no guest access may see the gap).
    pub fn protect(&mut self, vm: &VmFd, start: u64, len: u64) -> Result<(), CpuError> {
        let end = start.checked_add(len).ok_or(CpuError::Unsupported("kvm"))?;
        let Some(old) = self
            .slots
            .iter()
            .find(|s| s.guest_phys_addr <= start && end <= s.guest_phys_addr + s.memory_size)
            .copied()
        else {
            return Err(CpuError::Unsupported("kvm"));
        };
        let mut next = self.slots.iter().map(|s| s.slot).max().unwrap_or(0) + 1;
        let piece = |slot: u32, from: u64, to: u64, flags: u32| kvm_userspace_memory_region {
            slot,
            flags,
            guest_phys_addr: from,
            memory_size: to - from,
            userspace_addr: old.userspace_addr + (from - old.guest_phys_addr),
        };
        let old_end = old.guest_phys_addr + old.memory_size;
        self.set(vm, piece(old.slot, start, start, 0))?;
        let mut pieces = vec![piece(next, start, end, KVM_MEM_READONLY)];
        next += 1;
        if old.guest_phys_addr < start {
            pieces.push(piece(old.slot, old.guest_phys_addr, start, old.flags));
        }
        if end < old_end {
            pieces.push(piece(next, end, old_end, old.flags));
        }
        for p in pieces {
            self.set(vm, p)?;
        }
        Ok(())
    }
}
