/* PIT channel 0 at 100 Hz through the 8259 (ExtINT): counts three timer
 * interrupts in an IDT handler, printing T for each, then exits 0x33. */
        .include "common.inc"
        PVH_ENTRY _start
        .text
        .code32
        .globl _start
_start: mov     $stack_top, %esp
        lgdt    gdt_desc
        ljmp    $0x08, $1f
1:      mov     $0x10, %ax
        mov     %ax, %ds
        mov     %ax, %ss
        /* IDT entry 0x20 -> tick */
        mov     $tick, %eax
        mov     %ax, idt + 0x20*8
        movw    $0x08, idt + 0x20*8 + 2
        movw    $0x8e00, idt + 0x20*8 + 4
        shr     $16, %eax
        mov     %ax, idt + 0x20*8 + 6
        lidt    idt_desc
        /* 8259: ICW1..4 (vectors 0x20/0x28), then mask all but IRQ0 */
        mov     $0x11, %al
        outb    %al, $0x20
        outb    %al, $0xa0
        mov     $0x20, %al
        outb    %al, $0x21
        mov     $0x28, %al
        outb    %al, $0xa1
        mov     $0x04, %al
        outb    %al, $0x21
        mov     $0x02, %al
        outb    %al, $0xa1
        mov     $0x01, %al
        outb    %al, $0x21
        outb    %al, $0xa1
        mov     $0xfe, %al
        outb    %al, $0x21
        mov     $0xff, %al
        outb    %al, $0xa1
        /* PIT channel 0, mode 2, divisor 11932 (100 Hz) */
        mov     $0x34, %al
        outb    %al, $0x43
        mov     $(11932 & 0xff), %al
        outb    %al, $0x40
        mov     $(11932 >> 8), %al
        outb    %al, $0x40
wait:   cmpl    $3, ticks
        jae     done
        sti
        hlt
        jmp     wait
done:   cli
        EXIT    0x33

        /* No IRET (kvm_pvm's instruction emulator cannot run it): the
         * handler drops the interrupt frame and resumes the wait loop. */
tick:   incl    ticks
        mov     $'T', %al
        mov     $0x3f8, %dx
        outb    %al, %dx
        mov     $0x20, %al              /* non-specific EOI */
        outb    %al, $0x20
        mov     $stack_top, %esp
        jmp     wait

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
ticks:  .long   0
        .bss
        .balign 8
idt:    .space  256*8
        .space  1024
stack_top:
