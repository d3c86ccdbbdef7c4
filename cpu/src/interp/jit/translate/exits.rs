//! The entry guard and the exits of a compiled block: where a block
//! function starts (budget and self-modifying-code checks, so it can be
//! entered from another block), how it loops to itself, and how it leaves,
//! following a direct link or the indirect-branch cache into the next
//! block's code when it can (`chain` has the rules), else returning to the
//! dispatcher with RIP set and a note of the missed exit.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{I32, I64};
use cranelift_codegen::ir::{InstBuilder, MemFlags, Value};

use super::super::chain::{self, CE_ENTRY, CE_ID, CE_PPN, LINE_ID, LINE_RIP, LINE_TARGET};
use super::super::helpers::{
    CTX_BLOCK, CTX_EXACT_MASK, CTX_MAX, CTX_MISS_CELL, CTX_MISS_ID, CTX_RETIRED,
};
use super::{
    seg_selector, Seg, Tx, CP_CPL, CP_LA, CP_PA, DONE, EXIT_END, EXIT_NEXT, FLAGS, TLBV,
    TLB_ENTRIES, TLB_ENTRY, TLB_EXEC, TLB_PPN, TLB_TAG, TLB_USER,
};

/// The link of a direct exit to the branch target.
pub const TAKEN: usize = 0;
/// The link of a direct exit to the next instruction.
pub const FALL_THROUGH: usize = 1;

/// How a block ends after its last slot.
pub enum End {
    /// A branch to a known RIP (JMP, CALL).
    To(u64),
    /// A conditional branch: to the first RIP when the `i8` condition
    /// holds, else to the second.
    Cond(Value, u64, u64),
    /// A branch to a RIP known at run time (RET, JMP/CALL indirect).
    Dyn(Value),
}

impl Tx<'_, '_> {
    /// The exit kind of a block that ran to its end.
    fn end_kind(&self) -> u64 {
        if self.blk.ends_chain {
            EXIT_END
        } else {
            EXIT_NEXT
        }
    }

    /// Whether a block of this one's length may start with `done`
    /// instructions retired in the call (`i8`; see `JitCtx::max`).
    fn fits(&mut self, done: Value) -> Value {
        let n = self.blk.slots.len() as i64;
        let mask = self
            .b
            .ins()
            .load(I64, MemFlags::trusted(), self.ctx, CTX_EXACT_MASK);
        let extra = self.b.ins().band_imm(mask, n - 1);
        let need = self.b.ins().iadd(done, extra);
        let need = self.b.ins().iadd_imm(need, 1);
        let max = self
            .b
            .ins()
            .load(I64, MemFlags::trusted(), self.ctx, CTX_MAX);
        self.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, need, max)
    }

    /// The function's start: publish the block for the helpers, take the
    /// count retired so far in the call, and return at once (RIP at the
    /// block, nothing run) when the budget has no room for the block or
    /// its page changed since it was built, as the dispatcher would not
    /// have run it either. Registers are in the register file here.
    pub(super) fn prologue(&mut self) {
        let me = self.iconst(self.blk as *const _ as u64);
        self.b
            .ins()
            .store(MemFlags::trusted(), me, self.ctx, CTX_BLOCK);
        self.b.declare_var(Self::var(DONE), I64);
        let done = self
            .b
            .ins()
            .load(I64, MemFlags::trusted(), self.ctx, CTX_RETIRED);
        self.b.def_var(Self::var(DONE), done);
        if !self.site.entered {
            return;
        }
        let fits = self.fits(done);
        let same = self.page_unchanged();
        let ok = self.b.ins().band(fits, same);
        let run = self.b.create_block();
        let back = self.b.create_block();
        self.b.ins().brif(ok, run, &[], back, &[]);
        self.b.switch_to_block(back);
        self.b.set_cold_block(back);
        let rip = self.iconst(self.blk.rip);
        self.set_rip(rip);
        self.ret(0, EXIT_NEXT);
        self.b.switch_to_block(run);
    }

    /// Leave after slot `k` ended the block with `end`.
    pub(super) fn end_block(&mut self, k: usize, end: End) {
        let n = k + 1;
        if let Some(head) = self.head {
            // The block branches back to its own start.
            match end {
                End::To(_) => self.loop_back(head, n),
                End::Cond(c, _, not_taken) => {
                    let back = self.b.create_block();
                    let fall = self.b.create_block();
                    self.b.ins().brif(c, back, &[], fall, &[]);
                    self.b.switch_to_block(fall);
                    let dirty = self.dirty;
                    self.store_all();
                    self.exit_direct(n, not_taken, FALL_THROUGH);
                    self.dirty = dirty;
                    self.b.switch_to_block(back);
                    self.loop_back(head, n);
                }
                End::Dyn(_) => unreachable!("a self-loop ends with a direct branch"),
            }
            return;
        }
        self.store_all();
        match end {
            End::To(t) => self.exit_direct(n, t, TAKEN),
            End::Cond(c, t, not_taken) => {
                let taken = self.b.create_block();
                let fall = self.b.create_block();
                self.b.ins().brif(c, taken, &[], fall, &[]);
                self.b.switch_to_block(taken);
                self.exit_direct(n, t, TAKEN);
                self.b.switch_to_block(fall);
                self.exit_direct(n, not_taken, FALL_THROUGH);
            }
            End::Dyn(t) => self.exit_dynamic(n, t),
        }
    }

    /// Run the block again from `head` while the budget allows a whole run
    /// more and the page's code is unchanged (as `run_block`), else leave
    /// with RIP at the block's start.
    fn loop_back(&mut self, head: cranelift_codegen::ir::Block, n: usize) {
        let done = self.b.use_var(Self::var(DONE));
        let done = self.b.ins().iadd_imm(done, n as i64);
        let fits = self.fits(done);
        let same = self.page_unchanged();
        let again = self.b.ins().band(fits, same);
        let out = self.b.create_block();
        // DONE counts the runs finished; the exit below adds none more.
        self.b.def_var(Self::var(DONE), done);
        self.b.ins().brif(again, head, &[], out, &[]);
        self.b.switch_to_block(out);
        self.dirty = u32::from(self.used) | 1 << FLAGS;
        self.store_all();
        let rip = self.iconst(self.blk.rip);
        self.set_rip(rip);
        self.ret(0, self.end_kind());
    }

    /// Leave for `target` after `n` instructions through direct exit
    /// `exit` (registers stored): into the linked block when the link
    /// holds, else back to the dispatcher.
    pub(super) fn exit_direct(&mut self, n: usize, target: u64, exit: usize) {
        if !self.site.chains {
            let t = self.iconst(target);
            self.set_rip(t);
            self.ret(n, self.end_kind());
            return;
        }
        let link = self.iconst(self.site.links[exit]);
        let f = MemFlags::trusted();
        let ce = self.b.ins().load(I64, f, link, chain::LINK_TARGET);
        let id = self.b.ins().load(I64, f, link, chain::LINK_ID);
        let cid = self.b.ins().load(I64, f, ce, CE_ID);
        let mut ok = self.b.ins().icmp(IntCC::Equal, cid, id);
        let t = self.iconst(target);
        if target & !0xfff != self.blk.rip & !0xfff {
            let mapped = self.maps_to(t, ce);
            ok = self.b.ins().band(ok, mapped);
        }
        let miss = chain::miss_cell(self.site.slot, exit);
        self.follow(ok, ce, t, n, miss);
    }

    /// Leave for the run-time `target` after `n` instructions (registers
    /// stored): into its block when the indirect-branch cache knows it,
    /// else back to the dispatcher.
    fn exit_dynamic(&mut self, n: usize, target: Value) {
        if !self.site.chains {
            self.set_rip(target);
            self.ret(n, self.end_kind());
            return;
        }
        let f = MemFlags::trusted();
        let hi = self.b.ins().ushr_imm(target, 12);
        let h = self.b.ins().bxor(target, hi);
        let h = self.b.ins().band_imm(h, chain::IBTC_LINES as i64 - 1);
        let off = self.b.ins().ishl_imm(h, i64::from(chain::LINE_SHIFT));
        let line = self.b.ins().iadd_imm(off, self.site.ibtc as i64);
        let rip = self.b.ins().load(I64, f, line, LINE_RIP);
        let mut ok = self.b.ins().icmp(IntCC::Equal, rip, target);
        let ce = self.b.ins().load(I64, f, line, LINE_TARGET);
        let id = self.b.ins().load(I64, f, line, LINE_ID);
        let cid = self.b.ins().load(I64, f, ce, CE_ID);
        let live = self.b.ins().icmp(IntCC::Equal, cid, id);
        ok = self.b.ins().band(ok, live);
        let mapped = self.maps_to(target, ce);
        ok = self.b.ins().band(ok, mapped);
        self.follow(ok, ce, target, n, chain::MISS_INDIRECT);
    }

    /// Whether linear `rip` maps to the code page of the chain entry `ce`,
    /// executable at the current CPL (`i8`), as the dispatcher's
    /// `code_page` would find: by the page instructions were last fetched
    /// from, or by the software TLB. A miss in both is a "no" (the
    /// dispatcher then walks the page tables).
    fn maps_to(&mut self, rip: Value, ce: Value) -> Value {
        let f = MemFlags::trusted();
        let cpu = self.cpu;
        let b = &mut self.b;
        let tlb = b.use_var(Self::var(TLBV));
        let cppn = b.ins().load(I64, f, ce, CE_PPN);
        let page = b.ins().band_imm(rip, !0xfff);
        // The fetch page: linear page, physical page and CPL.
        let cp_la = b.ins().load(I64, f, tlb, CP_LA);
        let mut by_cp = b.ins().icmp(IntCC::Equal, cp_la, page);
        let cp_pa = b.ins().load(I64, f, tlb, CP_PA);
        let cp_ppn = b.ins().ushr_imm(cp_pa, 12);
        let same = b.ins().icmp(IntCC::Equal, cp_ppn, cppn);
        by_cp = b.ins().band(by_cp, same);
        let cp_cpl = b.ins().uload8(I32, f, tlb, CP_CPL);
        let sel = b.ins().uload16(I32, f, cpu, seg_selector(Seg::Cs));
        let cpl = b.ins().band_imm(sel, 3);
        let same = b.ins().icmp(IntCC::Equal, cp_cpl, cpl);
        by_cp = b.ins().band(by_cp, same);
        // The TLB entry.
        let vpn = b.ins().ushr_imm(rip, 12);
        let idx = b.ins().band_imm(vpn, 511);
        let eo = b.ins().imul_imm(idx, TLB_ENTRY);
        let e = b.ins().iadd(tlb, eo);
        let tag = b.ins().load(I64, f, e, TLB_ENTRIES + TLB_TAG);
        let want = b.ins().iadd_imm(vpn, 1);
        let mut ok = b.ins().icmp(IntCC::Equal, tag, want);
        let ppn = b.ins().load(I64, f, e, TLB_ENTRIES + TLB_PPN);
        let same = b.ins().icmp(IntCC::Equal, ppn, cppn);
        ok = b.ins().band(ok, same);
        let exec = b.ins().uload8(I32, f, e, TLB_ENTRIES + TLB_EXEC);
        let exec = b.ins().icmp_imm(IntCC::NotEqual, exec, 0);
        ok = b.ins().band(ok, exec);
        // A user page at CPL 3, a supervisor page below (a supervisor
        // fetch from a user page is SMEP's business: the dispatcher's).
        let user = b.ins().uload8(I32, f, e, TLB_ENTRIES + TLB_USER);
        let user = b.ins().icmp_imm(IntCC::NotEqual, user, 0);
        let right = b.ins().icmp(IntCC::NotEqual, user, self.kernel);
        ok = b.ins().band(ok, right);
        b.ins().bor(ok, by_cp)
    }

    /// Jump into the code of chain entry `ce` when `ok`, else set RIP to
    /// `rip`, note the miss (`cell`) and return; `n` retired here.
    fn follow(&mut self, ok: Value, ce: Value, rip: Value, n: usize, cell: u64) {
        let go = self.b.create_block();
        let miss = self.b.create_block();
        self.b.ins().brif(ok, go, &[], miss, &[]);
        self.b.switch_to_block(go);
        let done = self.b.use_var(Self::var(DONE));
        let done = self.b.ins().iadd_imm(done, n as i64);
        let f = MemFlags::trusted();
        self.b.ins().store(f, done, self.ctx, CTX_RETIRED);
        let entry = self.b.ins().load(I64, f, ce, CE_ENTRY);
        self.b
            .ins()
            .return_call_indirect(self.sigs.block, entry, &[self.ctx]);
        self.b.switch_to_block(miss);
        self.b.set_cold_block(miss);
        self.set_rip(rip);
        let cell = self.iconst(cell);
        self.b.ins().store(f, cell, self.ctx, CTX_MISS_CELL);
        let id = self.iconst(self.site.id);
        self.b.ins().store(f, id, self.ctx, CTX_MISS_ID);
        self.ret(n, EXIT_NEXT);
    }
}
