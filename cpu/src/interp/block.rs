//! The block engine: straight runs of guest code (up to a branch, a
//! mode-changing instruction or the end of the page) decoded once into
//! [`FastOp`]s and cached by physical address, linear RIP and code size.
//!
//! A block runs only while its code page's generation in the shared
//! code-page tracker (`codemap`) still equals the stamp it was built with:
//! every store to guest RAM, by any vCPU or device, reports itself there,
//! so code patched through any mapping or by DMA is decoded afresh, and a
//! block entry costs one load instead of a comparison of its code bytes.
//! (A block still compares its bytes once, on its second entry: that covers
//! another vCPU's store that raced with the decode from the writer's store
//! buffer.) Flags no later instruction of the block reads are not computed
//! (dead-flag elimination within a block; the flags at the block's end are
//! always exact).

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind};

use super::codemap::CodePages;
use super::cpu::{Cpu, StepResult, Stop};
use super::exec::Outcome;
use super::fastop::{self, FastOp};
use super::mem::Exception;
use super::shared_ram;
use super::state::flags::ARITH;

/// Most instructions in one block.
const MAX_OPS: usize = 48;
/// Number of cache slots until `-accel tcg,tb-size=` says otherwise.
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

/// Most code bytes in one block.
const CODE_MAX: usize = 120;

/// A decoded run of code.
pub struct Block {
    pub(super) pa: u64,
    pub(super) rip: u64,
    pub(super) bitness: u32,
    code_len: u32,
    /// The code page's index in the code-page tracker.
    pub(super) page: usize,
    /// The page's generation when the block was decoded.
    pub(super) stamp: u64,
    /// The code bytes were compared once more after the decode (on the
    /// second entry).
    verified: bool,
    code: [u8; CODE_MAX],
    /// The last instruction needs the vCPU loop next (`ends_chain`).
    pub(super) ends_chain: bool,
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
    /// `table.len() - 1` (the length is a power of two).
    mask: usize,
    /// The compiled tier (code arena, compiler, policy).
    pub(super) jit: super::jit::Jit,
}

impl Default for BlockCache {
    fn default() -> Self {
        Self::with_slots(SLOTS)
    }
}

impl BlockCache {
    /// An empty cache of `slots` (a power of two) slots.
    pub fn with_slots(slots: usize) -> Self {
        debug_assert!(slots.is_power_of_two());
        BlockCache {
            table: std::iter::repeat_with(|| None).take(slots).collect(),
            mask: slots - 1,
            jit: super::jit::Jit::with_slots(slots),
        }
    }

    /// The slot a block at physical address `pa` lives in.
    #[inline]
    pub(super) fn slot_of(&self, pa: u64) -> usize {
        ((pa ^ (pa >> 14)) as usize) & self.mask
    }
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCache").finish_non_exhaustive()
    }
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

/// Decode a block from the code page at `host` (RAM page `page` of the
/// code-page tracker), starting at page offset `off`, linear `rip`, and
/// stamp it with the page's generation.
fn build(
    code_pages: &CodePages,
    page: usize,
    host: usize,
    off: usize,
    pa: u64,
    rip: u64,
    bitness: u32,
) -> Option<Box<Block>> {
    // A private copy of the code bytes to decode (another vCPU may store to
    // the page meanwhile: at worst a block the check below or the entry
    // check rejects). At most a full block plus one instruction is needed.
    let mut buf = [0u8; CODE_MAX + 15];
    let n = (0x1000 - off).min(buf.len());
    // SAFETY: `host` maps a whole 4 KiB page of guest RAM and
    // `off + n <= 0x1000`; read through `shared_ram`, never a slice.
    unsafe { shared_ram::copy((host + off) as *const u8, buf.as_mut_ptr(), n) };
    let bytes = &buf[..n];
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
        slots.push(Slot {
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
    // Mark the bytes as code, then check they are still what was decoded:
    // a store that landed meanwhile either shows here or bumps the stamp.
    let stamp = code_pages.stamp(page, off, len);
    // SAFETY: `host + off` maps `len` bytes of the page (decoded above).
    if !unsafe { same_code((host + off) as *const u8, &code[..len]) } {
        return None;
    }
    Some(Box::new(Block {
        pa,
        rip,
        bitness,
        code_len: len as u32,
        page,
        stamp,
        verified: false,
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
                shared_ram::load(at.add(k), 8),
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
        if unsafe { shared_ram::load(at.add(k), 1) } as u8 != code[k] {
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
            let Some((slot, blk)) = self.lookup_block() else {
                return if done == 0 {
                    BlockRun::NotRun
                } else {
                    BlockRun::Ran(done, Ok((None, false)))
                };
            };
            self.jit_link(slot, &blk, blk.verified);
            let (mut n, mut r, mut clean) = self.exec_block(&blk, max - done, exact);
            done += n;
            // A block that loops to itself runs again at once (no lookup):
            // it holds no generic instruction, and its page is unchanged.
            while clean
                && done < max
                && self.st.rip == blk.rip
                && blk.generic.is_empty()
                && (!exact || max - done >= blk.slots.len() as u64)
                && self.ram.code().generation(blk.page) == blk.stamp
            {
                (n, r, clean) = self.exec_block(&blk, max - done, exact);
                done += n;
            }
            let chain = !blk.ends_chain;
            self.blocks.table[slot] = Some(blk);
            if !clean || !chain || done >= max {
                return BlockRun::Ran(done, r);
            }
        }
    }

    /// The valid cached block at RIP (built if need be) and its slot (it is
    /// taken out of the cache while it runs).
    #[inline]
    fn lookup_block(&mut self) -> Option<(usize, Box<Block>)> {
        let bitness = self.st.bitness();
        let (pa, host) = self.code_page().ok()?;
        if host == 0 {
            return None;
        }
        let rip = self.st.rip;
        let off = (pa & 0xfff) as usize;
        let slot = self.blocks.slot_of(pa);
        let blk = match self.blocks.table[slot].take() {
            Some(mut b)
                if b.pa == pa
                    && b.rip == rip
                    && b.bitness == bitness
                    && self.ram.code().generation(b.page) == b.stamp
                    && (b.verified
                        // SAFETY: `host` maps the whole code page and the
                        // block never extends past the page end.
                        || unsafe { same_code((host + off) as *const u8, b.code()) }) =>
            {
                b.verified = true;
                b
            }
            _ => {
                // Whatever held the slot is dropped: compiled code must no
                // longer chain into it.
                self.jit_forget(slot);
                let page = self.ram.code().page(pa)?;
                build(self.ram.code(), page, host, off, pa, rip, bitness)?
            }
        };
        Some((slot, blk))
    }

    /// Run `blk`, or its first `max` instructions when `exact`: how many
    /// retired, the result as `Cpu::step` gives it, and whether execution
    /// simply went on (end of block or a branch) so another block may
    /// follow at once.
    fn exec_block(&mut self, blk: &Block, max: u64, exact: bool) -> (u64, StepResult, bool) {
        if exact && max < blk.slots.len() as u64 {
            self.exec_slots::<true>(blk, max.max(1) as usize)
        } else if let Some(r) = self.run_compiled(blk, max, exact) {
            r
        } else {
            self.exec_slots::<false>(blk, blk.slots.len())
        }
    }

    /// Run the first `n` slots; `PARTIAL`: the block stops inside, so
    /// every op computes its flags.
    #[inline(always)]
    fn exec_slots<const PARTIAL: bool>(
        &mut self,
        blk: &Block,
        n: usize,
    ) -> (u64, StepResult, bool) {
        for k in 0..n {
            if let Some((r, clean)) = self.exec_slot::<PARTIAL>(blk, k) {
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
        k: usize,
    ) -> Option<(StepResult, bool)> {
        let s = &blk.slots[k];
        let r = match s.kind {
            SlotKind::Fast if !PARTIAL => self.exec_fast(&s.op, s.next),
            SlotKind::Fast => self.exec_fast(&Self::exact(s.op), s.next),
            SlotKind::Store => {
                // A store into this block's code page (a chunk holding
                // code) ends the block, so the next instruction is
                // decoded afresh (as on hardware).
                let op = if PARTIAL { Self::exact(s.op) } else { s.op };
                let r = self.exec_fast(&op, s.next);
                if r.is_ok() && self.ram.code().generation(blk.page) != blk.stamp {
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
                        if self.ram.code().generation(blk.page) != blk.stamp {
                            // It may have patched the rest of this very
                            // block (Linux's text_poke_early patches the
                            // instruction after its own REP MOVSB):
                            // decode afresh, as hardware does.
                            return Some((Ok((None, false)), true));
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
