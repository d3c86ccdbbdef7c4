//! The interpreter's snippet runner on hand-checked cases.

use cpu::interp::run_snippet;
use cpu::snippet::{SnippetEnd, SnippetState, DATA_BASE, DATA_SIZE};

fn state() -> SnippetState {
    let mut fx = [0u8; 512];
    fx[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
    fx[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
    SnippetState {
        gprs: [0; 16],
        rflags: 2,
        fxsave: fx,
        ymm_hi: [0; 16],
        data: vec![0; DATA_SIZE],
    }
}

#[test]
fn add_sets_carry_and_zero() {
    let mut s = state();
    s.gprs[0] = u64::MAX; // rax
    s.gprs[3] = 1; // rbx
                   // add rax, rbx
    assert_eq!(
        run_snippet(&[0x48, 0x01, 0xd8], &mut s),
        SnippetEnd::Completed
    );
    assert_eq!(s.gprs[0], 0);
    assert_eq!(s.rflags & 0x41, 0x41, "CF and ZF");
}

#[test]
fn memory_operands_reach_the_data_buffer() {
    let mut s = state();
    s.gprs[7] = DATA_BASE; // rdi
    s.gprs[0] = 0x1122_3344_5566_7788;
    // mov [rdi+8], rax ; add dword [rdi+8], 1
    let code = [0x48, 0x89, 0x47, 0x08, 0x83, 0x47, 0x08, 0x01];
    assert_eq!(run_snippet(&code, &mut s), SnippetEnd::Completed);
    assert_eq!(&s.data[8..16], &0x1122_3344_5566_7789u64.to_le_bytes());
}

#[test]
fn divide_by_zero_reports_de_with_the_state_at_the_fault() {
    let mut s = state();
    s.gprs[0] = 5;
    // inc rax ; xor ecx, ecx ; div rcx
    let code = [0x48, 0xff, 0xc0, 0x31, 0xc9, 0x48, 0xf7, 0xf1];
    assert_eq!(run_snippet(&code, &mut s), SnippetEnd::Exception(0));
    assert_eq!(s.gprs[0], 6, "instructions before the fault completed");
}

#[test]
fn rep_movsb_copies_backwards_with_df() {
    let mut s = state();
    for (i, b) in s.data.iter_mut().take(16).enumerate() {
        *b = i as u8;
    }
    s.gprs[6] = DATA_BASE + 15; // rsi
    s.gprs[7] = DATA_BASE + 0x10f; // rdi
    s.gprs[1] = 16; // rcx
                    // std ; rep movsb ; cld
    let code = [0xfd, 0xf3, 0xa4, 0xfc];
    assert_eq!(run_snippet(&code, &mut s), SnippetEnd::Completed);
    assert_eq!(&s.data[0x100..0x110], &s.data[0..16].to_vec()[..]);
    assert_eq!(s.gprs[1], 0);
    assert_eq!(s.gprs[6], DATA_BASE - 1);
}

#[test]
fn a_fault_inside_a_block_shows_the_flags_of_the_instructions_before_it() {
    let mut s = state();
    s.gprs[0] = u64::MAX; // rax
    s.gprs[3] = 1; // rbx
    s.gprs[2] = 0x7000_0000_0000; // rdx: unmapped
                                  // add rax, rbx (CF ZF) ; mov rcx, [rdx] (#PF) ; sub rax, rbx
    let code = [0x48, 0x01, 0xd8, 0x48, 0x8b, 0x0a, 0x48, 0x29, 0xd8];
    assert_eq!(run_snippet(&code, &mut s), SnippetEnd::Exception(14));
    assert_eq!(s.gprs[0], 0);
    assert_eq!(s.rflags & 0x8d5, 0x55, "CF ZF PF AF of the ADD, exactly");
}

#[test]
fn a_store_into_the_running_block_changes_the_next_instruction() {
    let mut s = state();
    // mov byte [rip+1], 7 ; mov al, 1   (the store patches the immediate)
    // C6 05 <disp32=1> 07 ; B0 01
    let code = [0xc6, 0x05, 0x01, 0x00, 0x00, 0x00, 0x07, 0xb0, 0x01];
    assert_eq!(run_snippet(&code, &mut s), SnippetEnd::Completed);
    assert_eq!(s.gprs[0] & 0xff, 7, "the patched immediate ran");
}

#[test]
fn flags_partly_overwritten_inside_a_block_stay_exact() {
    let mut s = state();
    s.gprs[0] = 0x8000_0000_0000_0000;
    s.gprs[3] = 0x8000_0000_0000_0000;
    s.gprs[1] = 3;
    // add rax, rbx (CF OF ZF PF) ; inc rcx (rewrites all but CF)
    let code = [0x48, 0x01, 0xd8, 0x48, 0xff, 0xc1];
    assert_eq!(run_snippet(&code, &mut s), SnippetEnd::Completed);
    assert_eq!(s.gprs[1], 4);
    assert_eq!(s.rflags & 0x8d5, 0x01, "CF from ADD survives INC");
}

#[test]
fn a_rep_movsb_into_the_running_block_changes_the_next_instruction() {
    let mut s = state();
    let code = [
        0x48, 0x8d, 0x35, 0x12, 0x00, 0x00, 0x00, // lea rsi, [rip+0x12] (the 7 below)
        0x48, 0x8d, 0x3d, 0x08, 0x00, 0x00, 0x00, // lea rdi, [rip+8] (mov al's immediate)
        0xb9, 0x01, 0x00, 0x00, 0x00, // mov ecx, 1
        0xf3, 0xa4, // rep movsb
        0xb0, 0x01, // mov al, 1 (patched to mov al, 7)
        0xeb, 0x01, // jmp over the data byte
        0x07,
    ];
    assert_eq!(run_snippet(&code, &mut s), SnippetEnd::Completed);
    assert_eq!(s.gprs[0] & 0xff, 7, "the patched immediate ran");
}
