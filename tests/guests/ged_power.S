/* ACPI power paths through QEMU microvm's GED (acpi=on):
 *  - cmdline "poweroff": write SLP_TYP=5|SLP_EN to the sleep control
 *    register (0xfea00200) at once;
 *  - cmdline "reset": write 0x42 to the reset register (0xfea00202);
 *  - otherwise wait for the power button: GED IRQ 9 through the IOAPIC
 *    (level-triggered, vector 0x39), read the event selector (0xfea00000)
 *    and power off when the power-down bit (0x2) is set. Prints PWR first. */
        .include "common.inc"
        PVH_ENTRY _start
        .text
        .code32
        .globl _start
_start: mov     $stack_top, %esp
        mov     24(%ebx), %esi          /* hvm_start_info.cmdline_paddr */
        mov     (%esi), %eax
        cmp     $0x65776f70, %eax       /* "powe" */
        je      poweroff
        cmp     $0x65736572, %eax       /* "rese" */
        je      reset
        lgdt    gdt_desc
        ljmp    $0x08, $1f
1:      mov     $0x10, %ax
        mov     %ax, %ds
        mov     %ax, %ss
        mov     $button, %eax
        mov     %ax, idt + 0x39*8
        movw    $0x08, idt + 0x39*8 + 2
        movw    $0x8e00, idt + 0x39*8 + 4
        shr     $16, %eax
        mov     %ax, idt + 0x39*8 + 6
        lidt    idt_desc
        movl    $0x1ff, 0xfee000f0      /* LAPIC on */
        movl    $0x22, 0xfec00000       /* IOAPIC entry 9, low */
        movl    $0x8039, 0xfec00010     /* vector 0x39, level, active high */
        movl    $0x23, 0xfec00000
        movl    $0, 0xfec00010
        PUTS    msg
wait:   sti
        hlt
        jmp     wait

button: mov     0xfea00000, %eax
        test    $2, %eax
        jz      wait
poweroff:
        movb    $0x34, 0xfea00200
2:      hlt
        jmp     2b
reset:  movb    $0x42, 0xfea00202
3:      hlt
        jmp     3b
        PUTS_ROUTINE

        .data
        .balign 8
gdt:    .quad   0
        .quad   0x00cf9a000000ffff
        .quad   0x00cf92000000ffff
gdt_desc:
        .word   gdt_desc - gdt - 1
        .long   gdt
idt_desc:
        .word   256*8 - 1
        .long   idt
msg:    .asciz  "PWR\r\n"
        .bss
        .balign 8
idt:    .space  256*8
        .space  1024
stack_top:
