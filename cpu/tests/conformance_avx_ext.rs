//! The VEX forms of SSE3, SSSE3, SSE4.1, SSE4.2, AES-NI and PCLMULQDQ
//! against the host CPU: VEX.128 and (where AVX/AVX2 define them) VEX.256,
//! register and memory operands, from random YMM state (float lanes biased
//! towards IEEE edge values, integer lanes towards sign and width
//! boundaries) under random MXCSR settings, compared bit for bit: all 256
//! bits of every YMM register (so VEX.128's zeroing of bits 255:128),
//! MXCSR, RFLAGS, GPRs and the data buffer.

// The form tables are built by macros that push several forms each.
#![allow(clippy::vec_init_then_push)]

mod conformance;

use conformance::compare::{Suite, Undefined};
use conformance::rng::Rng;
use conformance::ymm::{random_state, run_forms, Form, Lanes};
use iced_x86::code_asm::*;

/// Three-operand packed forms: xmm, xmm+mem, ymm, ymm+mem, dest = src1.
macro_rules! packed3 {
    ($v:ident; $($m:ident),* $(,)?) => {$(
        $v.push((concat!(stringify!($m), " x,x,x").into(), |a| a.$m(xmm0, xmm1, xmm2)));
        $v.push((concat!(stringify!($m), " x,x,m").into(), |a| a.$m(xmm3, xmm4, xmmword_ptr(rdi + 0x10))));
        $v.push((concat!(stringify!($m), " y,y,y").into(), |a| a.$m(ymm5, ymm6, ymm7)));
        $v.push((concat!(stringify!($m), " y,y,m").into(), |a| a.$m(ymm8, ymm9, ymmword_ptr(rdi + 0x20))));
        $v.push((concat!(stringify!($m), " y13,y13,y14").into(), |a| a.$m(ymm13, ymm13, ymm14)));
    )*};
}

/// VEX.128-only three-operand forms.
macro_rules! xmm3 {
    ($v:ident; $($m:ident),* $(,)?) => {$(
        $v.push((concat!(stringify!($m), " x,x,x").into(), |a| a.$m(xmm0, xmm1, xmm2)));
        $v.push((concat!(stringify!($m), " x,x,m").into(), |a| a.$m(xmm3, xmm4, xmmword_ptr(rdi + 0x10))));
        $v.push((concat!(stringify!($m), " x9,x9,x15").into(), |a| a.$m(xmm9, xmm9, xmm15)));
    )*};
}

/// Two-operand packed forms (register and memory source).
macro_rules! packed2 {
    ($v:ident; $($m:ident),* $(,)?) => {$(
        $v.push((concat!(stringify!($m), " x,x").into(), |a| a.$m(xmm0, xmm1)));
        $v.push((concat!(stringify!($m), " x,m").into(), |a| a.$m(xmm3, xmmword_ptr(rdi + 0x30))));
        $v.push((concat!(stringify!($m), " y,y").into(), |a| a.$m(ymm5, ymm6)));
        $v.push((concat!(stringify!($m), " y,m").into(), |a| a.$m(ymm8, ymmword_ptr(rdi + 0x40))));
    )*};
}

/// Packed forms with an immediate, VEX.128 and VEX.256.
macro_rules! packed3_imm {
    ($v:ident; $($m:ident: $($imm:literal)*),* $(,)?) => {$($(
        $v.push((format!("{} x,x,x,{}", stringify!($m), $imm), |a| a.$m(xmm0, xmm1, xmm2, $imm)));
        $v.push((format!("{} x,x,m,{}", stringify!($m), $imm), |a| a.$m(xmm3, xmm4, xmmword_ptr(rdi + 0x50), $imm)));
        $v.push((format!("{} y,y,y,{}", stringify!($m), $imm), |a| a.$m(ymm5, ymm6, ymm7, $imm)));
        $v.push((format!("{} y,y,m,{}", stringify!($m), $imm), |a| a.$m(ymm8, ymm9, ymmword_ptr(rdi + 0x60), $imm)));
    )*)*};
}

/// VEX.128-only forms with an immediate.
macro_rules! xmm3_imm {
    ($v:ident; $($m:ident: $($imm:literal)*),* $(,)?) => {$($(
        $v.push((format!("{} x,x,x,{}", stringify!($m), $imm), |a| a.$m(xmm0, xmm1, xmm2, $imm)));
        $v.push((format!("{} x,x,m,{}", stringify!($m), $imm), |a| a.$m(xmm3, xmm4, xmmword_ptr(rdi + 0x50), $imm)));
    )*)*};
}

/// Four-operand variable blends: the selector is the is4 register.
macro_rules! blendv {
    ($v:ident; $($m:ident),* $(,)?) => {$(
        $v.push((concat!(stringify!($m), " x,x,x,x").into(), |a| a.$m(xmm0, xmm1, xmm2, xmm3)));
        $v.push((concat!(stringify!($m), " x,x,m,x").into(), |a| a.$m(xmm4, xmm5, xmmword_ptr(rdi + 0x10), xmm12)));
        $v.push((concat!(stringify!($m), " y,y,y,y").into(), |a| a.$m(ymm5, ymm6, ymm7, ymm8)));
        $v.push((concat!(stringify!($m), " y,y,m,y").into(), |a| a.$m(ymm9, ymm10, ymmword_ptr(rdi + 0x20), ymm11)));
        $v.push((concat!(stringify!($m), " y1,y1,y2,y1").into(), |a| a.$m(ymm1, ymm1, ymm2, ymm1)));
    )*};
}

/// Widening moves: VEX.128 reads the low half of its source, VEX.256 a
/// 128-bit source ($p is the VEX.128 memory width).
macro_rules! widen {
    ($v:ident; $($m:ident: $p:ident),* $(,)?) => {$(
        $v.push((concat!(stringify!($m), " x,x").into(), |a| a.$m(xmm0, xmm1)));
        $v.push((concat!(stringify!($m), " x,m").into(), |a| a.$m(xmm2, $p(rdi + 0x18))));
        $v.push((concat!(stringify!($m), " y,x").into(), |a| a.$m(ymm3, xmm4)));
        $v.push((concat!(stringify!($m), " y,m").into(), |a| a.$m(ymm5, xmmword_ptr(rdi + 0x30))));
        $v.push((concat!(stringify!($m), " y6,x6").into(), |a| a.$m(ymm6, xmm6)));
    )*};
}

#[test]
fn vex_sse3_float_forms_match_the_host() {
    let mut ps: Vec<Form> = Vec::new();
    packed3!(ps; vaddsubps, vhaddps, vhsubps);
    packed2!(ps; vmovshdup, vmovsldup);
    run_forms(0xe1, Lanes::F32, &ps);
    let mut pd: Vec<Form> = Vec::new();
    packed3!(pd; vaddsubpd, vhaddpd, vhsubpd);
    pd.push(("vmovddup x,x".into(), |a| a.vmovddup(xmm0, xmm1)));
    pd.push(("vmovddup x,m".into(), |a| {
        a.vmovddup(xmm2, qword_ptr(rdi + 8))
    }));
    pd.push(("vmovddup y,y".into(), |a| a.vmovddup(ymm3, ymm4)));
    pd.push(("vmovddup y,m".into(), |a| {
        a.vmovddup(ymm5, ymmword_ptr(rdi + 0x20))
    }));
    run_forms(0xe2, Lanes::F64, &pd);
}

#[test]
fn vex_ssse3_forms_match_the_host() {
    let mut v: Vec<Form> = Vec::new();
    packed3!(v; vpshufb, vpsignb, vpsignw, vpsignd, vphaddw, vphaddd, vphaddsw, vphsubw, vphsubd, vphsubsw, vpmaddubsw, vpmulhrsw);
    packed2!(v; vpabsb, vpabsw, vpabsd);
    packed3_imm!(v; vpalignr: 0 1 7 15 16 17 31 32 255);
    run_forms(0xe3, Lanes::Int, &v);
}

#[test]
fn vex_sse41_integer_forms_match_the_host() {
    let mut v: Vec<Form> = Vec::new();
    packed3!(v; vpminsb, vpminsd, vpminuw, vpminud, vpmaxsb, vpmaxsd, vpmaxuw, vpmaxud, vpmulld, vpmuldq, vpcmpeqq, vpcmpgtq, vpackusdw);
    packed3_imm!(v; vpblendw: 0 0x5a 0xff, vmpsadbw: 0 5 0x1b 0x2d 0x3f);
    blendv!(v; vpblendvb);
    widen!(v; vpmovsxbw: qword_ptr, vpmovsxbd: dword_ptr, vpmovsxbq: word_ptr, vpmovsxwd: qword_ptr, vpmovsxwq: dword_ptr, vpmovsxdq: qword_ptr);
    widen!(v; vpmovzxbw: qword_ptr, vpmovzxbd: dword_ptr, vpmovzxbq: word_ptr, vpmovzxwd: qword_ptr, vpmovzxwq: dword_ptr, vpmovzxdq: qword_ptr);
    v.push(("vphminposuw x,x".into(), |a| a.vphminposuw(xmm0, xmm1)));
    v.push(("vphminposuw x,m".into(), |a| {
        a.vphminposuw(xmm9, xmmword_ptr(rdi + 0x10))
    }));
    run_forms(0xe4, Lanes::Int, &v);
}

#[test]
fn vex_ptest_and_non_temporal_loads_match_the_host() {
    let mut v: Vec<Form> = Vec::new();
    v.push(("vptest x,x".into(), |a| a.vptest(xmm0, xmm1)));
    v.push(("vptest x,x same".into(), |a| a.vptest(xmm2, xmm2)));
    v.push(("vptest x,m".into(), |a| {
        a.vptest(xmm3, xmmword_ptr(rdi + 0x10))
    }));
    v.push(("vptest y,y".into(), |a| a.vptest(ymm4, ymm5)));
    v.push(("vptest y,y same".into(), |a| a.vptest(ymm6, ymm6)));
    v.push(("vptest y,m".into(), |a| {
        a.vptest(ymm7, ymmword_ptr(rdi + 0x20))
    }));
    // Equal and complementary operands: ZF and CF both ways.
    v.push(("vpandn; vptest y,y".into(), |a| {
        a.vpandn(ymm1, ymm0, ymm0)?;
        a.vptest(ymm0, ymm1)
    }));
    v.push(("vpxor; vptest y,y".into(), |a| {
        a.vpxor(ymm2, ymm2, ymm2)?;
        a.vptest(ymm2, ymm3)
    }));
    v.push(("vmovntdqa x,m".into(), |a| {
        a.vmovntdqa(xmm0, xmmword_ptr(rdi + 0x10))
    }));
    v.push(("vmovntdqa y,m".into(), |a| {
        a.vmovntdqa(ymm1, ymmword_ptr(rdi + 0x20))
    }));
    // Misaligned: #GP(0).
    v.push(("vmovntdqa y,m misaligned".into(), |a| {
        a.vmovntdqa(ymm1, ymmword_ptr(rdi + 0x10))
    }));
    v.push(("vlddqu x,m".into(), |a| {
        a.vlddqu(xmm2, xmmword_ptr(rdi + 3))
    }));
    v.push(("vlddqu y,m".into(), |a| {
        a.vlddqu(ymm3, ymmword_ptr(rdi + 5))
    }));
    run_forms(0xe5, Lanes::Int, &v);
}

#[test]
fn vex_sse41_float_forms_match_the_host() {
    let mut ps: Vec<Form> = Vec::new();
    packed3_imm!(ps; vblendps: 0 0x35 0xca 0xff, vdpps: 0xff 0xf1 0x3c 0x5a 0x0f 0xf0);
    blendv!(ps; vblendvps);
    ps.push(("vroundps y,y,4".into(), |a| a.vroundps(ymm0, ymm1, 4)));
    ps.push(("vroundps y,m,9".into(), |a| {
        a.vroundps(ymm2, ymmword_ptr(rdi + 0x20), 9)
    }));
    ps.push(("vroundps x,x,3".into(), |a| a.vroundps(xmm3, xmm4, 3)));
    ps.push(("vroundps x,m,10".into(), |a| {
        a.vroundps(xmm5, xmmword_ptr(rdi + 0x10), 10)
    }));
    ps.push(("vroundss x,x,x,0".into(), |a| {
        a.vroundss(xmm6, xmm7, xmm8, 0)
    }));
    ps.push(("vroundss x,x,m,12".into(), |a| {
        a.vroundss(xmm9, xmm10, dword_ptr(rdi + 4), 12)
    }));
    xmm3_imm!(ps; vinsertps: 0x00 0x1d 0x62 0xb0 0xcf);
    ps.push(("vextractps r,x,2".into(), |a| a.vextractps(eax, xmm1, 2)));
    ps.push(("vextractps m,x,3".into(), |a| {
        a.vextractps(dword_ptr(rdi + 0x44), xmm2, 3)
    }));
    run_forms(0xe6, Lanes::F32, &ps);
    let mut pd: Vec<Form> = Vec::new();
    packed3_imm!(pd; vblendpd: 0 5 0xa 0xf);
    xmm3_imm!(pd; vdppd: 0x33 0x31 0x12 0x23 0x03);
    blendv!(pd; vblendvpd);
    pd.push(("vroundpd y,y,1".into(), |a| a.vroundpd(ymm0, ymm1, 1)));
    pd.push(("vroundpd y,m,4".into(), |a| {
        a.vroundpd(ymm2, ymmword_ptr(rdi + 0x20), 4)
    }));
    pd.push(("vroundpd x,x,2".into(), |a| a.vroundpd(xmm3, xmm4, 2)));
    pd.push(("vroundsd x,x,x,11".into(), |a| {
        a.vroundsd(xmm6, xmm7, xmm8, 11)
    }));
    pd.push(("vroundsd x,x,m,0".into(), |a| {
        a.vroundsd(xmm9, xmm10, qword_ptr(rdi + 8), 0)
    }));
    run_forms(0xe7, Lanes::F64, &pd);
}

#[test]
fn vex_inserts_and_extracts_match_the_host() {
    let mut v: Vec<Form> = Vec::new();
    v.push(("vpextrb r,x".into(), |a| a.vpextrb(eax, xmm1, 13)));
    v.push(("vpextrb m,x".into(), |a| {
        a.vpextrb(byte_ptr(rdi + 3), xmm2, 7)
    }));
    v.push(("vpextrd r,x".into(), |a| a.vpextrd(ecx, xmm3, 2)));
    v.push(("vpextrd m,x".into(), |a| {
        a.vpextrd(dword_ptr(rdi + 8), xmm4, 1)
    }));
    v.push(("vpextrq r,x".into(), |a| a.vpextrq(rdx, xmm5, 1)));
    v.push(("vpextrq m,x".into(), |a| {
        a.vpextrq(qword_ptr(rdi + 0x10), xmm6, 0)
    }));
    v.push(("vpextrw m,x".into(), |a| {
        a.vpextrw(word_ptr(rdi + 6), xmm7, 5)
    }));
    v.push(("vpinsrb x,x,r".into(), |a| a.vpinsrb(xmm0, xmm1, eax, 15)));
    v.push(("vpinsrb x,x,m".into(), |a| {
        a.vpinsrb(xmm2, xmm3, byte_ptr(rdi + 1), 4)
    }));
    v.push(("vpinsrd x,x,r".into(), |a| a.vpinsrd(xmm4, xmm5, ecx, 3)));
    v.push(("vpinsrd x,x,m".into(), |a| {
        a.vpinsrd(xmm6, xmm7, dword_ptr(rdi + 4), 0)
    }));
    v.push(("vpinsrq x,x,r".into(), |a| a.vpinsrq(xmm8, xmm9, rdx, 1)));
    v.push(("vpinsrq x,x,m".into(), |a| {
        a.vpinsrq(xmm10, xmm10, qword_ptr(rdi + 8), 0)
    }));
    run_forms(0xe8, Lanes::Int, &v);
}

#[test]
fn vex_string_compares_match_the_host() {
    let mut v: Vec<Form> = Vec::new();
    macro_rules! strcmp {
        ($($imm:literal)*) => {$(
            v.push((format!("vpcmpistri x,x,{}", $imm), |a| a.vpcmpistri(xmm1, xmm2, $imm)));
            v.push((format!("vpcmpistrm x,m,{}", $imm), |a| a.vpcmpistrm(xmm3, xmmword_ptr(rdi + 0x10), $imm)));
            v.push((format!("vpcmpestri x,m,{}", $imm), |a| a.vpcmpestri(xmm4, xmmword_ptr(rdi + 0x20), $imm)));
            v.push((format!("vpcmpestrm x,x,{}", $imm), |a| a.vpcmpestrm(xmm5, xmm6, $imm)));
            v.push((format!("vpcmpestri64 x,x,{}", $imm), |a| a.vpcmpestri64(xmm7, xmm8, $imm)));
            v.push((format!("vpcmpestrm64 x,x,{}", $imm), |a| a.vpcmpestrm64(xmm9, xmm10, $imm)));
        )*};
    }
    strcmp!(0x00 0x04 0x08 0x0c 0x19 0x1d 0x3a 0x44 0x4c 0x61 0x73);
    run_forms(0xe9, Lanes::Int, &v);
}

#[test]
fn vex_aes_and_pclmulqdq_match_the_host() {
    let mut v: Vec<Form> = Vec::new();
    xmm3!(v; vaesenc, vaesenclast, vaesdec, vaesdeclast);
    v.push(("vaesimc x,x".into(), |a| a.vaesimc(xmm0, xmm1)));
    v.push(("vaesimc x,m".into(), |a| {
        a.vaesimc(xmm2, xmmword_ptr(rdi + 0x10))
    }));
    xmm3_imm!(v; vpclmulqdq: 0x00 0x01 0x10 0x11);
    v.push(("vaeskeygenassist x,x".into(), |a| {
        a.vaeskeygenassist(xmm3, xmm4, 0x1b)
    }));
    v.push(("vaeskeygenassist x,m".into(), |a| {
        a.vaeskeygenassist(xmm5, xmmword_ptr(rdi + 0x10), 0x80)
    }));
    run_forms(0xea, Lanes::Int, &v);
}

#[test]
fn undefined_vex_lengths_of_the_extensions_are_ud_like_the_host() {
    // VEX.L=1 forms the instruction sets leave undefined; the host
    // raises #UD, so must the interpreter.
    let cases: [(&str, &[u8]); 5] = [
        // vpextrb eax, xmm1, 0 with VEX.L=1.
        ("vpextrb L=1", &[0xc4, 0xe3, 0x7d, 0x14, 0xc8, 0x00]),
        // vpinsrd xmm0, xmm1, eax, 0 with VEX.L=1.
        ("vpinsrd L=1", &[0xc4, 0xe3, 0x75, 0x22, 0xc0, 0x00]),
        // vphminposuw with VEX.L=1.
        ("vphminposuw L=1", &[0xc4, 0xe2, 0x7d, 0x41, 0xc1]),
        // vdppd with VEX.L=1.
        ("vdppd L=1", &[0xc4, 0xe3, 0x75, 0x41, 0xc2, 0x31]),
        // vpcmpistri with VEX.L=1.
        ("vpcmpistri L=1", &[0xc4, 0xe3, 0x7d, 0x63, 0xc1, 0x0c]),
    ];
    let mut r = Rng::new(0xeb);
    let mut suite = Suite::new();
    for (name, code) in cases {
        let s = random_state(&mut r, Lanes::Int, false);
        suite.check(name, code, &s, Undefined::NONE);
    }
    suite.finish();
}
