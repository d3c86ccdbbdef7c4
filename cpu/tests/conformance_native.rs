//! Self-tests of the oracle (the native runner) against results computed
//! in Rust: if the oracle were wrong, every differential test would be.

mod conformance;

use conformance::asm::asm;
use conformance::compare::{initial_state, set_xmm, xmm, AF, ARITH, CF, DF, OF, PF, SF, ZF};
use conformance::native::{self, STACK_TOP};
use cpu::snippet::{SnippetEnd, SnippetState, CODE_BASE, DATA_BASE};
use iced_x86::code_asm::*;

fn run(code: &[u8], s: &mut SnippetState) -> SnippetEnd {
    native::run_snippet(code, s)
}

/// The flags ADD of `bits`-wide `a + b + carry` sets, computed in Rust.
fn add_flags(a: u64, b: u64, carry: u64, bits: u32) -> (u64, u64) {
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
    };
    let (a, b) = (a & mask, b & mask);
    let wide = a as u128 + b as u128 + carry as u128;
    let r = (wide as u64) & mask;
    let sign = 1u64 << (bits - 1);
    let mut f = 0;
    if wide > mask as u128 {
        f |= CF;
    }
    if r == 0 {
        f |= ZF;
    }
    if r & sign != 0 {
        f |= SF;
    }
    if (r as u8).count_ones() % 2 == 0 {
        f |= PF;
    }
    if ((a ^ b ^ r) & 0x10) != 0 {
        f |= AF;
    }
    if (!(a ^ b) & (a ^ r) & sign) != 0 {
        f |= OF;
    }
    (r, f)
}

#[test]
fn add_and_adc_match_rust_arithmetic_for_every_size() {
    let edges = conformance::rng::EDGES;
    let codes = [
        (asm(|a| a.adc(al, bl)), 8),
        (asm(|a| a.adc(ax, bx)), 16),
        (asm(|a| a.adc(eax, ebx)), 32),
        (asm(|a| a.adc(rax, rbx)), 64),
    ];
    for (code, bits) in &codes {
        for &x in &edges {
            for &y in &edges {
                for carry in [0, 1] {
                    let mut s = initial_state();
                    s.gprs[0] = x;
                    s.gprs[3] = y;
                    s.rflags = carry;
                    assert_eq!(run(code, &mut s), SnippetEnd::Completed);
                    let (r, f) = add_flags(x, y, carry, *bits);
                    let keep = match bits {
                        8 => x & !0xff,
                        16 => x & !0xffff,
                        _ => 0, // 32-bit writes zero-extend
                    };
                    assert_eq!(s.gprs[0], keep | r, "adc{bits} {x:#x}+{y:#x}+{carry}");
                    assert_eq!(s.rflags & ARITH, f, "adc{bits} {x:#x}+{y:#x}+{carry} flags");
                    assert_eq!(s.gprs[3], y, "source kept");
                }
            }
        }
    }
}

#[test]
fn every_register_and_flag_goes_in_and_comes_out() {
    let mut s = initial_state();
    for (r, g) in s.gprs.iter_mut().enumerate() {
        *g = 0x1111_1111_1111_1111u64.wrapping_mul(r as u64 + 1) ^ 0x8000_0000_0000_0000;
    }
    s.rflags = ARITH | DF;
    let start = s.clone();
    assert_eq!(run(&[], &mut s), SnippetEnd::Completed);
    assert_eq!(s.gprs, start.gprs, "an empty snippet changes no register");
    assert_eq!(s.rflags & (ARITH | DF), ARITH | DF);
    // Now change each register (but RSP) by a different amount.
    let code = asm(|a| {
        for (k, r) in [
            rax, rcx, rdx, rbx, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15,
        ]
        .into_iter()
        .enumerate()
        {
            a.add(r, k as i32 + 1)?;
        }
        a.cld()
    });
    let mut s = start.clone();
    assert_eq!(run(&code, &mut s), SnippetEnd::Completed);
    let order = [0usize, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
    for (k, &r) in order.iter().enumerate() {
        assert_eq!(
            s.gprs[r],
            start.gprs[r].wrapping_add(k as u64 + 1),
            "gpr {r}"
        );
    }
    assert_eq!(s.gprs[4], start.gprs[4], "RSP is given back unchanged");
    assert_eq!(s.rflags & DF, 0, "cld seen");
}

#[test]
fn code_stack_and_data_are_where_the_contract_says() {
    let mut s = initial_state();
    s.gprs[7] = DATA_BASE;
    s.gprs[3] = 0x1122_3344_5566_7788;
    // lea rax, [rip+0]: the address of the next instruction.
    let mut code = vec![0x48, 0x8d, 0x05, 0, 0, 0, 0];
    code.extend(asm(|a| {
        a.mov(rcx, rsp)?;
        a.push(rbx)?;
        a.pop(rdx)?;
        a.mov(qword_ptr(rdi + 0x10), rbx)?;
        a.add(byte_ptr(rdi + 0x1fff), 1)
    }));
    let before = s.data[0x1fff];
    assert_eq!(run(&code, &mut s), SnippetEnd::Completed);
    assert_eq!(s.gprs[0], CODE_BASE + 7, "lea rax,[rip] is 7 bytes");
    assert_eq!(s.gprs[1], STACK_TOP, "the snippet's own stack");
    assert_eq!(s.gprs[2], 0x1122_3344_5566_7788, "push/pop round trip");
    assert_eq!(&s.data[0x10..0x18], &0x1122_3344_5566_7788u64.to_le_bytes());
    assert_eq!(s.data[0x1fff], before.wrapping_add(1), "last data byte");
    assert_eq!(s.data.len(), cpu::snippet::DATA_SIZE);
}

#[test]
fn divide_error_reports_vector_0_with_the_state_at_the_fault() {
    let mut s = initial_state();
    s.gprs[0] = 5;
    s.gprs[2] = 9;
    let code = asm(|a| {
        a.inc(rax)?;
        a.xor(ecx, ecx)?;
        a.div(rcx)?;
        a.mov(eax, 77)
    });
    assert_eq!(run(&code, &mut s), SnippetEnd::Exception(0));
    assert_eq!(s.gprs[0], 6, "instructions before the fault completed");
    assert_eq!(s.gprs[2], 9, "RDX untouched by the faulting DIV");
    assert_eq!(s.rflags & ZF, ZF, "flags at the fault are XOR's");
    // Quotient overflow is #DE too.
    let mut s = initial_state();
    s.gprs[0] = 0;
    s.gprs[2] = 1;
    s.gprs[3] = 1;
    assert_eq!(run(&asm(|a| a.div(ebx)), &mut s), SnippetEnd::Exception(0));
    let mut s = initial_state();
    s.gprs[0] = 0x80;
    s.gprs[3] = 0xff; // -128 / -1
    s.gprs[0] = 0xff80;
    assert_eq!(run(&asm(|a| a.idiv(bl)), &mut s), SnippetEnd::Exception(0));
}

#[test]
fn other_faults_report_their_vectors() {
    let mut s = initial_state();
    assert_eq!(run(&asm(|a| a.ud2()), &mut s), SnippetEnd::Exception(6));
    // Non-canonical address: #GP.
    let mut s = initial_state();
    s.gprs[3] = 0x8000_0000_0000_0000;
    assert_eq!(
        run(&asm(|a| a.mov(rax, qword_ptr(rbx))), &mut s),
        SnippetEnd::Exception(13)
    );
    // Unmapped page: #PF.
    let mut s = initial_state();
    s.gprs[3] = 8;
    assert_eq!(
        run(&asm(|a| a.mov(rax, qword_ptr(rbx))), &mut s),
        SnippetEnd::Exception(14)
    );
    // Writing past the data buffer: #PF (nothing else is mapped there).
    let mut s = initial_state();
    s.gprs[3] = DATA_BASE + cpu::snippet::DATA_SIZE as u64;
    assert_eq!(
        run(&asm(|a| a.mov(qword_ptr(rbx), rax)), &mut s),
        SnippetEnd::Exception(14)
    );
    // INT3 as the last instruction (a trap: RIP is past the code).
    let mut s = initial_state();
    assert_eq!(run(&asm(|a| a.int3()), &mut s), SnippetEnd::Exception(3));
    // SSE with an unmasked exception: #XM.
    let mut s = initial_state();
    s.fxsave[24..28].copy_from_slice(&(0x1f80u32 & !0x200).to_le_bytes()); // unmask ZE
    set_xmm(&mut s, 0, 1.0f64.to_bits(), 0);
    assert_eq!(
        run(&asm(|a| a.divsd(xmm0, xmm1)), &mut s),
        SnippetEnd::Exception(19)
    );
}

#[test]
fn fault_state_includes_the_sse_registers_and_the_runner_recovers() {
    let mut s = initial_state();
    s.gprs[0] = 0xdead_beef_0bad_f00d;
    let code = asm(|a| {
        a.movq(xmm3, rax)?;
        a.std()?;
        a.ud2()
    });
    // SAFETY: reading MXCSR has no side effects.
    #[allow(deprecated)]
    let host_mxcsr = unsafe { std::arch::x86_64::_mm_getcsr() };
    s.fxsave[24..28].copy_from_slice(&0x7f80u32.to_le_bytes()); // round toward zero
    assert_eq!(run(&code, &mut s), SnippetEnd::Exception(6));
    assert_eq!(xmm(&s, 3), (0xdead_beef_0bad_f00d, 0));
    assert_eq!(s.rflags & DF, DF, "DF at the fault");
    assert_eq!(
        u32::from_le_bytes(s.fxsave[24..28].try_into().unwrap()),
        0x7f80
    );
    // SAFETY: as above.
    #[allow(deprecated)]
    let after = unsafe { std::arch::x86_64::_mm_getcsr() };
    assert_eq!(after, host_mxcsr, "the host's MXCSR is restored");
    // The host's DF is clear again: a forward copy still copies forwards.
    let v: Vec<u8> = (0..64).collect();
    let w = v.clone();
    assert_eq!(v, w);
    // And the runner keeps working.
    let mut s = initial_state();
    s.gprs[1] = 41;
    assert_eq!(run(&asm(|a| a.inc(rcx)), &mut s), SnippetEnd::Completed);
    assert_eq!(s.gprs[1], 42);
}

#[test]
fn sse2_and_x87_arithmetic_match_rust() {
    let mut s = initial_state();
    set_xmm(&mut s, 1, 1.5f64.to_bits(), (-2.25f64).to_bits());
    set_xmm(&mut s, 2, 0.25f64.to_bits(), 10.0f64.to_bits());
    let code = asm(|a| {
        a.movapd(xmm0, xmm1)?;
        a.addpd(xmm0, xmm2)?;
        a.sqrtsd(xmm4, xmm2)
    });
    assert_eq!(run(&code, &mut s), SnippetEnd::Completed);
    assert_eq!(xmm(&s, 0), (1.75f64.to_bits(), 7.75f64.to_bits()));
    assert_eq!(xmm(&s, 4).0, 0.5f64.to_bits());
    // x87: (3.0 * 7.0) / 2.0, stored as f64 in the data buffer.
    let mut s = initial_state();
    s.gprs[7] = DATA_BASE;
    s.data[0..8].copy_from_slice(&3.0f64.to_le_bytes());
    s.data[8..16].copy_from_slice(&7.0f64.to_le_bytes());
    s.data[16..20].copy_from_slice(&2.0f32.to_le_bytes());
    let code = asm(|a| {
        a.fld(qword_ptr(rdi))?;
        a.fmul(qword_ptr(rdi + 8))?;
        a.fdiv(dword_ptr(rdi + 16))?;
        a.fstp(qword_ptr(rdi + 24))
    });
    assert_eq!(run(&code, &mut s), SnippetEnd::Completed);
    assert_eq!(&s.data[24..32], &10.5f64.to_le_bytes());
    assert_eq!(s.fxsave[4], 0, "x87 stack empty again (abridged FTW)");
}

#[test]
fn parallel_threads_share_the_oracle_safely() {
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                let code = asm(|a| {
                    a.imul_2(rax, rbx)?;
                    a.mov(qword_ptr(rdi + 0x100), rax)
                });
                for k in 0..200u64 {
                    let mut s = initial_state();
                    s.gprs[0] = t * 1000 + k;
                    s.gprs[3] = 3;
                    s.gprs[7] = DATA_BASE;
                    let end = if k % 7 == 0 {
                        run(&asm(|a| a.ud2()), &mut s)
                    } else {
                        run(&code, &mut s)
                    };
                    if k % 7 == 0 {
                        assert_eq!(end, SnippetEnd::Exception(6));
                        continue;
                    }
                    assert_eq!(end, SnippetEnd::Completed);
                    assert_eq!(s.gprs[0], (t * 1000 + k) * 3);
                    assert_eq!(&s.data[0x100..0x108], &((t * 1000 + k) * 3).to_le_bytes());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("worker thread");
    }
}

#[test]
fn the_fixed_mappings_are_in_place_and_not_replaceable() {
    let mut s = initial_state();
    assert_eq!(run(&[0x90], &mut s), SnippetEnd::Completed);
    for addr in [CODE_BASE, DATA_BASE] {
        // SAFETY: MAP_FIXED_NOREPLACE cannot clobber the existing mapping;
        // a success (which would be a bug) is unmapped again at once.
        let p = unsafe {
            libc::mmap(
                addr as *mut libc::c_void,
                4096,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        let err = std::io::Error::last_os_error();
        if p != libc::MAP_FAILED {
            // SAFETY: the mapping just made.
            unsafe { libc::munmap(p, 4096) };
        }
        assert_eq!(p, libc::MAP_FAILED, "{addr:#x} is already mapped");
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
    }
}
