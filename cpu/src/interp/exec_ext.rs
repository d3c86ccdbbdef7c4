//! The other integer extensions of x86-64-v2/v3: MOVBE, CRC32 (SSE4.2's
//! integer instruction), RDRAND/RDSEED and RDFSBASE/RDGSBASE/WRFSBASE/
//! WRGSBASE.
//!
//! RDRAND and RDSEED draw from the host kernel's generator (`getrandom`),
//! which never runs dry once seeded: CF=1, the other arithmetic flags
//! clear. Under `-icount` they draw from a sequence seeded by the vCPU
//! index instead, so a run is repeatable instruction for instruction (as
//! QEMU's record/replay makes its guest random numbers). The FS/GS base instructions #UD unless CR4.FSGSBASE is set and
//! the CPU is in 64-bit mode, and a write of a non-canonical base is #GP(0).

use iced_x86::{Instruction, Mnemonic};

use super::cpu::Cpu;
use super::exec::Outcome;
use super::mem::Exception;
use super::state::flags::*;
use super::state::Seg;

type R<T> = Result<T, Exception>;

/// CR4.FSGSBASE: the FS/GS base instructions are enabled.
pub const CR4_FSGSBASE: u64 = 1 << 16;

/// Whether [`Cpu::exec_ext`] executes mnemonic `m`.
pub fn owns(m: Mnemonic) -> bool {
    use Mnemonic as M;
    matches!(
        m,
        M::Movbe
            | M::Crc32
            | M::Rdrand
            | M::Rdseed
            | M::Rdfsbase
            | M::Rdgsbase
            | M::Wrfsbase
            | M::Wrgsbase
    )
}

/// The CRC-32C (Castagnoli) table, bit-reflected polynomial 0x82F63B78.
const CRC32C_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[n] = c;
        n += 1;
    }
    t
};

/// CRC32 as the instruction computes it: `crc` updated with the low
/// `bytes` bytes of `data` (least significant first), CRC-32C,
/// bit-reflected, with no initial or final inversion.
pub fn crc32c(mut crc: u32, data: u64, bytes: usize) -> u32 {
    for b in &data.to_le_bytes()[..bytes] {
        crc = (crc >> 8) ^ CRC32C_TABLE[((crc ^ u32::from(*b)) & 0xff) as usize];
    }
    crc
}

/// `v`'s low `bits` bits in reversed byte order.
pub fn byte_swap(v: u64, bits: u32) -> u64 {
    match bits {
        16 => u64::from((v as u16).swap_bytes()),
        32 => u64::from((v as u32).swap_bytes()),
        _ => v.swap_bytes(),
    }
}

/// Whether `v` is canonical with 48-bit linear addresses.
pub fn canonical(v: u64) -> bool {
    ((v << 16) as i64 >> 16) as u64 == v
}

/// `bytes` random bytes from the host kernel, or None if it refused.
fn host_random(bytes: usize) -> Option<u64> {
    let mut b = [0u8; 8];
    let n = bytes.min(8);
    // SAFETY: getrandom writes at most `n` bytes into the live buffer `b`.
    let got = unsafe { libc::getrandom(b.as_mut_ptr().cast(), n, 0) };
    (got == n as isize).then(|| u64::from_le_bytes(b))
}

/// The `n`th value of vCPU `id`'s repeatable sequence (SplitMix64).
fn seeded_random(id: u32, n: u64) -> u64 {
    let mut z = (u64::from(id) << 48 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Cpu {
    /// Execute one of the instructions [`owns`] accepts.
    pub(super) fn exec_ext(&mut self, i: &Instruction) -> R<Outcome> {
        use Mnemonic as M;
        let m = i.mnemonic();
        match m {
            M::Movbe => {
                // Load (register destination) or store (memory destination).
                let bits = self.op_bits(i, 0);
                let v = self.read_op(i, 1)?;
                self.write_op(i, 0, byte_swap(v, bits))?;
            }
            M::Crc32 => {
                let bytes = (self.op_bits(i, 1) / 8) as usize;
                let crc = self.read_op(i, 0)? as u32;
                let data = self.read_op(i, 1)?;
                self.write_op(i, 0, u64::from(crc32c(crc, data, bytes)))?;
            }
            M::Rdrand | M::Rdseed => {
                let bytes = (self.op_bits(i, 0) / 8) as usize;
                let repeatable = matches!(
                    self.clock().mode(),
                    crate::ClockMode::InstructionCounted { .. }
                );
                self.random_draws += 1;
                let drawn = if repeatable {
                    let mask = u64::MAX >> (64 - 8 * bytes.clamp(1, 8));
                    Some(seeded_random(self.id, self.random_draws) & mask)
                } else {
                    host_random(bytes)
                };
                let (v, f) = match drawn {
                    Some(v) => (v, CF),
                    None => (0, 0),
                };
                self.write_op(i, 0, v)?;
                self.set_flags(f, ARITH);
            }
            _ => {
                if self.st.cr4 & CR4_FSGSBASE == 0 || !self.st.long64() {
                    return Err(Exception::UD);
                }
                let seg = if matches!(m, M::Rdfsbase | M::Wrfsbase) {
                    Seg::Fs
                } else {
                    Seg::Gs
                };
                if matches!(m, M::Rdfsbase | M::Rdgsbase) {
                    let v = self.st.seg[seg as usize].base;
                    self.write_op(i, 0, v)?;
                } else {
                    let v = self.read_op(i, 0)?;
                    if !canonical(v) {
                        return Err(Exception::gp(0));
                    }
                    self.st.seg[seg as usize].base = v;
                }
            }
        }
        Ok(Outcome::Next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_random_is_repeatable_and_differs_per_cpu_and_draw() {
        let a: Vec<u64> = (1..=64).map(|n| seeded_random(0, n)).collect();
        let b: Vec<u64> = (1..=64).map(|n| seeded_random(0, n)).collect();
        let c: Vec<u64> = (1..=64).map(|n| seeded_random(1, n)).collect();
        assert_eq!(a, b);
        let mut all: Vec<u64> = a.iter().chain(&c).copied().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 128, "no repeats within or across CPUs");
        // Roughly half the bits set: not a counter.
        let ones: u32 = a.iter().map(|v| v.count_ones()).sum();
        assert!((1800..2300).contains(&ones), "{ones}");
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // CRC-32C("123456789") = 0xE3069283 with the usual inversions.
        let mut crc = !0u32;
        for b in b"123456789" {
            crc = crc32c(crc, u64::from(*b), 1);
        }
        assert_eq!(!crc, 0xe306_9283);
        // Wider operands are the same bytes, least significant first.
        let word = u64::from_le_bytes(*b"12345678");
        let mut bytewise = 7u32;
        for b in b"12345678" {
            bytewise = crc32c(bytewise, u64::from(*b), 1);
        }
        assert_eq!(crc32c(7, word, 8), bytewise);
    }

    #[test]
    fn swaps_and_canonical_addresses() {
        assert_eq!(byte_swap(0x1122_3344_5566_7788, 16), 0x8877);
        assert_eq!(byte_swap(0x1122_3344_5566_7788, 32), 0x8877_6655);
        assert!(canonical(0xffff_8000_0000_0000));
        assert!(canonical(0x0000_7fff_ffff_ffff));
        assert!(!canonical(0x0000_8000_0000_0000));
    }

    #[test]
    fn host_randomness_varies() {
        let a = host_random(8);
        let b = host_random(8);
        assert!(a.is_some() && b.is_some());
        assert_ne!(a, b);
    }
}
