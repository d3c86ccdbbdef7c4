//! Block → Cranelift IR → host code. One function per block,
//! `extern "C" fn(*mut JitCtx) -> u64`: guest registers the block names
//! live in Cranelift variables (loaded on entry, stored at every exit and
//! around interpreted slots), RFLAGS likewise; each fast op is translated
//! with the `alu.rs` semantics (flags only where the block engine found
//! them live); memory goes through the helpers; any op not translated here
//! runs through the interpreter (`helpers::slot`). A block that branches
//! back to its own start loops inside the function, within the
//! instruction budget (`JitCtx::max`). Block functions use Cranelift's
//! `tail` convention so that an exit can jump straight into the next
//! block's code (`exits` emits the block ends, `chain` has the rules);
//! Rust calls them through a small trampoline ([`Compiler::trampoline`]).
//! The return value is the number of instructions retired in the call,
//! chained blocks included, with the exit kind in bits `EXIT_SHIFT` and up.

mod exits;

use cranelift_codegen::entity::EntityRef;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{I32, I64};
use cranelift_codegen::ir::{
    AbiParam, BlockArg, Function, InstBuilder, MemFlags, SigRef, Signature, UserFuncName, Value,
};
use cranelift_codegen::isa::{CallConv, OwnedTargetIsa};
use cranelift_codegen::{settings, settings::Configurable, Context};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};

use super::super::block::{Block, SlotKind};
use super::super::codemap;
use super::super::cpu::Cpu;
use super::super::fastop::{FastOp, MemRef, Rm, NONE};
use super::super::state::{CodePage, CpuState, Seg, Tlb, TlbEntry};
use super::alu_ir as ir;
use super::chain::Site;
use super::helpers::{self, CTX_CPU, CTX_FAULT_RIP, CTX_HOST_PAGES, CTX_VALUE};
use super::hostpages;
use crate::Segment;

// Op families translated in their own files (methods of `Tx`).
mod bits;
mod muldiv;
mod shift;

/// Where the exit kind sits in the return value.
pub const EXIT_SHIFT: u32 = 48;
/// Exit kind: the block ran to its end or branch; another may follow.
pub const EXIT_NEXT: u64 = 0;
/// Exit kind: a store changed the block's page generation (it hit code);
/// back to the vCPU loop.
pub const EXIT_STOP: u64 = 1;
/// Exit kind: an access faulted (`JitCtx::fault`); state is as before it.
pub const EXIT_FAULT: u64 = 2;
/// Exit kind: an interpreted slot ended the block (`JitCtx::done`).
pub const EXIT_SLOT: u64 = 3;
/// Exit kind: the block ran to its end, and its last instruction needs
/// the vCPU loop next (`Block::ends_chain`).
pub const EXIT_END: u64 = 4;

const GPR: i32 = (std::mem::offset_of!(Cpu, st) + std::mem::offset_of!(CpuState, gpr)) as i32;
const RIP: i32 = (std::mem::offset_of!(Cpu, st) + std::mem::offset_of!(CpuState, rip)) as i32;
const RFLAGS: i32 = (std::mem::offset_of!(Cpu, st) + std::mem::offset_of!(CpuState, rflags)) as i32;
const SEG: usize = std::mem::offset_of!(Cpu, st) + std::mem::offset_of!(CpuState, seg);

const TLB: i32 = (std::mem::offset_of!(Cpu, st) + std::mem::offset_of!(CpuState, tlb)) as i32;
const TLB_ENTRIES: i32 = std::mem::offset_of!(Tlb, 0) as i32;
const TLB_ENTRY: i64 = std::mem::size_of::<TlbEntry>() as i64;
const TLB_TAG: i32 = std::mem::offset_of!(TlbEntry, tag) as i32;
const TLB_PPN: i32 = std::mem::offset_of!(TlbEntry, ppn) as i32;
const TLB_WRITE: i32 = std::mem::offset_of!(TlbEntry, write) as i32;
const TLB_USER: i32 = std::mem::offset_of!(TlbEntry, user) as i32;
const TLB_EXEC: i32 = std::mem::offset_of!(TlbEntry, exec) as i32;
const TLB_CODE_PAGE: i32 = std::mem::offset_of!(Tlb, 1) as i32;
const CP_LA: i32 = TLB_CODE_PAGE + std::mem::offset_of!(CodePage, la) as i32;
const CP_PA: i32 = TLB_CODE_PAGE + std::mem::offset_of!(CodePage, pa) as i32;
const CP_CPL: i32 = TLB_CODE_PAGE + std::mem::offset_of!(CodePage, cpl) as i32;
const HOST_PAGE: i64 = std::mem::size_of::<hostpages::HostPage>() as i64;

/// Offset of a segment's selector in `Cpu`.
fn seg_selector(s: Seg) -> i32 {
    (SEG + s as usize * std::mem::size_of::<Segment>() + std::mem::offset_of!(Segment, selector))
        as i32
}

/// Offset of a segment's base in `Cpu`.
fn seg_base(s: Seg) -> i32 {
    (SEG + s as usize * std::mem::size_of::<Segment>() + std::mem::offset_of!(Segment, base)) as i32
}

/// Why a block could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// The host ISA is not supported by Cranelift.
    #[error("no Cranelift backend for this host: {0}")]
    Host(String),
    /// Cranelift refused the function.
    #[error("Cranelift could not compile a block: {0}")]
    Codegen(String),
    /// The code needs relocations (only absolute constants are used).
    #[error("compiled block needs relocations")]
    Relocs,
}

/// The compiler: the host ISA and reusable contexts.
pub struct Compiler {
    isa: OwnedTargetIsa,
    ctx: Context,
    fctx: FunctionBuilderContext,
}

impl std::fmt::Debug for Compiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiler").finish_non_exhaustive()
    }
}

impl Compiler {
    /// A compiler for the host; `speed` picks Cranelift's optimizing level.
    pub fn new(speed: bool) -> Result<Self, TranslateError> {
        let mut flags = settings::builder();
        let opt = if speed { "speed" } else { "none" };
        flags
            .set("opt_level", opt)
            .map_err(|e| TranslateError::Host(e.to_string()))?;
        // Tail calls (chaining) need frame pointers in Cranelift's x64
        // backend.
        flags
            .set("preserve_frame_pointers", "true")
            .map_err(|e| TranslateError::Host(e.to_string()))?;
        let isa = cranelift_native::builder()
            .map_err(|e| TranslateError::Host(e.to_string()))?
            .finish(settings::Flags::new(flags))
            .map_err(|e| TranslateError::Host(e.to_string()))?;
        Ok(Compiler {
            isa,
            ctx: Context::new(),
            fctx: FunctionBuilderContext::new(),
        })
    }

    /// The signature of a block function: `tail fn(*mut JitCtx) -> u64`.
    fn block_sig(&self) -> Signature {
        let mut sig = Signature::new(CallConv::Tail);
        sig.params.push(AbiParam::new(self.isa.pointer_type()));
        sig.returns.push(AbiParam::new(I64));
        sig
    }

    /// The trampoline Rust calls block functions through:
    /// `extern "C" fn(*mut JitCtx, entry) -> u64`.
    pub fn trampoline(&mut self) -> Result<Vec<u8>, TranslateError> {
        let ptr = self.isa.pointer_type();
        let mut sig = Signature::new(self.isa.default_call_conv());
        sig.params.push(AbiParam::new(ptr));
        sig.params.push(AbiParam::new(ptr));
        sig.returns.push(AbiParam::new(I64));
        let block_sig = self.block_sig();
        self.ctx.clear();
        self.ctx.func = Function::with_name_signature(UserFuncName::default(), sig);
        {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            let callee = b.import_signature(block_sig);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let (ctx, f) = (b.block_params(entry)[0], b.block_params(entry)[1]);
            let c = b.ins().call_indirect(callee, f, &[ctx]);
            let r = b.inst_results(c)[0];
            b.ins().return_(&[r]);
            b.seal_all_blocks();
            b.finalize();
        }
        self.finish()
    }

    /// Compile the function in `self.ctx`.
    fn finish(&mut self) -> Result<Vec<u8>, TranslateError> {
        let code = self
            .ctx
            .compile(&*self.isa, &mut Default::default())
            .map_err(|e| TranslateError::Codegen(format!("{:?}", e.inner)))?;
        if !code.buffer.relocs().is_empty() {
            return Err(TranslateError::Relocs);
        }
        Ok(code.code_buffer().to_vec())
    }

    /// Compile `blk`, whose page's word in the code-page tracker is at
    /// `word`, chaining as `site` says; the machine code
    /// (position-independent, no relocations).
    pub fn compile(
        &mut self,
        blk: &Block,
        word: usize,
        site: &Site,
    ) -> Result<Vec<u8>, TranslateError> {
        let ptr = self.isa.pointer_type();
        let call_conv = self.isa.default_call_conv();
        let sig = self.block_sig();
        let block_sig = self.block_sig();
        self.ctx.clear();
        self.ctx.func = Function::with_name_signature(UserFuncName::default(), sig);
        {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            let mk = |params: &[cranelift_codegen::ir::Type]| {
                let mut s = Signature::new(call_conv);
                s.params.extend(params.iter().map(|&t| AbiParam::new(t)));
                s.returns.push(AbiParam::new(I32));
                s
            };
            let sigs = Sigs {
                read: b.import_signature(mk(&[ptr, I64, I32])),
                write: b.import_signature(mk(&[ptr, I64, I64, I32])),
                slot: b.import_signature(mk(&[ptr, I32])),
                block: b.import_signature(block_sig),
            };
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let ctx = b.block_params(entry)[0];
            let cpu = b.ins().load(I64, MemFlags::trusted(), ctx, CTX_CPU);
            let host_pages = b.ins().load(I64, MemFlags::trusted(), ctx, CTX_HOST_PAGES);
            // CPL 3 (64-bit code: protected mode, paging on): the TLB's
            // user bit must allow the access.
            let sel = b
                .ins()
                .uload16(I64, MemFlags::trusted(), cpu, seg_selector(Seg::Cs));
            let rpl = b.ins().band_imm(sel, 3);
            let kernel = b.ins().icmp_imm(IntCC::NotEqual, rpl, 3);
            let mut t = Tx {
                b,
                ctx,
                cpu,
                used: used_regs(blk),
                sigs,
                blk,
                head: None,
                dirty: 0,
                host_pages,
                kernel,
                word,
                site: *site,
            };
            t.prologue();
            t.load_all();
            t.body();
            t.b.seal_all_blocks();
            t.b.finalize();
        }
        self.finish()
    }
}

/// Whether `op` is translated to host code (the others, including the
/// block engine's newer fast ops, run through the interpreter one slot at
/// a time).
pub fn translates(op: &FastOp) -> bool {
    matches!(
        op,
        FastOp::AluRR { .. }
            | FastOp::AluRI { .. }
            | FastOp::AluRM { .. }
            | FastOp::AluMR { .. }
            | FastOp::AluMI { .. }
            | FastOp::IncDec { .. }
            | FastOp::MovRR { .. }
            | FastOp::MovRI { .. }
            | FastOp::Load { .. }
            | FastOp::Store { .. }
            | FastOp::StoreI { .. }
            | FastOp::Extend { .. }
            | FastOp::Lea { .. }
            | FastOp::Push { .. }
            | FastOp::PushI { .. }
            | FastOp::Pop { .. }
            | FastOp::ShiftRI { .. }
            | FastOp::Cmov { .. }
            | FastOp::Setcc { .. }
            | FastOp::Jcc { .. }
            | FastOp::Jmp { .. }
            | FastOp::Call { .. }
            | FastOp::Ret
            | FastOp::RetImm { .. }
            | FastOp::JmpInd { .. }
            | FastOp::CallInd { .. }
            | FastOp::Nop
            | FastOp::Unary { .. }
            | FastOp::XchgRR { .. }
            | FastOp::Mul1 { .. }
            | FastOp::Div1 { .. }
            | FastOp::Imul2 { .. }
            | FastOp::Imul3 { .. }
            | FastOp::Shd { .. }
            | FastOp::Bt { .. }
            | FastOp::Cmpxchg { .. }
            | FastOp::IncDecM { .. }
            | FastOp::Convert { .. }
            | FastOp::Pushf
            | FastOp::Loop { .. }
    ) || matches!(op, FastOp::ShiftRC { op, .. } if !matches!(op, 2 | 3))
}

/// Add the registers a register or memory operand names.
fn add_rm(add: &mut impl FnMut(u8), rm: &Rm) {
    match *rm {
        Rm::Reg(r) => add(r),
        Rm::Mem(m) => {
            add(m.base);
            add(m.index);
        }
    }
}

/// The registers a block's translated ops name (RSP for stack ops).
fn used_regs(blk: &Block) -> u16 {
    let mut m = 0u16;
    let mut add = |r: u8| {
        if r != NONE {
            m |= 1 << r;
        }
    };
    for s in &blk.slots {
        match s.op {
            FastOp::AluRR { dst, src, .. }
            | FastOp::MovRR { dst, src, .. }
            | FastOp::Extend { dst, src, .. }
            | FastOp::Cmov { dst, src, .. } => {
                add(dst);
                add(src);
            }
            FastOp::AluRI { dst, .. }
            | FastOp::IncDec { dst, .. }
            | FastOp::MovRI { dst, .. }
            | FastOp::ShiftRI { dst, .. }
            | FastOp::Unary { dst, .. }
            | FastOp::Setcc { dst, .. } => add(dst),
            FastOp::XchgRR { a, b, .. } => {
                add(a);
                add(b);
            }
            FastOp::AluRM { dst, mem, .. }
            | FastOp::Load { dst, mem, .. }
            | FastOp::Lea { dst, mem, .. } => {
                add(dst);
                add(mem.base);
                add(mem.index);
            }
            FastOp::AluMR { src, mem, .. } | FastOp::Store { src, mem, .. } => {
                add(src);
                add(mem.base);
                add(mem.index);
            }
            FastOp::AluMI { mem, .. } | FastOp::StoreI { mem, .. } => {
                add(mem.base);
                add(mem.index);
            }
            FastOp::Push { src } => {
                add(src);
                add(4);
            }
            FastOp::Pop { dst } => {
                add(dst);
                add(4);
            }
            FastOp::JmpInd { src } | FastOp::CallInd { src } => {
                add_rm(&mut add, &src);
                add(4);
            }
            FastOp::PushI { .. }
            | FastOp::Call { .. }
            | FastOp::Ret
            | FastOp::RetImm { .. }
            | FastOp::Pushf => add(4),
            FastOp::Mul1 { src, .. } | FastOp::Div1 { src, .. } => {
                add(0);
                add(2);
                add_rm(&mut add, &src);
            }
            FastOp::Imul2 { dst, src, .. } | FastOp::Imul3 { dst, src, .. } => {
                add(dst);
                add_rm(&mut add, &src);
            }
            FastOp::ShiftRC { dst, .. } => {
                add(dst);
                add(1);
            }
            FastOp::Shd { dst, src, .. } => {
                add(dst);
                add(src);
                add(1);
            }
            FastOp::Bt { dst, bit_reg, .. } => {
                add(bit_reg);
                add_rm(&mut add, &dst);
            }
            FastOp::Cmpxchg { dst, src, .. } => {
                add(0);
                add(src);
                add_rm(&mut add, &dst);
            }
            FastOp::IncDecM { mem, .. } => {
                add(mem.base);
                add(mem.index);
            }
            FastOp::Convert { .. } => {
                add(0);
                add(2);
            }
            FastOp::Loop { .. } => add(1),
            _ => {}
        }
    }
    m
}

struct Sigs {
    read: SigRef,
    write: SigRef,
    slot: SigRef,
    /// A block function (for chaining).
    block: SigRef,
}

/// Translation state of one block.
struct Tx<'a, 'b> {
    b: FunctionBuilder<'a>,
    ctx: Value,
    cpu: Value,
    used: u16,
    sigs: Sigs,
    blk: &'b Block,
    /// The top of the block's own loop, when it loops to itself.
    head: Option<cranelift_codegen::ir::Block>,
    /// Variables that may differ from the register file here (bit 16:
    /// RFLAGS), so exits store only those.
    dirty: u32,
    /// The host-page table.
    host_pages: Value,
    /// Running below CPL 3 (`i8` boolean).
    kernel: Value,
    /// Address of the block's page word in the code-page tracker.
    word: usize,
    /// How the block chains.
    site: Site,
}

/// The variable of RFLAGS (GPRs are variables 0..16).
const FLAGS: usize = 16;
/// The variable counting instructions retired by earlier loop runs.
const DONE: usize = 17;
/// The variable holding the software TLB's address.
const TLBV: usize = 18;

impl Tx<'_, '_> {
    fn var(n: usize) -> Variable {
        Variable::new(n)
    }

    fn reg(&mut self, r: u8) -> Value {
        self.b.use_var(Self::var(r as usize))
    }

    fn set_reg(&mut self, r: u8, v: Value) {
        self.dirty |= 1 << r;
        self.b.def_var(Self::var(r as usize), v);
    }

    fn flags(&mut self) -> Value {
        self.b.use_var(Self::var(FLAGS))
    }

    fn set_flags(&mut self, v: Value) {
        self.dirty |= 1 << FLAGS;
        self.b.def_var(Self::var(FLAGS), v);
    }

    fn iconst(&mut self, v: u64) -> Value {
        self.b.ins().iconst(I64, v as i64)
    }

    /// Declare and load the block's registers and RFLAGS.
    fn load_all(&mut self) {
        for r in 0..16 {
            if self.used & (1 << r) != 0 {
                self.b.declare_var(Self::var(r), I64);
            }
        }
        self.b.declare_var(Self::var(FLAGS), I64);
        self.b.declare_var(Self::var(TLBV), I64);
        self.reload();
        let loops = self.blk.slots.iter().all(|s| s.kind != SlotKind::Generic)
            && matches!(
                self.blk.slots.last().map(|s| s.op),
                Some(FastOp::Jcc { target, .. } | FastOp::Jmp { target }) if target == self.blk.rip
            );
        if loops {
            let head = self.b.create_block();
            self.b.ins().jump(head, &[]);
            self.b.switch_to_block(head);
            self.head = Some(head);
            // Earlier runs of the loop may have changed anything.
            self.dirty = u32::from(self.used) | 1 << FLAGS;
        }
    }

    /// Load the variables from the register file.
    fn reload(&mut self) {
        for r in 0..16 {
            if self.used & (1 << r) != 0 {
                let v = self
                    .b
                    .ins()
                    .load(I64, MemFlags::trusted(), self.cpu, GPR + 8 * r as i32);
                self.b.def_var(Self::var(r), v);
            }
        }
        let f = self
            .b
            .ins()
            .load(I64, MemFlags::trusted(), self.cpu, RFLAGS);
        self.b.def_var(Self::var(FLAGS), f);
        let tlb = self.b.ins().load(I64, MemFlags::trusted(), self.cpu, TLB);
        self.b.def_var(Self::var(TLBV), tlb);
        self.dirty = 0;
    }

    /// Store the variables that changed into the register file.
    fn store_all(&mut self) {
        for r in 0..16u8 {
            if self.used & self.dirty as u16 & (1 << r) != 0 {
                let v = self.reg(r);
                self.b
                    .ins()
                    .store(MemFlags::trusted(), v, self.cpu, GPR + 8 * i32::from(r));
            }
        }
        if self.dirty & 1 << FLAGS != 0 {
            let f = self.flags();
            self.b.ins().store(MemFlags::trusted(), f, self.cpu, RFLAGS);
        }
    }

    fn set_rip(&mut self, v: Value) {
        self.b.ins().store(MemFlags::trusted(), v, self.cpu, RIP);
    }

    /// Return `n` more retired with exit `kind`.
    fn ret(&mut self, n: usize, kind: u64) {
        let done = self.b.use_var(Self::var(DONE));
        let v = self
            .b
            .ins()
            .iadd_imm(done, (n as u64 | kind << EXIT_SHIFT) as i64);
        self.b.ins().return_(&[v]);
    }

    /// Continue in a fresh block when `status` is zero, else leave with
    /// `n` retired: after storing the registers for `EXIT_FAULT`, straight
    /// away for `EXIT_SLOT` (the interpreter holds the state).
    fn check(&mut self, status: Value, n: usize, kind: u64) {
        let bad = self.b.create_block();
        let ok = self.b.create_block();
        self.b.ins().brif(status, bad, &[], ok, &[]);
        self.b.switch_to_block(bad);
        self.b.set_cold_block(bad);
        if kind == EXIT_FAULT {
            self.store_all();
            let rip = self.iconst(self.blk.slots[n - 1].rip);
            self.b
                .ins()
                .store(MemFlags::trusted(), rip, self.ctx, CTX_FAULT_RIP);
        }
        self.ret(n, kind);
        self.b.switch_to_block(ok);
    }

    /// Call a helper at `addr` with `sig`.
    fn call(&mut self, sig: SigRef, addr: usize, args: &[Value]) -> Value {
        let f = self.iconst(addr as u64);
        let c = self.b.ins().call_indirect(sig, f, args);
        self.b.inst_results(c)[0]
    }

    /// Whether `bytes` at `la` are RAM the software TLB lets this access
    /// reach without a walk (`i8`), their host address if so, and the
    /// host-page table slot.
    fn host_addr(&mut self, la: Value, bytes: u8, write: bool) -> (Value, Value, Value) {
        let b = &mut self.b;
        let off = b.ins().band_imm(la, 0xfff);
        let vpn = b.ins().ushr_imm(la, 12);
        let idx = b.ins().band_imm(vpn, hostpages::SLOTS as i64 - 1);
        let tlb = b.use_var(Self::var(TLBV));
        let eo = b.ins().imul_imm(idx, TLB_ENTRY);
        let e = b.ins().iadd(tlb, eo);
        let tag = b
            .ins()
            .load(I64, MemFlags::trusted(), e, TLB_ENTRIES + TLB_TAG);
        let want = b.ins().iadd_imm(vpn, 1);
        let mut ok = b.ins().icmp(IntCC::Equal, tag, want);
        let ho = b.ins().imul_imm(idx, HOST_PAGE);
        let h = b.ins().iadd(self.host_pages, ho);
        let ppn = b
            .ins()
            .load(I64, MemFlags::trusted(), e, TLB_ENTRIES + TLB_PPN);
        // Stores use the writable page number (none for code pages).
        let which = if write {
            hostpages::WPPN
        } else {
            hostpages::PPN
        };
        let cached = b.ins().load(I64, MemFlags::trusted(), h, which);
        let same = b.ins().icmp(IntCC::Equal, ppn, cached);
        ok = b.ins().band(ok, same);
        let user = b
            .ins()
            .uload8(I32, MemFlags::trusted(), e, TLB_ENTRIES + TLB_USER);
        let user = b.ins().icmp_imm(IntCC::NotEqual, user, 0);
        let allowed = b.ins().bor(user, self.kernel);
        ok = b.ins().band(ok, allowed);
        if write {
            let w = b
                .ins()
                .uload8(I32, MemFlags::trusted(), e, TLB_ENTRIES + TLB_WRITE);
            let w = b.ins().icmp_imm(IntCC::NotEqual, w, 0);
            ok = b.ins().band(ok, w);
        }
        if bytes > 1 {
            let end = b.ins().iadd_imm(off, i64::from(bytes));
            let inside = b
                .ins()
                .icmp_imm(IntCC::UnsignedLessThanOrEqual, end, 0x1000);
            ok = b.ins().band(ok, inside);
        }
        let host = b.ins().load(I64, MemFlags::trusted(), h, hostpages::HOST);
        (ok, b.ins().iadd(host, off), h)
    }

    /// Read `bytes` at `la` for slot `k`: RAM through the host-page table,
    /// anything else through the helper (a fault leaves by the fault exit).
    fn read(&mut self, la: Value, bytes: u8, k: usize) -> Value {
        let (ok, addr, _) = self.host_addr(la, bytes, false);
        let fast = self.b.create_block();
        let slow = self.b.create_block();
        let join = self.b.create_block();
        let v = self.b.append_block_param(join, I64);
        self.b.ins().brif(ok, fast, &[], slow, &[]);
        self.b.switch_to_block(fast);
        let f = MemFlags::new();
        let x = match bytes {
            1 => self.b.ins().uload8(I64, f, addr, 0),
            2 => self.b.ins().uload16(I64, f, addr, 0),
            4 => self.b.ins().uload32(f, addr, 0),
            _ => self.b.ins().load(I64, f, addr, 0),
        };
        self.b.ins().jump(join, &[BlockArg::Value(x)]);
        self.b.switch_to_block(slow);
        self.b.set_cold_block(slow);
        let y = self.read_slow(la, bytes, k);
        self.b.ins().jump(join, &[BlockArg::Value(y)]);
        self.b.switch_to_block(join);
        v
    }

    /// Write `bytes` of `v` at `la` for slot `k` (as [`Tx::read`]).
    fn write(&mut self, la: Value, v: Value, bytes: u8, k: usize) {
        let (ok, addr, h) = self.host_addr(la, bytes, true);
        let fast = self.b.create_block();
        let slow = self.b.create_block();
        let join = self.b.create_block();
        self.b.ins().brif(ok, fast, &[], slow, &[]);
        self.b.switch_to_block(fast);
        let f = MemFlags::new();
        match bytes {
            1 => self.b.ins().istore8(f, v, addr, 0),
            2 => self.b.ins().istore16(f, v, addr, 0),
            4 => self.b.ins().istore32(f, v, addr, 0),
            _ => self.b.ins().store(f, v, addr, 0),
        };
        self.report_code_store(la, h, bytes);
        self.b.ins().jump(join, &[]);
        self.b.switch_to_block(slow);
        self.b.set_cold_block(slow);
        self.write_slow(la, v, bytes, k);
        self.b.ins().jump(join, &[]);
        self.b.switch_to_block(join);
    }

    /// After an inline store of `bytes` at `la` (within the page of
    /// host-page slot `h`): if the written chunks hold code (the page
    /// gained code after the slot was filled), report the store as
    /// `write_la` would (rule 2 of `hostpages`).
    fn report_code_store(&mut self, la: Value, h: Value, bytes: u8) {
        let b = &mut self.b;
        let word_at = b.ins().load(I64, MemFlags::trusted(), h, hostpages::CODE);
        let word = b.ins().atomic_load(I64, MemFlags::trusted(), word_at);
        let off = b.ins().band_imm(la, 0xfff);
        let first = b.ins().ushr_imm(off, i64::from(codemap::CHUNK_SHIFT));
        let last = b.ins().iadd_imm(off, i64::from(bytes) - 1);
        let last = b.ins().ushr_imm(last, i64::from(codemap::CHUNK_SHIFT));
        let one = b.ins().iconst(I64, 1);
        let m1 = b.ins().ishl(one, first);
        let m2 = b.ins().ishl(one, last);
        let bits = b.ins().bor(m1, m2);
        let hit = b.ins().band(word, bits);
        let report = b.create_block();
        let done = b.create_block();
        b.ins().brif(hit, report, &[], done, &[]);
        b.switch_to_block(report);
        b.set_cold_block(report);
        let page = b.ins().load(I64, MemFlags::trusted(), h, hostpages::PAGE);
        let n = b.ins().iconst(I32, i64::from(bytes));
        let addr = helpers::code_stored as *const () as usize;
        // It cannot fail (its status is always `GO_ON`).
        self.call(self.sigs.write, addr, &[self.ctx, page, off, n]);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(done);
    }

    /// Whether the block's page generation still equals its stamp (`i8`).
    fn page_unchanged(&mut self) -> Value {
        let at = self.iconst(self.word as u64);
        let word = self.b.ins().atomic_load(I64, MemFlags::trusted(), at);
        let generation = self.b.ins().ushr_imm(word, i64::from(codemap::MARK_BITS));
        self.b
            .ins()
            .icmp_imm(IntCC::Equal, generation, self.blk.stamp as i64)
    }

    /// Read through the helper.
    fn read_slow(&mut self, la: Value, bytes: u8, k: usize) -> Value {
        let n = self.b.ins().iconst(I32, i64::from(bytes));
        let addr = helpers::read as *const () as usize;
        let st = self.call(self.sigs.read, addr, &[self.ctx, la, n]);
        self.check(st, k + 1, EXIT_FAULT);
        self.b
            .ins()
            .load(I64, MemFlags::trusted(), self.ctx, CTX_VALUE)
    }

    /// Write through the helper.
    fn write_slow(&mut self, la: Value, v: Value, bytes: u8, k: usize) {
        let n = self.b.ins().iconst(I32, i64::from(bytes));
        let addr = helpers::write as *const () as usize;
        let st = self.call(self.sigs.write, addr, &[self.ctx, la, v, n]);
        self.check(st, k + 1, EXIT_FAULT);
    }

    /// Run slot `k` through the interpreter.
    fn interpret(&mut self, k: usize) {
        self.store_all();
        let kk = self.b.ins().iconst(I32, k as i64);
        let addr = helpers::slot as *const () as usize;
        let st = self.call(self.sigs.slot, addr, &[self.ctx, kk]);
        self.check(st, k + 1, EXIT_SLOT);
        self.reload();
    }

    /// The effective address of `m` (no segment base).
    fn ea(&mut self, m: &MemRef) -> Value {
        let mut a = self.iconst(m.disp);
        if m.base != NONE {
            let r = self.reg(m.base);
            a = self.b.ins().iadd(a, r);
        }
        if m.index != NONE {
            let r = self.reg(m.index);
            let s = self.b.ins().imul_imm(r, i64::from(m.scale));
            a = self.b.ins().iadd(a, s);
        }
        a
    }

    /// The linear address of `m`.
    fn la(&mut self, m: &MemRef) -> Value {
        let a = self.ea(m);
        let seg = match m.seg {
            0 => return a,
            1 => Seg::Fs,
            _ => Seg::Gs,
        };
        let base = self
            .b
            .ins()
            .load(I64, MemFlags::trusted(), self.cpu, seg_base(seg));
        self.b.ins().iadd(a, base)
    }

    /// After store slot `k`: a changed generation of the block's page (a
    /// store into a chunk holding code) ends the block, as in `exec_slot`.
    fn generation_check(&mut self, k: usize) {
        let same = self.page_unchanged();
        let exit = self.b.create_block();
        let ok = self.b.create_block();
        self.b.ins().brif(same, ok, &[], exit, &[]);
        self.b.switch_to_block(exit);
        self.b.set_cold_block(exit);
        self.store_all();
        let next = self.iconst(self.blk.slots[k].next);
        self.set_rip(next);
        self.ret(k + 1, EXIT_STOP);
        self.b.switch_to_block(ok);
    }

    /// `dst = write_sized(dst, v, size)`.
    fn write_reg(&mut self, dst: u8, v: Value, size: u8) {
        let old = self.reg(dst);
        let nv = ir::write_sized(&mut self.b, old, v, size);
        self.set_reg(dst, nv);
    }

    /// Translate every slot, then the end of the block.
    fn body(&mut self) {
        let n = self.blk.slots.len();
        for k in 0..n {
            if let Some(end) = self.slot(k) {
                self.end_block(k, end);
                return;
            }
        }
        self.store_all();
        self.exit_direct(n, self.blk.slots[n - 1].next, exits::FALL_THROUGH);
    }

    /// Translate slot `k`; `Some(end)` when it ends the block with a
    /// branch.
    fn slot(&mut self, k: usize) -> Option<exits::End> {
        let s = self.blk.slots[k];
        if s.kind == SlotKind::Generic || !translates(&s.op) {
            self.interpret(k);
            return None;
        }
        let store_la = s.op.store_target().map(|m| self.la(m));
        match s.op {
            FastOp::AluRR {
                op,
                size,
                dst,
                src,
                flags,
            } => {
                let a = self.reg(dst);
                let a = ir::read_sized(&mut self.b, a, size);
                let x = self.reg(src);
                let x = ir::read_sized(&mut self.b, x, size);
                self.alu_to_reg(op, size, dst, a, x, flags);
            }
            FastOp::AluRI {
                op,
                size,
                dst,
                imm,
                flags,
            } => {
                let a = self.reg(dst);
                let a = ir::read_sized(&mut self.b, a, size);
                let x = self.iconst(imm);
                self.alu_to_reg(op, size, dst, a, x, flags);
            }
            FastOp::AluRM {
                op,
                size,
                dst,
                mem,
                flags,
            } => {
                let la = self.la(&mem);
                let x = self.read(la, size, k);
                let a = self.reg(dst);
                let a = ir::read_sized(&mut self.b, a, size);
                self.alu_to_reg(op, size, dst, a, x, flags);
            }
            FastOp::AluMR {
                op,
                size,
                src,
                flags,
                ..
            } => {
                let x = self.reg(src);
                let x = ir::read_sized(&mut self.b, x, size);
                self.alu_to_mem(op, size, store_la?, x, flags, k);
            }
            FastOp::AluMI {
                op,
                size,
                imm,
                flags,
                ..
            } => {
                let x = self.iconst(imm);
                self.alu_to_mem(op, size, store_la?, x, flags, k);
            }
            FastOp::IncDec {
                dec,
                size,
                dst,
                flags,
            } => {
                let a = self.reg(dst);
                let a = ir::read_sized(&mut self.b, a, size);
                let one = self.iconst(1);
                let bits = u32::from(size) * 8;
                let r = if flags {
                    let (r, f) = ir::add_sub(&mut self.b, dec, a, one, None, bits, false);
                    let old = self.flags();
                    let nf = ir::merge_flags(
                        &mut self.b,
                        old,
                        f,
                        super::super::state::flags::ARITH & !1,
                    );
                    self.set_flags(nf);
                    r
                } else if dec {
                    self.b.ins().isub(a, one)
                } else {
                    self.b.ins().iadd(a, one)
                };
                self.write_reg(dst, r, size);
            }
            FastOp::Nop => {}
            FastOp::Unary {
                neg,
                size,
                dst,
                flags,
            } => {
                let a = self.reg(dst);
                let a = ir::read_sized(&mut self.b, a, size);
                let r = if !neg {
                    self.b.ins().bnot(a)
                } else if flags {
                    let zero = self.iconst(0);
                    let bits = u32::from(size) * 8;
                    let (r, f) = ir::add_sub(&mut self.b, true, zero, a, None, bits, true);
                    let old = self.flags();
                    let nf =
                        ir::merge_flags(&mut self.b, old, f, super::super::state::flags::ARITH);
                    self.set_flags(nf);
                    r
                } else {
                    self.b.ins().ineg(a)
                };
                self.write_reg(dst, r, size);
            }
            FastOp::XchgRR { size, a, b } => {
                let (va, vb) = (self.reg(a), self.reg(b));
                self.write_reg(a, vb, size);
                self.write_reg(b, va, size);
            }
            FastOp::MovRR { size, dst, src } => {
                let v = self.reg(src);
                self.write_reg(dst, v, size);
            }
            FastOp::MovRI { size, dst, imm } => {
                let v = self.iconst(imm);
                self.write_reg(dst, v, size);
            }
            FastOp::Load {
                size,
                from,
                signed,
                dst,
                mem,
            } => {
                let la = self.la(&mem);
                let mut v = self.read(la, from, k);
                if signed && from < size {
                    v = ir::sign_extend(&mut self.b, v, u32::from(from) * 8);
                }
                self.write_reg(dst, v, size);
            }
            FastOp::Store { size, src, .. } => {
                let la = store_la?;
                let v = self.reg(src);
                self.write(la, v, size, k);
                self.generation_check(k);
            }
            FastOp::StoreI { size, imm, .. } => {
                let la = store_la?;
                let v = self.iconst(imm);
                self.write(la, v, size, k);
                self.generation_check(k);
            }
            FastOp::Extend {
                size,
                from,
                signed,
                dst,
                src,
            } => {
                let v = self.reg(src);
                let mut v = ir::read_sized(&mut self.b, v, from);
                if signed {
                    v = ir::sign_extend(&mut self.b, v, u32::from(from) * 8);
                }
                self.write_reg(dst, v, size);
            }
            FastOp::Lea { size, dst, mem } => {
                let a = self.ea(&mem);
                self.write_reg(dst, a, size);
            }
            FastOp::Push { src } => {
                let v = self.reg(src);
                self.push(v, k);
            }
            FastOp::PushI { imm } => {
                let v = self.iconst(imm);
                self.push(v, k);
            }
            FastOp::Pop { dst } => {
                let sp = self.reg(4);
                let v = self.read(sp, 8, k);
                let nsp = self.b.ins().iadd_imm(sp, 8);
                self.set_reg(4, nsp);
                self.set_reg(dst, v);
            }
            FastOp::ShiftRI {
                op,
                size,
                dst,
                count,
            } => {
                let a = self.reg(dst);
                let a = ir::read_sized(&mut self.b, a, size);
                let f = self.flags();
                let Some((r, nf)) = ir::shift(&mut self.b, op, a, u32::from(count), size, f) else {
                    self.interpret(k);
                    return None;
                };
                self.set_flags(nf);
                self.write_reg(dst, r, size);
            }
            FastOp::Cmov { cc, size, dst, src } => {
                let f = self.flags();
                let c = ir::cond(&mut self.b, cc, f);
                let (x, y) = (self.reg(src), self.reg(dst));
                let v = self.b.ins().select(c, x, y);
                self.write_reg(dst, v, size);
            }
            FastOp::Setcc { cc, dst } => {
                let f = self.flags();
                let c = ir::cond(&mut self.b, cc, f);
                self.write_reg(dst, c, 1);
            }
            FastOp::Jcc { cc, target } => {
                let f = self.flags();
                let c = ir::cond(&mut self.b, cc, f);
                return Some(exits::End::Cond(c, target, s.next));
            }
            FastOp::Jmp { target } => return Some(exits::End::To(target)),
            FastOp::Call { target } => {
                let next = self.iconst(s.next);
                self.push(next, k);
                return Some(exits::End::To(target));
            }
            FastOp::Ret => return Some(self.ret_op(0, k)),
            FastOp::RetImm { imm } => return Some(self.ret_op(imm, k)),
            FastOp::JmpInd { src } => {
                let target = self.rm64(&src, k);
                self.canonical_or_interpret(target, k);
                return Some(exits::End::Dyn(target));
            }
            FastOp::CallInd { src } => {
                let target = self.rm64(&src, k);
                self.canonical_or_interpret(target, k);
                let next = self.iconst(s.next);
                self.push(next, k);
                return Some(exits::End::Dyn(target));
            }
            FastOp::Mul1 {
                signed,
                size,
                src,
                flags,
            } => self.mul1(signed, size, &src, flags, k),
            FastOp::Imul2 {
                size,
                dst,
                src,
                flags,
            } => self.imul(size, dst, &src, None, flags, k),
            FastOp::Imul3 {
                size,
                dst,
                src,
                imm,
                flags,
            } => self.imul(size, dst, &src, Some(imm), flags, k),
            FastOp::Div1 { signed, size, src } => self.div1(signed, size, &src, k),
            FastOp::ShiftRC {
                op,
                size,
                dst,
                flags,
            } => self.shift_cl(op, size, dst, flags, k),
            FastOp::Shd {
                left,
                size,
                dst,
                src,
                count,
            } => self.shift_double(left, size, dst, src, count),
            FastOp::Bt {
                op,
                size,
                dst,
                bit_reg,
                bit,
            } => self.bit_test(op, size, &dst, bit_reg, bit, store_la, k),
            FastOp::Cmpxchg { size, dst, src } => self.cmpxchg(size, &dst, src, store_la, k),
            FastOp::IncDecM { dec, size, .. } => self.inc_dec_mem(dec, size, store_la?, k),
            FastOp::Convert { op } => self.convert(op),
            FastOp::Pushf => self.pushf(k),
            FastOp::Loop { op, target } => return Some(self.loop_branch(op, target, s.next)),
            _ => self.interpret(k),
        }
        None
    }

    /// `dst op= x` (CMP/TEST only set flags).
    fn alu_to_reg(
        &mut self,
        op: super::super::fastop::AluOp,
        size: u8,
        dst: u8,
        a: Value,
        x: Value,
        flags: bool,
    ) {
        let f = self.flags();
        let (r, nf) = ir::alu(&mut self.b, op, size, a, x, f, flags);
        if flags {
            self.set_flags(nf);
        }
        if !matches!(
            op,
            super::super::fastop::AluOp::Cmp | super::super::fastop::AluOp::Test
        ) {
            self.write_reg(dst, r, size);
        }
    }

    /// `[la] op= x`: read, compute, store, and only then the flags.
    fn alu_to_mem(
        &mut self,
        op: super::super::fastop::AluOp,
        size: u8,
        la: Value,
        x: Value,
        flags: bool,
        k: usize,
    ) {
        let a = self.read(la, size, k);
        let f = self.flags();
        let (r, nf) = ir::alu(&mut self.b, op, size, a, x, f, flags);
        if !matches!(
            op,
            super::super::fastop::AluOp::Cmp | super::super::fastop::AluOp::Test
        ) {
            self.write(la, r, size, k);
        }
        if flags {
            self.set_flags(nf);
        }
        self.generation_check(k);
    }

    /// RET (`imm` more bytes popped) for slot `k`.
    fn ret_op(&mut self, imm: u16, k: usize) -> exits::End {
        let sp = self.reg(4);
        let target = self.read(sp, 8, k);
        self.canonical_or_interpret(target, k);
        let nsp = self.b.ins().iadd_imm(sp, 8 + i64::from(imm));
        self.set_reg(4, nsp);
        exits::End::Dyn(target)
    }

    /// The 64-bit register or memory operand `src` of slot `k`.
    fn rm64(&mut self, src: &Rm, k: usize) -> Value {
        match src {
            Rm::Reg(r) => self.reg(*r),
            Rm::Mem(m) => {
                let la = self.la(m);
                self.read(la, 8, k)
            }
        }
    }

    /// A non-canonical branch target: let the interpreter run slot `k`
    /// (it raises the #GP from the state before the branch).
    fn canonical_or_interpret(&mut self, target: Value, k: usize) {
        let hi = self.b.ins().sshr_imm(target, 47);
        let plus = self.b.ins().iadd_imm(hi, 1);
        let bad = self.b.ins().icmp_imm(IntCC::UnsignedGreaterThan, plus, 1);
        let slow = self.b.create_block();
        let ok = self.b.create_block();
        self.b.ins().brif(bad, slow, &[], ok, &[]);
        self.b.switch_to_block(slow);
        self.b.set_cold_block(slow);
        let dirty = self.dirty;
        self.interpret(k);
        // The interpreter faulted (the check above); never reached in
        // practice, but a valid exit all the same (the branch set RIP).
        self.ret(k + 1, EXIT_NEXT);
        self.b.switch_to_block(ok);
        self.dirty = dirty;
    }

    /// PUSH `v` for slot `k`: the store first, then RSP.
    fn push(&mut self, v: Value, k: usize) {
        let sp = self.reg(4);
        let nsp = self.b.ins().iadd_imm(sp, -8);
        self.write(nsp, v, 8, k);
        self.set_reg(4, nsp);
    }
}
