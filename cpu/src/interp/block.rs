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

use super::cpu::{Cpu, StepResult, Stop};
use super::exec::Outcome;
use super::fastop::{self, FastOp};
use super::mem::Exception;
use super::state::flags::ARITH;

/// Most instructions in one block.
const MAX_OPS: usize = 48;
/// Number of cache slots (a power of two).
const SLOTS: usize = 1 << 14;

/// One instruction of a block.
#[derive(Clone, Copy)]
pub(super) struct Slot {
    pub(super) op: FastOp,
    /// Linear RIP of the instruction.
    pub(super) rip: u64,
    /// RIP of the next instruction.
    pub(super) next: u64,
    /// Index into `Block::generic` for `FastOp::Generic`.
    generic: u16,
    /// How the slot runs.
    pub(super) kind: SlotKind,
    /// A generic instruction that stores to memory (it may write code).
    writes_memory: bool,
}

/// How a slot runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum SlotKind {
    /// A fast op that stores nothing (or only to the stack).
    Fast,
    /// A fast op that stores through a memory operand.
    Store,
    /// Through `Cpu::execute`.
    Generic,
}

/// Most code bytes in one block (kept inline, next to the key, so the
/// entry check touches one allocation).
const CODE_MAX: usize = 120;

/// A decoded run of code.
pub struct Block {
    pa: u64,
    pub(super) rip: u64,
    bitness: u32,
    pub(super) code_len: u32,
    code: [u8; CODE_MAX],
    /// The last instruction needs the vCPU loop next (`ends_chain`).
    ends_chain: bool,
    pub(super) slots: Vec<Slot>,
    generic: Vec<Instruction>,
    /// The compiled tier's state for this block (its code dies with it).
    pub(super) jit: super::jit::BlockJit,
}

impl Block {
    /// The code bytes the block was decoded from.
    fn code(&self) -> &[u8] {
        &self.code[..self.code_len as usize]
    }
}

/// The block cache (one per vCPU), direct-mapped.
pub struct BlockCache {
    table: Vec<Option<Box<Block>>>,
    /// The compiled tier (code arena, compiler, policy).
    pub(super) jit: super::jit::Jit,
}

impl Default for BlockCache {
    fn default() -> Self {
        BlockCache {
            table: (0..SLOTS).map(|_| None).collect(),
            jit: Default::default(),
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
    ((pa ^ (pa >> 14)) as usize) & (SLOTS - 1)
}

/// Whether execution must leave the block after `i`: control transfers,
/// and instructions that change the mode, paging, interrupt state or
/// talk to devices (so pending interrupts are looked at promptly).
fn ends_block(i: &Instruction) -> bool {
    i.flow_control() != FlowControl::Next || ends_chain(i)
}

/// Whether, after `i`, execution must go back to the vCPU loop rather
/// than chain into the next block: `i` may change the interrupt state
/// (IF, TPR, the interrupt controllers) or the mode, so the loop must look
/// at pending interrupts at once, exactly as after a single step.
fn ends_chain(i: &Instruction) -> bool {
    use Mnemonic as M;
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
    let mut last_ends_chain = false;
    let mask = match bitness {
        64 => u64::MAX,
        32 => 0xffff_ffff,
        _ => 0xffff,
    };
    while slots.len() < MAX_OPS && dec.can_decode() {
        let i = dec.decode();
        if i.is_invalid() || len + i.len() > CODE_MAX {
            // Undefined, or crossing the page: left to the single-step
            // path; or the block is full.
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
        let kind = if op == FastOp::Generic {
            SlotKind::Generic
        } else if op.store_target().is_some() {
            SlotKind::Store
        } else {
            SlotKind::Fast
        };
        // Stores name their memory destination first (MOV, string
        // stores, XCHG/CMPXCHG/XADD, SETcc, FXSAVE, POP m, ...).
        let writes_memory = kind == SlotKind::Generic
            && i.op_count() > 0
            && matches!(
                i.op_kind(0),
                OpKind::Memory
                    | OpKind::MemoryESDI
                    | OpKind::MemoryESEDI
                    | OpKind::MemoryESRDI
                    | OpKind::MemorySegDI
                    | OpKind::MemorySegEDI
                    | OpKind::MemorySegRDI
            );
        slots.push(Slot {
            writes_memory,
            kind,
            op,
            rip: i.ip(),
            next: i.next_ip() & mask,
            generic: g,
        });
        len += i.len();
        if ends_block(&i) {
            // Fast branches chain on; any other block end (IRET, SYSRET,
            // far jumps, INT n, ... even back to the next instruction)
            // goes back to the vCPU loop, as after a single step.
            last_ends_chain = op == FastOp::Generic || ends_chain(&i);
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
    let mut code = [0u8; CODE_MAX];
    code[..len].copy_from_slice(&bytes[..len]);
    Some(Box::new(Block {
        pa,
        rip,
        bitness,
        code_len: len as u32,
        code,
        ends_chain: last_ends_chain,
        slots,
        generic,
        jit: Default::default(),
    }))
}

/// Whether the `code.len()` bytes at `at` equal `code`.
///
/// # Safety
/// `at` must be readable for `code.len()` bytes.
#[inline]
unsafe fn same_code(at: *const u8, code: &[u8]) -> bool {
    let mut k = 0;
    while k + 8 <= code.len() {
        // SAFETY: in bounds of both (caller's contract for `at`).
        let (a, b) = unsafe {
            (
                std::ptr::read_unaligned(at.add(k) as *const u64),
                std::ptr::read_unaligned(code.as_ptr().add(k) as *const u64),
            )
        };
        if a != b {
            return false;
        }
        k += 8;
    }
    while k < code.len() {
        // SAFETY: as above.
        if unsafe { *at.add(k) } != code[k] {
            return false;
        }
        k += 1;
    }
    true
}

/// What running a block did.
#[derive(Debug)]
pub enum BlockRun {
    /// No block could run here (not RAM, an instruction crossing the page,
    /// an undefined opcode, or a fetch fault): single-step instead.
    NotRun,
    /// `n` instructions retired; the result as `Cpu::step` gives it.
    Ran(u64, StepResult),
}

impl Cpu {
    /// Run cached blocks from RIP, chained, until about `max` instructions
    /// have retired (exactly `max` at most when `exact`, cutting a block
    /// short if need be), or something needs the vCPU loop: a halt, an
    /// interrupt shadow, a triple fault, or code no block can hold.
    pub fn run_block(&mut self, max: u64, exact: bool) -> BlockRun {
        let mut done = 0u64;
        loop {
            let Some((slot, blk, at)) = self.lookup_block() else {
                return if done == 0 {
                    BlockRun::NotRun
                } else {
                    BlockRun::Ran(done, Ok((None, false)))
                };
            };
            let (mut n, mut r, mut clean) = self.exec_block(&blk, at, max - done, exact);
            done += n;
            // A block that loops to itself runs again at once: it holds no
            // generic instruction and stored nothing into its own code, so
            // its bytes are still the ones checked on entry.
            while clean
                && done < max
                && self.st.rip == blk.rip
                && blk.generic.is_empty()
                && (!exact || max - done >= blk.slots.len() as u64)
            {
                (n, r, clean) = self.exec_block(&blk, at, max - done, exact);
                done += n;
            }
            let chain = !blk.ends_chain;
            self.blocks.table[slot] = Some(blk);
            if !clean || !chain || done >= max {
                return BlockRun::Ran(done, r);
            }
        }
    }

    /// The valid cached block at RIP (built if need be), its slot (it is
    /// taken out of the cache while it runs) and the host address of its
    /// code.
    #[inline]
    fn lookup_block(&mut self) -> Option<(usize, Box<Block>, usize)> {
        let bitness = self.st.bitness();
        let (pa, host) = self.code_page().ok()?;
        if host == 0 {
            return None;
        }
        let rip = self.st.rip;
        let off = (pa & 0xfff) as usize;
        let slot = slot_of(pa);
        let blk = match self.blocks.table[slot].take() {
            Some(b)
                if b.pa == pa
                    && b.rip == rip
                    && b.bitness == bitness
                    // SAFETY: `host` maps the whole code page and the
                    // block never extends past the page end.
                    && unsafe { same_code((host + off) as *const u8, b.code()) } =>
            {
                b
            }
            _ => build(host, off, pa, rip, bitness)?,
        };
        Some((slot, blk, host + off))
    }

    /// Run `blk`, or its first `max` instructions when `exact`: how many
    /// retired, the result as `Cpu::step` gives it, and whether execution
    /// simply went on (end of block or a branch) so another block may
    /// follow at once.
    fn exec_block(
        &mut self,
        blk: &Block,
        at: usize,
        max: u64,
        exact: bool,
    ) -> (u64, StepResult, bool) {
        if exact && max < blk.slots.len() as u64 {
            self.exec_slots::<true>(blk, at, max.max(1) as usize)
        } else if let Some(r) = self.run_compiled(blk, at, max, exact) {
            r
        } else {
            self.exec_slots::<false>(blk, at, blk.slots.len())
        }
    }

    /// Run the first `n` slots; `PARTIAL`: the block stops inside, so
    /// every op computes its flags.
    #[inline(always)]
    fn exec_slots<const PARTIAL: bool>(
        &mut self,
        blk: &Block,
        at: usize,
        n: usize,
    ) -> (u64, StepResult, bool) {
        for k in 0..n {
            if let Some((r, clean)) = self.exec_slot::<PARTIAL>(blk, at, k) {
                return (k as u64 + 1, r, clean);
            }
        }
        self.st.rip = blk.slots[n - 1].next;
        (n as u64, Ok((None, false)), !PARTIAL)
    }

    /// Run slot `k` of `blk` (RIP is set when the block ends here):
    /// `None` when execution goes on with slot `k + 1`, else the result as
    /// `Cpu::step` gives it and whether another block may follow at once.
    #[inline(always)]
    pub(super) fn exec_slot<const PARTIAL: bool>(
        &mut self,
        blk: &Block,
        at: usize,
        k: usize,
    ) -> Option<(StepResult, bool)> {
        let s = &blk.slots[k];
        let r = match s.kind {
            SlotKind::Fast if !PARTIAL => self.exec_fast(&s.op, s.next),
            SlotKind::Fast => self.exec_fast(&Self::exact(s.op), s.next),
            SlotKind::Store => {
                // A store into this very block's code ends the block,
                // so the next instruction is decoded afresh (as on
                // hardware). Blocks with stores are 64-bit code: the
                // linear address of the code is its RIP.
                let m = s.op.store_target().expect("store slot");
                let la = self.fast_la(m);
                let op = if PARTIAL { Self::exact(s.op) } else { s.op };
                let r = self.exec_fast(&op, s.next);
                if r.is_ok() && la.wrapping_sub(blk.rip) < u64::from(blk.code_len) + 8 {
                    self.st.rip = s.next;
                    return Some((Ok((None, false)), false));
                }
                r
            }
            SlotKind::Generic => {
                let i = &blk.generic[s.generic as usize];
                self.st.rip = s.next;
                match self.execute(i) {
                    Ok(Outcome::Next) => {
                        if self.st.rip != s.next {
                            return Some((Ok((None, false)), false));
                        }
                        if s.writes_memory {
                            // It may have patched the rest of this very
                            // block (Linux's text_poke_early patches the
                            // instruction after its own REP MOVSB):
                            // decode afresh if so, as hardware does.
                            let k = s.next.wrapping_sub(blk.rip) as usize;
                            let rest = &blk.code()[k.min(blk.code().len())..];
                            // SAFETY: `at` maps the block's code, which
                            // lies within one guest RAM page.
                            if !unsafe { same_code((at + k) as *const u8, rest) } {
                                return Some((Ok((None, false)), true));
                            }
                        }
                        Ok(false)
                    }
                    Ok(Outcome::Shadow) => return Some((Ok((None, true)), false)),
                    Ok(Outcome::Halt) => return Some((Ok((Some(Stop::Halt), false)), false)),
                    Err(e) => Err(e),
                }
            }
        };
        match r {
            Ok(false) => None,
            Ok(true) => Some((Ok((None, false)), !PARTIAL)),
            Err(e) => Some((self.fault_at(s.rip, e), false)),
        }
    }

    /// `op`, with its flags computed even where they were found dead.
    fn exact(mut op: FastOp) -> FastOp {
        op.keep_flags();
        op
    }

    pub(super) fn fault_at(&mut self, rip: u64, e: Exception) -> StepResult {
        self.st.rip = rip;
        self.raise(e).map(|_| (None, false))
    }
}
