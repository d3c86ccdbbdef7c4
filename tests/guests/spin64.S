/* 64-bit mode, PIT channel 0 at 100 Hz through the 8259, interrupts on:
 * the guest spins in a tight loop (no HLT) reading a tick counter that
 * only the timer handler (a 64-bit interrupt gate, IRETQ) advances, then
 * in a loop of chained blocks (CALL, RET, indirect JMP). It prints S for
 * each tick and exits 0x35 after three ticks in the first loop and three
 * in the hot second one; a CPU tier that never lets an interrupt in while
 * a loop runs hangs here. */
        .include "common.inc"
        PVH_ENTRY _start
        .text
        .code32
        .globl _start
_start: mov     $stack_top, %esp
        /* Identity map of the first GiB with 2 MiB pages. */
        mov     $pdpt, %eax
        or      $3, %eax
        mov     %eax, pml4
        mov     $pd, %eax
        or      $3, %eax
        mov     %eax, pdpt
        xor     %ecx, %ecx
1:      mov     %ecx, %eax
        shl     $21, %eax
        or      $0x83, %eax
        mov     %eax, pd(,%ecx,8)
        inc     %ecx
        cmp     $512, %ecx
        jne     1b
        lgdt    gdt_desc
        mov     %cr4, %eax
        or      $0x20, %eax             /* PAE */
        mov     %eax, %cr4
        mov     $pml4, %eax
        mov     %eax, %cr3
        mov     $0xc0000080, %ecx       /* EFER.LME */
        rdmsr
        or      $0x100, %eax
        wrmsr
        mov     %cr0, %eax
        or      $0x80000001, %eax       /* PG | PE */
        mov     %eax, %cr0
        ljmp    $0x08, $long64

        .code64
long64: mov     $0x10, %ax
        mov     %ax, %ds
        mov     %ax, %ss
        mov     $stack_top, %esp        /* (zero-extends into RSP) */
        /* IDT entry 0x20 -> tick: a 64-bit interrupt gate. The 32-bit
         * ELF holds only 32-bit absolute relocations: addresses go
         * through registers. */
        mov     $idt + 0x20*16, %edi
        mov     $tick, %eax
        mov     %ax, (%rdi)
        movw    $0x08, 2(%rdi)
        movw    $0x8e00, 4(%rdi)
        shr     $16, %eax
        mov     %ax, 6(%rdi)
        mov     $idt_desc, %edi
        lidt    (%rdi)
        /* 8259: ICW1..4 (vectors 0x20/0x28), only IRQ0 unmasked. */
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
        /* PIT channel 0, mode 2, 100 Hz. */
        mov     $0x34, %al
        outb    %al, $0x43
        mov     $(11932 & 0xff), %al
        outb    %al, $0x40
        mov     $(11932 >> 8), %al
        outb    %al, $0x40
        xor     %ebx, %ebx
        sti
        /* The tight loop: counts spins until three ticks arrived. */
spin:   add     $1, %rbx
        mov     ticks(%rip), %eax
        cmp     $3, %eax
        jb      spin
        /* It must have spun between ticks (the loop really ran). */
        cmp     $1000, %rbx
        jb      bad
        /* Then a loop of several blocks that compiled code chains: a
         * CALL, a RET through a return thunk (a JMP to a lone RET) and
         * an indirect JMP. After 100000 runs (compiled and chained by
         * then; ticks may come meanwhile) it waits for three more. */
        xor     %ebx, %ebx
        mov     $spin3, %esi
spin2:  call    count
        jmp     *%rsi
spin3:  cmp     $100000, %rbx
        jb      spin2
        jne     2f
        mov     ticks(%rip), %edi
        add     $3, %edi
2:      cmp     ticks(%rip), %edi
        ja      spin2
        cli
        EXIT    0x35
bad:    EXIT    0x7f

count:  add     $1, %rbx
        jmp     thunk
thunk:  ret

tick:   push    %rax
        push    %rdx
        incl    ticks(%rip)
        mov     $'S', %al
        mov     $0x3f8, %dx
        outb    %al, %dx
        mov     $0x20, %al              /* non-specific EOI */
        outb    %al, $0x20
        pop     %rdx
        pop     %rax
        iretq

        .data
        .balign 8
gdt:    .quad   0
        .quad   0x00af9a000000ffff      /* 0x08: 64-bit code */
        .quad   0x00cf92000000ffff      /* 0x10: data */
gdt_desc:
        .word   gdt_desc - gdt - 1
        .long   gdt
idt_desc:
        .word   256*16 - 1
        .long   idt, 0
ticks:  .long   0
        .bss
        .balign 4096
pml4:   .space  4096
pdpt:   .space  4096
pd:     .space  4096
idt:    .space  256*16
        .space  1024
stack_top:
