/* 32-bit PVH entry -> 16-bit protected mode -> real mode. The real-mode part
 * is copied below 1 MiB (to 0x7000), uses a segment:offset address and a
 * 16-bit string instruction, prints REAL-OK and exits with 0x30. */
        .include "common.inc"
        PVH_ENTRY _start
        .set    LOW, 0x7000
        .text
        .code32
        .globl _start
_start: mov     $stack_top, %esp
        cld
        mov     $rm_start, %esi         /* copy the real-mode blob down */
        mov     $LOW, %edi
        mov     $(rm_end - rm_start), %ecx
        rep movsb
        lgdt    gdt_desc
        ljmp    $0x08, $(LOW + (pm16 - rm_start))

        .code16
rm_start:
pm16:   mov     $0x10, %ax              /* 16-bit data segment, 64 KiB */
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        mov     %cr0, %eax
        and     $0xfffffffe, %eax
        mov     %eax, %cr0
        ljmp    $(LOW >> 4), $(real - rm_start)
real:   mov     %cs, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        mov     $0x0ff0, %sp
        mov     $(msg - rm_start), %si
        mov     $0x3f8, %dx
1:      lodsb
        test    %al, %al
        jz      2f
        outb    %al, %dx
        jmp     1b
2:      mov     $0x30, %al
        mov     $0x501, %dx
        outb    %al, %dx
3:      hlt
        jmp     3b
msg:    .asciz "REAL-OK\r\n"
rm_end:

        .data
        .balign 8
gdt:    .quad   0
        .quad   0x00009a000000ffff      /* 0x08: 16-bit code, base 0 */
        .quad   0x000092000000ffff      /* 0x10: 16-bit data, base 0 */
gdt_desc:
        .word   gdt_desc - gdt - 1
        .long   gdt
        .bss
        .space  1024
stack_top:
