/* -smp 2: the BSP wakes the application processor with INIT and SIPI
 * through its local APIC (ICR at 0xfee00300); the AP starts in real mode
 * at 0x8000 (SIPI vector 8), writes its APIC ID to a mailbox and halts.
 * The BSP prints AP-UP and exits with 0x50 + the AP's APIC ID. */
        .include "common.inc"
        PVH_ENTRY _start
        .set    TRAMP, 0x8000
        .set    MAILBOX, 0x9000
        .text
        .code32
        .globl _start
_start: mov     $stack_top, %esp
        cld
        movl    $0xffffffff, MAILBOX
        mov     $ap_start, %esi
        mov     $TRAMP, %edi
        mov     $(ap_end - ap_start), %ecx
        rep movsb
        movl    $0x1ff, 0xfee000f0      /* LAPIC software enable */
        movl    $0x01000000, 0xfee00310 /* destination: APIC ID 1 */
        movl    $0x00004500, 0xfee00300 /* INIT, assert */
        mov     $100000, %ecx
1:      loop    1b
        movl    $0x01000000, 0xfee00310
        movl    $0x00004608, 0xfee00300 /* STARTUP, vector 8 -> 0x8000 */
        mov     $50000000, %ecx
2:      cmpl    $0xffffffff, MAILBOX
        jne     up
        dec     %ecx
        jnz     2b
        EXIT    0x7e                    /* the AP never came up */
up:     PUTS    msg
        mov     MAILBOX, %eax
        add     $0x50, %al
        mov     $0x501, %dx
        outb    %al, %dx
        PUTS_ROUTINE

        .code16
ap_start:
        cli
        xor     %ax, %ax
        mov     %ax, %ds
        mov     $0xfee0, %ax            /* read our APIC ID via unreal? no: */
        /* Real mode can't reach 0xfee00020; CPUID leaf 1 EBX[31:24] is the
         * initial APIC ID. */
        mov     $1, %eax
        cpuid
        shr     $24, %ebx
        mov     %ebx, MAILBOX
3:      hlt
        jmp     3b
ap_end:

        .data
msg:    .asciz  "AP-UP\r\n"
        .bss
        .space  1024
stack_top:
