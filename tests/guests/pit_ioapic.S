/* PIT channel 0 through the IOAPIC to the LAPIC: the 8259 is masked, ISA
 * IRQ 0 arrives on IOAPIC pin 2 (the MP table's IRQ0 override) as vector
 * 0x30, acknowledged with a LAPIC EOI. Three ticks, then exit 0x34. */
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
        mov     $tick, %eax
        mov     %ax, idt + 0x30*8
        movw    $0x08, idt + 0x30*8 + 2
        movw    $0x8e00, idt + 0x30*8 + 4
        shr     $16, %eax
        mov     %ax, idt + 0x30*8 + 6
        lidt    idt_desc
        mov     $0xff, %al              /* mask both 8259s */
        outb    %al, $0x21
        outb    %al, $0xa1
        movl    $0x1ff, 0xfee000f0      /* LAPIC: software enable, spurious 0xff */
        movl    $0x14, 0xfec00000       /* IOAPIC redirection entry 2, low */
        movl    $0x30, 0xfec00010       /* vector 0x30, fixed, edge, unmasked */
        movl    $0x15, 0xfec00000       /* high: destination APIC 0 */
        movl    $0, 0xfec00010
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
        EXIT    0x34

        /* No IRET (kvm_pvm's instruction emulator cannot run it): the
         * handler drops the interrupt frame and resumes the wait loop. */
tick:   incl    ticks
        mov     $'I', %al
        mov     $0x3f8, %dx
        outb    %al, %dx
        movl    $0, 0xfee000b0          /* LAPIC EOI */
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
