//! The decoded-instruction cache: a direct-mapped table keyed by physical
//! address, linear RIP and code size. Each entry keeps the instruction's
//! bytes, and a hit is used only if guest memory still holds them, so code
//! patched through any mapping (or overwritten by DMA) is decoded afresh.

use iced_x86::Instruction;

/// Number of entries (a power of two).
const ENTRIES: usize = 1 << 15;

/// One cached decode.
#[derive(Clone, Copy)]
struct Entry {
    pa: u64,
    rip: u64,
    bitness: u32,
    len: u32,
    bytes: [u8; 16],
    ins: Instruction,
}

/// The cache (one per vCPU).
pub struct DecodeCache {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for DecodeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodeCache").finish_non_exhaustive()
    }
}

impl Default for DecodeCache {
    fn default() -> Self {
        let empty = Entry {
            pa: u64::MAX,
            rip: 0,
            bitness: 0,
            len: 0,
            bytes: [0; 16],
            ins: Instruction::default(),
        };
        DecodeCache {
            entries: vec![empty; ENTRIES],
        }
    }
}

#[inline]
fn slot(pa: u64) -> usize {
    ((pa ^ (pa >> 15)) as usize) & (ENTRIES - 1)
}

impl DecodeCache {
    /// Copy the cached instruction at (`pa`, `rip`, `bitness`) into `out`
    /// if memory still holds its bytes; `code` is what memory holds at `pa`
    /// now, of which the first `valid` bytes are real (fewer than the
    /// instruction: a miss).
    #[inline]
    pub fn get_into(
        &self,
        pa: u64,
        rip: u64,
        bitness: u32,
        code: &[u8; 16],
        valid: usize,
        out: &mut Instruction,
    ) -> bool {
        let e = &self.entries[slot(pa)];
        let len = e.len as usize;
        if e.pa != pa || e.rip != rip || e.bitness != bitness || len > valid {
            return false;
        }
        let mask = (1u128 << (len * 8)) - 1;
        if (u128::from_le_bytes(e.bytes) ^ u128::from_le_bytes(*code)) & mask != 0 {
            return false;
        }
        // SAFETY: plain copy of a `Copy` value between valid references.
        unsafe { std::ptr::copy_nonoverlapping(&e.ins, out, 1) };
        true
    }

    /// Remember `ins`, decoded from the first `valid` bytes of `code` at
    /// (`pa`, `rip`, `bitness`).
    #[inline]
    pub fn insert(
        &mut self,
        pa: u64,
        rip: u64,
        bitness: u32,
        code: &[u8; 16],
        valid: usize,
        ins: Instruction,
    ) {
        let len = ins.len();
        if len > valid || len > 15 {
            return;
        }
        let e = &mut self.entries[slot(pa)];
        e.pa = pa;
        e.rip = rip;
        e.bitness = bitness;
        e.len = len as u32;
        e.bytes = *code;
        e.ins = ins;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions};

    impl DecodeCache {
        fn get(
            &self,
            pa: u64,
            rip: u64,
            b: u32,
            code: &[u8; 16],
            valid: usize,
        ) -> Option<Instruction> {
            let mut out = Instruction::default();
            self.get_into(pa, rip, b, code, valid, &mut out)
                .then_some(out)
        }
    }

    fn decode(code: &[u8], rip: u64) -> Instruction {
        Decoder::with_ip(64, code, rip, DecoderOptions::NONE).decode()
    }

    #[test]
    fn hits_only_with_the_same_key_and_bytes() {
        let mut c = DecodeCache::default();
        let mut code = [0u8; 16];
        code[..4].copy_from_slice(&[0x48, 0x01, 0xd8, 0x90]); // add rax, rbx; nop
        let ins = decode(&code, 0x1000);
        assert_eq!(ins.len(), 3);
        assert!(c.get(0x5000, 0x1000, 64, &code, 16).is_none());
        c.insert(0x5000, 0x1000, 64, &code, 16, ins);
        assert_eq!(c.get(0x5000, 0x1000, 64, &code, 16), Some(ins));
        // Bytes beyond the instruction do not matter.
        let mut other_tail = code;
        other_tail[3] = 0xcc;
        assert_eq!(c.get(0x5000, 0x1000, 64, &other_tail, 3), Some(ins));
        assert!(c.get(0x5000, 0x2000, 64, &code, 16).is_none(), "other RIP");
        assert!(c.get(0x5000, 0x1000, 32, &code, 16).is_none(), "other mode");
        let mut patched = code;
        patched[1] = 0x29;
        assert!(c.get(0x5000, 0x1000, 64, &patched, 16).is_none(), "patched");
        assert!(
            c.get(0x5000, 0x1000, 64, &code, 2).is_none(),
            "too few bytes"
        );
    }
}
