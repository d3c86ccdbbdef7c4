/* Console echo: prints READY, then copies every byte received on COM1
 * back to COM1 (polling LSR data-ready); a 'q' exits with code 0x11. */
        .include "common.inc"
        PVH_ENTRY _start
        .text
        .code32
        .globl _start
_start: mov     $stack_top, %esp
        PUTS    msg
poll:   mov     $0x3fd, %dx             /* LSR */
        inb     %dx, %al
        test    $1, %al
        jz      poll
        mov     $0x3f8, %dx
        inb     %dx, %al
        cmp     $'q', %al
        je      quit
        outb    %al, %dx
        jmp     poll
quit:   EXIT    0x11
        PUTS_ROUTINE
msg:    .asciz "READY\r\n"
        .bss
        .space  1024
stack_top:
