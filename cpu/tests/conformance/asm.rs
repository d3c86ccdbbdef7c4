//! Assembling snippets (iced-x86's `CodeAssembler`, 64-bit, at
//! `CODE_BASE`) and disassembling them for failure reports.

use cpu::snippet::CODE_BASE;
use iced_x86::code_asm::{CodeAssembler, IcedError};
use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};

/// Assembles the instructions `f` emits, for execution at `CODE_BASE`.
/// Panics on an assembler error (the test's own templates are wrong).
pub fn asm(f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).expect("64-bit assembler");
    f(&mut a).expect("assembling the snippet");
    a.assemble(CODE_BASE).expect("encoding the snippet")
}

/// One line per instruction: address, bytes, Intel syntax.
pub fn disassemble(code: &[u8]) -> String {
    let mut d = Decoder::with_ip(64, code, CODE_BASE, DecoderOptions::NONE);
    let mut f = IntelFormatter::new();
    let mut out = String::new();
    while d.can_decode() {
        let start = (d.ip() - CODE_BASE) as usize;
        let i = d.decode();
        let bytes: Vec<String> = code[start..start + i.len()]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut text = String::new();
        f.format(&i, &mut text);
        out.push_str(&format!(
            "    {:08x}  {:<30} {text}\n",
            i.ip(),
            bytes.join(" ")
        ));
    }
    out
}
