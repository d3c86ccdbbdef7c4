//! QEMU's `-accel tcg` knobs as the block engine reads them: `tb-size`
//! (the translation cache size, in MiB) sizes the block cache, and
//! `one-insn-per-tb=on` runs every instruction on its own (the
//! single-step executor: the block engine's reference mode, also
//! `KINDLING_NO_BLOCKS=1`).

/// QEMU's default `tb-size` for system emulation (since 5.0): 1 GiB, or an
/// eighth of the host's memory when that is less.
const DEFAULT_TB_MIB: u64 = 1024;
/// What one cached block costs, on average (the block, its decoded slots
/// and its table slot): the unit `tb-size` is divided by.
const BYTES_PER_BLOCK: u64 = 1024;
/// Fewest and most block-cache slots per vCPU.
const MIN_SLOTS: u64 = 1 << 10;
const MAX_SLOTS: u64 = 1 << 20;

/// The `-accel tcg` options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcgOptions {
    /// `tb-size=N` in MiB; 0: QEMU's default.
    pub tb_size_mib: u32,
    /// `one-insn-per-tb=on`.
    pub one_insn_per_tb: bool,
}

impl TcgOptions {
    /// The translation cache size in MiB, with QEMU's default applied.
    pub fn tb_mib(&self) -> u64 {
        if self.tb_size_mib != 0 {
            return u64::from(self.tb_size_mib);
        }
        match host_memory_mib() {
            Some(m) => DEFAULT_TB_MIB.min((m / 8).max(1)),
            None => DEFAULT_TB_MIB,
        }
    }

    /// Block-cache slots per vCPU for this cache size (a power of two).
    pub fn block_slots(&self) -> usize {
        let blocks = (self.tb_mib() << 20) / BYTES_PER_BLOCK;
        let n = blocks.clamp(MIN_SLOTS, MAX_SLOTS);
        // Round down to a power of two (the cache is indexed by mask).
        (1u64 << (63 - n.leading_zeros())) as usize
    }
}

/// The host's physical memory in MiB.
fn host_memory_mib() -> Option<u64> {
    // SAFETY: sysconf has no preconditions; it only reads system values.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    (pages > 0 && size > 0).then(|| (pages as u64).saturating_mul(size as u64) >> 20)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use vm_memory::{Bytes, GuestAddress};

    use super::*;
    use crate::interp::cpu::Cpu;
    use crate::interp::state::Seg;
    use crate::{Clock, ClockMode, GuestMemory};

    /// How many instructions one `step_block` retires on ten NOPs and a
    /// HLT (real mode), with `opts`.
    fn first_run(opts: &TcgOptions) -> u64 {
        let mem = Arc::new(GuestMemory::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap());
        mem.write_slice(&[0x90; 10], GuestAddress(0x1000)).unwrap();
        mem.write_slice(&[0xf4], GuestAddress(0x100a)).unwrap();
        let clock = Arc::new(Clock::new(ClockMode::Host, 1_000_000));
        let mut c = Cpu::new(0, mem, clock);
        c.configure(opts);
        c.st.seg[Seg::Cs as usize].base = 0;
        c.st.seg[Seg::Cs as usize].selector = 0;
        c.st.rip = 0x1000;
        c.step_block(1000, false).0
    }

    #[test]
    fn one_insn_per_tb_runs_one_instruction_at_a_time() {
        let mut o = TcgOptions::default();
        assert_eq!(first_run(&o), 11, "one block: the NOPs and the HLT");
        o.one_insn_per_tb = true;
        assert_eq!(first_run(&o), 1);
    }

    #[test]
    fn tb_size_sizes_the_block_cache_within_bounds() {
        let o = |mib| TcgOptions {
            tb_size_mib: mib,
            one_insn_per_tb: false,
        };
        assert_eq!(o(1).block_slots(), 1 << 10);
        assert_eq!(
            o(3).block_slots(),
            2 << 10,
            "rounded down to a power of two"
        );
        assert_eq!(o(64).block_slots(), 64 << 10);
        assert_eq!(o(4096).block_slots(), 1 << 20, "capped");
        let d = o(0);
        assert!(d.tb_mib() <= 1024 && d.tb_mib() >= 1, "QEMU's default");
        assert!(d.block_slots().is_power_of_two());
    }
}
