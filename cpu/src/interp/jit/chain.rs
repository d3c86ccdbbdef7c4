//! Block chaining: how compiled code goes from one compiled block to the
//! next without returning to the block engine's dispatcher (`run_block`).
//!
//! Every slot of the block cache has a [`ChainEntry`] at a fixed address
//! (one table per vCPU, made with the arena and never moved): the id of
//! the compiled block living in that slot (0: none), its entry point, its
//! physical and linear code page, and two [`Link`]s, one per direct exit
//! of the block (the branch target and the fall-through). A link names a
//! target entry and the id the target had when the link was made; it is a
//! cached target checked at run time, not a patched jump: compiled code
//! follows it only while the target entry still holds that id. That makes
//! unlinking exact and O(1) without back-pointer lists:
//!
//! - a block dropped from the cache (replaced, or rebuilt after its page
//!   changed) clears its entry's id ([`Chains::forget`]), so every link
//!   and indirect-cache line naming it misses from then on;
//! - an arena flush clears every entry ([`Chains::clear`]); code of the
//!   old generation is then unreachable (links are only ever made between
//!   blocks of the current generation, and the dispatcher checks the
//!   generation before it calls an entry);
//! - a target whose page was written since it was built is caught by the
//!   target's own entry guard (it compares its page generation with its
//!   stamp, as `lookup_block` does, and returns to the dispatcher);
//! - the instruction budget is checked by the same guard.
//!
//! Patched jumps (QEMU's goto_tb) would save a load and a compare per
//! exit, but need W^X toggling of live code on every link and unlink, and
//! an unlink needs the list of every jump into a block; the checked link
//! costs two loads that hit the cache and keeps the arena write-once.
//!
//! Indirect branches (RET, JMP/CALL through a register or memory) look
//! the target RIP up in a small direct-mapped table per vCPU, the
//! indirect-branch target cache ([`IbtcLine`]): RIP → entry and id.
//!
//! The address space: a link or line is followed only when the target
//! RIP maps to the target's physical page *now*. Within the page the
//! running block was entered at that holds by construction (same linear
//! page, same translation, and a link is made only when the target's
//! physical page is the source's); for any other page compiled code
//! checks the software TLB entry of the target's page (tag, physical
//! page, execute permission and the user bit against the CPL) and falls
//! back to the dispatcher on any doubt. Only 64-bit code chains (no CS
//! base; mode changes end a chain anyway).
//!
//! A chainable exit that could not follow its link leaves a note of
//! itself in the context ([`Miss`]); when the dispatcher next looks up a
//! block at that RIP and finds it compiled, it fills the link (or the
//! cache line) so the next run goes straight through.

/// Lines of the indirect-branch target cache (a power of two).
pub const IBTC_LINES: usize = 4096;
/// A link's or line's id that no block has.
pub const NO_ID: u64 = u64::MAX;
/// `JitCtx::miss_cell` of an indirect exit that missed.
pub const MISS_INDIRECT: u64 = 1;

/// A direct exit's cached target.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct Link {
    /// Address of the target's [`ChainEntry`].
    pub target: u64,
    /// The id the target had when linked ([`NO_ID`]: unlinked).
    pub id: u64,
}

/// The compiled block of one block-cache slot.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
pub struct ChainEntry {
    /// Id of the compiled block (0: none).
    pub id: u64,
    /// Its entry point.
    pub entry: u64,
    /// Physical page number of its code.
    pub ppn: u64,
    /// Linear page address of its code.
    pub vpage: u64,
    /// Exit 0: the branch target; exit 1: the fall-through.
    pub links: [Link; 2],
}

/// One line of the indirect-branch target cache.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct IbtcLine {
    /// Guest RIP (`u64::MAX`: empty; never a canonical RIP).
    pub rip: u64,
    /// Address of the target's [`ChainEntry`].
    pub target: u64,
    /// The id the target had when cached.
    pub id: u64,
    pad: u64,
}

/// Offset of `ChainEntry::id`.
pub const CE_ID: i32 = std::mem::offset_of!(ChainEntry, id) as i32;
/// Offset of `ChainEntry::entry`.
pub const CE_ENTRY: i32 = std::mem::offset_of!(ChainEntry, entry) as i32;
/// Offset of `ChainEntry::ppn`.
pub const CE_PPN: i32 = std::mem::offset_of!(ChainEntry, ppn) as i32;
/// Offset of `Link::target`.
pub const LINK_TARGET: i32 = std::mem::offset_of!(Link, target) as i32;
/// Offset of `Link::id`.
pub const LINK_ID: i32 = std::mem::offset_of!(Link, id) as i32;
/// Offset of `IbtcLine::rip`.
pub const LINE_RIP: i32 = std::mem::offset_of!(IbtcLine, rip) as i32;
/// Offset of `IbtcLine::target`.
pub const LINE_TARGET: i32 = std::mem::offset_of!(IbtcLine, target) as i32;
/// Offset of `IbtcLine::id`.
pub const LINE_ID: i32 = std::mem::offset_of!(IbtcLine, id) as i32;
/// log2 of the size of an [`IbtcLine`].
pub const LINE_SHIFT: u32 = std::mem::size_of::<IbtcLine>().trailing_zeros();

/// The line of the indirect-branch cache for `rip` (compiled code
/// computes the same).
#[inline]
pub fn ibtc_index(rip: u64) -> usize {
    ((rip ^ (rip >> 12)) as usize) & (IBTC_LINES - 1)
}

/// A chainable exit that did not chain, noted for the dispatcher.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Miss {
    /// 0 (none), [`MISS_INDIRECT`], or a direct exit ([`miss_cell`]).
    pub cell: u64,
    /// The owner's id when it missed.
    pub owner_id: u64,
    /// The RIP the exit went to.
    pub rip: u64,
}

/// What the dispatcher knows of a block it may link to.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Its block-cache slot.
    pub slot: usize,
    /// Its RIP.
    pub rip: u64,
    /// Its physical address.
    pub pa: u64,
    /// Its current entry point (0: none in this arena generation).
    pub entry: usize,
}

/// One vCPU's chaining tables (see the module doc).
pub struct Chains {
    entries: Box<[ChainEntry]>,
    ibtc: Box<[IbtcLine]>,
    next_id: u64,
    /// The last chainable exit that missed.
    pub pending: Miss,
    /// Links and lines filled so far.
    pub links_made: u64,
}

impl std::fmt::Debug for Chains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chains")
            .field("slots", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Chains {
    /// Tables for a block cache of `slots` slots.
    pub fn new(slots: usize) -> Self {
        let mut c = Chains {
            entries: vec![EMPTY_ENTRY; slots].into_boxed_slice(),
            ibtc: vec![EMPTY_LINE; IBTC_LINES].into_boxed_slice(),
            next_id: 1,
            pending: Miss::default(),
            links_made: 0,
        };
        c.clear();
        c
    }

    fn unlinked(&self) -> Link {
        Link {
            target: self.entries.as_ptr() as u64,
            id: NO_ID,
        }
    }

    /// Address of slot `slot`'s entry.
    pub fn entry_addr(&self, slot: usize) -> u64 {
        &self.entries[slot] as *const ChainEntry as u64
    }

    /// Address of exit `exit`'s link in slot `slot`'s entry.
    pub fn link_addr(&self, slot: usize, exit: usize) -> u64 {
        &self.entries[slot].links[exit] as *const Link as u64
    }

    /// Address of the indirect-branch cache.
    pub fn ibtc_addr(&self) -> u64 {
        self.ibtc.as_ptr() as u64
    }

    /// A fresh id for a block about to be compiled.
    pub fn new_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The block of `slot` was compiled as `id` at `entry`: publish it,
    /// with no links out yet.
    pub fn publish(&mut self, slot: usize, id: u64, entry: usize, pa: u64, rip: u64) {
        let unlinked = self.unlinked();
        self.entries[slot] = ChainEntry {
            id,
            entry: entry as u64,
            ppn: pa >> 12,
            vpage: rip & !0xfff,
            links: [unlinked; 2],
        };
    }

    /// The block of `slot` is gone (or about to be replaced): nothing
    /// may chain into its code any more.
    #[inline]
    pub fn forget(&mut self, slot: usize) {
        self.entries[slot].id = 0;
    }

    /// Every compiled block is gone (an arena flush).
    pub fn clear(&mut self) {
        let unlinked = self.unlinked();
        for e in self.entries.iter_mut() {
            e.id = 0;
            e.links = [unlinked; 2];
        }
        let dead = self.entries.as_ptr() as u64;
        for l in self.ibtc.iter_mut() {
            *l = IbtcLine {
                target: dead,
                ..EMPTY_LINE
            };
        }
        self.pending = Miss::default();
    }

    /// Where the block in `slot`, compiled as `id`, chains.
    pub fn site(&self, slot: usize, id: u64, chains: bool, entered: bool) -> Site {
        Site {
            id,
            slot,
            links: [self.link_addr(slot, 0), self.link_addr(slot, 1)],
            ibtc: self.ibtc_addr(),
            chains,
            entered,
        }
    }

    /// The dispatcher found `t` at the RIP the pending miss went to: link
    /// the missed exit to it when `t` is compiled in this arena
    /// generation (`verified`: its code bytes were re-checked once).
    pub fn link_pending(&mut self, t: Target, verified: bool) {
        let m = std::mem::take(&mut self.pending);
        if m.cell == 0 || t.entry == 0 || !verified || t.rip != m.rip {
            return;
        }
        let te = self.entries[t.slot];
        if te.id == 0 || te.entry != t.entry as u64 || te.ppn != t.pa >> 12 {
            return;
        }
        let target = self.entry_addr(t.slot);
        if m.cell == MISS_INDIRECT {
            self.ibtc[ibtc_index(t.rip)] = IbtcLine {
                rip: t.rip,
                target,
                id: te.id,
                pad: 0,
            };
            self.links_made += 1;
            return;
        }
        // The owner must still be the block that missed; a link within
        // its own linear page is followed without a TLB check, so the
        // target must sit on the owner's physical page.
        let (owner, exit) = miss_link(m.cell);
        let Some(oe) = self.entries.get(owner).copied() else {
            return;
        };
        if oe.id != m.owner_id || (t.rip & !0xfff == oe.vpage && te.ppn != oe.ppn) {
            return;
        }
        self.entries[owner].links[exit] = Link { target, id: te.id };
        self.links_made += 1;
    }
}

/// `JitCtx::miss_cell` of exit `exit` of the block in slot `slot`.
pub fn miss_cell(slot: usize, exit: usize) -> u64 {
    2 + (slot * 2 + exit) as u64
}

/// The slot and exit of a direct miss cell.
fn miss_link(cell: u64) -> (usize, usize) {
    let v = (cell - 2) as usize;
    (v / 2, v % 2)
}

const EMPTY_ENTRY: ChainEntry = ChainEntry {
    id: 0,
    entry: 0,
    ppn: u64::MAX,
    vpage: u64::MAX,
    links: [Link {
        target: 0,
        id: NO_ID,
    }; 2],
};

const EMPTY_LINE: IbtcLine = IbtcLine {
    rip: u64::MAX,
    target: 0,
    id: NO_ID,
    pad: 0,
};

/// What a block's compiled code needs to chain.
#[derive(Debug, Clone, Copy)]
pub struct Site {
    /// The block's id.
    pub id: u64,
    /// Its block-cache slot.
    pub slot: usize,
    /// Addresses of its exits' links (`TAKEN`, `FALL_THROUGH`).
    pub links: [u64; 2],
    /// Address of the indirect-branch cache.
    pub ibtc: u64,
    /// Its exits may chain (64-bit code whose end does not need the vCPU
    /// loop).
    pub chains: bool,
    /// Other blocks may chain into it (64-bit code): its entry checks the
    /// budget and its page.
    pub entered: bool,
}
