//! Integer register instructions, the host CPU as the oracle: flag edge
//! cases of the arithmetic/logic group for every operand size, shifts and
//! rotates by 0, 1, width-1, width and more, multiply and divide
//! (including #DE), bit scans and tests, byte swaps, extensions, every
//! condition of SETcc/CMOVcc/Jcc, and LEA forms. Flags the Intel SDM
//! leaves undefined for an instruction are masked, nothing else.

mod conformance;

use conformance::asm::asm;
use conformance::compare::{initial_state, Suite, Undefined, AF, ARITH, CF, OF, PF, SF, ZF};
use cpu::snippet::{SnippetEnd, SnippetState};
use iced_x86::code_asm::*;

use conformance::rng::EDGES;

/// Operand sizes; 0 stands for the legacy high-byte registers (AH, BH).
const SIZES: [u32; 5] = [0, 8, 16, 32, 64];

/// Assembles `$body` with `$x`/`$y` bound to RAX/RBX (or RCX for `$z`)
/// of width `$bits` (0: AH/BH/CH).
macro_rules! by_size {
    ($bits:expr, |$a:ident, $x:ident, $y:ident, $z:ident| $body:expr) => {
        match $bits {
            0 => asm(|$a| {
                let ($x, $y, $z) = (ah, bh, ch);
                $body
            }),
            8 => asm(|$a| {
                let ($x, $y, $z) = (al, bl, cl);
                $body
            }),
            16 => asm(|$a| {
                let ($x, $y, $z) = (ax, bx, cx);
                $body
            }),
            32 => asm(|$a| {
                let ($x, $y, $z) = (eax, ebx, ecx);
                $body
            }),
            _ => asm(|$a| {
                let ($x, $y, $z) = (rax, rbx, rcx);
                $body
            }),
        }
    };
}

/// [`by_size!`] for the 16-, 32- and 64-bit forms only.
macro_rules! by_wide {
    ($bits:expr, |$a:ident, $x:ident, $y:ident| $body:expr) => {
        match $bits {
            16 => asm(|$a| {
                let ($x, $y) = (ax, bx);
                $body
            }),
            32 => asm(|$a| {
                let ($x, $y) = (eax, ebx);
                $body
            }),
            _ => asm(|$a| {
                let ($x, $y) = (rax, rbx);
                $body
            }),
        }
    };
}

fn state(a: u64, b: u64, c: u64, flags: u64) -> SnippetState {
    let mut s = initial_state();
    s.gprs[0] = a;
    s.gprs[3] = b;
    s.gprs[1] = c;
    s.gprs[2] = 0x5555_aaaa_5555_aaaa;
    s.rflags = flags;
    s
}

/// Every size, every pair of edge operands, flags all clear and all set.
fn binary_edges(name: &str, undef: u64, make: impl Fn(u32) -> Vec<u8>) {
    let mut s = Suite::new();
    for bits in SIZES {
        let code = make(bits);
        for &x in &EDGES {
            for &y in &EDGES {
                for flags in [0, ARITH] {
                    s.check(
                        &format!("{name}/{bits} rax={x:#x} rbx={y:#x} flags={flags:#x}"),
                        &code,
                        &state(x, y, 0, flags),
                        Undefined::flags(undef),
                    );
                }
            }
        }
    }
    s.finish();
}

#[test]
fn add_flags_at_the_edges() {
    binary_edges("add", 0, |b| by_size!(b, |a, x, y, _z| a.add(x, y)));
}

#[test]
fn adc_flags_at_the_edges() {
    binary_edges("adc", 0, |b| by_size!(b, |a, x, y, _z| a.adc(x, y)));
}

#[test]
fn sub_flags_at_the_edges() {
    binary_edges("sub", 0, |b| by_size!(b, |a, x, y, _z| a.sub(x, y)));
}

#[test]
fn sbb_flags_at_the_edges() {
    binary_edges("sbb", 0, |b| by_size!(b, |a, x, y, _z| a.sbb(x, y)));
}

#[test]
fn cmp_flags_at_the_edges() {
    binary_edges("cmp", 0, |b| by_size!(b, |a, x, y, _z| a.cmp(x, y)));
}

#[test]
fn and_or_xor_test_flags_at_the_edges() {
    // Logic instructions leave AF undefined.
    binary_edges("and", AF, |b| by_size!(b, |a, x, y, _z| a.and(x, y)));
    binary_edges("or", AF, |b| by_size!(b, |a, x, y, _z| a.or(x, y)));
    binary_edges("xor", AF, |b| by_size!(b, |a, x, y, _z| a.xor(x, y)));
    binary_edges("test", AF, |b| by_size!(b, |a, x, y, _z| a.test(x, y)));
}

#[test]
fn unary_neg_inc_dec_not_at_the_edges() {
    let mut s = Suite::new();
    for bits in SIZES {
        for (name, code) in [
            ("neg", by_size!(bits, |a, x, _y, _z| a.neg(x))),
            ("inc", by_size!(bits, |a, x, _y, _z| a.inc(x))),
            ("dec", by_size!(bits, |a, x, _y, _z| a.dec(x))),
            ("not", by_size!(bits, |a, x, _y, _z| a.not(x))),
        ] {
            for &x in &EDGES {
                for flags in [0, ARITH, CF, ZF | OF] {
                    s.check(
                        &format!("{name}/{bits} {x:#x} flags={flags:#x}"),
                        &code,
                        &state(x, 0, 0, flags),
                        Undefined::NONE,
                    );
                }
            }
        }
    }
    s.finish();
}

#[test]
fn alu_immediate_forms() {
    let mut s = Suite::new();
    for imm in [
        0i32,
        1,
        -1,
        0x7f,
        -0x80,
        0x7fff_ffff,
        -0x8000_0000,
        0x1234_5678,
    ] {
        let i8v = imm as i8 as i32;
        let i16v = imm as i16 as i32;
        let cases: Vec<(String, Vec<u8>, u64)> = vec![
            (format!("add rax,{imm:#x}"), asm(|a| a.add(rax, imm)), 0),
            (format!("adc eax,{imm:#x}"), asm(|a| a.adc(eax, imm)), 0),
            (format!("sub ax,{i16v:#x}"), asm(|a| a.sub(ax, i16v)), 0),
            (format!("sbb al,{i8v:#x}"), asm(|a| a.sbb(al, i8v)), 0),
            (format!("cmp rbx,{imm:#x}"), asm(|a| a.cmp(rbx, imm)), 0),
            (format!("and ecx,{imm:#x}"), asm(|a| a.and(ecx, imm)), AF),
            (format!("or bx,{i16v:#x}"), asm(|a| a.or(bx, i16v)), AF),
            (format!("xor ah,{i8v:#x}"), asm(|a| a.xor(ah, i8v)), AF),
            (format!("test rax,{imm:#x}"), asm(|a| a.test(rax, imm)), AF),
            (format!("add r9w,{i8v:#x}"), asm(|a| a.add(r9w, i8v)), 0),
        ];
        for (what, code, undef) in &cases {
            for &x in &EDGES {
                let mut st = state(x, x.rotate_left(13), x ^ 0x80, CF);
                st.gprs[9] = x;
                s.check(what, code, &st, Undefined::flags(*undef));
            }
        }
    }
    s.finish();
}

/// The shift/rotate kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shift {
    Shl,
    Shr,
    Sar,
    Rol,
    Ror,
    Rcl,
    Rcr,
}

const SHIFTS: [Shift; 7] = [
    Shift::Shl,
    Shift::Shr,
    Shift::Sar,
    Shift::Rol,
    Shift::Ror,
    Shift::Rcl,
    Shift::Rcr,
];

/// Flags the SDM leaves undefined for `kind` of a `bits`-wide operand by
/// `count` (before masking).
fn shift_undefined(kind: Shift, bits: u32, count: u32) -> u64 {
    let masked = count & if bits == 64 { 63 } else { 31 };
    if masked == 0 {
        return 0; // no flag is affected
    }
    let mut u = if masked == 1 { 0 } else { OF };
    match kind {
        Shift::Shl | Shift::Shr => {
            u |= AF;
            if masked >= bits {
                u |= CF;
            }
        }
        Shift::Sar => u |= AF,
        _ => {}
    }
    u
}

fn shift_code(kind: Shift, bits: u32, count: Option<u32>) -> Vec<u8> {
    macro_rules! emit {
        ($a:ident, $x:ident, $z:ident) => {
            match (kind, count) {
                (Shift::Shl, Some(c)) => $a.shl($x, c),
                (Shift::Shr, Some(c)) => $a.shr($x, c),
                (Shift::Sar, Some(c)) => $a.sar($x, c),
                (Shift::Rol, Some(c)) => $a.rol($x, c),
                (Shift::Ror, Some(c)) => $a.ror($x, c),
                (Shift::Rcl, Some(c)) => $a.rcl($x, c),
                (Shift::Rcr, Some(c)) => $a.rcr($x, c),
                (Shift::Shl, None) => $a.shl($x, cl),
                (Shift::Shr, None) => $a.shr($x, cl),
                (Shift::Sar, None) => $a.sar($x, cl),
                (Shift::Rol, None) => $a.rol($x, cl),
                (Shift::Ror, None) => $a.ror($x, cl),
                (Shift::Rcl, None) => $a.rcl($x, cl),
                (Shift::Rcr, None) => $a.rcr($x, cl),
            }
        };
    }
    // The shifted register is RAX/EAX/AX/AL (or AH); the count is in CL.
    by_size!(bits, |a, x, _y, _z| emit!(a, x, _z))
}

#[test]
fn shifts_and_rotates_by_0_1_width_and_more() {
    let mut s = Suite::new();
    let values = [
        0x81u64,
        0x8000_0001,
        0xdead_beef_cafe_f00d,
        1,
        0x4000_0000_0000_0000,
        0x7f7f,
        0,
    ];
    for kind in SHIFTS {
        for bits in SIZES {
            let width = if bits == 0 { 8 } else { bits };
            let mut counts = vec![
                0u32,
                1,
                2,
                width - 1,
                width,
                width + 1,
                31,
                32,
                33,
                63,
                64,
                65,
                255,
            ];
            counts.dedup();
            for count in counts {
                let by_imm = shift_code(kind, bits, Some(count & 0xff));
                let by_cl = shift_code(kind, bits, None);
                let undef = Undefined::flags(shift_undefined(kind, width, count));
                for &v in &values {
                    for flags in [0, ARITH] {
                        let st = state(v, 0, u64::from(count) | 0xff00, flags);
                        let what = format!("{kind:?}/{bits} {v:#x} by {count} flags={flags:#x}");
                        s.check(&format!("{what} (imm)"), &by_imm, &st, undef);
                        s.check(&format!("{what} (cl)"), &by_cl, &st, undef);
                    }
                }
            }
        }
    }
    s.finish();
}

#[test]
fn double_shifts_shld_shrd() {
    let mut s = Suite::new();
    for bits in [16u32, 32, 64] {
        for count in [0u32, 1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64] {
            let masked = count & if bits == 64 { 63 } else { 31 };
            if masked > bits {
                continue; // result and flags undefined
            }
            let undef = if masked == 0 {
                0
            } else {
                AF | if masked == 1 { 0 } else { OF }
            };
            let codes = match bits {
                16 => [
                    asm(|a| a.shld(ax, bx, count)),
                    asm(|a| a.shrd(ax, bx, count)),
                    asm(|a| a.shld(ax, bx, cl)),
                    asm(|a| a.shrd(ax, bx, cl)),
                ],
                32 => [
                    asm(|a| a.shld(eax, ebx, count)),
                    asm(|a| a.shrd(eax, ebx, count)),
                    asm(|a| a.shld(eax, ebx, cl)),
                    asm(|a| a.shrd(eax, ebx, cl)),
                ],
                _ => [
                    asm(|a| a.shld(rax, rbx, count)),
                    asm(|a| a.shrd(rax, rbx, count)),
                    asm(|a| a.shld(rax, rbx, cl)),
                    asm(|a| a.shrd(rax, rbx, cl)),
                ],
            };
            for (k, code) in codes.iter().enumerate() {
                for (x, y) in [
                    (0x8000_0000_0000_8001u64, 0x1234_5678_9abc_def0u64),
                    (0xffff_ffff_ffff_ffff, 0),
                    (0, 0xffff_ffff_ffff_ffff),
                    (0x4000_4000_4000_4000, 0x8000_0001_8000_0001),
                ] {
                    for flags in [0, ARITH] {
                        s.check(
                            &format!("shXd #{k}/{bits} {x:#x},{y:#x} by {count}"),
                            code,
                            &state(x, y, u64::from(count), flags),
                            Undefined::flags(undef),
                        );
                    }
                }
            }
        }
    }
    s.finish();
}

/// MUL/IMUL leave SF, ZF, AF and PF undefined.
const MUL_UNDEF: u64 = SF | ZF | AF | PF;

#[test]
fn multiply_one_two_and_three_operand_forms() {
    let mut s = Suite::new();
    let undef = Undefined::flags(MUL_UNDEF);
    for bits in [8u32, 16, 32, 64] {
        let one = [
            by_size!(bits, |a, _x, y, _z| a.mul(y)),
            by_size!(bits, |a, _x, y, _z| a.imul(y)),
        ];
        for code in &one {
            for &x in &EDGES {
                for &y in &EDGES {
                    s.check(
                        &format!("mul1/{bits} {x:#x}*{y:#x}"),
                        code,
                        &state(x, y, 0, 0),
                        undef,
                    );
                }
            }
        }
    }
    let many: Vec<(&str, Vec<u8>)> = vec![
        ("imul ax,bx", asm(|a| a.imul_2(ax, bx))),
        ("imul eax,ebx", asm(|a| a.imul_2(eax, ebx))),
        ("imul rax,rbx", asm(|a| a.imul_2(rax, rbx))),
        ("imul cx,bx,-3", asm(|a| a.imul_3(cx, bx, -3))),
        ("imul ecx,ebx,0x7fff", asm(|a| a.imul_3(ecx, ebx, 0x7fff))),
        (
            "imul rcx,rbx,-0x80000000",
            asm(|a| a.imul_3(rcx, rbx, -0x8000_0000i32)),
        ),
        ("imul r11,rbx,127", asm(|a| a.imul_3(r11, rbx, 127))),
    ];
    for (what, code) in &many {
        for &x in &EDGES {
            for &y in &EDGES {
                s.check(what, code, &state(x, y, x ^ y, ARITH), undef);
            }
        }
    }
    s.finish();
}

/// Whether `bits`-wide DIV (or IDIV when `signed`) of the dividend in
/// RDX:RAX (AX for 8 bits) by `d` raises #DE, computed in Rust.
fn divide_faults(bits: u32, signed: bool, lo_in: u64, hi_in: u64, d: u64) -> bool {
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let d = d & mask;
    if d == 0 {
        return true;
    }
    let (lo, hi) = if bits == 8 {
        (lo_in & 0xff, (lo_in >> 8) & 0xff)
    } else {
        (lo_in & mask, hi_in & mask)
    };
    let dividend = (u128::from(hi) << bits) | u128::from(lo);
    if !signed {
        return dividend / u128::from(d) > u128::from(mask);
    }
    let sh = 128 - 2 * bits;
    let n = ((dividend << sh) as i128) >> sh;
    let dv = ((u128::from(d) << (128 - bits)) as i128) >> (128 - bits);
    let Some(q) = n.checked_div(dv) else {
        return true; // i128::MIN / -1
    };
    let lim = 1i128 << (bits - 1);
    q < -lim || q >= lim
}

#[test]
fn divide_with_and_without_divide_error() {
    let mut s = Suite::new();
    for bits in [8u32, 16, 32, 64] {
        for signed in [false, true] {
            let code = if signed {
                by_size!(bits, |a, _x, y, _z| a.idiv(y))
            } else {
                by_size!(bits, |a, _x, y, _z| a.div(y))
            };
            for &x in &EDGES {
                for &hi in &[0u64, 1, u64::MAX, 0x7f, 0x80_0000_0000, x >> 3] {
                    for &d in &EDGES {
                        let mut st = state(x, d, 0, ARITH);
                        st.gprs[2] = hi;
                        let faults = if bits == 8 {
                            st.gprs[0] = (x & !0xff00) | ((hi & 0xff) << 8);
                            divide_faults(bits, signed, st.gprs[0], 0, d)
                        } else {
                            divide_faults(bits, signed, x, hi, d)
                        };
                        let what = format!(
                            "{}/{bits} rdx:rax={hi:#x}:{x:#x} / {d:#x}",
                            if signed { "idiv" } else { "div" }
                        );
                        // A faulting divide changes nothing: every flag is
                        // compared; a completed one leaves all six undefined.
                        let undef = if faults { 0 } else { ARITH };
                        if let Some(out) = s.check(&what, &code, &st, Undefined::flags(undef)) {
                            let expect = if faults {
                                SnippetEnd::Exception(0)
                            } else {
                                SnippetEnd::Completed
                            };
                            assert_eq!(out.end, expect, "oracle vs Rust model: {what}");
                        }
                    }
                }
            }
        }
    }
    s.finish();
}

#[test]
fn bit_test_register_and_immediate_forms() {
    let mut s = Suite::new();
    // BT* leave OF, SF, AF, PF undefined; ZF is unaffected, CF is the bit.
    let undef = Undefined::flags(OF | SF | AF | PF);
    for bits in [16u32, 32, 64] {
        let codes = [
            by_wide!(bits, |a, x, y| a.bt(x, y)),
            by_wide!(bits, |a, x, y| a.bts(x, y)),
            by_wide!(bits, |a, x, y| a.btr(x, y)),
            by_wide!(bits, |a, x, y| a.btc(x, y)),
            by_wide!(bits, |a, x, _y| a.bt(x, 37)),
            by_wide!(bits, |a, x, _y| a.bts(x, 255)),
            by_wide!(bits, |a, x, _y| a.btr(x, 15)),
            by_wide!(bits, |a, x, _y| a.btc(x, 63)),
        ];
        for (k, code) in codes.iter().enumerate() {
            for off in [0u64, 1, 15, 16, 31, 32, 63, 64, 100, u64::MAX, 0x8000] {
                for v in [0u64, u64::MAX, 0x8000_0001_8001_0081] {
                    for flags in [0, ARITH] {
                        s.check(
                            &format!("bt#{k}/{bits} {v:#x} bit {off:#x}"),
                            code,
                            &state(v, off, 0, flags),
                            undef,
                        );
                    }
                }
            }
        }
    }
    s.finish();
}

#[test]
fn bit_scans_bsf_bsr() {
    let mut s = Suite::new();
    for bits in [16u32, 32, 64] {
        for (name, code) in [
            ("bsf", by_wide!(bits, |a, x, y| a.bsf(x, y))),
            ("bsr", by_wide!(bits, |a, x, y| a.bsr(x, y))),
        ] {
            let mut sources = EDGES.to_vec();
            sources.extend((0..64).map(|b| 1u64 << b));
            sources.extend([0xffff_0000_0000_0000, 0x10000, 0x1_0000_0000]);
            for &y in &sources {
                let mask = if bits == 64 {
                    u64::MAX
                } else {
                    (1 << bits) - 1
                };
                // Only ZF is defined; with a zero source so is nothing
                // of the destination.
                let undef = if y & mask == 0 {
                    Undefined::flags_and_reg(CF | OF | SF | AF | PF, 0)
                } else {
                    Undefined::flags(CF | OF | SF | AF | PF)
                };
                for flags in [0, ARITH] {
                    s.check(
                        &format!("{name}/{bits} {y:#x}"),
                        &code,
                        &state(0x1234_5678_9abc_def0, y, 0, flags),
                        undef,
                    );
                }
            }
        }
    }
    s.finish();
}

#[test]
fn bswap_and_extensions() {
    let mut s = Suite::new();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bswap eax", asm(|a| a.bswap(eax))),
        ("bswap rax", asm(|a| a.bswap(rax))),
        ("bswap r12", asm(|a| a.bswap(r12))),
        ("bswap r9d", asm(|a| a.bswap(r9d))),
        ("movzx ax,bl", asm(|a| a.movzx(ax, bl))),
        ("movzx eax,bh", asm(|a| a.movzx(eax, bh))),
        ("movzx rax,bl", asm(|a| a.movzx(rax, bl))),
        ("movzx eax,bx", asm(|a| a.movzx(eax, bx))),
        ("movzx rax,bx", asm(|a| a.movzx(rax, bx))),
        ("movsx ax,bl", asm(|a| a.movsx(ax, bl))),
        ("movsx eax,bh", asm(|a| a.movsx(eax, bh))),
        ("movsx rax,bl", asm(|a| a.movsx(rax, bl))),
        ("movsx eax,bx", asm(|a| a.movsx(eax, bx))),
        ("movsx rax,bx", asm(|a| a.movsx(rax, bx))),
        ("movsxd rax,ebx", asm(|a| a.movsxd(rax, ebx))),
        ("movsx r10,sil", asm(|a| a.movsx(r10, sil))),
        ("cbw", asm(|a| a.cbw())),
        ("cwde", asm(|a| a.cwde())),
        ("cdqe", asm(|a| a.cdqe())),
        ("cwd", asm(|a| a.cwd())),
        ("cdq", asm(|a| a.cdq())),
        ("cqo", asm(|a| a.cqo())),
        ("mov eax,ebx", asm(|a| a.mov(eax, ebx))),
        ("mov ax,bx", asm(|a| a.mov(ax, bx))),
        ("mov ah,bl", asm(|a| a.mov(ah, bl))),
        ("mov al,bh", asm(|a| a.mov(al, bh))),
        (
            "mov rax,imm64",
            asm(|a| a.mov(rax, 0x8123_4567_89ab_cdefu64)),
        ),
        ("mov eax,-1", asm(|a| a.mov(eax, -1))),
        ("mov rax,-1 (imm32)", asm(|a| a.mov(rax, -1i64))),
        ("xchg eax,ebx", asm(|a| a.xchg(eax, ebx))),
        ("xchg ax,bx", asm(|a| a.xchg(ax, bx))),
        ("xchg ah,bl", asm(|a| a.xchg(ah, bl))),
        (
            "xchg eax,eax (0x90 is nop, 87 c0 zero-extends)",
            vec![0x87, 0xc0],
        ),
        ("xadd rax,rbx", asm(|a| a.xadd(rax, rbx))),
        ("xadd bx,ax", asm(|a| a.xadd(bx, ax))),
        ("xadd al,bl", asm(|a| a.xadd(al, bl))),
        ("cmpxchg ecx,ebx", asm(|a| a.cmpxchg(ecx, ebx))),
        ("cmpxchg rcx,rbx", asm(|a| a.cmpxchg(rcx, rbx))),
        ("cmpxchg cl,bl", asm(|a| a.cmpxchg(cl, bl))),
    ];
    for (what, code) in &cases {
        for &x in &EDGES {
            for &y in &[
                0u64,
                0x80,
                0x8000,
                0x8000_0000,
                u64::MAX,
                0x0123_4567_89ab_cdef,
                x,
            ] {
                let mut st = state(x, y, if y == x { x } else { y ^ 1 }, SF | CF);
                st.gprs[6] = y;
                st.gprs[9] = x;
                st.gprs[12] = y;
                s.check(what, code, &st, Undefined::NONE);
            }
        }
    }
    s.finish();
}

/// All 32 combinations of CF, PF, ZF, SF and OF.
fn flag_combinations() -> impl Iterator<Item = u64> {
    (0..32u64).map(|m| {
        [CF, PF, ZF, SF, OF]
            .iter()
            .enumerate()
            .filter(|(i, _)| m & (1 << i) != 0)
            .fold(0, |f, (_, b)| f | b)
    })
}

#[test]
fn setcc_cmovcc_jcc_for_every_condition() {
    let mut s = Suite::new();
    for cc in 0..16u8 {
        let codes: Vec<(&str, Vec<u8>)> = vec![
            ("setcc al", vec![0x0f, 0x90 + cc, 0xc0]),
            ("setcc ah", vec![0x0f, 0x90 + cc, 0xc4]),
            ("setcc r10b", vec![0x41, 0x0f, 0x90 + cc, 0xc2]),
            ("cmovcc ax,bx", vec![0x66, 0x0f, 0x40 + cc, 0xc3]),
            ("cmovcc eax,ebx", vec![0x0f, 0x40 + cc, 0xc3]),
            ("cmovcc rax,rbx", vec![0x48, 0x0f, 0x40 + cc, 0xc3]),
            // jcc over "mov eax, 1" (short and near forms)
            ("jcc rel8", vec![0x70 + cc, 0x05, 0xb8, 1, 0, 0, 0]),
            (
                "jcc rel32",
                vec![0x0f, 0x80 + cc, 0x05, 0, 0, 0, 0xb8, 1, 0, 0, 0],
            ),
        ];
        for (what, code) in &codes {
            for flags in flag_combinations() {
                let mut st = state(0xffff_ffff_ffff_ffff, 0x1111_2222_3333_4444, 0, flags);
                st.gprs[10] = u64::MAX;
                s.check(
                    &format!("{what} cc={cc:#x} flags={flags:#x}"),
                    code,
                    &st,
                    Undefined::NONE,
                );
            }
        }
    }
    s.finish();
}

#[test]
fn lea_forms() {
    let mut s = Suite::new();
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for disp in [0i32, 1, 127, -128, 0x1234_5678, -0x8000_0000] {
        cases.push((
            format!("lea rax,[rbx+rcx*1+{disp:#x}]"),
            asm(|a| a.lea(rax, qword_ptr(rbx + rcx + disp))),
        ));
        cases.push((
            format!("lea rax,[rbx+rcx*2+{disp:#x}]"),
            asm(|a| a.lea(rax, qword_ptr(rbx + rcx * 2 + disp))),
        ));
        cases.push((
            format!("lea eax,[rbx+rcx*4+{disp:#x}]"),
            asm(|a| a.lea(eax, dword_ptr(rbx + rcx * 4 + disp))),
        ));
        cases.push((
            format!("lea ax,[rbx+rcx*8+{disp:#x}]"),
            asm(|a| a.lea(ax, word_ptr(rbx + rcx * 8 + disp))),
        ));
        cases.push((
            format!("lea rax,[ebx+ecx*8+{disp:#x}]"),
            asm(|a| a.lea(rax, qword_ptr(ebx + ecx * 8 + disp))),
        ));
        cases.push((
            format!("lea r13,[r13+r12*2+{disp:#x}]"),
            asm(|a| a.lea(r13, qword_ptr(r13 + r12 * 2 + disp))),
        ));
        cases.push((
            format!("lea rax,[rbp+{disp:#x}]"),
            asm(|a| a.lea(rax, qword_ptr(rbp + disp))),
        ));
        cases.push((
            format!("lea rax,[rcx*4+{disp:#x}]"),
            asm(|a| a.lea(rax, qword_ptr(rcx * 4 + disp))),
        ));
        cases.push((
            format!("lea eax,[{disp:#x}]"),
            asm(|a| a.lea(eax, dword_ptr(disp as u64))),
        ));
    }
    // lea rax, [rip + 0x100]: both runners have code at CODE_BASE.
    cases.push((
        "lea rax,[rip+0x100]".into(),
        vec![0x48, 0x8d, 0x05, 0, 1, 0, 0],
    ));
    for (what, code) in &cases {
        for &x in &EDGES {
            let mut st = state(0, x, x.rotate_right(5), ARITH);
            st.gprs[5] = x ^ 0x8000;
            st.gprs[12] = x.rotate_left(1);
            st.gprs[13] = x;
            s.check(what, code, &st, Undefined::NONE);
        }
    }
    s.finish();
}
