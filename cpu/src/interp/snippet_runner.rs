//! Running a user-visible code snippet on the interpreter, for the
//! conformance tests (compared against the host CPU) and the benchmarks.
//!
//! The snippet runs in 64-bit mode at CPL 0 with identity paging: code at
//! [`CODE_BASE`], data at [`DATA_BASE`], a private stack; it ends when RIP
//! reaches the end of the code.

use std::sync::Arc;

use vm_memory::{Bytes, GuestAddress};

use super::cpu::{Cpu, Stop};
use super::fpu::XCR0_SUPPORTED;
use super::state::{Seg, CR0_PE, CR0_PG, CR4_PAE, EFER_LMA, EFER_LME, EFER_NXE, EFER_SCE};
use crate::snippet::{SnippetEnd, SnippetState, CODE_BASE, DATA_BASE, DATA_SIZE};
use crate::{Clock, ClockMode, GuestMemory, Segment};

const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
const PD: u64 = 0x3000;
const STACK_TOP: u64 = 0x8000;
const MEM_SIZE: usize = 0x3000_0000;

/// A reusable snippet machine (guest memory and page tables are set up once).
#[derive(Debug)]
pub struct SnippetMachine {
    mem: Arc<GuestMemory>,
    cpu: Cpu,
    /// Run one instruction at a time (`Cpu::step`), never blocks.
    single_step: bool,
}

impl Default for SnippetMachine {
    fn default() -> Self {
        Self::new()
    }
}

impl SnippetMachine {
    /// Build the machine: 768 MiB of (lazily allocated) RAM, identity-mapped
    /// with 2 MiB pages.
    pub fn new() -> Self {
        let mem = Arc::new(
            GuestMemory::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).expect("snippet RAM"),
        );
        mem.write_obj(PDPT | 3, GuestAddress(PML4)).expect("pml4");
        mem.write_obj(PD | 3, GuestAddress(PDPT)).expect("pdpt");
        for i in 0..512u64 {
            mem.write_obj((i << 21) | 0x83, GuestAddress(PD + i * 8))
                .expect("pd");
        }
        let clock = Arc::new(Clock::new(
            ClockMode::InstructionCounted { shift: 0 },
            1_000_000,
        ));
        let cpu = Cpu::new(0, mem.clone(), clock);
        SnippetMachine {
            mem,
            cpu,
            single_step: false,
        }
    }

    /// A machine that runs one instruction at a time (no block engine).
    pub fn with_single_step() -> Self {
        SnippetMachine {
            single_step: true,
            ..Self::new()
        }
    }

    /// RIP, RSP and CR2 after the last run (where an exception left
    /// them; the snippet state hides RSP).
    pub fn rip_rsp_cr2(&self) -> (u64, u64, u64) {
        (self.cpu.st.rip, self.cpu.st.gpr[4], self.cpu.st.cr2)
    }

    /// A machine whose blocks are compiled at their `threshold`th
    /// execution (1: at once; 0: never), whatever the environment says.
    pub fn with_jit_threshold(threshold: u32) -> Self {
        let mut m = Self::new();
        m.cpu.set_jit_threshold(threshold);
        m
    }

    /// The compiled tier's counters for this machine's vCPU.
    pub fn jit_stats(&self) -> super::jit::JitStats {
        self.cpu.jit_stats()
    }

    /// Run `code` from `state`; writes the final state back.
    pub fn run(&mut self, code: &[u8], state: &mut SnippetState) -> SnippetEnd {
        let _ = self.mem.write_slice(code, GuestAddress(CODE_BASE));
        // A HLT after the code ends a block that runs off its end.
        let _ = self
            .mem
            .write_slice(&[0xf4], GuestAddress(CODE_BASE + code.len() as u64));
        let _ = self.mem.write_slice(&state.data, GuestAddress(DATA_BASE));
        // Written behind the CPU's back: blocks of an earlier snippet go.
        let code_pages = self.cpu.ram.code();
        code_pages.written(CODE_BASE, code.len() as u64 + 1);
        code_pages.written(DATA_BASE, state.data.len() as u64);
        let st = &mut self.cpu.st;
        st.cr0 = CR0_PE | CR0_PG | 0x10 | (1 << 16);
        st.cr3 = PML4;
        // OSFXSR, OSXMMEXCPT and OSXSAVE, with x87, SSE and AVX enabled
        // in XCR0 (as a Linux host runs the native oracle).
        st.cr4 = CR4_PAE | (1 << 9) | (1 << 10) | (1 << 18);
        let _ = st.fpu.set_xcr0(XCR0_SUPPORTED);
        st.efer = EFER_LME | EFER_LMA | EFER_NXE | EFER_SCE;
        st.seg[Seg::Cs as usize] = Segment::flat(0x10, 0xb, true);
        for s in [Seg::Ds, Seg::Es, Seg::Ss, Seg::Fs, Seg::Gs] {
            st.seg[s as usize] = Segment::flat(0x18, 0x3, false);
        }
        st.idtr = (0, 0);
        st.gpr = state.gprs;
        st.gpr[4] = STACK_TOP;
        st.rflags = (state.rflags & 0x0cd5) | 2;
        st.rip = CODE_BASE;
        let _ = st.fpu.fxrstor(&state.fxsave);
        st.fpu.set_ymm_upper(state.ymm_hi);
        let end = CODE_BASE + code.len() as u64;
        let mut result = SnippetEnd::Completed;
        let mut steps = 0u64;
        self.cpu.last_exception = None;
        self.cpu.flush_tlb();
        while self.cpu.st.rip != end {
            let (ran, stepped) = if self.single_step {
                (1, self.cpu.step())
            } else {
                self.cpu.step_block(1 << 20, false)
            };
            // The IDT is empty, so an exception ends the snippet: report
            // its vector; RIP stays at the faulting instruction (delivery
            // fails before it changes anything).
            if let Some(v) = self.cpu.last_exception.take() {
                result = SnippetEnd::Exception(v);
                break;
            }
            match stepped {
                Ok((None, _)) => {}
                // The HLT placed after the code: the snippet is complete.
                Ok((Some(Stop::Halt), _)) if self.cpu.st.rip == end + 1 => {
                    self.cpu.st.rip = end;
                    break;
                }
                _ => break,
            }
            steps += ran;
            if steps > 10_000_000 {
                break;
            }
        }
        let st = &self.cpu.st;
        let mut gprs = st.gpr;
        gprs[4] = state.gprs[4];
        state.gprs = gprs;
        state.rflags = st.rflags;
        st.fpu.fxsave(&mut state.fxsave);
        state.ymm_hi = st.fpu.ymm_upper();
        let mut data = vec![0u8; DATA_SIZE];
        let _ = self.mem.read_slice(&mut data, GuestAddress(DATA_BASE));
        state.data = data;
        result
    }
}

/// Run `code` once on a fresh snippet machine.
pub fn run_snippet(code: &[u8], state: &mut SnippetState) -> SnippetEnd {
    SnippetMachine::new().run(code, state)
}
