//! The compiled tier: blocks of the block engine that run often are
//! compiled to host code with Cranelift. This module owns the policy (an
//! execution counter per block, the tier-up threshold, the on/off switch
//! read from the environment in one place, [`config`]) and runs compiled
//! blocks; `translate` turns a block into IR, `alu_ir` holds the flag
//! rules in IR, `code` the executable arena and `helpers` the callbacks
//! into the interpreter. All of the tier's unsafe code is here.
//!
//! A compiled block runs exactly as `exec_slots` would run it (same
//! retired count, same exits, precise faults), so `-icount` runs are
//! identical with the tier on or off; exact partial runs (`-icount`
//! stopping inside a block) stay in the interpreter.
//!
//! Self-modifying code: compiled code runs only for a block the engine
//! found valid (its page generation equals its stamp); its stores are
//! reported to the code-page tracker as the interpreter's are, a store
//! slot ends the block when the page generation changed, and a compiled
//! self-loop re-checks the generation before each run (`hostpages` has the
//! rules). A block invalidated by a generation change is rebuilt, and the
//! stale block's code is freed with it.
//!
//! Chaining: a compiled block's exits jump straight into the next
//! compiled block's code when a checked link (direct branches and
//! fall-through) or the indirect-branch cache (RET, indirect JMP/CALL)
//! says it is there and valid; `chain` owns the rules and the tables, the
//! dispatcher fills them after a miss. Every block entry checks the
//! instruction budget, so a chain stops where `run_block` would (exactly
//! at the budget under `-icount`), and the vCPU loop looks at interrupts,
//! timers and kicks as often as without chaining.

mod alu_ir;
mod chain;
mod code;
mod helpers;
mod hostpages;
mod translate;

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::Instant;

use super::block::Block;
use super::cpu::{Cpu, StepResult};
use code::{CodeArena, CodeHandle};
use helpers::JitCtx;
use translate::{Compiler, EXIT_END, EXIT_FAULT, EXIT_NEXT, EXIT_SHIFT, EXIT_SLOT, EXIT_STOP};

/// Size of one vCPU's code arena.
const ARENA_BYTES: usize = 32 << 20;
/// Executions before a block is compiled, unless configured.
const DEFAULT_THRESHOLD: u32 = 5000;

/// The tier's settings, from the environment: `KINDLING_NO_JIT=1` turns it
/// off; `KINDLING_JIT=1` turns it on; `KINDLING_JIT_THRESHOLD=N` turns it
/// on and compiles a block at its Nth execution (1: at once);
/// `KINDLING_JIT_OPT=none` picks Cranelift's non-optimizing level;
/// `KINDLING_JIT_CHAIN=0` keeps every compiled block returning to the
/// dispatcher (no chaining; for measurements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitConfig {
    /// Executions before compiling; 0 when the tier is off.
    pub threshold: u32,
    /// Cranelift's "speed" level (else "none").
    pub optimize: bool,
    /// Print the tier's counters to stderr now and then
    /// (`KINDLING_JIT_STATS=1`).
    pub stats: bool,
    /// Compiled blocks chain to each other.
    pub chain: bool,
}

/// The process-wide settings (read from the environment once).
pub fn config() -> JitConfig {
    static CONFIG: OnceLock<JitConfig> = OnceLock::new();
    *CONFIG.get_or_init(|| {
        let var = |k: &str| std::env::var(k).ok();
        let threshold = var("KINDLING_JIT_THRESHOLD").and_then(|v| v.parse::<u32>().ok());
        let on = var("KINDLING_JIT").is_some_and(|v| v == "1") || threshold.is_some();
        let off = var("KINDLING_NO_JIT").is_some_and(|v| v == "1");
        JitConfig {
            threshold: if on && !off {
                threshold.unwrap_or(DEFAULT_THRESHOLD).max(1)
            } else {
                0
            },
            optimize: var("KINDLING_JIT_OPT").is_none_or(|v| v != "none"),
            stats: var("KINDLING_JIT_STATS").is_some_and(|v| v == "1"),
            chain: var("KINDLING_JIT_CHAIN").is_none_or(|v| v != "0"),
        }
    })
}

/// Counters of the compiled tier (per vCPU).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitStats {
    /// Blocks compiled.
    pub compiled: u64,
    /// Blocks Cranelift could not compile (they stay interpreted).
    pub failed: u64,
    /// Nanoseconds spent compiling.
    pub compile_ns: u64,
    /// Bytes of machine code produced.
    pub code_bytes: u64,
    /// Guest instructions retired in compiled code.
    pub retired: u64,
    /// Arena flushes.
    pub flushes: u64,
    /// Arena bytes holding code of blocks still cached (at the last
    /// compilation).
    pub live_bytes: u64,
    /// Calls of compiled code from the dispatcher.
    pub calls: u64,
    /// Links and indirect-cache lines filled.
    pub links: u64,
}

/// One vCPU's compiled tier: settings, compiler and code arena (both made
/// at the first compilation).
#[derive(Debug)]
pub struct Jit {
    threshold: u32,
    optimize: bool,
    /// Generation of the arena (0 before it exists: no entry is valid).
    generation: u64,
    compiler: Option<Box<Compiler>>,
    arena: Option<CodeArena>,
    /// The compiler or arena could not be made: the tier stays off.
    broken: bool,
    stats: JitStats,
    /// Host addresses of RAM pages, for compiled loads and stores.
    host_pages: hostpages::HostPages,
    /// Slots of the block cache (one chain entry each).
    slots: usize,
    /// The chaining tables (made with the arena).
    chains: Option<Box<chain::Chains>>,
    /// The trampoline Rust calls compiled code through, in its own
    /// arena (never flushed).
    trampoline: Option<(CodeArena, CodeHandle)>,
}

impl Jit {
    /// The tier of a block cache of `slots` slots.
    pub(super) fn with_slots(slots: usize) -> Self {
        let c = config();
        Jit {
            threshold: c.threshold,
            optimize: c.optimize,
            generation: 0,
            compiler: None,
            arena: None,
            broken: false,
            stats: JitStats::default(),
            host_pages: Default::default(),
            slots,
            chains: None,
            trampoline: None,
        }
    }

    /// Make the compiler, the arena, the chaining tables and the
    /// trampoline (at the first compilation).
    fn start(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let mut compiler = Compiler::new(self.optimize)?;
        let arena = CodeArena::new(ARENA_BYTES)?;
        let mut tramp_arena = CodeArena::new(4096)?;
        let tramp = tramp_arena.place(&compiler.trampoline()?)?;
        self.compiler = Some(Box::new(compiler));
        self.arena = Some(arena);
        self.chains = Some(Box::new(chain::Chains::new(self.slots)));
        self.trampoline = Some((tramp_arena, tramp));
        Ok(())
    }

    /// Compile `blk` (of block-cache slot `slot`) into the arena; `word`
    /// is the address of its page's word in the code-page tracker.
    fn compile(&mut self, blk: &Block, word: usize, slot: usize) -> Option<CodeHandle> {
        if self.broken {
            return None;
        }
        if self.compiler.is_none() {
            if let Err(e) = self.start() {
                return self.give_up(&*e);
            }
        }
        let chains = self.chains.as_mut()?;
        let id = chains.new_id();
        let chain = config().chain;
        let site = chains.site(
            slot,
            id,
            chain && blk.bitness == 64 && !blk.ends_chain,
            chain && blk.bitness == 64,
        );
        let (compiler, arena) = (self.compiler.as_mut()?, self.arena.as_mut()?);
        let t0 = Instant::now();
        let code = match compiler.compile(blk, word, &site) {
            Ok(c) => c,
            Err(e) => {
                log::debug!("jit: block at {:#x} stays interpreted: {e}", blk.rip);
                self.stats.failed += 1;
                return None;
            }
        };
        let flushes = arena.flushes;
        let h = match arena.place(&code) {
            Ok(h) => h,
            Err(e) => return self.give_up(&e),
        };
        let chains = self.chains.as_mut()?;
        if arena.flushes != flushes {
            // Every older block's code is gone: nothing may chain to it.
            chains.clear();
        }
        chains.publish(slot, id, h.entry, blk.pa, blk.rip);
        self.generation = arena.generation();
        self.stats.flushes = arena.flushes;
        let (used, freed) = arena.usage();
        self.stats.live_bytes = (used - freed) as u64;
        self.stats.compile_ns += t0.elapsed().as_nanos() as u64;
        self.stats.compiled += 1;
        self.stats.code_bytes += code.len() as u64;
        if self.stats.compiled % 1000 == 0 && config().stats {
            self.stats.links = self.chains.as_ref().map_or(0, |c| c.links_made);
            eprintln!("kindling: jit: {:?}", self.stats);
        }
        Some(h)
    }

    #[cold]
    fn give_up(&mut self, e: &dyn std::error::Error) -> Option<CodeHandle> {
        log::warn!("jit: compiled tier off: {e}");
        self.broken = true;
        self.threshold = 0;
        None
    }
}

/// Whether compiling `blk` can pay: at least half of its instructions
/// are translated rather than handed to the interpreter, and two of them,
/// or all (a lone CALL, RET or JMP: compiled, it keeps a chain of compiled
/// blocks going). With threshold 1 (compile everything, for tests) every
/// block is compiled.
fn worth_compiling(blk: &Block) -> bool {
    let native = blk
        .slots
        .iter()
        .filter(|s| s.kind != super::block::SlotKind::Generic && translate::translates(&s.op))
        .count();
    let lone = native == blk.slots.len() && config().chain;
    (native >= 2 || lone) && native * 2 >= blk.slots.len()
}

/// A block's state in the compiled tier: how often it ran, and its code.
#[derive(Default)]
pub struct BlockJit {
    runs: Cell<u32>,
    /// Entry point (0: none), valid while the arena's generation matches.
    entry: Cell<usize>,
    generation: Cell<u64>,
    /// Owns the code (dropped with the block: the bytes count as free).
    handle: Cell<Option<CodeHandle>>,
}

impl std::fmt::Debug for BlockJit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockJit")
            .field("runs", &self.runs.get())
            .field("entry", &self.entry.get())
            .finish()
    }
}

impl Cpu {
    /// Set this vCPU's compile threshold (0: tier off; 1: compile every
    /// block at its first execution). Blocks compiled so far stay valid.
    pub fn set_jit_threshold(&mut self, threshold: u32) {
        let j = &mut self.blocks.jit;
        j.threshold = if j.broken { 0 } else { threshold };
    }

    /// The compiled tier's counters.
    pub fn jit_stats(&self) -> JitStats {
        let j = &self.blocks.jit;
        JitStats {
            links: j.chains.as_ref().map_or(0, |c| c.links_made),
            ..j.stats
        }
    }

    /// The block of cache slot `slot` is about to be dropped or replaced:
    /// no compiled code may chain into it any more.
    #[inline]
    pub(super) fn jit_forget(&mut self, slot: usize) {
        if let Some(c) = self.blocks.jit.chains.as_mut() {
            c.forget(slot);
        }
    }

    /// The dispatcher looked up `blk` (in cache slot `slot`, `verified`
    /// as `Block::verified`): fill the link or indirect-cache line of the
    /// last compiled exit that missed it.
    #[inline]
    pub(super) fn jit_link(&mut self, slot: usize, blk: &Block, verified: bool) {
        let j = &mut self.blocks.jit;
        let Some(c) = j.chains.as_mut() else {
            return;
        };
        if c.pending.cell == 0 {
            return;
        }
        let bj = &blk.jit;
        let entry = if bj.generation.get() == j.generation {
            bj.entry.get()
        } else {
            0
        };
        let t = chain::Target {
            slot,
            rip: blk.rip,
            pa: blk.pa,
            entry,
        };
        c.link_pending(t, verified && blk.bitness == 64);
    }

    /// Run `blk` as compiled code if it has (or now earns) some: what
    /// `exec_slots` returns for the whole block, or for as many runs of
    /// it as `run_block` would make at once when it loops to itself,
    /// and of the blocks it chains to (within `max` instructions, never
    /// past it when `exact`). `None`: interpret it.
    #[inline]
    pub(super) fn run_compiled(
        &mut self,
        blk: &Block,
        max: u64,
        exact: bool,
    ) -> Option<(u64, StepResult, bool)> {
        let bj = &blk.jit;
        let entry = bj.entry.get();
        let limit = max.min(1 << 40);
        if entry != 0 && bj.generation.get() == self.blocks.jit.generation {
            return Some(self.call_compiled(blk, entry, limit, exact));
        }
        let threshold = self.blocks.jit.threshold;
        if threshold == 0 {
            return None;
        }
        let runs = bj.runs.get().saturating_add(1);
        bj.runs.set(runs);
        if runs < threshold {
            return None;
        }
        if threshold > 1 && !worth_compiling(blk) {
            // Mostly interpreted slots: compiled code would only call the
            // interpreter (asked again after another `threshold` runs).
            bj.runs.set(0);
            return None;
        }
        let word = self.ram.code().word_addr(blk.page);
        let slot = self.blocks.slot_of(blk.pa);
        let Some(h) = self.blocks.jit.compile(blk, word, slot) else {
            // Not compilable (or the tier broke): do not try again soon.
            bj.runs.set(0);
            return None;
        };
        bj.entry.set(h.entry);
        bj.generation.set(h.generation);
        bj.handle.set(Some(h));
        Some(self.call_compiled(blk, bj.entry.get(), limit, exact))
    }

    /// Call the compiled code of `blk` at `entry`, with a budget of `max`
    /// instructions (`exact`: never more).
    fn call_compiled(
        &mut self,
        blk: &Block,
        entry: usize,
        max: u64,
        exact: bool,
    ) -> (u64, StepResult, bool) {
        let Some((_, tramp)) = self.blocks.jit.trampoline.as_ref() else {
            unreachable!("compiled code without a trampoline");
        };
        let tramp = tramp.entry;
        let mut ctx = JitCtx {
            cpu: self as *mut Cpu,
            value: 0,
            retired: 0,
            max,
            exact_mask: if exact { !0 } else { 0 },
            host_pages: self.blocks.jit.host_pages.0.as_mut_ptr(),
            block: blk as *const Block,
            fault: None,
            fault_rip: 0,
            miss_cell: 0,
            miss_id: 0,
            done: None,
        };
        // SAFETY: `tramp` is the trampoline `translate` compiled (its own
        // arena, never flushed), `extern "C" fn(*mut JitCtx, usize) ->
        // u64`, and `entry` the start of a block function compiled for
        // this very block, in the live arena (its generation matched). The
        // functions (this one and those it chains to, which the chain
        // tables keep to live blocks of the live arena) and the helpers
        // they call reach the vCPU only through `ctx.cpu`, while `self` is
        // not used; `blk` is outside the block cache for the call, and
        // nothing changes the cache while compiled code runs.
        let ret = unsafe {
            let f: unsafe extern "C" fn(*mut JitCtx, usize) -> u64 = std::mem::transmute(tramp);
            f(&mut ctx, entry)
        };
        let n = ret & ((1 << EXIT_SHIFT) - 1);
        let j = &mut self.blocks.jit;
        j.stats.retired += n;
        j.stats.calls += 1;
        if ctx.miss_cell != 0 {
            if let Some(c) = j.chains.as_mut() {
                c.pending = chain::Miss {
                    cell: ctx.miss_cell,
                    owner_id: ctx.miss_id,
                    rip: self.st.rip,
                };
            }
        }
        match ret >> EXIT_SHIFT {
            EXIT_NEXT => (n, Ok((None, false)), true),
            EXIT_STOP | EXIT_END => (n, Ok((None, false)), false),
            EXIT_FAULT => match ctx.fault.take() {
                Some(e) => (n, self.fault_at(ctx.fault_rip, e), false),
                None => unreachable!("fault exit without a fault"),
            },
            EXIT_SLOT => match ctx.done.take() {
                Some((r, clean)) => (n, r, clean),
                None => unreachable!("slot exit without a result"),
            },
            _ => unreachable!("unknown exit of compiled code"),
        }
    }
}
