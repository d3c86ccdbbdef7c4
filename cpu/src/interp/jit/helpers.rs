//! The callbacks compiled code makes into the interpreter (`extern "C"`,
//! System V): guest memory reads and writes through the software TLB, and
//! one block slot run by the interpreter for anything not compiled, and
//! the report of an inline store that hit code. Each
//! returns a status (0: go on) and leaves its value or its exit in the
//! [`JitCtx`] the compiled function was given.

use super::super::block::Block;
use super::super::cpu::{Cpu, StepResult};
use super::super::mem::Exception;

/// Helper status: go on.
pub const GO_ON: u32 = 0;
/// Helper status: the access faulted (`JitCtx::fault` holds it).
pub const FAULTED: u32 = 1;
/// Helper status: the slot ended the block (`JitCtx::done` holds how).
pub const ENDED: u32 = 2;

/// What a compiled block and its helpers share: the vCPU, the block and
/// where results land. Compiled code reads `cpu` and `value`.
#[repr(C)]
pub struct JitCtx {
    /// The vCPU (the compiled code reaches its register file through it).
    pub cpu: *mut Cpu,
    /// The value a read helper returns.
    pub value: u64,
    /// Instructions retired by the blocks run before the current one in
    /// this call (chained blocks add theirs before jumping on).
    pub retired: u64,
    /// The instruction budget of the call: a block of `n` instructions may
    /// start when `retired + 1 + (exact_mask & (n - 1)) <= max` (any block
    /// may start before the budget is spent, and never overrun it when
    /// `-icount` makes it exact).
    pub max: u64,
    /// `!0` when the budget is exact, else 0.
    pub exact_mask: u64,
    /// The host-page table (`hostpages`).
    pub host_pages: *mut super::hostpages::HostPage,
    /// The block being run (for slots run by the interpreter; each
    /// compiled block sets it on entry).
    pub block: *const Block,
    /// The exception a helper met.
    pub fault: Option<Exception>,
    /// RIP of the instruction that faulted (the fault exit sets it).
    pub fault_rip: u64,
    /// A chainable exit that did not chain (`chain::Miss::cell`).
    pub miss_cell: u64,
    /// The id of the block whose exit missed.
    pub miss_id: u64,
    /// How an interpreted slot ended the block: result and whether another
    /// block may follow at once.
    pub done: Option<(StepResult, bool)>,
}

impl std::fmt::Debug for JitCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitCtx").finish_non_exhaustive()
    }
}

/// Offset of `JitCtx::cpu`.
pub const CTX_CPU: i32 = std::mem::offset_of!(JitCtx, cpu) as i32;
/// Offset of `JitCtx::value`.
pub const CTX_VALUE: i32 = std::mem::offset_of!(JitCtx, value) as i32;
/// Offset of `JitCtx::host_pages`.
pub const CTX_HOST_PAGES: i32 = std::mem::offset_of!(JitCtx, host_pages) as i32;
/// Offset of `JitCtx::retired`.
pub const CTX_RETIRED: i32 = std::mem::offset_of!(JitCtx, retired) as i32;
/// Offset of `JitCtx::max`.
pub const CTX_MAX: i32 = std::mem::offset_of!(JitCtx, max) as i32;
/// Offset of `JitCtx::exact_mask`.
pub const CTX_EXACT_MASK: i32 = std::mem::offset_of!(JitCtx, exact_mask) as i32;
/// Offset of `JitCtx::block`.
pub const CTX_BLOCK: i32 = std::mem::offset_of!(JitCtx, block) as i32;
/// Offset of `JitCtx::fault_rip`.
pub const CTX_FAULT_RIP: i32 = std::mem::offset_of!(JitCtx, fault_rip) as i32;
/// Offset of `JitCtx::miss_cell`.
pub const CTX_MISS_CELL: i32 = std::mem::offset_of!(JitCtx, miss_cell) as i32;
/// Offset of `JitCtx::miss_id`.
pub const CTX_MISS_ID: i32 = std::mem::offset_of!(JitCtx, miss_id) as i32;

/// Read `bytes` at linear `la` into `ctx.value`.
///
/// # Safety
/// `ctx` is the live context of the compiled block being run, whose `cpu`
/// is not otherwise borrowed while the block runs.
pub unsafe extern "C" fn read(ctx: *mut JitCtx, la: u64, bytes: u32) -> u32 {
    // SAFETY: the caller's contract: `ctx` and its `cpu` are valid and
    // unaliased for the duration of the call.
    let ctx = unsafe { &mut *ctx };
    // SAFETY: as above.
    let cpu = unsafe { &mut *ctx.cpu };
    match cpu.read_la(la, bytes as usize) {
        Ok(v) => {
            ctx.value = v;
            cpu.fill_host_page(la);
            GO_ON
        }
        Err(e) => {
            ctx.fault = Some(e);
            FAULTED
        }
    }
}

/// Write the low `bytes` of `v` at linear `la`.
///
/// # Safety
/// As [`read`].
pub unsafe extern "C" fn write(ctx: *mut JitCtx, la: u64, v: u64, bytes: u32) -> u32 {
    // SAFETY: as in `read`.
    let ctx = unsafe { &mut *ctx };
    // SAFETY: as in `read`.
    let cpu = unsafe { &mut *ctx.cpu };
    match cpu.write_la(la, v, bytes as usize) {
        Ok(()) => {
            cpu.fill_host_page(la);
            GO_ON
        }
        Err(e) => {
            ctx.fault = Some(e);
            FAULTED
        }
    }
}

/// Report an inline store of `bytes` at offset `off` of tracker page
/// `page` that hit a chunk holding code (bumps the page's generation), as
/// `write_la` would have.
///
/// # Safety
/// As [`read`]; `page` is a page index the host-page table got from the
/// tracker and `off + bytes` lies within the page.
pub unsafe extern "C" fn code_stored(ctx: *mut JitCtx, page: u64, off: u64, bytes: u32) -> u32 {
    // SAFETY: as in `read`.
    let ctx = unsafe { &mut *ctx };
    // SAFETY: as in `read`.
    let cpu = unsafe { &mut *ctx.cpu };
    cpu.ram
        .code()
        .wrote(page as usize, off as usize, bytes as usize);
    GO_ON
}

/// Run slot `k` of the block through the interpreter (the compiled code
/// has stored every register and RFLAGS, and reloads them after).
///
/// # Safety
/// As [`read`]; `ctx.block` is the block being run and `k` one of its
/// slots.
pub unsafe extern "C" fn slot(ctx: *mut JitCtx, k: u32) -> u32 {
    // SAFETY: as in `read`.
    let ctx = unsafe { &mut *ctx };
    // SAFETY: as in `read`.
    let cpu = unsafe { &mut *ctx.cpu };
    // SAFETY: the block outlives its run: it is the dispatcher's (taken out
    // of the cache) or one a link reached (in the cache, which nothing
    // changes while compiled code runs), so nothing reaches it mutably.
    let blk = unsafe { &*ctx.block };
    match cpu.exec_slot::<false>(blk, k as usize) {
        None => GO_ON,
        Some(done) => {
            ctx.done = Some(done);
            ENDED
        }
    }
}
