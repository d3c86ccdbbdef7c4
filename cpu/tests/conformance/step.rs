//! The pieces of the randomized program generators: one generated step
//! (how to assemble it, the flags it leaves undefined, a name for
//! failure reports) and a random memory operand near RDI.

use iced_x86::code_asm::*;

use super::rng::Rng;

/// Assembles one generated instruction (or a short sequence).
pub type Emit = Box<dyn Fn(&mut CodeAssembler) -> Result<(), IcedError>>;

/// One generated instruction: how to assemble it, and the flags it leaves
/// undefined.
pub struct Step {
    /// Assembles it.
    pub emit: Emit,
    /// RFLAGS bits it leaves undefined.
    pub undefined: u64,
    /// What it is, for failure reports.
    pub name: String,
}

/// A step named `name` leaving `undefined` flags undefined.
pub fn step(
    name: String,
    undefined: u64,
    emit: impl Fn(&mut CodeAssembler) -> Result<(), IcedError> + 'static,
) -> Step {
    Step {
        emit: Box::new(emit),
        undefined,
        name,
    }
}

/// A memory operand of `bits` bits at RDI plus a random disp8.
pub fn mem(r: &mut Rng, bits: u32) -> AsmMemoryOperand {
    let base = rdi + (r.below(0x100) as i32 - 0x80);
    match bits {
        64 => qword_ptr(base),
        32 => dword_ptr(base),
        16 => word_ptr(base),
        _ => byte_ptr(base),
    }
}
