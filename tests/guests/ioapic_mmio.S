/* Reads the IOAPIC version register through MMIO (IOREGSEL at 0xfec00000,
 * IOWIN at 0xfec00010) and exits with its "maximum redirection entry"
 * byte: 23 for a 24-pin IOAPIC, so status (23 << 1) | 1 = 47. */
        .include "common.inc"
        PVH_ENTRY _start
        .text
        .code32
        .globl _start
_start: mov     $stack_top, %esp
        movl    $1, 0xfec00000
        mov     0xfec00010, %eax
        cmp     $0x20, %al              /* version 0x20 */
        jne     bad
        shr     $16, %eax
        mov     $0x501, %dx
        outb    %al, %dx
bad:    EXIT    0x7f
        .bss
        .space  1024
stack_top:
