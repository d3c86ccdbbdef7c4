//! Page-at-a-time REP MOVS and REP STOS: whole runs of elements that stay
//! within one source and one destination page of RAM are copied or filled
//! with one host operation instead of one interpreted element at a time.
//! Everything else (MMIO, page crossings inside an element, DF=1, address
//! wrap-around) is left to the element-by-element loop.

use iced_x86::{Instruction, Mnemonic};

use super::alu::mask;
use super::cpu::Cpu;
use super::mem::{Access, Exception};
use super::state::flags::DF;
use super::state::Seg;

impl Cpu {
    /// Do up to `budget` elements of a forward REP MOVS/STOS in bulk;
    /// returns how many were done (0: let the element loop take over).
    pub(super) fn rep_string_bulk(
        &mut self,
        i: &Instruction,
        size: usize,
        addr_bits: u32,
        budget: u32,
    ) -> Result<u32, Exception> {
        let movs = matches!(
            i.mnemonic(),
            Mnemonic::Movsb | Mnemonic::Movsw | Mnemonic::Movsd | Mnemonic::Movsq
        );
        let amask = mask(addr_bits);
        let count = self.st.gpr[1] & amask;
        if self.st.rflags & DF != 0 || count == 0 {
            return Ok(0);
        }
        let di = self.st.gpr[7] & amask;
        let si = self.st.gpr[6] & amask;
        // No wrap of the index registers within the run.
        let room_di = (amask - di) / size as u64;
        let room_si = if movs {
            (amask - si) / size as u64
        } else {
            u64::MAX
        };
        let dst_la = self.linear(Seg::Es, di);
        let src_seg = Seg::from_reg(i.memory_segment()).unwrap_or(Seg::Ds);
        let src_la = self.linear(src_seg, si);
        let in_page = |la: u64| (0x1000 - (la & 0xfff)) / size as u64;
        let mut n = count
            .min(u64::from(budget))
            .min(room_di)
            .min(room_si)
            .min(in_page(dst_la));
        if movs {
            n = n.min(in_page(src_la));
        }
        if n == 0 {
            return Ok(0);
        }
        let bytes = n as usize * size;
        let dst = self.host_for(dst_la, bytes, Access::Write)?;
        let src = if movs {
            self.host_for(src_la, bytes, Access::Read)?
        } else {
            None
        };
        let Some((dst, store)) = dst else {
            return Ok(0);
        };
        if movs {
            let Some((src, _)) = src else { return Ok(0) };
            let (s, d) = (src as usize, dst as usize);
            if d > s && d < s + bytes {
                // Overlap with the destination ahead: the hardware's
                // element order replicates the source; do it in order.
                for k in 0..bytes {
                    // SAFETY: both ranges were checked to be RAM of `bytes`.
                    unsafe { *dst.add(k) = *src.add(k) };
                }
            } else {
                // SAFETY: as above; `copy` allows any other overlap.
                unsafe { std::ptr::copy(src, dst, bytes) };
            }
            self.st.gpr[6] = (self.st.gpr[6] & !amask) | ((si + bytes as u64) & amask);
        } else {
            let v = self.st.gpr[0].to_le_bytes();
            for k in 0..n as usize {
                // SAFETY: the destination was checked to be RAM of `bytes`.
                unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), dst.add(k * size), size) };
            }
        }
        self.ram.stored(store);
        self.st.gpr[7] = (self.st.gpr[7] & !amask) | ((di + bytes as u64) & amask);
        self.st.gpr[1] = (self.st.gpr[1] & !amask) | ((count - n) & amask);
        Ok(n as u32)
    }

    /// The host address of `bytes` bytes at `la` (one page), translated
    /// for `access`, and the range to report if it is stored to; `None`
    /// when they are not RAM.
    fn host_for(
        &mut self,
        la: u64,
        bytes: usize,
        access: Access,
    ) -> Result<Option<(*mut u8, super::ram::Store)>, Exception> {
        let pa = match self.st.tlb_hit(la, access) {
            Some(pa) => pa,
            None => {
                let mmu = crate::interp_mmu!(self);
                mmu.translate(&mut self.st, la, access)?
            }
        };
        Ok(self.ram.host_for_store(pa, bytes))
    }
}
