/*
 * rootcheck: /sbin/init of the small ext4 root tests/debian_initrd_root.rs
 * boots through Debian's initramfs-tools initrd. It prints the mount
 * table line of "/" (the device the initrd mounted as root), then
 * "ROOT-INIT-OK", and powers the machine off.
 *
 * Built statically by the test (gcc -static -O2 -s).
 */
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <termios.h>
#include <unistd.h>

int main(void)
{
    char line[512];
    FILE *f;

    /* initramfs-tools moves its /proc here; mount one if it did not. */
    mount("proc", "/proc", "proc", 0, NULL);
    f = fopen("/proc/mounts", "r");
    if (f) {
        while (fgets(line, sizeof(line), f)) {
            char dev[256], dir[256];
            if (sscanf(line, "%255s %255s", dev, dir) == 2 && strcmp(dir, "/") == 0
                && strcmp(dev, "rootfs") != 0)
                printf("ROOT-MOUNT %s", line);
        }
        fclose(f);
    }
    printf("ROOT-INIT-OK pid=%d\n", (int)getpid());
    fflush(stdout);
    /* Let the UART send it all before the machine goes away. */
    tcdrain(STDOUT_FILENO);
    sync();
    reboot(RB_POWER_OFF);
    return 1;
}
