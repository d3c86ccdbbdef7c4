/* Prints HELLO, then exits with code 0x21 (status 67). */
        .include "common.inc"
        PVH_ENTRY _start
        .text
        .code32
        .globl _start
_start: mov     $stack_top, %esp
        PUTS    msg
        EXIT    0x21
        cli
3:      hlt
        jmp     3b
        PUTS_ROUTINE
msg:    .asciz "HELLO\r\n"
        .bss
        .space 1024
stack_top:
