/* Self-modifying code by DMA: a function runs (so the software CPU has it
 * as a decoded block), then a virtio-blk read puts new code over it from
 * the disk, and calling it again must run the new code. The function
 * `func` returns 1 in %eax; sector 0 of the disk holds `mov $2, %eax;
 * ret` (b8 02 00 00 00 c3). The guest prints SMC-OK and exits with 0x42
 * when the second call returns 2. Failures exit with 0x10 (no
 * virtio-blk), 0x11 (FEATURES_OK refused), 0x12 (first call not 1),
 * 0x13 (request failed) or 0x14 (the old code ran again). */
        .include "common.inc"
        PVH_ENTRY _start

        .set MMIO_BASE, 0xfeb00000
        .set SLOT, 0x200
        .set DESC, 0x10000
        .set AVAIL, 0x11000
        .set USED, 0x12000
        .set HDR, 0x13000
        .set STATUS, 0x13100

        .text
        .code32
        .globl _start
_start: mov     $stack_top, %esp
        /* Run the function a few times, so it is a cached block. */
        mov     $100, %ecx
0:      call    func
        cmp     $1, %eax
        je      1f
        EXIT    0x12
1:      loop    0b

        /* Find the transport whose DeviceID (0x008) is 2 (block). */
        mov     $MMIO_BASE, %ebx
        mov     $32, %ecx
1:      cmpl    $0x74726976, (%ebx)     /* "virt" */
        jne     2f
        cmpl    $2, 8(%ebx)
        je      found
2:      add     $SLOT, %ebx
        loop    1b
        EXIT    0x10

found:  movl    $0, 0x70(%ebx)          /* reset */
        movl    $1, 0x70(%ebx)          /* ACKNOWLEDGE */
        movl    $3, 0x70(%ebx)          /* DRIVER */
        movl    $1, 0x24(%ebx)          /* DriverFeaturesSel = 1 */
        movl    $1, 0x20(%ebx)          /* VIRTIO_F_VERSION_1 (bit 32) */
        movl    $0, 0x24(%ebx)
        movl    $0, 0x20(%ebx)
        movl    $0xb, 0x70(%ebx)        /* FEATURES_OK */
        testl   $8, 0x70(%ebx)
        jnz     3f
        EXIT    0x11
3:      movl    $0, 0x30(%ebx)          /* QueueSel = 0 */
        movl    $8, 0x38(%ebx)          /* QueueNum */
        movl    $DESC, 0x80(%ebx)
        movl    $0, 0x84(%ebx)
        movl    $AVAIL, 0x90(%ebx)
        movl    $0, 0x94(%ebx)
        movl    $USED, 0xa0(%ebx)
        movl    $0, 0xa4(%ebx)
        movl    $1, 0x44(%ebx)          /* QueueReady */
        movl    $0xf, 0x70(%ebx)        /* DRIVER_OK */

        /* the request header: VIRTIO_BLK_T_IN, sector 0 */
        movl    $0, HDR
        movl    $0, HDR+4
        movl    $0, HDR+8
        movl    $0, HDR+12
        movb    $0xff, STATUS
        /* desc 0: header */
        movl    $HDR, DESC
        movl    $0, DESC+4
        movl    $16, DESC+8
        movw    $1, DESC+12             /* NEXT */
        movw    $1, DESC+14
        /* desc 1: 512 bytes of data, over func */
        movl    $func, DESC+16
        movl    $0, DESC+20
        movl    $512, DESC+24
        movw    $3, DESC+28             /* NEXT | WRITE */
        movw    $2, DESC+30
        /* desc 2: the status byte */
        movl    $STATUS, DESC+32
        movl    $0, DESC+36
        movl    $1, DESC+40
        movw    $2, DESC+44             /* WRITE */
        movw    $0, DESC+46
        /* avail: flags 0, ring[0] = 0, idx 1 */
        movw    $0, AVAIL
        movw    $0, AVAIL+4
        movw    $1, AVAIL+2
        movl    $0, 0x50(%ebx)          /* QueueNotify(0): served at once */

        cmpb    $0, STATUS
        je      4f
        EXIT    0x13
4:      call    func
        cmp     $2, %eax
        je      5f
        EXIT    0x14
5:      PUTS    msg
        EXIT    0x42
        cli
6:      hlt
        jmp     6b
        PUTS_ROUTINE
msg:    .asciz "SMC-OK\r\n"

        /* The function the disk read replaces, alone in its 512 bytes. */
        .balign 512
func:   mov     $1, %eax
        ret
        .balign 512
        .space  512

        .bss
        .space 1024
stack_top:
