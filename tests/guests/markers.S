/* Boot markers as guests built for other VMMs write them: Cloud
 * Hypervisor's debug port (a byte per stage to port 0x80, one code from
 * each of its ranges) and Firecracker's boot timer (a byte of 123 at MMIO
 * 0xd0000000, and at 0xc0000000 where newer Firecracker releases put it),
 * with near-misses the boot timer must ignore (another value, another
 * offset, a wider write). Prints MARKERS, then exits with code 0
 * (status 1). Paging is off, so the MMIO addresses are physical. */
        .include "common.inc"
        PVH_ENTRY _start
        .text
        .code32
        .globl _start
_start: mov     $stack_top, %esp
        mov     $0x00, %al              /* firmware */
        outb    %al, $0x80
        movb    $122, 0xd0000000        /* not the magic value */
        movb    $123, 0xd0000001        /* not offset 0 */
        movl    $123, 0xd0000000        /* not a byte */
        movb    $123, 0xd0000000        /* boot complete */
        mov     $0x21, %al              /* bootloader */
        outb    %al, $0x80
        mov     $0x41, %al              /* kernel */
        outb    %al, $0x80
        PUTS    msg
        mov     $0x61, %al              /* userspace */
        outb    %al, $0x80
        mov     $0x81, %al              /* custom */
        outb    %al, $0x80
        movb    $123, 0xc0000000        /* boot complete, newer address */
        EXIT    0
        cli
3:      hlt
        jmp     3b
        PUTS_ROUTINE
msg:    .asciz "MARKERS\r\n"
        .bss
        .space 1024
stack_top:
