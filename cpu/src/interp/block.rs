//! The block engine: straight runs of guest code (up to a branch, a
//! mode-changing instruction or the end of the page) decoded once into
//! [`FastOp`]s and cached by physical address, linear RIP and code size.
//!
//! A block keeps a copy of its code bytes and runs only while guest memory
//! still holds them (checked once per entry), so code patched through any
//! mapping or by DMA is decoded afresh. Flags no later instruction of the
//! block reads are not computed (dead-flag elimination within a block; the
//! flags at the block's end are always exact).

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind};

use super::cpu::{Cpu, Stop};
use super::exec::Outcome;
use super::fastop::{self, FastOp};
use super::mem::Exception;
use super::state::flags::ARITH;

/// Most instructions in one block.
const MAX_OPS: usize = 48;
/// Number of cache slots (a power of two).
const SLOTS: usize = 1 << 13;

/// One instruction of a block.
#[derive(Clone, Copy)]
struct Slot {
    op: FastOp,
    /// Linear RIP of the instruction.
    rip: u64,
    /// RIP of the next instruction.
    next: u64,
    /// Index into `Block::generic` for `FastOp::Generic`.
    generic: u16,
}

/// A decoded run of code.
pub struct Block {
    pa: u64,
    rip: u64,
    bitness: u32,
    code: Vec<u8>,
    slots: Vec<Slot>,
    generic: Vec<Instruction>,
}

/// The block cache (one per vCPU), direct-mapped.
pub struct BlockCache {
    table: Vec<Option<Box<Block>>>,
}

impl Default for BlockCache {
    fn default() -> Self {
        BlockCache {
            table: (0..SLOTS).map(|_| None).collect(),
        }
    }
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCache").finish_non_exhaustive()
    }
}

#[inline]
fn slot_of(pa: u64) -> usize {
    ((pa ^ (pa >> 13)) as usize) & (SLOTS - 1)
}

/// Whether execution must leave the block after `i`: control transfers,
/// and instructions that change the mode, paging, interrupt state or
/// talk to devices (so pending interrupts are looked at promptly).
fn ends_block(i: &Instruction) -> bool {
    use Mnemonic as M;
    if i.flow_control() != FlowControl::Next {
        return true;
    }
    let writes_special = i.op_count() > 0
        && i.op_kind(0) == OpKind::Register
        && (i.op_register(0).is_cr()
            || i.op_register(0).is_dr()
            || i.op_register(0).is_segment_register());
    writes_special
        || matches!(
            i.mnemonic(),
            M::Hlt
                | M::Sti
                | M::Cli
                | M::Popf
                | M::Popfd
                | M::Popfq
                | M::Lgdt
                | M::Lidt
                | M::Lldt
                | M::Ltr
                | M::Lmsw
                | M::Clts
                | M::Wrmsr
                | M::Invlpg
                | M::Invpcid
                | M::Swapgs
                | M::Xsetbv
                | M::In
                | M::Out
                | M::Insb
                | M::Insw
                | M::Insd
                | M::Outsb
                | M::Outsw
                | M::Outsd
                | M::Monitor
                | M::Mwait
                | M::Rsm
                | M::Pause
        )
}

/// Decode a block from the code page at `host` (a RAM page), starting at
/// page offset `off`, linear `rip`.
fn build(host: usize, off: usize, pa: u64, rip: u64, bitness: u32) -> Option<Box<Block>> {
    // SAFETY: `host` maps a whole 4 KiB page of guest RAM; the slice is
    // only read, and guest code bytes may change under it (another vCPU),
    // which at worst yields a block the entry check later rejects.
    let page = unsafe { std::slice::from_raw_parts(host as *const u8, 0x1000) };
    let bytes = &page[off..];
    let mut dec = Decoder::with_ip(bitness, bytes, rip, DecoderOptions::NONE);
    let mut slots = Vec::new();
    let mut generic = Vec::new();
    let mut len = 0usize;
    let mask = match bitness {
        64 => u64::MAX,
        32 => 0xffff_ffff,
        _ => 0xffff,
    };
    while slots.len() < MAX_OPS && dec.can_decode() {
        let i = dec.decode();
        if i.is_invalid() {
            // Undefined, or crossing the page: left to the single-step path.
            break;
        }
        let op = if bitness == 64 {
            fastop::classify(&i)
        } else {
            FastOp::Generic
        };
        let g = if op == FastOp::Generic {
            generic.push(i);
            (generic.len() - 1) as u16
        } else {
            0
        };
        slots.push(Slot {
            op,
            rip: i.ip(),
            next: i.next_ip() & mask,
            generic: g,
        });
        len += i.len();
        if ends_block(&i) {
            break;
        }
    }
    if slots.is_empty() {
        return None;
    }
    // Dead flags: walking backwards, `live` holds the flags some later
    // instruction (or the code after the block) may read.
    let mut live = ARITH;
    for s in slots.iter_mut().rev() {
        let (mut reads, writes) = s.op.flag_use();
        if s.op.may_fault() {
            // Exceptions are precise: a handler sees the exact flags.
            reads |= ARITH;
        }
        if writes != 0 && writes & live == 0 {
            s.op.drop_flags();
        }
        live = (live & !writes) | reads;
    }
    Some(Box::new(Block {
        pa,
        rip,
        bitness,
        code: bytes[..len].to_vec(),
        slots,
        generic,
    }))
}

/// What running a block did.
#[derive(Debug)]
pub enum BlockRun {
    /// No block could run here (not RAM, an instruction crossing the page,
    /// an undefined opcode, or a fetch fault): single-step instead.
    NotRun,
    /// `n` instructions retired; the result as `Cpu::step` gives it.
    Ran(u64, Result<(Option<Stop>, bool), Stop>),
}

impl Cpu {
    /// Run up to `max` instructions as one cached block from RIP.
    pub fn run_block(&mut self, max: u64) -> BlockRun {
        let bitness = self.st.bitness();
        let Ok((pa, host)) = self.code_page() else {
            return BlockRun::NotRun;
        };
        if host == 0 {
            return BlockRun::NotRun;
        }
        let rip = self.st.rip;
        let off = (pa & 0xfff) as usize;
        let slot = slot_of(pa);
        let mut blk = match self.blocks.table[slot].take() {
            Some(b) if b.pa == pa && b.rip == rip && b.bitness == bitness => {
                // SAFETY: `host` maps the whole code page; the block never
                // extends past the page end.
                let now =
                    unsafe { std::slice::from_raw_parts((host + off) as *const u8, b.code.len()) };
                if now == &b.code[..] {
                    b
                } else {
                    match build(host, off, pa, rip, bitness) {
                        Some(b) => b,
                        None => return BlockRun::NotRun,
                    }
                }
            }
            _ => match build(host, off, pa, rip, bitness) {
                Some(b) => b,
                None => return BlockRun::NotRun,
            },
        };
        let r = self.exec_block(&mut blk, max);
        self.blocks.table[slot] = Some(blk);
        r
    }

    fn exec_block(&mut self, blk: &mut Block, max: u64) -> BlockRun {
        let n = blk.slots.len().min(max.max(1) as usize);
        let partial = n < blk.slots.len();
        // The block's code as linear addresses (same page, 64-bit mode:
        // no segment base) for the self-modifying-code check.
        let code_la = blk.rip;
        let code_len = blk.code.len() as u64;
        for (k, s) in blk.slots[..n].iter().enumerate() {
            let done = k as u64 + 1;
            let r = if s.op == FastOp::Generic {
                let i = &blk.generic[s.generic as usize];
                self.st.rip = s.next;
                match self.execute(i) {
                    Ok(Outcome::Next) => {
                        if self.st.rip != s.next {
                            return BlockRun::Ran(done, Ok((None, false)));
                        }
                        Ok(false)
                    }
                    Ok(Outcome::Shadow) => return BlockRun::Ran(done, Ok((None, true))),
                    Ok(Outcome::Halt) => return BlockRun::Ran(done, Ok((Some(Stop::Halt), false))),
                    Err(e) => Err(e),
                }
            } else if let Some(m) = s.op.store_target() {
                // A store into this very block's code ends the block, so
                // the next instruction is decoded afresh (as on hardware).
                let la = self.fast_la(m);
                let r = self.exec_fast(&Self::exact(s.op, partial), s.next);
                if r.is_ok() && la.wrapping_sub(code_la) < code_len + 8 {
                    self.st.rip = s.next;
                    return BlockRun::Ran(done, Ok((None, false)));
                }
                r
            } else if partial {
                // Stopping inside the block: the flags must be exact here.
                self.exec_fast(&Self::exact(s.op, partial), s.next)
            } else {
                self.exec_fast(&s.op, s.next)
            };
            match r {
                Ok(false) => {}
                Ok(true) => return BlockRun::Ran(done, Ok((None, false))),
                Err(e) => return BlockRun::Ran(done, self.fault_at(s.rip, e)),
            }
        }
        self.st.rip = blk.slots[n - 1].next;
        BlockRun::Ran(n as u64, Ok((None, false)))
    }

    /// `op`, with its flags computed when the block stops inside.
    fn exact(mut op: FastOp, partial: bool) -> FastOp {
        if partial {
            op.keep_flags();
        }
        op
    }

    fn fault_at(&mut self, rip: u64, e: Exception) -> Result<(Option<Stop>, bool), Stop> {
        self.st.rip = rip;
        self.raise(e).map(|_| (None, false))
    }
}
