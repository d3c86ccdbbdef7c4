//! One interpreted CPU: fetch, decode (with a per-page decode cache),
//! execute, and deliver exceptions and interrupts through the IDT.

use std::sync::Arc;

use iced_x86::{Decoder, DecoderOptions, Instruction, Register};

use super::dcache::DecodeCache;
use super::fpu::{self, FpuContext, FpuError, MemFault};
use super::mem::{Access, Exception, Mmu};
use super::ram::RamMap;
use super::state::flags::*;
use super::state::{CpuState, Seg, EFER_LMA, EFER_LME, EFER_NXE, EFER_SCE};
use crate::{Clock, GuestMemory, IoBus};

/// The LAPIC timer / crystal clock the board's userspace LAPIC counts at
/// (devices::irqchip::LAPIC_BUS_HZ; cpu cannot depend on devices).
pub const CRYSTAL_HZ: u32 = 1_000_000_000;

/// What [`Cpu::step`] gives: `Ok((stop, shadow))` — HLT, if it halted,
/// and whether the next instruction is in an interrupt shadow — or a
/// triple fault.
pub type StepResult = Result<(Option<Stop>, bool), Stop>;

/// Why `step` stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// HLT.
    Halt,
    /// Triple fault.
    TripleFault,
}

/// An interpreted CPU.
pub struct Cpu {
    /// Architectural state.
    pub st: CpuState,
    /// vCPU index (APIC ID).
    pub id: u32,
    pub(super) mem: Arc<GuestMemory>,
    clock: Arc<Clock>,
    pub(super) io: Option<*const dyn IoBus>,
    /// The memory operand of the LOCK'd instruction being executed.
    pub(super) locked: super::atomic::LockedOperand,
    /// What the locked instruction being executed holds of the bus lock.
    pub(super) bus: super::buslock::Hold,
    /// Host addresses of guest RAM (fast loads, stores and fetches).
    pub(super) ram: RamMap,
    /// Decoded instructions by physical address (code bytes are
    /// re-checked against memory before use, so self-modifying code is safe).
    cache: Box<DecodeCache>,
    /// Decoded blocks (see `block`).
    pub(super) blocks: Box<super::block::BlockCache>,
    /// Instructions retired.
    pub retired: u64,
    /// What CPUID answers (the `-cpu` model).
    pub(super) cpuid_table: super::cpuid::CpuidTable,
    /// RDRAND/RDSEED's generator under instruction-counted time (runs
    /// must repeat exactly there).
    pub(super) replay_rng: u64,
    /// The last instructions executed (RIP, after-state RAX..RDI), kept
    /// when exception tracing is on.
    history: std::collections::VecDeque<(u64, String)>,
    /// The vector of the last exception raised (the snippet runner's probe).
    pub last_exception: Option<u8>,
    /// Instructions left to print (`KINDLING_TRACE_FROM=rip[,count]`).
    tracing: u64,
    /// A spare FPU state box that stands in `st.fpu` while an x87/SSE/AVX
    /// instruction holds the real one (see `fpu`).
    fpu_spare: Option<Box<fpu::FpuState>>,
    /// A debugging aid is on (checked once per instruction), or the block
    /// engine is off.
    debugging: bool,
}

// SAFETY: `io` is only set for the duration of `run`, on the thread that
// owns the CPU, and cleared before `run` returns.
unsafe impl Send for Cpu {}

impl std::fmt::Debug for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cpu")
            .field("id", &self.id)
            .field("rip", &self.st.rip)
            .finish()
    }
}

impl Cpu {
    /// A CPU in its reset state.
    pub fn new(id: u32, mem: Arc<GuestMemory>, clock: Arc<Clock>) -> Self {
        let max = crate::features::CpuModel::Max;
        let (cpuid_table, _) = super::cpuid::CpuidTable::new(max, id, clock.tsc_khz(), &[]);
        Cpu {
            st: CpuState::default(),
            id,
            locked: super::atomic::LockedOperand::Off,
            bus: super::buslock::Hold::None,
            ram: RamMap::new(mem.clone()),
            mem,
            clock,
            io: None,
            cache: Box::default(),
            blocks: Box::default(),
            retired: 0,
            cpuid_table,
            replay_rng: u64::from(id),
            history: std::collections::VecDeque::new(),
            last_exception: None,
            tracing: 0,
            fpu_spare: None,
            debugging: trace_from().is_some() || trace_exceptions() || no_blocks(),
        }
    }

    /// Apply the `-accel tcg` options: the block cache's size, and
    /// one instruction per block (the single-step executor; it also turns
    /// the compiled tier off).
    pub fn configure(&mut self, opts: &super::tcg_options::TcgOptions) {
        *self.blocks = super::block::BlockCache::with_slots(opts.block_slots());
        if opts.one_insn_per_tb {
            self.debugging = true;
            self.set_jit_threshold(0);
        }
    }

    /// Attach the board's I/O for the duration of a run.
    pub fn attach_io(&mut self, io: Option<&dyn IoBus>) {
        // SAFETY: lifetime erasure; see the `Send` impl: the pointer is
        // cleared by the caller before the borrow ends.
        self.io = io.map(
            |i| unsafe { std::mem::transmute::<&dyn IoBus, &'static dyn IoBus>(i) }
                as *const dyn IoBus,
        );
    }

    fn io(&self) -> Option<&dyn IoBus> {
        // SAFETY: see `attach_io`.
        self.io.map(|p| unsafe { &*p })
    }

    /// The memory context.
    pub fn mmu(&self) -> Mmu<'_> {
        make_mmu(&self.mem, &self.ram, self.io, self.id)
    }
}

/// Build a memory context from disjoint fields (so `st` stays borrowable).
pub fn make_mmu<'a>(
    mem: &'a GuestMemory,
    ram: &'a RamMap,
    io: Option<*const dyn IoBus>,
    vcpu: u32,
) -> Mmu<'a> {
    struct NoIo;
    impl IoBus for NoIo {
        fn pio_read(&self, _: u32, _: u16, d: &mut [u8]) {
            d.fill(0xff);
        }
        fn pio_write(&self, _: u32, _: u16, _: &[u8]) {}
        fn mmio_read(&self, _: u32, _: u64, d: &mut [u8]) {
            d.fill(0);
        }
        fn mmio_write(&self, _: u32, _: u64, _: &[u8]) {}
    }
    static NO_IO: NoIo = NoIo;
    let io: &dyn IoBus = match io {
        // SAFETY: see `Cpu::attach_io`: the pointer is live while set.
        Some(p) => unsafe { &*p },
        None => &NO_IO,
    };
    Mmu { mem, ram, io, vcpu }
}

impl Cpu {
    /// Forget cached translations (CR3/CR0/CR4/EFER writes, INVLPG).
    pub fn flush_tlb(&mut self) {
        self.st.tlb.flush();
    }

    /// Port input.
    pub fn io_in(&self, port: u16, buf: &mut [u8]) {
        match self.io() {
            Some(io) => io.pio_read(self.id, port, buf),
            None => buf.fill(0xff),
        }
    }

    /// Port output.
    pub fn io_out(&self, port: u16, buf: &[u8]) {
        if let Some(io) = self.io() {
            io.pio_write(self.id, port, buf);
        }
    }

    /// The guest clock this CPU runs on.
    pub fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }

    /// The TSC rate guests are told.
    pub fn clock_tsc_khz(&self) -> u64 {
        self.clock.tsc_khz()
    }

    /// Account retired instructions on the shared clock (`-icount`).
    pub fn account(&self, n: u64) {
        self.clock.add_instructions(n);
    }

    /// The current TSC.
    pub fn tsc(&self) -> u64 {
        (self.clock.tsc() as i64).wrapping_add(self.st.msr.tsc_offset) as u64
    }

    /// The linear address of RIP.
    #[inline]
    fn rip_linear(&self) -> u64 {
        let la = self.seg_base(Seg::Cs).wrapping_add(self.st.rip);
        if self.st.long64() {
            la
        } else {
            la & 0xffff_ffff
        }
    }

    /// Translate RIP for execution: its physical address, and the host
    /// address of its page when that is RAM (else 0).
    #[inline]
    pub(super) fn code_page(&mut self) -> Result<(u64, usize), Exception> {
        let la = self.rip_linear();
        let cpl = self.st.cpl();
        let page = la & !0xfff;
        let cp = self.st.tlb.1;
        if cp.la == page && cp.cpl == cpl {
            return Ok((cp.pa | (la & 0xfff), cp.host));
        }
        let mmu = crate::interp_mmu!(self);
        let pa = match self.st.tlb_hit(la, Access::Exec) {
            Some(pa) => pa,
            None => mmu.translate(&mut self.st, la, Access::Exec)?,
        };
        let host = self.ram.host(pa & !0xfff, 0x1000).map_or(0, |p| p as usize);
        self.st.tlb.1 = super::state::CodePage {
            la: page,
            pa: pa & !0xfff,
            host,
            cpl,
        };
        Ok((pa, host))
    }

    fn fetch(&mut self, out: &mut Instruction) -> Result<(), Exception> {
        let la = self.rip_linear();
        let bitness = self.st.bitness();
        let (pa, host) = self.code_page()?;
        let room = (0x1000 - (la & 0xfff)) as usize;
        let mut bytes = [0u8; 16];
        let n = room.min(15);
        let mmu = crate::interp_mmu!(self);
        if host != 0 && room >= 16 {
            // SAFETY: `host` maps the whole RAM page and 16 bytes from
            // this offset stay inside it; two host loads (another vCPU may
            // be patching the code: the decode cache re-checks the bytes).
            bytes = unsafe {
                let p = (host + (la & 0xfff) as usize) as *const u8;
                let lo = super::shared_ram::load(p, 8);
                let hi = super::shared_ram::load(p.add(8), 8);
                (u128::from(lo) | u128::from(hi) << 64).to_le_bytes()
            };
        } else {
            mmu.phys_read(pa, &mut bytes[..n]);
        }
        // Keyed by linear RIP too: iced stores branch targets and
        // RIP-relative addresses absolutely.
        let rip = self.st.rip;
        if self.cache.get_into(pa, rip, bitness, &bytes, n, out) {
            return Ok(());
        }
        let mut dec = Decoder::with_ip(bitness, &bytes[..n], rip, DecoderOptions::NONE);
        let mut ins = dec.decode();
        if ins.is_invalid() && n < 15 {
            // The instruction crosses a page: fetch the rest.
            mmu.read(&mut self.st, la, &mut bytes[..15], Access::Exec)?;
            let mut dec = Decoder::with_ip(bitness, &bytes[..15], rip, DecoderOptions::NONE);
            ins = dec.decode();
        } else if ins.len() <= n {
            self.cache.insert(pa, rip, bitness, &bytes, n, ins);
        }
        if ins.is_invalid() {
            return Err(Exception::UD);
        }
        *out = ins;
        Ok(())
    }

    /// The debugging aids (`KINDLING_TRACE_FROM`, `KINDLING_TRACE_EXCEPTIONS`),
    /// out of the hot path.
    #[cold]
    #[inline(never)]
    fn trace(&mut self, i: &Instruction) {
        if let Some((from, count)) = trace_from() {
            if self.st.rip == from && self.tracing == 0 {
                self.tracing = count;
            }
            if self.tracing > 0 {
                self.tracing -= 1;
                eprintln!(
                    "T {:#x}: {i:<40} rax={:x} rcx={:x} rdx={:x} rsi={:x} rdi={:x} rsp={:x}",
                    self.st.rip,
                    self.st.gpr[0],
                    self.st.gpr[1],
                    self.st.gpr[2],
                    self.st.gpr[6],
                    self.st.gpr[7],
                    self.st.gpr[4]
                );
            }
        }
        if trace_exceptions() {
            if self.history.len() >= 400 {
                self.history.pop_front();
            }
            let g = &self.st.gpr;
            self.history.push_back((
                self.st.rip,
                format!(
                    "{i:<36} rax={:x} rbx={:x} rcx={:x} rdx={:x} rsi={:x} rdi={:x} r12={:x} r13={:x} r14={:x}",
                    g[0], g[3], g[1], g[2], g[6], g[7], g[12], g[13], g[14]
                ),
            ));
        }
    }

    /// Execute one instruction; `Ok(Some(stop))` for HLT or a triple fault.
    /// Returns whether the next instruction is in an interrupt shadow.
    pub fn step(&mut self) -> StepResult {
        let start_rip = self.st.rip;
        let bitness = self.st.bitness();
        let tf = self.st.rflags & TF != 0;
        let mut ins = Instruction::default();
        let result = self.fetch(&mut ins).and_then(|()| {
            let i = &ins;
            if self.debugging {
                self.trace(i);
            }
            self.st.rip = match bitness {
                64 => i.next_ip(),
                32 => i.next_ip() & 0xffff_ffff,
                _ => i.next_ip() & 0xffff,
            };
            self.execute(i)
        });
        self.retired += 1;
        match result {
            Ok(super::exec::Outcome::Next) => {
                self.single_step_after(&ins, tf).map(|_| (None, false))
            }
            Ok(super::exec::Outcome::Shadow) => {
                self.single_step_after(&ins, tf).map(|_| (None, true))
            }
            Ok(super::exec::Outcome::Halt) => Ok((Some(Stop::Halt), false)),
            Err(e) => {
                self.st.rip = start_rip;
                self.raise(e).map(|_| (None, false))
            }
        }
    }

    /// Execute about `max` (at least one; when `exact`, at most `max`)
    /// instructions: cached blocks when they can run from RIP, else a
    /// single step. Returns how many
    /// instructions retired, and the result as [`Cpu::step`] gives it.
    pub fn step_block(&mut self, max: u64, exact: bool) -> (u64, StepResult) {
        // Single-stepping (TF) goes instruction by instruction.
        if !self.debugging && self.st.rflags & TF == 0 {
            if let super::block::BlockRun::Ran(n, r) = self.run_block(max, exact) {
                self.retired += n;
                return (n, r);
            }
        }
        (1, self.step())
    }

    /// Deliver an exception, escalating to #DF and triple fault.
    /// `KINDLING_TRACE_EXCEPTIONS=1` logs each one to stderr.
    pub fn raise(&mut self, e: Exception) -> Result<(), Stop> {
        if self.last_exception.is_none() {
            self.last_exception = Some(e.vector);
        }
        if trace_exceptions() {
            eprintln!(
                "kindling: vCPU {} exception {} error {:?} at RIP {:#x} (CR2 {:#x})",
                self.id, e.vector, e.error_code, self.st.rip, self.st.cr2
            );
            if (self.st.rip >> 48 != 0 && self.st.rip >> 48 != 0xffff)
                || (e.vector == 14 && self.st.cr2 < 0x1000)
                || (e.vector == 6 && self.st.rip < 0x8000_0000_0000)
            {
                for (rip, text) in &self.history {
                    eprintln!("    {rip:#x}: {text}");
                }
                eprintln!("    regs: {:x?}", self.st.gpr);
            }
        }
        // Faults push RF set (the NMI is an interrupt, not a fault).
        let fault = e.vector != 2;
        match self.deliver_inner(e.vector, e.error_code, false, fault) {
            Ok(()) => Ok(()),
            Err(e2) if e.vector == 8 => {
                let _ = e2;
                Err(Stop::TripleFault)
            }
            Err(_) => match self.deliver_inner(8, Some(0), false, true) {
                Ok(()) => Ok(()),
                Err(_) => Err(Stop::TripleFault),
            },
        }
    }

    /// Deliver vector `v` through the IDT (`soft`: INT n, pushes the next RIP).
    pub fn deliver(&mut self, v: u8, error: Option<u32>, soft: bool) -> Result<(), Exception> {
        self.deliver_inner(v, error, soft, false)
    }

    /// [`Cpu::deliver`]; `fault`: the saved RFLAGS image has RF set, as
    /// hardware pushes it for fault-class exceptions. Descriptor-table and
    /// stack accesses are made as supervisor accesses.
    fn deliver_inner(
        &mut self,
        v: u8,
        error: Option<u32>,
        soft: bool,
        fault: bool,
    ) -> Result<(), Exception> {
        self.st.sys_access = true;
        let r = self.deliver_frame(v, error, soft, fault);
        self.st.sys_access = false;
        r
    }

    fn deliver_frame(
        &mut self,
        v: u8,
        error: Option<u32>,
        soft: bool,
        fault: bool,
    ) -> Result<(), Exception> {
        let flags = if fault && self.st.protected() {
            self.st.rflags | RF
        } else {
            self.st.rflags
        };
        if !self.st.protected() {
            let (base, limit) = self.st.idtr;
            if u64::from(v) * 4 + 3 > u64::from(limit) {
                return Err(Exception::gp(u32::from(v) * 8 + 2));
            }
            let ent = self.read_la(base + u64::from(v) * 4, 4)?;
            self.push(flags & 0xffff, 2)?;
            let cs = u64::from(self.st.seg[Seg::Cs as usize].selector);
            self.push(cs, 2)?;
            self.push(self.st.rip & 0xffff, 2)?;
            self.st.rflags &= !(IF | TF | (1 << 18));
            self.load_seg(Seg::Cs, (ent >> 16) as u16)?;
            self.st.rip = ent & 0xffff;
            return Ok(());
        }
        let long = self.st.efer & EFER_LMA != 0;
        let esz = if long { 16 } else { 8 };
        let (base, limit) = self.st.idtr;
        let idt_err = Exception::gp(u32::from(v) * 8 + 2 + u32::from(!soft));
        if u64::from(v) * esz + esz - 1 > u64::from(limit) {
            return Err(idt_err);
        }
        let lo = self.read_la(base + u64::from(v) * esz, 8)?;
        let hi = if long {
            self.read_la(base + u64::from(v) * esz + 8, 8)?
        } else {
            0
        };
        let present = lo & (1 << 47) != 0;
        let gtype = (lo >> 40) & 0xf;
        if !present || !matches!(gtype, 0xe | 0xf | 0x6 | 0x7) {
            return Err(idt_err);
        }
        let dpl = ((lo >> 45) & 3) as u8;
        if soft && dpl < self.st.cpl() {
            return Err(idt_err);
        }
        let sel = ((lo >> 16) & 0xffff) as u16;
        let mut off = (lo & 0xffff) | ((lo >> 32) & 0xffff_0000);
        if long {
            off |= hi << 32;
        }
        let mmu = crate::interp_mmu!(self);
        let target = super::desc::load(&mmu, &mut self.st, sel, false)?;
        let cpl = self.st.cpl();
        let new_cpl = target.dpl;
        let old_ss = u64::from(self.st.seg[Seg::Ss as usize].selector);
        let old_rsp = self.st.gpr[4];
        let old_cs = u64::from(self.st.seg[Seg::Cs as usize].selector);
        if long {
            let ist = (lo >> 32) & 7;
            let tss = self.st.tr.base;
            if ist != 0 {
                self.st.gpr[4] = self.read_la(tss + 0x24 + (ist - 1) * 8, 8)?;
            } else if new_cpl < cpl {
                self.st.gpr[4] = self.read_la(tss + 4 + u64::from(new_cpl) * 8, 8)?;
            }
            if new_cpl < cpl {
                self.st.seg[Seg::Ss as usize] = crate::Segment {
                    selector: u16::from(new_cpl),
                    unusable: true,
                    ..Default::default()
                };
            }
            self.st.gpr[4] &= !0xf;
            self.st.seg[Seg::Cs as usize] = target;
            self.st.seg[Seg::Cs as usize].selector = (sel & !3) | u16::from(new_cpl);
            self.st.sys_access = false;
            self.push(old_ss, 8)?;
            self.push(old_rsp, 8)?;
            self.push(flags, 8)?;
            self.push(old_cs, 8)?;
            self.push(self.st.rip, 8)?;
            if let Some(e) = error {
                self.push(u64::from(e), 8)?;
            }
        } else {
            let gate32 = gtype & 8 != 0;
            let w = if gate32 { 4 } else { 2 };
            if new_cpl < cpl {
                let tss = self.st.tr.base;
                let (esp, ss) = (
                    self.read_la(tss + 4 + u64::from(new_cpl) * 8, 4)?,
                    self.read_la(tss + 8 + u64::from(new_cpl) * 8, 2)? as u16,
                );
                self.load_seg(Seg::Ss, ss)?;
                self.st.gpr[4] = esp;
            }
            self.st.seg[Seg::Cs as usize] = target;
            self.st.seg[Seg::Cs as usize].selector = (sel & !3) | u16::from(new_cpl);
            self.st.sys_access = false;
            if new_cpl < cpl {
                self.push(old_ss, w)?;
                self.push(old_rsp, w)?;
            }
            self.push(flags, w)?;
            self.push(old_cs, w)?;
            self.push(self.st.rip, w)?;
            if let Some(e) = error {
                self.push(u64::from(e), w)?;
            }
        }
        self.st.rflags &= !(TF | (1 << 14) | (1 << 16) | (1 << 17));
        if gtype & 1 == 0 {
            self.st.rflags &= !IF;
        }
        self.st.rip = off;
        Ok(())
    }

    /// IRET / IRETD / IRETQ.
    pub fn iret(&mut self, i: &Instruction) -> Result<(), Exception> {
        let w = match i.mnemonic() {
            iced_x86::Mnemonic::Iretq => 8,
            iced_x86::Mnemonic::Iretd => 4,
            _ => 2,
        };
        if !self.st.protected() {
            let ip = self.pop(w)?;
            let cs = self.pop(w)? as u16;
            let fl = self.pop(w)?;
            self.load_seg(Seg::Cs, cs)?;
            self.st.rip = ip;
            let keep = !mask_bits(w) | 2;
            self.st.rflags = (self.st.rflags & keep) | (fl & mask_bits(w) & 0x3f_7fd5 & !RF) | 2;
            return Ok(());
        }
        // Nothing changes unless the whole return succeeds: a fault (a
        // bad CS or SS in the frame) is taken at the IRET, in the old
        // context.
        let saved = (
            self.st.gpr[4],
            self.st.seg[Seg::Cs as usize],
            self.st.seg[Seg::Ss as usize],
            self.st.rip,
            self.st.rflags,
        );
        let r = self.iret_protected(w);
        if r.is_err() {
            let (rsp, cs, ss, rip, rflags) = saved;
            self.st.gpr[4] = rsp;
            self.st.seg[Seg::Cs as usize] = cs;
            self.st.seg[Seg::Ss as usize] = ss;
            self.st.rip = rip;
            self.st.rflags = rflags;
        }
        r
    }

    /// IRET in protected and long mode, popping `w`-byte slots.
    fn iret_protected(&mut self, w: usize) -> Result<(), Exception> {
        let ip = self.pop(w)?;
        let cs = self.pop(w)? as u16;
        let fl = self.pop(w)?;
        let cpl = self.st.cpl();
        let new_cpl = (cs & 3) as u8;
        let long = self.st.efer & EFER_LMA != 0;
        let (sp, ss) = if long || new_cpl > cpl {
            (Some(self.pop(w)?), Some(self.pop(w)? as u16))
        } else {
            (None, None)
        };
        if cs & !3 == 0 {
            return Err(Exception::gp(0));
        }
        self.load_seg(Seg::Cs, cs)?;
        super::desc::check_code_return(&self.st.seg[Seg::Cs as usize], cs, cpl)?;
        self.st.rip = ip;
        // RF only suppresses instruction breakpoints, which this CPU does
        // not have; it is never kept (hardware clears it after one
        // instruction).
        let mut writable = 0x3f_7fd5u64 & mask_bits(w) & !RF;
        if cpl > 0 {
            writable &= !(3 << 12);
            if u64::from(cpl) > (self.st.rflags >> 12) & 3 {
                writable &= !IF;
            }
        }
        self.st.rflags = (self.st.rflags & !writable) | (fl & writable) | 2;
        if let (Some(sp), Some(ss)) = (sp, ss) {
            if ss & !3 == 0 && self.st.long64() && new_cpl != 3 && (ss & 3) as u8 == new_cpl {
                self.st.seg[Seg::Ss as usize].selector = ss;
            } else {
                self.load_seg(Seg::Ss, ss)?;
            }
            self.st.gpr[4] = sp;
        }
        Ok(())
    }

    /// SYSCALL.
    pub fn syscall(&mut self) -> Result<super::exec::Outcome, Exception> {
        if self.st.efer & EFER_SCE == 0 || !self.st.long64() {
            return Err(Exception::UD);
        }
        self.st.gpr[1] = self.st.rip;
        self.st.gpr[11] = self.st.rflags;
        let sel = ((self.st.msr.star >> 32) & 0xfffc) as u16;
        self.st.seg[Seg::Cs as usize] = crate::Segment {
            selector: sel,
            ..crate::Segment::flat(sel, 0xb, true)
        };
        self.st.seg[Seg::Ss as usize] = crate::Segment::flat(sel + 8, 0x3, false);
        self.st.rflags &= !self.st.msr.fmask;
        self.st.rflags |= 2;
        self.st.rip = self.st.msr.lstar;
        Ok(super::exec::Outcome::Next)
    }

    /// SYSRET.
    pub fn sysret(&mut self, i: &Instruction) -> Result<super::exec::Outcome, Exception> {
        if self.st.efer & EFER_SCE == 0 || !self.st.long64() {
            return Err(Exception::UD);
        }
        self.require_cpl0()?;
        let base = ((self.st.msr.star >> 48) & 0xffff) as u16;
        let q = i.mnemonic() == iced_x86::Mnemonic::Sysretq;
        // Intel: a non-canonical return address faults before anything
        // changes, so the #GP is delivered at CPL 0.
        let rcx = self.st.gpr[1];
        if q && ((rcx as i64) << 16 >> 16) as u64 != rcx {
            return Err(Exception::gp(0));
        }
        let mut cs = crate::Segment::flat((if q { base + 16 } else { base }) | 3, 0xb, q);
        cs.dpl = 3;
        let mut ss = crate::Segment::flat((base + 8) | 3, 0x3, false);
        ss.dpl = 3;
        self.st.seg[Seg::Cs as usize] = cs;
        self.st.seg[Seg::Ss as usize] = ss;
        self.st.rip = if q {
            self.st.gpr[1]
        } else {
            self.st.gpr[1] & 0xffff_ffff
        };
        self.st.rflags = (self.st.gpr[11] & 0x3c_7fd7) | 2;
        Ok(super::exec::Outcome::Next)
    }

    /// RDMSR.
    pub fn rdmsr(&mut self, msr: u32) -> Result<u64, Exception> {
        let m = &self.st.msr;
        Ok(match msr {
            0x10 => self.tsc(),
            0x174..=0x176 => m.sysenter[(msr - 0x174) as usize],
            0x277 => m.pat,
            0x1a0 => m.misc_enable,
            0x8b => 0,
            0xc000_0080 => self.st.efer,
            0xc000_0081 => m.star,
            0xc000_0082 => m.lstar,
            0xc000_0083 => m.cstar,
            0xc000_0084 => m.fmask,
            0xc000_0100 => self.st.seg[Seg::Fs as usize].base,
            0xc000_0101 => self.st.seg[Seg::Gs as usize].base,
            0xc000_0102 => m.kernel_gs_base,
            0xc000_0103 => m.tsc_aux,
            _ if super::kvmclock::is_kvmclock_msr(msr) && self.has_kvmclock() => {
                self.kvmclock_rdmsr(msr).unwrap_or(0)
            }
            _ => match self.io().and_then(|io| io.msr_read(self.id, msr)) {
                Some(v) => v,
                None => return Err(Exception::gp(0)),
            },
        })
    }

    /// WRMSR.
    pub fn wrmsr(&mut self, msr: u32, v: u64) -> Result<(), Exception> {
        match msr {
            0x10 => self.st.msr.tsc_offset = (v as i64).wrapping_sub(self.clock.tsc() as i64),
            0x174..=0x176 => self.st.msr.sysenter[(msr - 0x174) as usize] = v,
            0x277 => self.st.msr.pat = v,
            0x1a0 => self.st.msr.misc_enable = v,
            0x8b | 0x79 => {}
            0xc000_0080 => {
                let allowed = EFER_SCE | EFER_LME | EFER_NXE;
                self.st.efer = (self.st.efer & EFER_LMA) | (v & allowed);
                self.flush_tlb();
            }
            0xc000_0081 => self.st.msr.star = v,
            0xc000_0082 => self.st.msr.lstar = v,
            0xc000_0083 => self.st.msr.cstar = v,
            0xc000_0084 => self.st.msr.fmask = v,
            0xc000_0100 => self.st.seg[Seg::Fs as usize].base = v,
            0xc000_0101 => self.st.seg[Seg::Gs as usize].base = v,
            0xc000_0102 => self.st.msr.kernel_gs_base = v,
            0xc000_0103 => self.st.msr.tsc_aux = v & 0xffff_ffff,
            _ if super::kvmclock::is_kvmclock_msr(msr) && self.has_kvmclock() => {
                self.kvmclock_wrmsr(msr, v)?
            }
            _ => {
                if !self.io().is_some_and(|io| io.msr_write(self.id, msr, v)) {
                    return Err(Exception::gp(0));
                }
            }
        }
        Ok(())
    }

    /// Run an x87/SSE instruction through the fpu module.
    pub fn fpu(&mut self, i: &Instruction) -> Result<super::exec::Outcome, Exception> {
        // The instruction needs the FPU state and the CPU (registers,
        // memory) at once: move the state's box out, a spare box in.
        let spare = self.fpu_spare.take().unwrap_or_default();
        let mut fpu_state = std::mem::replace(&mut self.st.fpu, spare);
        let mut ctx = FpuCtx {
            cpu: self,
            ins: i,
            fault: None,
        };
        let r = fpu::execute(&mut fpu_state, i, &mut ctx);
        let fault = ctx.fault;
        self.fpu_spare = Some(std::mem::replace(&mut self.st.fpu, fpu_state));
        match r {
            Ok(()) => Ok(super::exec::Outcome::Next),
            Err(FpuError::NotFpu) => Err(Exception::UD),
            Err(FpuError::Exception { vector, error_code }) => {
                Err(Exception { vector, error_code })
            }
            Err(FpuError::Memory(_)) => Err(fault.unwrap_or(Exception::gp(0))),
        }
    }
}

/// `KINDLING_TRACE_FROM=0xRIP[,count]`: print `count` instructions (with
/// registers before each) from the first time RIP is reached.
fn trace_from() -> Option<(u64, u64)> {
    static V: std::sync::OnceLock<Option<(u64, u64)>> = std::sync::OnceLock::new();
    *V.get_or_init(|| {
        let v = std::env::var("KINDLING_TRACE_FROM").ok()?;
        let mut parts = v.split(',');
        let rip = u64::from_str_radix(parts.next()?.trim_start_matches("0x"), 16).ok()?;
        let count = parts.next().and_then(|c| c.parse().ok()).unwrap_or(200);
        Some((rip, count))
    })
}

/// `KINDLING_NO_BLOCKS=1`: run every instruction through the single-step
/// path (the block engine's reference, for comparisons).
fn no_blocks() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("KINDLING_NO_BLOCKS").is_some_and(|v| v == "1"))
}

fn trace_exceptions() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("KINDLING_TRACE_EXCEPTIONS").is_some_and(|v| v == "1"))
}

fn mask_bits(bytes: usize) -> u64 {
    super::alu::mask(bytes as u32 * 8)
}

struct FpuCtx<'a> {
    cpu: &'a mut Cpu,
    ins: &'a Instruction,
    fault: Option<Exception>,
}

impl FpuContext for FpuCtx<'_> {
    fn read_gpr(&self, reg: Register) -> u64 {
        self.cpu.reg(reg)
    }
    fn write_gpr(&mut self, reg: Register, value: u64) {
        self.cpu.set_reg(reg, value);
    }
    fn read_mem(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), MemFault> {
        let la = self.cpu.mem_linear(self.ins).wrapping_add(offset);
        let mmu = crate::interp_mmu!(self.cpu);
        mmu.read(&mut self.cpu.st, la, buf, Access::Read)
            .map_err(|e| {
                self.fault = Some(e);
                MemFault
            })
    }
    fn write_mem(&mut self, offset: u64, data: &[u8]) -> Result<(), MemFault> {
        let la = self.cpu.mem_linear(self.ins).wrapping_add(offset);
        let mmu = crate::interp_mmu!(self.cpu);
        mmu.write(&mut self.cpu.st, la, data).map_err(|e| {
            self.fault = Some(e);
            MemFault
        })
    }
    fn mem_address(&self) -> u64 {
        self.cpu.mem_linear(self.ins)
    }
    fn set_flags(&mut self, value: u64, mask: u64) {
        self.cpu.st.rflags = (self.cpu.st.rflags & !mask) | (value & mask) | 2;
    }
    fn cr0(&self) -> u64 {
        self.cpu.st.cr0
    }
    fn cr4(&self) -> u64 {
        self.cpu.st.cr4
    }
    fn long_mode(&self) -> bool {
        self.cpu.st.long64()
    }
    fn rflags(&self) -> Option<u64> {
        Some(self.cpu.st.rflags)
    }
    fn instruction_address(&self) -> Option<u64> {
        let cs = self.cpu.st.seg[Seg::Cs as usize].base;
        Some(cs.wrapping_add(self.ins.ip()))
    }
    fn cpl(&self) -> u8 {
        self.cpu.st.cpl()
    }
}

/// A memory context that leaves `self.st` free to borrow mutably.
#[macro_export]
#[doc(hidden)]
macro_rules! interp_mmu {
    ($cpu:expr) => {
        $crate::interp::cpu::make_mmu(&$cpu.mem, &$cpu.ram, $cpu.io, $cpu.id)
    };
}
