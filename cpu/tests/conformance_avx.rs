//! VEX-encoded instructions against the host CPU: every form the
//! interpreter implements, VEX.128 and VEX.256, register and memory
//! operands, from random YMM state (float lanes biased towards NaNs,
//! infinities, denormals, zeros and boundaries; integer lanes towards
//! sign and width boundaries) under random MXCSR rounding/DAZ/FTZ
//! settings, compared bit for bit: all 256 bits of every YMM register,
//! MXCSR, RFLAGS, GPRs, the data buffer and how the snippet ended.

// The form tables are built by macros that push several forms each.
#![allow(clippy::vec_init_then_push)]

mod conformance;

use conformance::asm::asm;
use conformance::compare::{set_ymm, Suite, Undefined};
use conformance::rng::Rng;
use conformance::ymm::{f32_lane, f64_lane, random_state, run_forms, Form, Lanes, CASES};
use cpu::snippet::SnippetState;
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

/// Two-operand packed forms (register and memory source).
macro_rules! packed2 {
    ($v:ident; $($m:ident),* $(,)?) => {$(
        $v.push((concat!(stringify!($m), " x,x").into(), |a| a.$m(xmm0, xmm1)));
        $v.push((concat!(stringify!($m), " x,m").into(), |a| a.$m(xmm3, xmmword_ptr(rdi + 0x30))));
        $v.push((concat!(stringify!($m), " y,y").into(), |a| a.$m(ymm5, ymm6)));
        $v.push((concat!(stringify!($m), " y,m").into(), |a| a.$m(ymm8, ymmword_ptr(rdi + 0x40))));
    )*};
}

/// Scalar three-operand forms with a `$p` memory operand.
macro_rules! scalar3 {
    ($v:ident, $p:ident; $($m:ident),* $(,)?) => {$(
        $v.push((concat!(stringify!($m), " x,x,x").into(), |a| a.$m(xmm0, xmm1, xmm2)));
        $v.push((concat!(stringify!($m), " x,x,m").into(), |a| a.$m(xmm3, xmm4, $p(rdi + 0x18))));
        $v.push((concat!(stringify!($m), " x9,x9,x15").into(), |a| a.$m(xmm9, xmm9, xmm15)));
    )*};
}

/// Packed forms with an immediate: $imm values.
macro_rules! packed3_imm {
    ($v:ident; $($m:ident: $($imm:literal)*),* $(,)?) => {$($(
        $v.push((format!("{} x,x,x,{}", stringify!($m), $imm), |a| a.$m(xmm0, xmm1, xmm2, $imm)));
        $v.push((format!("{} x,x,m,{}", stringify!($m), $imm), |a| a.$m(xmm3, xmm4, xmmword_ptr(rdi + 0x50), $imm)));
        $v.push((format!("{} y,y,y,{}", stringify!($m), $imm), |a| a.$m(ymm5, ymm6, ymm7, $imm)));
        $v.push((format!("{} y,y,m,{}", stringify!($m), $imm), |a| a.$m(ymm8, ymm9, ymmword_ptr(rdi + 0x60), $imm)));
    )*)*};
}

#[test]
fn vex_float_arithmetic_matches_the_host() {
    let mut ps: Vec<Form> = Vec::new();
    packed3!(ps; vaddps, vsubps, vmulps, vdivps, vminps, vmaxps);
    packed2!(ps; vsqrtps);
    scalar3!(ps, dword_ptr; vaddss, vsubss, vmulss, vdivss, vminss, vmaxss, vsqrtss);
    run_forms(0xa1, Lanes::F32, &ps);
    let mut pd: Vec<Form> = Vec::new();
    packed3!(pd; vaddpd, vsubpd, vmulpd, vdivpd, vminpd, vmaxpd);
    packed2!(pd; vsqrtpd);
    scalar3!(pd, qword_ptr; vaddsd, vsubsd, vmulsd, vdivsd, vminsd, vmaxsd, vsqrtsd);
    run_forms(0xa2, Lanes::F64, &pd);
}

#[test]
fn vex_compares_match_the_host_for_all_32_predicates() {
    let mut ps: Vec<Form> = Vec::new();
    packed3_imm!(ps; vcmpps: 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31);
    ps.push(("vcmpss x,x,x,17".into(), |a| a.vcmpss(xmm0, xmm1, xmm2, 17)));
    ps.push(("vcmpss x,x,m,13".into(), |a| {
        a.vcmpss(xmm0, xmm1, dword_ptr(rdi), 13)
    }));
    ps.push(("vcomiss".into(), |a| a.vcomiss(xmm1, xmm2)));
    ps.push(("vucomiss m".into(), |a| {
        a.vucomiss(xmm1, dword_ptr(rdi + 4))
    }));
    run_forms(0xc1, Lanes::F32, &ps);
    let mut pd: Vec<Form> = Vec::new();
    packed3_imm!(pd; vcmppd: 0 3 4 7 8 9 10 11 12 15 16 19 20 25 29 31);
    pd.push(("vcmpsd x,x,x,9".into(), |a| a.vcmpsd(xmm0, xmm1, xmm2, 9)));
    pd.push(("vcmpsd x,x,m,30".into(), |a| {
        a.vcmpsd(xmm0, xmm1, qword_ptr(rdi), 30)
    }));
    pd.push(("vcomisd".into(), |a| a.vcomisd(xmm1, xmm2)));
    pd.push(("vucomisd m".into(), |a| {
        a.vucomisd(xmm1, qword_ptr(rdi + 8))
    }));
    run_forms(0xc2, Lanes::F64, &pd);
}

#[test]
fn vex_logic_unpack_and_shuffles_match_the_host() {
    let mut v: Vec<Form> = Vec::new();
    packed3!(v; vandps, vandpd, vandnps, vandnpd, vorps, vorpd, vxorps, vxorpd);
    packed3!(v; vunpcklps, vunpckhps, vunpcklpd, vunpckhpd);
    packed3_imm!(v; vshufps: 0 0x1b 0xe4 0x93 0xff, vshufpd: 0 1 2 5 0xa 0xf);
    run_forms(0x10, Lanes::Int, &v);
}

#[test]
fn vex_integer_operations_match_the_host() {
    let mut v: Vec<Form> = Vec::new();
    packed3!(v; vpaddb, vpaddw, vpaddd, vpaddq, vpsubb, vpsubw, vpsubd, vpsubq);
    packed3!(v; vpaddsb, vpaddsw, vpsubsb, vpsubsw, vpaddusb, vpaddusw, vpsubusb, vpsubusw);
    packed3!(v; vpcmpeqb, vpcmpeqw, vpcmpeqd, vpcmpgtb, vpcmpgtw, vpcmpgtd);
    packed3!(v; vpmullw, vpmulhw, vpmulhuw, vpmuludq, vpmaddwd, vpavgb, vpavgw, vpsadbw);
    packed3!(v; vpminub, vpmaxub, vpminsw, vpmaxsw, vpand, vpandn, vpor, vpxor);
    packed3!(v; vpunpcklbw, vpunpcklwd, vpunpckldq, vpunpcklqdq);
    packed3!(v; vpunpckhbw, vpunpckhwd, vpunpckhdq, vpunpckhqdq);
    packed3!(v; vpacksswb, vpackssdw, vpackuswb);
    run_forms(0x20, Lanes::Int, &v);
}

#[test]
fn vex_shifts_and_integer_shuffles_match_the_host() {
    let mut v: Vec<Form> = Vec::new();
    macro_rules! by_imm {
        ($($m:ident: $($imm:literal)*),*) => {$($(
            v.push((format!("{} x,x,{}", stringify!($m), $imm), |a| a.$m(xmm0, xmm1, $imm)));
            v.push((format!("{} y,y,{}", stringify!($m), $imm), |a| a.$m(ymm2, ymm3, $imm)));
        )*)*};
    }
    by_imm!(vpsllw: 0 1 15 16 200, vpslld: 3 31 32, vpsllq: 1 63 64, vpsrlw: 4 16,
        vpsrld: 7 32, vpsrlq: 33 64, vpsraw: 1 15 16 99, vpsrad: 5 31 32 255,
        vpslldq: 1 7 15 16, vpsrldq: 2 8 15 17);
    macro_rules! by_imm_mem {
        ($($m:ident: $($imm:literal)*),*) => {$($(
            v.push((format!("{} x,x,{}", stringify!($m), $imm), |a| a.$m(xmm0, xmm1, $imm)));
            v.push((format!("{} x,m,{}", stringify!($m), $imm), |a| a.$m(xmm4, xmmword_ptr(rdi + 0x70), $imm)));
            v.push((format!("{} y,y,{}", stringify!($m), $imm), |a| a.$m(ymm2, ymm3, $imm)));
            v.push((format!("{} y,m,{}", stringify!($m), $imm), |a| a.$m(ymm5, ymmword_ptr(rdi + 0x80), $imm)));
        )*)*};
    }
    by_imm_mem!(vpshufd: 0 0x1b 0xe4, vpshuflw: 0x1b 0x72, vpshufhw: 0x1b 0xc9);
    // Counts from an XMM register or memory: mostly huge counts, so set
    // small ones explicitly through the data buffer's first quadword.
    macro_rules! by_reg {
        ($($m:ident),*) => {$(
            v.push((concat!(stringify!($m), " x,x,x").into(), |a| a.$m(xmm0, xmm1, xmm2)));
            v.push((concat!(stringify!($m), " y,y,x").into(), |a| a.$m(ymm3, ymm4, xmm5)));
            v.push((concat!(stringify!($m), " y,y,m small").into(), |a| {
                a.mov(qword_ptr(rdi), 0x0b)?;
                a.$m(ymm6, ymm7, xmmword_ptr(rdi))
            }));
        )*};
    }
    by_reg!(vpsllw, vpslld, vpsllq, vpsrlw, vpsrld, vpsrlq, vpsraw, vpsrad);
    run_forms(0x30, Lanes::Int, &v);
}

#[test]
fn vex_moves_match_the_host() {
    let mut v: Vec<Form> = Vec::new();
    macro_rules! full_moves {
        ($($m:ident),*) => {$(
            v.push((concat!(stringify!($m), " x,x").into(), |a| a.$m(xmm0, xmm1)));
            v.push((concat!(stringify!($m), " x,m").into(), |a| a.$m(xmm2, xmmword_ptr(rdi + 0x20))));
            v.push((concat!(stringify!($m), " m,x").into(), |a| a.$m(xmmword_ptr(rdi + 0x40), xmm3)));
            v.push((concat!(stringify!($m), " y,y").into(), |a| a.$m(ymm4, ymm5)));
            v.push((concat!(stringify!($m), " y,m").into(), |a| a.$m(ymm6, ymmword_ptr(rdi + 0x60))));
            v.push((concat!(stringify!($m), " m,y").into(), |a| a.$m(ymmword_ptr(rdi + 0x80), ymm7)));
        )*};
    }
    full_moves!(vmovaps, vmovapd, vmovdqa, vmovups, vmovupd, vmovdqu);
    // Unaligned operands: fine for the unaligned moves and arithmetic,
    // #GP for the aligned moves.
    v.push(("vmovups y,m+1".into(), |a| {
        a.vmovups(ymm0, ymmword_ptr(rdi + 1))
    }));
    v.push(("vmovdqu m+3,y".into(), |a| {
        a.vmovdqu(ymmword_ptr(rdi + 3), ymm1)
    }));
    v.push(("vaddps y,y,m+4".into(), |a| {
        a.vaddps(ymm0, ymm1, ymmword_ptr(rdi + 4))
    }));
    v.push(("vpaddb x,x,m+9".into(), |a| {
        a.vpaddb(xmm0, xmm1, xmmword_ptr(rdi + 9))
    }));
    v.push(("vmovaps y,m+16".into(), |a| {
        a.vmovaps(ymm0, ymmword_ptr(rdi + 16))
    }));
    v.push(("vmovdqa m+8,x".into(), |a| {
        a.vmovdqa(xmmword_ptr(rdi + 8), xmm1)
    }));
    v.push(("vmovapd x,m+8".into(), |a| {
        a.vmovapd(xmm1, xmmword_ptr(rdi + 8))
    }));
    v.push(("vmovntps m+16,y".into(), |a| {
        a.vmovntps(ymmword_ptr(rdi + 16), ymm2)
    }));
    v.push(("vmovntps m,y".into(), |a| {
        a.vmovntps(ymmword_ptr(rdi), ymm2)
    }));
    v.push(("vmovntpd m,x".into(), |a| {
        a.vmovntpd(xmmword_ptr(rdi + 0x10), xmm2)
    }));
    v.push(("vmovntdq m,y".into(), |a| {
        a.vmovntdq(ymmword_ptr(rdi + 0x20), ymm3)
    }));
    v.push(("vlddqu y,m+5".into(), |a| {
        a.vlddqu(ymm3, ymmword_ptr(rdi + 5))
    }));
    v.push(("vlddqu x,m".into(), |a| {
        a.vlddqu(xmm3, xmmword_ptr(rdi + 0x30))
    }));
    v.push(("vmovss x,x,x".into(), |a| a.vmovss_3(xmm0, xmm1, xmm2)));
    v.push(("vmovss x,m".into(), |a| a.vmovss(xmm3, dword_ptr(rdi + 4))));
    v.push(("vmovss m,x".into(), |a| a.vmovss(dword_ptr(rdi + 4), xmm4)));
    v.push(("vmovsd x,x,x".into(), |a| a.vmovsd_3(xmm0, xmm1, xmm2)));
    v.push(("vmovsd x,m".into(), |a| a.vmovsd(xmm3, qword_ptr(rdi + 8))));
    v.push(("vmovsd m,x".into(), |a| a.vmovsd(qword_ptr(rdi + 8), xmm4)));
    v.push(("vmovd x,r32".into(), |a| a.vmovd(xmm0, ecx)));
    v.push(("vmovd x,m".into(), |a| a.vmovd(xmm1, dword_ptr(rdi + 12))));
    v.push(("vmovd r32,x".into(), |a| a.vmovd(edx, xmm2)));
    v.push(("vmovd m,x".into(), |a| a.vmovd(dword_ptr(rdi + 12), xmm3)));
    v.push(("vmovq x,r64".into(), |a| a.vmovq(xmm0, rcx)));
    v.push(("vmovq x,x".into(), |a| a.vmovq(xmm1, xmm9)));
    v.push(("vmovq x,m".into(), |a| a.vmovq(xmm1, qword_ptr(rdi + 24))));
    v.push(("vmovq r64,x".into(), |a| a.vmovq(rdx, xmm2)));
    v.push(("vmovq m,x".into(), |a| a.vmovq(qword_ptr(rdi + 24), xmm3)));
    v.push(("vmovhps x,x,m".into(), |a| {
        a.vmovhps_3(xmm0, xmm1, qword_ptr(rdi + 8))
    }));
    v.push(("vmovhps m,x".into(), |a| {
        a.vmovhps(qword_ptr(rdi + 8), xmm2)
    }));
    v.push(("vmovlps x,x,m".into(), |a| {
        a.vmovlps_3(xmm0, xmm1, qword_ptr(rdi + 8))
    }));
    v.push(("vmovlps m,x".into(), |a| {
        a.vmovlps(qword_ptr(rdi + 8), xmm2)
    }));
    v.push(("vmovhpd x,x,m".into(), |a| {
        a.vmovhpd_3(xmm3, xmm4, qword_ptr(rdi + 16))
    }));
    v.push(("vmovhpd m,x".into(), |a| {
        a.vmovhpd(qword_ptr(rdi + 16), xmm5)
    }));
    v.push(("vmovlpd x,x,m".into(), |a| {
        a.vmovlpd_3(xmm3, xmm4, qword_ptr(rdi + 16))
    }));
    v.push(("vmovlpd m,x".into(), |a| {
        a.vmovlpd(qword_ptr(rdi + 16), xmm5)
    }));
    v.push(("vmovhlps".into(), |a| a.vmovhlps(xmm0, xmm1, xmm2)));
    v.push(("vmovlhps".into(), |a| a.vmovlhps(xmm0, xmm1, xmm2)));
    v.push(("vmovmskps x".into(), |a| a.vmovmskps(eax, xmm1)));
    v.push(("vmovmskps y".into(), |a| a.vmovmskps(eax, ymm1)));
    v.push(("vmovmskpd x".into(), |a| a.vmovmskpd(ecx, xmm2)));
    v.push(("vmovmskpd y".into(), |a| a.vmovmskpd(rcx, ymm2)));
    v.push(("vpmovmskb x".into(), |a| a.vpmovmskb(edx, xmm3)));
    v.push(("vpmovmskb y".into(), |a| a.vpmovmskb(edx, ymm3)));
    v.push(("vpextrw r,x,5".into(), |a| a.vpextrw(eax, xmm4, 5)));
    v.push(("vpextrw r,x,9".into(), |a| a.vpextrw(eax, xmm4, 9)));
    v.push(("vpinsrw x,x,r,3".into(), |a| a.vpinsrw(xmm0, xmm1, ecx, 3)));
    v.push(("vpinsrw x,x,m,7".into(), |a| {
        a.vpinsrw(xmm0, xmm1, word_ptr(rdi + 2), 7)
    }));
    v.push(("vzeroupper".into(), |a| a.vzeroupper()));
    v.push(("vzeroall".into(), |a| a.vzeroall()));
    run_forms(0x40, Lanes::Int, &v);
}

#[test]
fn vex_conversions_match_the_host() {
    let mut ps: Vec<Form> = Vec::new();
    packed2!(ps; vcvtps2dq, vcvttps2dq);
    ps.push(("vcvtps2pd x,x".into(), |a| a.vcvtps2pd(xmm0, xmm1)));
    ps.push(("vcvtps2pd x,m".into(), |a| {
        a.vcvtps2pd(xmm0, qword_ptr(rdi + 8))
    }));
    ps.push(("vcvtps2pd y,x".into(), |a| a.vcvtps2pd(ymm2, xmm3)));
    ps.push(("vcvtps2pd y,m".into(), |a| {
        a.vcvtps2pd(ymm2, xmmword_ptr(rdi + 0x10))
    }));
    ps.push(("vcvtss2sd x,x,x".into(), |a| a.vcvtss2sd(xmm0, xmm1, xmm2)));
    ps.push(("vcvtss2sd x,x,m".into(), |a| {
        a.vcvtss2sd(xmm0, xmm1, dword_ptr(rdi + 4))
    }));
    ps.push(("vcvtss2si r32".into(), |a| a.vcvtss2si(eax, xmm1)));
    ps.push(("vcvtss2si r64,m".into(), |a| {
        a.vcvtss2si(rax, dword_ptr(rdi + 8))
    }));
    ps.push(("vcvttss2si r32".into(), |a| a.vcvttss2si(ecx, xmm2)));
    ps.push(("vcvttss2si r64".into(), |a| a.vcvttss2si(rcx, xmm2)));
    run_forms(0xd1, Lanes::F32, &ps);
    let mut pd: Vec<Form> = Vec::new();
    pd.push(("vcvtpd2ps x,x".into(), |a| a.vcvtpd2ps(xmm0, xmm1)));
    pd.push(("vcvtpd2ps x,y".into(), |a| a.vcvtpd2ps(xmm0, ymm1)));
    pd.push(("vcvtpd2ps x,m256".into(), |a| {
        a.vcvtpd2ps(xmm0, ymmword_ptr(rdi + 0x20))
    }));
    pd.push(("vcvtpd2ps x,m128".into(), |a| {
        a.vcvtpd2ps(xmm0, xmmword_ptr(rdi + 0x20))
    }));
    pd.push(("vcvtpd2dq x,y".into(), |a| a.vcvtpd2dq(xmm2, ymm3)));
    pd.push(("vcvtpd2dq x,x".into(), |a| a.vcvtpd2dq(xmm2, xmm3)));
    pd.push(("vcvttpd2dq x,y".into(), |a| a.vcvttpd2dq(xmm4, ymm5)));
    pd.push(("vcvttpd2dq x,m128".into(), |a| {
        a.vcvttpd2dq(xmm4, xmmword_ptr(rdi))
    }));
    pd.push(("vcvtsd2ss x,x,x".into(), |a| a.vcvtsd2ss(xmm0, xmm1, xmm2)));
    pd.push(("vcvtsd2ss x,x,m".into(), |a| {
        a.vcvtsd2ss(xmm0, xmm1, qword_ptr(rdi + 8))
    }));
    pd.push(("vcvtsd2si r32".into(), |a| a.vcvtsd2si(eax, xmm1)));
    pd.push(("vcvtsd2si r64".into(), |a| a.vcvtsd2si(rax, xmm1)));
    pd.push(("vcvttsd2si r64,m".into(), |a| {
        a.vcvttsd2si(rcx, qword_ptr(rdi + 16))
    }));
    run_forms(0xd2, Lanes::F64, &pd);
    let mut int: Vec<Form> = Vec::new();
    packed2!(int; vcvtdq2ps);
    int.push(("vcvtdq2pd x,x".into(), |a| a.vcvtdq2pd(xmm0, xmm1)));
    int.push(("vcvtdq2pd y,x".into(), |a| a.vcvtdq2pd(ymm0, xmm1)));
    int.push(("vcvtdq2pd y,m".into(), |a| {
        a.vcvtdq2pd(ymm0, xmmword_ptr(rdi))
    }));
    int.push(("vcvtsi2ss r32".into(), |a| a.vcvtsi2ss(xmm0, xmm1, ecx)));
    int.push(("vcvtsi2ss r64".into(), |a| a.vcvtsi2ss(xmm0, xmm1, rcx)));
    int.push(("vcvtsi2sd r64".into(), |a| a.vcvtsi2sd(xmm2, xmm3, rdx)));
    int.push(("vcvtsi2sd m32".into(), |a| {
        a.vcvtsi2sd(xmm2, xmm3, dword_ptr(rdi + 4))
    }));
    run_forms(0xd3, Lanes::Int, &int);
}

#[test]
fn avx_permutes_broadcasts_and_masks_match_the_host() {
    let mut v: Vec<Form> = Vec::new();
    v.push(("vbroadcastss x,m".into(), |a| {
        a.vbroadcastss(xmm0, dword_ptr(rdi + 4))
    }));
    v.push(("vbroadcastss y,m".into(), |a| {
        a.vbroadcastss(ymm0, dword_ptr(rdi + 8))
    }));
    v.push(("vbroadcastss y,x".into(), |a| a.vbroadcastss(ymm0, xmm5)));
    v.push(("vbroadcastsd y,m".into(), |a| {
        a.vbroadcastsd(ymm1, qword_ptr(rdi + 8))
    }));
    v.push(("vbroadcastsd y,x".into(), |a| a.vbroadcastsd(ymm1, xmm6)));
    v.push(("vbroadcastf128".into(), |a| {
        a.vbroadcastf128(ymm2, xmmword_ptr(rdi + 0x10))
    }));
    v.push(("vinsertf128 0 r".into(), |a| {
        a.vinsertf128(ymm0, ymm1, xmm2, 0)
    }));
    v.push(("vinsertf128 1 m".into(), |a| {
        a.vinsertf128(ymm0, ymm1, xmmword_ptr(rdi), 1)
    }));
    v.push(("vextractf128 r 1".into(), |a| a.vextractf128(xmm0, ymm1, 1)));
    v.push(("vextractf128 m 0".into(), |a| {
        a.vextractf128(xmmword_ptr(rdi + 0x30), ymm1, 0)
    }));
    macro_rules! perm2 {
        ($($imm:literal)*) => {$(
            v.push((format!("vperm2f128 y,y,y,{}", $imm), |a| a.vperm2f128(ymm5, ymm6, ymm7, $imm)));
            v.push((format!("vperm2f128 y,y,m,{}", $imm), |a| a.vperm2f128(ymm8, ymm9, ymmword_ptr(rdi + 0x60), $imm)));
        )*};
    }
    perm2!(0x20 0x31 0x13 0x02 0x88 0x08 0x80);
    packed3!(v; vpermilps, vpermilpd);
    macro_rules! imm2 {
        ($($m:ident: $($imm:literal)*),*) => {$($(
            v.push((format!("{} x,x,{}", stringify!($m), $imm), |a| a.$m(xmm0, xmm1, $imm)));
            v.push((format!("{} y,m,{}", stringify!($m), $imm), |a| a.$m(ymm5, ymmword_ptr(rdi + 0x80), $imm)));
            v.push((format!("{} y,y,{}", stringify!($m), $imm), |a| a.$m(ymm2, ymm3, $imm)));
        )*)*};
    }
    imm2!(vpermilps: 0x1b 0xe4 0x4e, vpermilpd: 0 5 0xa 0xf);
    v.push(("vpermq y,y".into(), |a| a.vpermq(ymm0, ymm1, 0x1b)));
    v.push(("vpermq y,m".into(), |a| {
        a.vpermq(ymm0, ymmword_ptr(rdi), 0xd8)
    }));
    v.push(("vpermpd y,y".into(), |a| a.vpermpd(ymm2, ymm3, 0x4e)));
    v.push(("vmaskmovps x,x,m".into(), |a| {
        a.vmaskmovps(xmm0, xmm1, xmmword_ptr(rdi))
    }));
    v.push(("vmaskmovps y,y,m".into(), |a| {
        a.vmaskmovps(ymm0, ymm1, ymmword_ptr(rdi + 4))
    }));
    v.push(("vmaskmovpd y,y,m".into(), |a| {
        a.vmaskmovpd(ymm0, ymm1, ymmword_ptr(rdi))
    }));
    v.push(("vmaskmovps m,x,x".into(), |a| {
        a.vmaskmovps(xmmword_ptr(rdi), xmm1, xmm2)
    }));
    v.push(("vmaskmovpd m,y,y".into(), |a| {
        a.vmaskmovpd(ymmword_ptr(rdi + 8), ymm1, ymm2)
    }));
    v.push(("vpmaskmovd y,y,m".into(), |a| {
        a.vpmaskmovd(ymm3, ymm4, ymmword_ptr(rdi))
    }));
    v.push(("vpmaskmovq m,x,x".into(), |a| {
        a.vpmaskmovq(xmmword_ptr(rdi), xmm4, xmm5)
    }));
    v.push(("vpmaskmovd m,y,y".into(), |a| {
        a.vpmaskmovd(ymmword_ptr(rdi + 0x20), ymm4, ymm5)
    }));
    v.push(("vtestps x".into(), |a| a.vtestps(xmm0, xmm1)));
    v.push(("vtestps y,m".into(), |a| a.vtestps(ymm0, ymmword_ptr(rdi))));
    v.push(("vtestpd y".into(), |a| a.vtestpd(ymm2, ymm3)));
    v.push(("vtestpd x x".into(), |a| a.vtestpd(xmm2, xmm2)));
    // AVX2.
    for (name, f) in [
        (
            "vpbroadcastb x,x",
            (|a| a.vpbroadcastb(xmm0, xmm1)) as fn(&mut CodeAssembler) -> Result<(), IcedError>,
        ),
        ("vpbroadcastb y,m", |a| {
            a.vpbroadcastb(ymm0, byte_ptr(rdi + 3))
        }),
        ("vpbroadcastw y,x", |a| a.vpbroadcastw(ymm1, xmm2)),
        ("vpbroadcastd x,m", |a| {
            a.vpbroadcastd(xmm1, dword_ptr(rdi + 4))
        }),
        ("vpbroadcastd y,x", |a| a.vpbroadcastd(ymm3, xmm3)),
        ("vpbroadcastq y,m", |a| {
            a.vpbroadcastq(ymm4, qword_ptr(rdi + 8))
        }),
        ("vbroadcasti128", |a| {
            a.vbroadcasti128(ymm5, xmmword_ptr(rdi + 0x20))
        }),
        ("vinserti128", |a| a.vinserti128(ymm6, ymm7, xmm8, 1)),
        ("vextracti128", |a| a.vextracti128(xmm9, ymm10, 1)),
        ("vextracti128 m", |a| {
            a.vextracti128(xmmword_ptr(rdi), ymm10, 0)
        }),
        ("vperm2i128", |a| a.vperm2i128(ymm0, ymm1, ymm2, 0x21)),
        ("vperm2i128 m", |a| {
            a.vperm2i128(ymm0, ymm1, ymmword_ptr(rdi), 0x83)
        }),
        ("vpermd", |a| a.vpermd(ymm0, ymm1, ymm2)),
        ("vpermd m", |a| a.vpermd(ymm0, ymm1, ymmword_ptr(rdi))),
        ("vpermps", |a| a.vpermps(ymm3, ymm4, ymm5)),
        ("vpblendd x", |a| a.vpblendd(xmm0, xmm1, xmm2, 0x5)),
        ("vpblendd y", |a| {
            a.vpblendd(ymm0, ymm1, ymmword_ptr(rdi), 0xa6)
        }),
    ] {
        v.push((name.into(), f));
    }
    packed3!(v; vpsllvd, vpsllvq, vpsrlvd, vpsrlvq, vpsravd);
    run_forms(0x50, Lanes::Int, &v);
}

#[test]
fn invalid_vex_encodings_fault_like_the_host() {
    let cases: [(&str, &[u8]); 7] = [
        // vmovd xmm0, eax with VEX.L=1.
        ("vmovd L=1", &[0xc5, 0xfd, 0x6e, 0xc0]),
        // vmovaps xmm0, xmm1 with VEX.vvvv = xmm1 (reserved, must be 1111b).
        ("vmovaps vvvv", &[0xc5, 0xf0, 0x28, 0xc1]),
        // vsqrtps with vvvv != 1111b.
        ("vsqrtps vvvv", &[0xc5, 0xe8, 0x51, 0xc1]),
        // A legacy 66 prefix before VEX.
        ("66 + vaddps", &[0x66, 0xc5, 0xf0, 0x58, 0xc2]),
        // vpextrw with VEX.L=1.
        ("vpextrw L=1", &[0xc5, 0xfd, 0xc5, 0xc1, 0x01]),
        // vaddss with VEX.L=1: LIG, executes.
        ("vaddss L=1", &[0xc5, 0xf6, 0x58, 0xc2]),
        // vbroadcastf128 with a register source (memory only).
        ("vbroadcastf128 reg", &[0xc4, 0xe2, 0x7d, 0x1a, 0xc1]),
    ];
    let mut r = Rng::new(0x0d);
    let mut suite = Suite::new();
    for (name, code) in cases {
        let s = random_state(&mut r, Lanes::F32, false);
        suite.check(name, code, &s, Undefined::NONE);
    }
    suite.finish();
}

#[test]
fn fma_matches_the_host_with_one_rounding() {
    let mut ps: Vec<Form> = Vec::new();
    packed3!(ps; vfmadd132ps, vfmadd213ps, vfmadd231ps, vfmsub132ps, vfmsub213ps, vfmsub231ps, vfnmadd132ps, vfnmadd213ps, vfnmadd231ps, vfnmsub132ps, vfnmsub213ps, vfnmsub231ps, vfmaddsub132ps, vfmaddsub213ps, vfmaddsub231ps, vfmsubadd132ps, vfmsubadd213ps, vfmsubadd231ps);
    scalar3!(ps, dword_ptr; vfmadd132ss, vfmadd213ss, vfmadd231ss, vfmsub132ss, vfmsub213ss, vfmsub231ss, vfnmadd132ss, vfnmadd213ss, vfnmadd231ss, vfnmsub132ss, vfnmsub213ss, vfnmsub231ss);
    run_forms(0xf1, Lanes::F32, &ps);
    let mut pd: Vec<Form> = Vec::new();
    packed3!(pd; vfmadd132pd, vfmadd213pd, vfmadd231pd, vfmsub132pd, vfmsub213pd, vfmsub231pd, vfnmadd132pd, vfnmadd213pd, vfnmadd231pd, vfnmsub132pd, vfnmsub213pd, vfnmsub231pd, vfmaddsub132pd, vfmaddsub213pd, vfmaddsub231pd, vfmsubadd132pd, vfmsubadd213pd, vfmsubadd231pd);
    scalar3!(pd, qword_ptr; vfmadd132sd, vfmadd213sd, vfmadd231sd, vfmsub132sd, vfmsub213sd, vfmsub231sd, vfnmadd132sd, vfnmadd213sd, vfnmadd231sd, vfnmsub132sd, vfnmsub213sd, vfnmsub231sd);
    run_forms(0xf2, Lanes::F64, &pd);
}

/// FMA where the addend cancels the rounded product: the result is the
/// product's rounding error, which only a single rounding delivers.
#[test]
fn fma_cancellation_exposes_the_single_rounding() {
    let mut r = Rng::new(0xfa);
    let mut suite = Suite::new();
    let forms: [Form; 6] = [
        ("vfmadd231pd y".into(), |a| a.vfmadd231pd(ymm0, ymm1, ymm2)),
        ("vfmsub231pd x".into(), |a| a.vfmsub231pd(xmm0, xmm1, xmm2)),
        ("vfnmadd231sd".into(), |a| a.vfnmadd231sd(xmm0, xmm1, xmm2)),
        ("vfmadd231ps y".into(), |a| a.vfmadd231ps(ymm3, ymm4, ymm5)),
        ("vfnmsub231ps x".into(), |a| {
            a.vfnmsub231ps(xmm3, xmm4, xmm5)
        }),
        ("vfmadd231ss".into(), |a| a.vfmadd231ss(xmm3, xmm4, xmm5)),
    ];
    for (name, emit) in &forms {
        let code = asm(*emit);
        for c in 0..48 {
            let mut s = random_state(&mut r, Lanes::Int, false);
            let (mut a64, mut b64, mut c64) = ([0u128; 2], [0u128; 2], [0u128; 2]);
            let (mut a32, mut b32, mut c32) = ([0u128; 2], [0u128; 2], [0u128; 2]);
            for i in 0..4 {
                let x = f64::from_bits(
                    f64_lane(&mut r) & !(0x7ffu64 << 52) | (0x3f0 + r.below(32)) << 52,
                );
                let y = f64::from_bits(
                    f64_lane(&mut r) & !(0x7ffu64 << 52) | (0x3f0 + r.below(32)) << 52,
                );
                // -(x*y) for the "add" forms, +(x*y) for the negated or subtracting ones.
                let p = if c % 2 == 0 { -(x * y) } else { x * y };
                let (h, sh) = (i / 2, 64 * (i % 2));
                a64[h] |= u128::from(x.to_bits()) << sh;
                b64[h] |= u128::from(y.to_bits()) << sh;
                c64[h] |= u128::from(p.to_bits()) << sh;
            }
            for i in 0..8 {
                let x = f32::from_bits(
                    f32_lane(&mut r) as u32 & !(0xffu32 << 23) | (0x70 + r.below(16) as u32) << 23,
                );
                let y = f32::from_bits(
                    f32_lane(&mut r) as u32 & !(0xffu32 << 23) | (0x70 + r.below(16) as u32) << 23,
                );
                let p = if c % 2 == 0 { -(x * y) } else { x * y };
                let (h, sh) = (i / 4, 32 * (i % 4));
                a32[h] |= u128::from(x.to_bits()) << sh;
                b32[h] |= u128::from(y.to_bits()) << sh;
                c32[h] |= u128::from(p.to_bits()) << sh;
            }
            set_ymm(&mut s, 0, c64[0], c64[1]);
            set_ymm(&mut s, 1, a64[0], a64[1]);
            set_ymm(&mut s, 2, b64[0], b64[1]);
            set_ymm(&mut s, 3, c32[0], c32[1]);
            set_ymm(&mut s, 4, a32[0], a32[1]);
            set_ymm(&mut s, 5, b32[0], b32[1]);
            suite.check(&format!("{name} case {c}"), &code, &s, Undefined::NONE);
        }
    }
    suite.finish();
}

/// Half-precision lanes: edge values (zeros, denormals, infinities,
/// NaNs, the largest finite) and random bits.
fn f16_state(r: &mut Rng) -> SnippetState {
    const E: [u16; 10] = [
        0, 0x8000, 0x0001, 0x83ff, 0x7c00, 0xfc00, 0x7e00, 0x7d01, 0x7bff, 0x3c00,
    ];
    let mut s = random_state(r, Lanes::F32, false);
    for n in [1usize, 9] {
        let mut v = [0u128; 2];
        for i in 0..16 {
            let h = if r.below(2) == 0 {
                r.pick(&E)
            } else {
                r.next_u64() as u16
            };
            v[i / 8] |= u128::from(h) << (16 * (i % 8));
        }
        set_ymm(&mut s, n, v[0], v[1]);
    }
    for i in 0..16 {
        let o = 0x100 + 2 * i;
        let h = if r.below(2) == 0 {
            r.pick(&E)
        } else {
            r.next_u64() as u16
        };
        s.data[o..o + 2].copy_from_slice(&h.to_le_bytes());
    }
    s
}

#[test]
fn f16c_matches_the_host() {
    let mut r = Rng::new(0x16);
    let mut suite = Suite::new();
    let to_ps: [Form; 4] = [
        ("vcvtph2ps x,x".into(), |a| a.vcvtph2ps(xmm0, xmm1)),
        ("vcvtph2ps y,x".into(), |a| a.vcvtph2ps(ymm0, xmm9)),
        ("vcvtph2ps x,m".into(), |a| {
            a.vcvtph2ps(xmm2, qword_ptr(rdi))
        }),
        ("vcvtph2ps y,m".into(), |a| {
            a.vcvtph2ps(ymm2, xmmword_ptr(rdi))
        }),
    ];
    for (name, emit) in &to_ps {
        let code = asm(*emit);
        for c in 0..CASES * 2 {
            let mut s = f16_state(&mut r);
            if c % 5 == 4 {
                // Unmasked invalid/denormal.
                s.fxsave[24..28].copy_from_slice(&0x1f00u32.to_le_bytes());
            }
            suite.check(&format!("{name} case {c}"), &code, &s, Undefined::NONE);
        }
    }
    let mut to_ph: Vec<Form> = Vec::new();
    macro_rules! ph {
        ($($imm:literal)*) => {$(
            to_ph.push((format!("vcvtps2ph x,x,{}", $imm), |a| a.vcvtps2ph(xmm0, xmm1, $imm)));
            to_ph.push((format!("vcvtps2ph x,y,{}", $imm), |a| a.vcvtps2ph(xmm0, ymm1, $imm)));
            to_ph.push((format!("vcvtps2ph m,x,{}", $imm), |a| a.vcvtps2ph(qword_ptr(rdi), xmm2, $imm)));
            to_ph.push((format!("vcvtps2ph m,y,{}", $imm), |a| a.vcvtps2ph(xmmword_ptr(rdi), ymm2, $imm)));
        )*};
    }
    ph!(0 1 2 3 4 8);
    for (name, emit) in &to_ph {
        let code = asm(*emit);
        for c in 0..CASES {
            // Singles of every magnitude, and ones near the half range.
            let mut s = random_state(&mut r, Lanes::F32, c % 6 == 5);
            for n in [1usize, 2] {
                let mut v = [0u128; 2];
                for i in 0..8 {
                    let x = if r.below(2) == 0 {
                        f32_lane(&mut r) as u32
                    } else {
                        (r.next_u64() as u32 & 0x807f_ffff) | ((0x60 + r.below(0x20) as u32) << 23)
                    };
                    v[i / 4] |= u128::from(x) << (32 * (i % 4));
                }
                set_ymm(&mut s, n, v[0], v[1]);
            }
            suite.check(&format!("{name} case {c}"), &code, &s, Undefined::NONE);
        }
    }
    suite.finish();
}

/// A state for gathers: in-range random indices in YMM1 (dword or qword
/// elements), a random mask in YMM2, random data.
fn gather_state(r: &mut Rng, qword_index: bool) -> SnippetState {
    let mut s = random_state(r, Lanes::Int, false);
    let mut idx = [0u128; 2];
    let mut mask = [0u128; 2];
    let idx_count = if qword_index { 4 } else { 8 };
    for i in 0..idx_count {
        let v = r.below(128) as i64 - 32;
        let (h, sh, bits) = if qword_index {
            (i / 2, 64 * (i % 2), 64)
        } else {
            (i / 4, 32 * (i % 4), 32)
        };
        let m = if bits == 64 {
            u128::from(u64::MAX)
        } else {
            u128::from(u32::MAX)
        };
        idx[h] |= (v as u64 as u128 & m) << sh;
    }
    for i in 0..8 {
        let v = if r.below(3) == 0 {
            0
        } else {
            u128::from(u32::MAX)
        };
        mask[i / 4] |= v << (32 * (i % 4));
    }
    if r.below(4) == 0 {
        mask = [u128::MAX; 2];
    }
    set_ymm(&mut s, 1, idx[0], idx[1]);
    set_ymm(&mut s, 2, mask[0], mask[1]);
    s
}

#[test]
fn gathers_match_the_host() {
    let mut r = Rng::new(0x6a);
    let mut suite = Suite::new();
    let dword: [Form; 10] = [
        ("vgatherdps x".into(), |a| {
            a.vgatherdps_3(xmm0, ptr(rdi + xmm1 * 4), xmm2)
        }),
        ("vgatherdps y".into(), |a| {
            a.vgatherdps_3(ymm0, ptr(rdi + ymm1 * 4 + 0x10), ymm2)
        }),
        ("vgatherdpd x".into(), |a| {
            a.vgatherdpd_3(xmm0, ptr(rdi + xmm1 * 8), xmm2)
        }),
        ("vgatherdpd y".into(), |a| {
            a.vgatherdpd_3(ymm0, ptr(rdi + xmm1 * 8), ymm2)
        }),
        ("vpgatherdd x".into(), |a| {
            a.vpgatherdd_3(xmm0, ptr(rdi + xmm1 * 2), xmm2)
        }),
        ("vpgatherdd y".into(), |a| {
            a.vpgatherdd_3(ymm0, ptr(rdi + ymm1 * 4), ymm2)
        }),
        ("vpgatherdq x".into(), |a| {
            a.vpgatherdq_3(xmm0, ptr(rdi + xmm1 * 8), xmm2)
        }),
        ("vpgatherdq y".into(), |a| {
            a.vpgatherdq_3(ymm0, ptr(rdi + xmm1 * 1 - 8), ymm2)
        }),
        ("vgatherdps y no base".into(), |a| {
            a.lea(rax, ptr(rdi))?;
            a.vmovd(xmm3, eax)?;
            a.vpbroadcastd(ymm3, xmm3)?;
            a.vpaddd(ymm1, ymm1, ymm3)?;
            a.vgatherdps_3(ymm0, ptr(ymm1 * 1), ymm2)
        }),
        ("vpgatherdd y twice".into(), |a| {
            a.vpgatherdd_3(ymm0, ptr(rdi + ymm1 * 4), ymm2)?;
            a.vpgatherdd_3(ymm0, ptr(rdi + ymm1 * 4), ymm2)
        }),
    ];
    let qword: [Form; 8] = [
        ("vgatherqps x".into(), |a| {
            a.vgatherqps_3(xmm0, ptr(rdi + xmm1 * 4), xmm2)
        }),
        ("vgatherqps y".into(), |a| {
            a.vgatherqps_3(xmm0, ptr(rdi + ymm1 * 4), xmm2)
        }),
        ("vgatherqpd x".into(), |a| {
            a.vgatherqpd_3(xmm0, ptr(rdi + xmm1 * 8), xmm2)
        }),
        ("vgatherqpd y".into(), |a| {
            a.vgatherqpd_3(ymm0, ptr(rdi + ymm1 * 8 + 0x20), ymm2)
        }),
        ("vpgatherqd x".into(), |a| {
            a.vpgatherqd_3(xmm0, ptr(rdi + xmm1 * 4), xmm2)
        }),
        ("vpgatherqd y".into(), |a| {
            a.vpgatherqd_3(xmm0, ptr(rdi + ymm1 * 4), xmm2)
        }),
        ("vpgatherqq x".into(), |a| {
            a.vpgatherqq_3(xmm0, ptr(rdi + xmm1 * 8), xmm2)
        }),
        ("vpgatherqq y".into(), |a| {
            a.vpgatherqq_3(ymm0, ptr(rdi + ymm1 * 8), ymm2)
        }),
    ];
    for (forms, q) in [(&dword[..], false), (&qword[..], true)] {
        for (name, emit) in forms {
            let code = asm(*emit);
            for c in 0..CASES {
                let s = gather_state(&mut r, q);
                suite.check(&format!("{name} case {c}"), &code, &s, Undefined::NONE);
            }
        }
    }
    // A non-canonical element faults (#GP) after the elements below it
    // completed: the destination and mask are left partially updated.
    for (name, emit) in &qword {
        let code = asm(*emit);
        for bad in 0..4usize {
            let mut s = gather_state(&mut r, true);
            let (lo, hi) = (s.fxsave[176..192].to_vec(), s.ymm_hi[1]);
            let mut idx = [u128::from_le_bytes(lo.try_into().unwrap_or([0; 16])), hi];
            let sh = 64 * (bad % 2);
            idx[bad / 2] =
                (idx[bad / 2] & !(u128::from(u64::MAX) << sh)) | (0x0080_0000_0000_0000u128 << sh);
            set_ymm(&mut s, 1, idx[0], idx[1]);
            set_ymm(&mut s, 2, u128::MAX, u128::MAX);
            let out = suite.check(
                &format!("{name} fault at {bad}"),
                &code,
                &s,
                Undefined::NONE,
            );
            if let Some(o) = out {
                // The XMM-index forms gather two elements only.
                let faults = !(name.ends_with(" x") && bad >= 2);
                let want = if faults {
                    cpu::snippet::SnippetEnd::Exception(13)
                } else {
                    cpu::snippet::SnippetEnd::Completed
                };
                assert_eq!(o.end, want, "{name} {bad}");
            }
            // The same element masked off: no access, no fault.
            let mut m = [u128::MAX; 2];
            let dwords = name.contains("ps") || name.contains("qd");
            let (size, per) = if dwords { (32, 4) } else { (64, 2) };
            m[bad / per] &= !(((1u128 << size) - 1) << (size * (bad % per)));
            set_ymm(&mut s, 2, m[0], m[1]);
            let out = suite.check(
                &format!("{name} masked-off bad element {bad}"),
                &code,
                &s,
                Undefined::NONE,
            );
            if let Some(o) = out {
                assert_eq!(o.end, cpu::snippet::SnippetEnd::Completed, "{name} {bad}");
            }
        }
    }
    suite.finish();
}

#[test]
fn gathers_with_overlapping_registers_are_ud() {
    let mut r = Rng::new(0x6b);
    let mut suite = Suite::new();
    // vgatherdps xmm1, [rdi+xmm1*4], xmm2 and vgatherdps xmm0, [rdi+xmm1*4], xmm1.
    let cases: [(&str, &[u8]); 3] = [
        ("dest = index", &[0xc4, 0xe2, 0x69, 0x92, 0x0c, 0x8f]),
        ("mask = index", &[0xc4, 0xe2, 0x71, 0x92, 0x04, 0x8f]),
        ("dest = mask", &[0xc4, 0xe2, 0x69, 0x92, 0x14, 0x8f]),
    ];
    for (name, code) in cases {
        let s = gather_state(&mut r, false);
        suite.check(name, code, &s, Undefined::NONE);
    }
    suite.finish();
}

#[test]
fn vldmxcsr_and_vstmxcsr_match_the_host() {
    let mut r = Rng::new(0x3c);
    let mut suite = Suite::new();
    let code = asm(|a| {
        a.vldmxcsr(dword_ptr(rdi))?;
        a.vaddps(ymm0, ymm1, ymm2)?;
        a.vstmxcsr(dword_ptr(rdi + 8))
    });
    for c in 0..64 {
        let mut s = random_state(&mut r, Lanes::F32, false);
        // Valid values (masked exceptions, any RC/DAZ/FTZ and flags),
        // and now and then a reserved bit (#GP).
        let mut v = (r.next_u64() as u32 & 0xffff) | 0x1f80;
        if c % 8 == 7 {
            v |= 1 << (16 + r.below(16));
        }
        s.data[0x100..0x104].copy_from_slice(&v.to_le_bytes());
        suite.check(&format!("vldmxcsr {v:#x}"), &code, &s, Undefined::NONE);
    }
    suite.finish();
}
