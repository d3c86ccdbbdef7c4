//! Software x86-64 CPU built on the iced-x86 decoder (`-accel tcg`).
//!
//! `cpu` fetches and decodes (decoded instructions are cached by physical
//! address and re-validated against the code bytes, so patched code is
//! seen at once), `exec` executes integer and system instructions, `fpu`
//! owns x87/SSE, `mem` does paging and RAM/MMIO accesses, and `vcpu`
//! plugs it into the board as a [`crate::Vcpu`].

pub mod alu;
mod atomic;
mod block;
pub mod cpu;
mod cpuid;
mod dcache;
pub mod desc;
pub mod exec;
mod fastop;
pub mod fpu;
pub mod jit;
pub mod mem;
pub mod ram;
pub mod snippet_runner;
pub mod state;
mod string_fast;
pub mod vcpu;

pub use snippet_runner::{run_snippet, SnippetMachine};
pub use vcpu::{InterpAccelerator, InterpVcpu};
