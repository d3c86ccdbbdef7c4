//! Software x86-64 CPU built on the iced-x86 decoder (`-accel tcg`).
//!
//! `cpu` fetches and decodes (decoded instructions are cached by physical
//! address and re-validated against the code bytes, so patched code is
//! seen at once), `exec` executes integer and system instructions, `fpu`
//! owns x87/SSE, `mem` does paging and RAM/MMIO accesses, and `vcpu`
//! plugs it into the board as a [`crate::Vcpu`]. The block engine
//! (`block`, `fastop`) runs cached blocks of pre-decoded code, kept
//! coherent with guest stores by the code-page tracker (`codemap`) and
//! sized by the `-accel tcg` options (`tcg_options`). Every access to the
//! bytes of guest RAM, shared with other vCPUs, goes through `shared_ram`.

pub mod alu;
mod atomic;
pub mod bitops;
mod block;
mod buslock;
pub mod codemap;
pub mod cpu;
pub mod cpuid;
mod dcache;
mod debug;
pub mod desc;
pub mod exec;
pub mod exec_ext;
mod fastop;
pub mod fpu;
pub mod jit;
pub mod kvmclock;
pub mod mem;
mod privilege;
pub mod ram;
mod shared_ram;
pub mod snippet_runner;
pub mod state;
mod string_fast;
pub mod tcg_options;
pub mod vcpu;

pub use codemap::CodePages;
pub use snippet_runner::{run_snippet, SnippetMachine};
pub use tcg_options::TcgOptions;
pub use vcpu::{InterpAccelerator, InterpVcpu};
