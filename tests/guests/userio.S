/* Port I/O from user mode (CPL 3), as the protection model allows it:
 * 32-bit PVH entry -> 64-bit mode with user-accessible identity paging,
 * a 64-bit TSS with an I/O permission bitmap that allows only port 0x3f8,
 * then IRETQ to CPL 3 twice:
 *   1. IOPL 3: CLI is allowed, and so is every port: it prints IOPL3-OK
 *      on COM1 and reads the RTC (0x70/0x71), printing RTC-OK if the
 *      seconds register is valid BCD; then INT 0x80 (a DPL 3 gate).
 *   2. IOPL 0: the bitmap lets it print BITMAP-OK on COM1 (0x3f8), but
 *      IN from 0x71 must raise #GP(0) at that instruction: the handler
 *      prints GP-OK and exits with 0x41.
 * Any other outcome exits with 0x7e (wrong #GP) or 0x7f (no #GP). */
        .include "common.inc"
        PVH_ENTRY _start
        .text
        .code32
        .globl _start
_start: mov     $kstack_top, %esp
        /* PML4[0] -> PDPT, PDPT[0] -> PD, PD[0..511] = 2 MiB user pages. */
        mov     $pdpt, %eax
        or      $7, %eax
        mov     %eax, pml4
        mov     $pd, %eax
        or      $7, %eax
        mov     %eax, pdpt
        xor     %ecx, %ecx
1:      mov     %ecx, %eax
        shl     $21, %eax
        or      $0x87, %eax             /* present, writable, user, 2 MiB */
        mov     %eax, pd(,%ecx,8)
        inc     %ecx
        cmp     $512, %ecx
        jne     1b
        /* The TSS descriptor's base; RSP0; the bitmap allows port 0x3f8. */
        mov     $tss, %eax
        mov     %ax, gdt + 0x28 + 2
        shr     $16, %eax
        mov     %al, gdt + 0x28 + 4
        mov     %ah, gdt + 0x28 + 7
        movl    $kstack_top, tss + 4
        andb    $0xfe, tss + 0x68 + 0x3f8 / 8
        lgdt    gdt_desc
        /* Gates: #GP (DPL 0) and 0x80 (DPL 3). */
        mov     $13, %edi
        mov     $on_gp, %eax
        mov     $0x8e, %ecx
        call    set_gate
        mov     $0x80, %edi
        mov     $on_int80, %eax
        mov     $0xee, %ecx
        call    set_gate
        lidt    idt_desc
        mov     %cr4, %eax
        or      $0x20, %eax             /* PAE */
        mov     %eax, %cr4
        mov     $pml4, %eax
        mov     %eax, %cr3
        mov     $0xc0000080, %ecx       /* EFER.LME */
        rdmsr
        or      $0x100, %eax
        wrmsr
        mov     %cr0, %eax
        or      $0x80000001, %eax       /* PG | PE */
        mov     %eax, %cr0
        ljmp    $0x08, $long64

/* IDT entry %edi: handler %eax, type/DPL byte %ecx (32-bit code). */
set_gate:
        shl     $4, %edi
        add     $idt, %edi
        mov     %ax, (%edi)
        movw    $0x08, 2(%edi)
        mov     %cl, 5(%edi)
        shr     $16, %eax
        mov     %ax, 6(%edi)
        ret

        .code64
long64: mov     $0x10, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        mov     $0x28, %ax
        ltr     %ax
        /* To CPL 3 with IOPL 3 (addresses through 32-bit moves: the
         * object is 32-bit). */
        pushq   $0x1b
        mov     $ustack_top, %eax
        push    %rax
        pushq   $0x3002
        pushq   $0x23
        mov     $user_iopl3, %eax
        push    %rax
        iretq

/* CPL 3, IOPL 3. */
user_iopl3:
        cli
        mov     $msg_iopl3, %esi
        call    uputs
        xor     %eax, %eax              /* RTC seconds (BCD) */
        out     %al, $0x70
        in      $0x71, %al
        mov     $msg_rtc_bad, %esi
        cmp     $0x60, %al
        jae     2f
        and     $0x0f, %al
        cmp     $10, %al
        jae     2f
        mov     $msg_rtc_ok, %esi
2:      call    uputs
        int     $0x80

/* CPL 3, IOPL 0: only port 0x3f8 is allowed. */
user_iopl0:
        mov     $msg_bitmap, %esi
        call    uputs
user_fault:
        in      $0x71, %al
        EXIT    0x7f

/* Print the string at %esi on COM1 (from any CPL the port is allowed at). */
uputs:  mov     $0x3f8, %dx
1:      lodsb
        test    %al, %al
        jz      2f
        outb    %al, %dx
        jmp     1b
2:      ret

/* INT 0x80 from user mode: back to CPL 3 with IOPL 0. */
on_int80:
        pushq   $0x1b
        mov     $ustack_top, %eax
        push    %rax
        pushq   $0x0002
        pushq   $0x23
        mov     $user_iopl0, %eax
        push    %rax
        iretq

/* #GP: it must be error code 0 at user_fault, from CPL 3. */
on_gp:  cmpq    $0, (%rsp)
        jne     bad_gp
        mov     $user_fault, %eax
        cmp     %rax, 8(%rsp)
        jne     bad_gp
        cmpq    $0x23, 16(%rsp)
        jne     bad_gp
        mov     $msg_gp, %esi
        call    uputs
        EXIT    0x41
bad_gp: EXIT    0x7e

        .data
        .balign 8
gdt:    .quad   0
        .quad   0x00af9a000000ffff      /* 0x08: kernel code 64 */
        .quad   0x00cf92000000ffff      /* 0x10: kernel data */
        .quad   0x00cff2000000ffff      /* 0x18: user data */
        .quad   0x00affa000000ffff      /* 0x20: user code 64 */
        .quad   0x0000890000002068      /* 0x28: 64-bit TSS (base set above) */
        .quad   0
gdt_desc:
        .word   gdt_desc - gdt - 1
        .long   gdt
        .balign 8
idt_desc:
        .word   0x81 * 16 - 1
        .long   idt
msg_iopl3:   .asciz "IOPL3-OK\r\n"
msg_rtc_ok:  .asciz "RTC-OK\r\n"
msg_rtc_bad: .asciz "RTC-BAD\r\n"
msg_bitmap:  .asciz "BITMAP-OK\r\n"
msg_gp:      .asciz "GP-OK\r\n"
        /* The TSS: RSP0 at 4, the I/O map base (0x68) at 0x66, then the
         * bitmap (every port denied but 0x3f8) and its all-ones end byte. */
        .balign 16
tss:    .space  0x66
        .word   0x68
        .fill   0x2001, 1, 0xff
        .bss
        .balign 4096
pml4:   .space  4096
pdpt:   .space  4096
pd:     .space  4096
idt:    .space  0x81 * 16
        .balign 16
        .space  2048
kstack_top:
        .space  2048
ustack_top:
