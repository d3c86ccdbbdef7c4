/* 32-bit PVH entry -> identity-mapped 4-level paging -> 64-bit mode, where
 * it prints LONG-OK (with a 64-bit-only instruction) and exits with 0x40. */
        .include "common.inc"
        PVH_ENTRY _start
        .text
        .code32
        .globl _start
_start: mov     $stack_top, %esp
        /* PML4[0] -> PDPT, PDPT[0] -> PD, PD[0..511] = 2 MiB pages (1 GiB). */
        mov     $pdpt, %eax
        or      $3, %eax
        mov     %eax, pml4
        mov     $pd, %eax
        or      $3, %eax
        mov     %eax, pdpt
        xor     %ecx, %ecx
1:      mov     %ecx, %eax
        shl     $21, %eax
        or      $0x83, %eax             /* present, writable, 2 MiB */
        mov     %eax, pd(,%ecx,8)
        inc     %ecx
        cmp     $512, %ecx
        jne     1b
        lgdt    gdt_desc
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

        .code64
long64: mov     $0x10, %ax
        mov     %ax, %ds
        mov     %ax, %ss
        movabs  $0x123456789abcdef0, %rax
        mov     %rax, %r9               /* REX-only register */
        shr     $60, %r9                /* r9 = 1 */
        cmp     $1, %r9
        jne     bad
        mov     $msg, %esi
        mov     $0x3f8, %dx
2:      lodsb
        test    %al, %al
        jz      3f
        outb    %al, %dx
        jmp     2b
3:      EXIT    0x40
bad:    EXIT    0x7f

        .data
        .balign 8
gdt:    .quad   0
        .quad   0x00af9a000000ffff      /* 0x08: 64-bit code */
        .quad   0x00cf92000000ffff      /* 0x10: data */
gdt_desc:
        .word   gdt_desc - gdt - 1
        .long   gdt
msg:    .asciz "LONG-OK\r\n"
        .bss
        .balign 4096
pml4:   .space  4096
pdpt:   .space  4096
pd:     .space  4096
        .space  1024
stack_top:
