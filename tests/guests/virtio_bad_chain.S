/* A virtio-blk driver that posts a corrupt descriptor chain: it finds the
 * virtio-blk transport among the virtio-mmio slots, negotiates VERSION_1,
 * sets up queue 0, posts a request whose header lies outside guest RAM and
 * notifies. The device must then report DEVICE_NEEDS_RESET (status bit
 * 0x40) and come back to 0 on reset; the VMM keeps running, so the guest
 * prints BROKEN-OK and exits with code 0x42. Failures exit with 0x10
 * (no virtio-blk), 0x11 (FEATURES_OK refused), 0x12 (not marked broken)
 * or 0x13 (reset did not clear the status). */
        .include "common.inc"
        PVH_ENTRY _start

        .set MMIO_BASE, 0xfeb00000
        .set SLOT, 0x200
        .set DESC, 0x10000
        .set AVAIL, 0x11000
        .set USED, 0x12000

        .text
        .code32
        .globl _start
_start: mov     $stack_top, %esp
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

        /* desc 0: the request header at 0xf0000000, outside RAM */
        movl    $0xf0000000, DESC
        movl    $0, DESC+4
        movl    $16, DESC+8
        movw    $1, DESC+12             /* NEXT */
        movw    $1, DESC+14
        /* desc 1: the status byte */
        movl    $0x13000, DESC+16
        movl    $0, DESC+20
        movl    $1, DESC+24
        movw    $2, DESC+28             /* WRITE */
        movw    $0, DESC+30
        /* avail: flags 0, idx 1, ring[0] = 0 */
        movw    $0, AVAIL
        movw    $0, AVAIL+4
        movw    $1, AVAIL+2
        movl    $0, 0x50(%ebx)          /* QueueNotify(0) */

        testl   $0x40, 0x70(%ebx)       /* DEVICE_NEEDS_RESET */
        jnz     4f
        EXIT    0x12
4:      movl    $0, 0x70(%ebx)          /* reset recovers */
        cmpl    $0, 0x70(%ebx)
        je      5f
        EXIT    0x13
5:      PUTS    msg
        EXIT    0x42
        cli
6:      hlt
        jmp     6b
        PUTS_ROUTINE
msg:    .asciz "BROKEN-OK\r\n"
        .bss
        .space 1024
stack_top:
