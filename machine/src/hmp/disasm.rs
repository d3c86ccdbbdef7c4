//! `x /Ni` and `xp /Ni`: instructions disassembled with iced-x86's GNU
//! assembler (AT&T) formatter, laid out as QEMU's capstone monitor
//! output: `0x<address>:  <bytes padded to 24> <mnemonic padded to 8> <operands>`.

use iced_x86::{Decoder, DecoderOptions, Formatter, GasFormatter, Instruction};

/// The instruction bytes column width (eight bytes, as QEMU pads it).
const BYTES_WIDTH: usize = 24;

fn formatter() -> GasFormatter {
    let mut f = GasFormatter::new();
    let o = f.options_mut();
    o.set_uppercase_hex(false);
    o.set_hex_prefix("0x");
    o.set_hex_suffix("");
    o.set_gas_show_mnemonic_size_suffix(true);
    o.set_space_after_operand_separator(true);
    o.set_first_operand_char_index(0);
    o.set_branch_leading_zeros(false);
    f
}

/// Disassemble one instruction from `code` (read at `addr`) for a CPU in
/// `bitness`-bit mode: its line (ending in `\n`) and its length, or `None`
/// when `code` is empty.
pub fn line(code: &[u8], addr: u64, bitness: u32) -> Option<(String, usize)> {
    let mut decoder = Decoder::with_ip(bitness, code, addr, DecoderOptions::NONE);
    if !decoder.can_decode() {
        return None;
    }
    let mut insn = Instruction::default();
    decoder.decode_out(&mut insn);
    let len = insn.len().max(1).min(code.len());
    let hex: Vec<String> = code[..len].iter().map(|b| format!("{b:02x}")).collect();
    let mut fmt = formatter();
    let mut mnemonic = String::new();
    let mut operands = String::new();
    if insn.is_invalid() {
        mnemonic.push_str("(bad)");
    } else {
        fmt.format_mnemonic(&insn, &mut mnemonic);
        fmt.format_all_operands(&insn, &mut operands);
    }
    let text = format!(
        "0x{addr:08x}:  {:<BYTES_WIDTH$} {mnemonic:<8} {operands}\n",
        hex.join(" ")
    );
    Some((text, len))
}

/// Disassemble up to `count` instructions from `code` (read at `addr`);
/// stops early where `code` runs out.
pub fn disassemble(code: &[u8], addr: u64, bitness: u32, count: usize) -> String {
    let mut out = String::new();
    let mut off = 0;
    for _ in 0..count {
        let Some((text, len)) = line(&code[off..], addr.wrapping_add(off as u64), bitness) else {
            break;
        };
        out.push_str(&text);
        off += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_qemu_capstone_lines() {
        // jmp .-2; lidt 0x100070; xor %ecx,%ecx; cld (as QEMU 7.2 prints them).
        let code = [
            0xeb, 0xfc, 0x0f, 0x01, 0x1d, 0x70, 0x00, 0x10, 0x00, 0x31, 0xc9, 0xfc,
        ];
        let t = disassemble(&code, 0x100035, 32, 4);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "0x00100035:  eb fc                    jmp      0x100033"
        );
        assert_eq!(
            lines[1],
            "0x00100037:  0f 01 1d 70 00 10 00     lidtl    0x100070"
        );
        assert_eq!(
            lines[2],
            "0x0010003e:  31 c9                    xorl     %ecx, %ecx"
        );
        assert_eq!(lines[3], "0x00100040:  fc                       cld      ");
    }

    #[test]
    fn long_mode_addresses_and_immediates() {
        // mov $0x101090,%esp at a kernel address.
        let code = [0xbc, 0x90, 0x10, 0x10, 0x00];
        let t = disassemble(&code, 0xffff_ffff_8100_0000, 64, 1);
        assert_eq!(
            t,
            "0xffffffff81000000:  bc 90 10 10 00           movl     $0x101090, %esp\n"
        );
    }

    #[test]
    fn truncated_code_stops() {
        assert_eq!(disassemble(&[0x0f], 0, 64, 3).lines().count(), 1);
        assert_eq!(disassemble(&[], 0, 64, 3), "");
    }
}
