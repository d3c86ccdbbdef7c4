//! A user-mode code snippet and the machine state around it, as the
//! conformance tests run it twice: natively on the host CPU (the oracle)
//! and on the interpreter, from the same starting state.
//!
//! Both runners map code at [`CODE_BASE`] and the data buffer at
//! [`DATA_BASE`] (the same virtual addresses in the test process and in the
//! interpreter's guest), so snippets may use absolute addresses.

/// Where the snippet's code is mapped (virtual address, both runners).
pub const CODE_BASE: u64 = 0x2000_0000;
/// Where the snippet's data buffer is mapped (virtual address, both runners).
pub const DATA_BASE: u64 = 0x1000_0000;
/// Size of the data buffer.
pub const DATA_SIZE: usize = 0x2000;

/// Architectural state a snippet reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnippetState {
    /// RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8..R15 (encoding order).
    /// RSP is owned by the runner: snippets must leave it as they found it.
    pub gprs: [u64; 16],
    /// RFLAGS (arithmetic flags and DF are meaningful).
    pub rflags: u64,
    /// The FXSAVE image (x87 stack and control, MXCSR, XMM0-15).
    pub fxsave: [u8; 512],
    /// Bits 255:128 of YMM0-YMM15 (the AVX state component); zero for
    /// snippets that do not use AVX.
    pub ymm_hi: [u128; 16],
    /// Contents of the data buffer at [`DATA_BASE`].
    pub data: Vec<u8>,
}

/// How a snippet ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnippetEnd {
    /// Ran to its end.
    Completed,
    /// Raised exception `vector` (e.g. 0 for #DE); the state is the one at
    /// the faulting instruction.
    Exception(u8),
}
