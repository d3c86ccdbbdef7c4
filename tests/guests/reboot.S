/* Restart the machine the ways Linux's arch/x86/kernel/reboot.c does,
 * walking its order from the method the command line names (first word):
 *   "a" (and anything else): the ACPI reset register (0x42 to the GED's
 *       0xfea00202; nothing there with acpi=off), then "k";
 *   "k": the keyboard controller (kb_wait on port 0x64 bit 1, then 0xfe to
 *       port 0x64), then "b";
 *   "b": the BIOS: 16-bit protected mode, real mode, ljmp $0xf000,$0xfff0
 *       (Linux's machine_real_restart), from which there is no way back;
 *   "t": a triple fault (empty IDT, then an exception), then "k";
 *   "h": halt with interrupts off (cli; hlt), as Linux's "System halted",
 *       printing NMI for an NMI (whose handler goes back to the hlt);
 *   "w": write hlt instructions over the reset vector (the ROM must keep
 *       its code), then "b".
 * Prints BOOT at entry and "TRY <m>" before each method, and waits about
 * a quarter of a second (TSC) after each before trying the next. */
        .include "common.inc"
        PVH_ENTRY _start
        .set    LOW, 0x7000
        .set    WAIT_TSC, 0x20000000
        .text
        .code32
        .globl _start
_start: mov     $stack_top, %esp
        cld
        mov     24(%ebx), %esi          /* hvm_start_info.cmdline_paddr */
        movzbl  (%esi), %ebx            /* the method letter */
        PUTS    boot_msg
        cmp     $'k', %bl
        je      kbd
        cmp     $'b', %bl
        je      bios
        cmp     $'t', %bl
        je      triple
        cmp     $'h', %bl
        je      halt
        cmp     $'w', %bl
        je      scribble

acpi:   PUTS    try_a
        movb    $0x42, 0xfea00202
        call    wait

kbd:    PUTS    try_k
        mov     $0x10000, %ecx          /* kb_wait: input buffer empty */
1:      inb     $0x64, %al
        test    $2, %al
        jz      2f
        loop    1b
2:      mov     $0xfe, %al
        outb    %al, $0x64
        call    wait

bios:   PUTS    try_b
        mov     $rm_start, %esi         /* the real-mode blob below 1 MiB */
        mov     $LOW, %edi
        mov     $(rm_end - rm_start), %ecx
        rep movsb
        lgdt    gdt_desc
        ljmp    $0x08, $LOW

scribble:                               /* hlt over the reset vector: */
        movl    $0xf4f4f4f4, 0xffff0    /* the ROM must ignore it */
        movl    $0xf4f4f4f4, 0xffff4
        jmp     bios

triple: PUTS    try_t
        lidt    empty_idt
        xor     %ecx, %ecx              /* #DE with no IDT: triple fault */
        div     %ecx                    /* (Linux uses int3, which kvm_pvm's
                                           emulator cannot deliver) */
        call    wait
        jmp     kbd

halt:   lgdt    gdt_desc                /* flat segments and an IDT */
        ljmp    $0x18, $5f              /* whose only gate is the NMI's */
5:      mov     $0x20, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        mov     $nmi, %eax
        mov     %ax, idt + 2*8
        movw    $0x18, idt + 2*8 + 2
        movw    $0x8e00, idt + 2*8 + 4
        shr     $16, %eax
        mov     %ax, idt + 2*8 + 6
        lidt    idt_desc
        PUTS    halt_msg
        cli
3:      hlt
        jmp     3b

nmi:    PUTS    nmi_msg                 /* back to the halt without IRET */
        jmp     3b                      /* (kvm_pvm cannot emulate it) */

/* Spin for WAIT_TSC time-stamp counter ticks. */
wait:   rdtsc
        mov     %eax, %esi
        mov     %edx, %edi
4:      pause
        rdtsc
        sub     %esi, %eax
        sbb     %edi, %edx
        cmp     $WAIT_TSC, %eax
        jb      4b
        ret

        .code16
rm_start:
        mov     $0x10, %ax              /* 16-bit data segments, 64 KiB */
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        mov     %cr0, %eax
        and     $0xfffffffe, %eax
        mov     %eax, %cr0
        ljmp    $0xf000, $0xfff0
rm_end:
        .code32

        PUTS_ROUTINE

        .data
        .balign 8
gdt:    .quad   0
        .quad   0x00009a000000ffff      /* 0x08: 16-bit code, base 0 */
        .quad   0x000092000000ffff      /* 0x10: 16-bit data, base 0 */
        .quad   0x00cf9a000000ffff      /* 0x18: flat 32-bit code */
        .quad   0x00cf92000000ffff      /* 0x20: flat 32-bit data */
gdt_desc:
        .word   gdt_desc - gdt - 1
        .long   gdt
empty_idt:
        .word   0
        .long   0
idt_desc:
        .word   3*8 - 1
        .long   idt
boot_msg: .asciz "BOOT\r\n"
try_a:  .asciz  "TRY a\r\n"
try_k:  .asciz  "TRY k\r\n"
try_b:  .asciz  "TRY b\r\n"
try_t:  .asciz  "TRY t\r\n"
halt_msg: .asciz "HALTED\r\n"
nmi_msg: .asciz "NMI\r\n"
        .bss
        .balign 8
idt:    .space  3*8
        .space  1024
stack_top:
