/*
 * tiny-pvh: the smallest guest that proves a PVH boot works.
 *
 * The PVH ABI enters pvh_entry in 32-bit protected mode with paging off and
 * EBX holding the physical address of struct hvm_start_info. We write
 * "BOOT-OK" to the COM1 UART; then, if the kernel command line contains
 * the word "hold", we write "HOLD" and halt forever with interrupts off,
 * else we force a triple fault (a divide error with a zero-limit IDT), which
 * an emulator run with -no-reboot turns into a clean exit.
 */
        .code32

        .section .note.Xen, "a", @note
        .balign 4
        .long   4f - 3f                 /* name size */
        .long   6f - 5f                 /* descriptor size */
        .long   18                      /* XEN_ELFNOTE_PHYS32_ENTRY */
3:      .asciz  "Xen"
4:      .balign 4
5:      .long   pvh_entry
6:

        .text
        .globl  pvh_entry
pvh_entry:
        cld
        movl    $stack_end, %esp
        movl    %ebx, %ebp              /* keep hvm_start_info */
        movl    $booted, %esi
        call    serial_puts

        movl    24(%ebp), %esi          /* cmdline_paddr, low half */
        testl   %esi, %esi
        jz      crash
scan:   movl    (%esi), %eax
        testb   %al, %al
        jz      crash
        cmpl    $0x646c6f68, %eax       /* "hold", little-endian */
        je      hold
        incl    %esi
        jmp     scan

hold:   movl    $holding, %esi
        call    serial_puts
park:   cli
        hlt
        jmp     park

crash:  lidt    no_idt
        xorl    %ecx, %ecx
        divl    %ecx                    /* #DE, no IDT: #DF, then shutdown */
        jmp     park

/* Write the NUL-terminated string at ESI to port 0x3f8. */
serial_puts:
        movw    $0x3f8, %dx
1:      lodsb
        testb   %al, %al
        jz      2f
        outb    %al, %dx
        jmp     1b
2:      ret

        .section .rodata
booted:  .asciz "BOOT-OK\r\n"
holding: .asciz "HOLD\r\n"
        .balign 8
no_idt:  .word  0
         .long  0

        .bss
        .balign 16
        .space  4096
stack_end:
