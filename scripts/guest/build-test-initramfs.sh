#!/usr/bin/env bash
# Build the initramfs that Kindling's virtio device tests boot:
#
#     scripts/guest/build-test-initramfs.sh OUTFILE      (OUTFILE.gz: gzipped)
#
# A newc cpio holding Debian's static busybox (every applet linked in /bin),
# /dev/console, a DHCP script and the /init below. Use it with the kernel of
# the test guest (scripts/guest/path.sh), e.g.
#
#     kindling -M microvm,acpi=off -accel tcg -m 256m -nodefaults -no-reboot \
#         -nographic -serial stdio -device virtio-rng-device \
#         -kernel bzImage -initrd test-initramfs.cpio \
#         -append "console=ttyS0 reboot=t panic=-1 quiet test=hwrng"
#
# scripts/guest/test-initramfs-path.sh builds it once into a cache and prints
# its path. The output is the same byte for byte on every run. Missing Debian
# packages (busybox-static, cpio, gzip) are installed with apt-get when
# running as root (NO_APT=1 forbids that); a non-root build needs fakeroot.
#
# ----------------------------------------------------------------------------
# What /init does, as seen on the console (lines end in CRLF on a serial port)
#
# It mounts proc, sysfs and devtmpfs and prints `BOOT-OK`. Then it runs the
# tests named by `test=` words of the kernel command line, in order (several
# words, or one word with commas: `test=virtio,hwrng`). Each test prints its
# own lines (below), then `TEST <name> ok` or `TEST <name> FAIL[ <why>]`.
# After the last test: `TESTS-DONE ok` (all passed) or `TESTS-DONE FAIL`.
# Then it prints `END <action>` and ends as `end=` says (see the end).
# Words take no quotes or spaces; sizes and offsets are decimal bytes.
#
# test=virtio        one line per virtio device the kernel found:
#                      VIRTIO <virtioN> device=0x0001 vendor=0x554d4551
#                    (device ids: 1 net, 2 block, 3 console, 4 entropy); then
#                      VIRTIO-COUNT <n>
#
# test=disk-md5      md5 of the whole disk (disk-dev=, default /dev/vda):
#                      DISK-MD5 <md5>
#                    For the guest's disk.img: 694a1213b6c22f75d5efb8d9b42917b7.
#
# test=disk-write    writes a known pattern to the disk, flushes it, reads it
#                    back from the device. Options: disk-dev= (/dev/vda),
#                    disk-offset= (0), disk-size= (65536), both multiples
#                    of 512. The pattern: disk byte p, for offset <= p <
#                    offset+size, is byte p%16 of the 16-character line
#                    printf("KINDLING%07x\n", p/16), e.g. bytes 0-15 are
#                    "KINDLING0000000\n", bytes 16-31 "KINDLING0000001\n".
#                      DISK-WRITE <dev> <offset> <size> <md5 of the pattern>
#                      DISK-READBACK <md5 read back after dropping the cache>
#                    The test passes when the two md5s match. A write the
#                    device refuses (read-only drive) prints
#                      DISK-WRITE-ERROR <dd's message>
#                    and the test fails. The data is on the host's image once
#                    `DISK-WRITE` is printed (written with fsync, then sync).
#                    Making the pattern takes the guest about 10 s per MiB
#                    on Kindling's software CPU (1 s on QEMU TCG).
#
# test=hwrng         reads rng-bytes= (64) bytes from /dev/hwrng:
#                      HWRNG-CURRENT <driver, e.g. virtio_rng.0, or none>
#                      HWRNG <bytes read> <md5>
#                      HWRNG-HEX <the bytes in hex>
#                    Passes when all bytes arrived and they are not all zero.
#
# test=hvc           talks over a virtio console port, hvc-dev= (/dev/hvc0),
#                    in canonical mode with echo off (a line ends with LF or
#                    CR). It writes `HVC-READY` to the port (and prints
#                    `HVC-READY <dev>` on the console); then hvc-lines= (1)
#                    times: reads a line from the port, writes back
#                    `HVC-ECHO <line>` to the port and prints `HVC-GOT <line>`
#                    on the console. Fails when no line comes within
#                    hvc-timeout= (120) seconds.
#
# test=net           brings up net-if= (eth0) and lo:
#                      NET-MAC <mac address>
#                    then sets the address by net-addr=:
#                      auto (default)  DHCP (udhcpc), and if that fails the
#                                      QEMU user-network defaults:
#                                      10.0.2.15/24 via 10.0.2.2
#                      dhcp            DHCP only
#                      A.B.C.D/N       this address, net-gw= as the gateway
#                    and prints
#                      NET-ADDR <a.b.c.d/n> <dhcp|static>
#                    (DHCP needs CONFIG_PACKET, which the test guest's kernel
#                    lacks: there `auto` always ends up static.) Then, each
#                    when given:
#                      net-ping=IP        ping it 3 times:  NET-PING <ip> ok|FAIL
#                      net-url=URL        wget it (60 s at most):
#                                           NET-GET <bytes> <md5>
#                                         plus, for a body of at most 4 KiB,
#                                         each of its lines as NET-BODY <line>
#                      net-tcp=IP:PORT    connect with nc, send the line
#                                         `KINDLING-NET-PING`, print each line
#                                         the peer sends back until it closes
#                                         (30 s at most) as NET-TCP <line>
#                    e.g. net-url=http://10.0.2.2:8080/ reaches a server the
#                    host runs on 127.0.0.1:8080 through QEMU-style user
#                    networking. Any failing step fails the test.
#
# test=info          INFO-KERNEL <uname -r>, INFO-CPUS <n>,
#                    INFO-MEM-KB <MemTotal>, INFO-CMDLINE <kernel command line>
#
# test=shell         a shell on the console (job control via cttyhack); it
#                    does not return, so end= does not apply.
#
# test=sleep         sleeps sleep= (1) seconds (for timing tests).
#
# test=privilege     runs /bin/privcheck (scripts/guest/privcheck.c, built
#                    with gcc -static) as a user process: each privileged
#                    instruction and some port I/O must end in the signal
#                    the SDM implies, one line per case:
#                      PRIV <case> <got> want=<want> ok|FAIL
#                      PRIV-DONE <cases> <failures>
#                    then the CPU flags and kernel-log lines that matter:
#                      PRIV-FLAGS <smep smap umip ... as /proc/cpuinfo has them>
#                      PRIV-KLOG <each Oops, BUG:, general protection line>
#                    Passes when every case passed and the log has none.
#
# test=smp           runs /bin/smpcheck (scripts/guest/smpcheck.c) with
#                    smp-ms= (5000) milliseconds per phase: threads
#                    hammering shared counters with locked instructions, a
#                    fork/exit storm, mmap/munmap races; its lines:
#                      SMP-CPUS <n>
#                      SMP-COUNTERS threads=<t> iterations=<n> ... ok|FAIL
#                      SMP-FORK forks=<n> bad=<n> ok|FAIL
#                      SMP-MMAP maps=<n> bad=<n> ok|FAIL
#                      SMP-DONE ok|FAIL
#                    then the kernel-log lines that matter, as
#                      SMP-KLOG <each Oops, BUG:, WARNING:, general protection line>
#                    Passes when every phase passed and the log has none.
#
# end=ACTION         what happens after the tests (a `sync` comes first):
#   auto (default)   `poweroff -f` when the kernel runs with ACPI (the board
#                    powers off, the emulator exits 0), else `reboot -f`
#                    (with `reboot=t` on the command line and -no-reboot the
#                    emulator exits 0)
#   reboot           `reboot -f`
#   poweroff         `poweroff -f` (with acpi=off the kernel just halts)
#   halt             `halt -f`
#   hold             prints HOLD and sleeps forever (for QMP tests)
#   shell            a shell on the console
# If the action returns, /init prints END-FAILED and sleeps forever rather
# than exit (an exiting init panics, which would look like a clean exit).
set -euo pipefail

out=${1:?usage: build-test-initramfs.sh OUTFILE[.gz]}

say() { echo "build-test-initramfs.sh: $*" >&2; }
fail() { say "error: $*"; exit 1; }

# --- host packages --------------------------------------------------------
need=(busybox-static cpio gzip gcc libc6-dev)
[ "$(id -u)" = 0 ] || need+=(fakeroot)
missing=()
for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "${NO_APT:-0}" != 1 ] && [ "$(id -u)" = 0 ]; then
        say "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        fail "install these Debian packages first: ${missing[*]}"
    fi
fi
busybox=/bin/busybox
if readelf -l "$busybox" 2>/dev/null | grep -q INTERP; then
    fail "$busybox is dynamically linked; install busybox-static"
fi

# --- the tree -------------------------------------------------------------
here=$(cd "$(dirname "$0")" && pwd)
root=$(mktemp -d "${TMPDIR:-/tmp}/kindling-test-initramfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
chmod 755 "$root"
mkdir -p "$root"/{bin,dev,etc,proc,sys,tmp,root}
cp "$busybox" "$root/bin/busybox"
# Stripped and static, so the same bytes come out of every build.
gcc -static -O2 -s -o "$root/bin/privcheck" "$here/privcheck.c"
gcc -static -O2 -s -mcx16 -pthread -o "$root/bin/smpcheck" "$here/smpcheck.c"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
ln -s bin "$root/sbin"

cat > "$root/etc/udhcpc.script" <<'DHCP'
#!/bin/sh
# udhcpc's event hook: configure the interface from the lease.
case "$1" in
    deconfig)
        ip -4 addr flush dev "$interface"
        ip link set "$interface" up
        ;;
    bound|renew)
        ip -4 addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" dev "$interface"
        for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
        : > /etc/resolv.conf
        for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
        ;;
esac
exit 0
DHCP
chmod 755 "$root/etc/udhcpc.script"

cat > "$root/init" <<'INIT'
#!/bin/sh
# Kindling's device-test guest: see scripts/guest/build-test-initramfs.sh.
export PATH=/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo BOOT-OK

set -f
tests= end=auto
disk_dev=/dev/vda disk_offset=0 disk_size=65536
rng_bytes=64
hvc_dev=/dev/hvc0 hvc_lines=1 hvc_timeout=120
net_if=eth0 net_addr=auto net_gw= net_ping= net_url= net_tcp=
sleep_s=1
smp_ms=5000
for word in $(cat /proc/cmdline); do
    value=${word#*=}
    case "$word" in
        test=*) tests="$tests $(echo "$value" | tr , ' ')" ;;
        end=*) end=$value ;;
        disk-dev=*) disk_dev=$value ;;
        disk-offset=*) disk_offset=$value ;;
        disk-size=*) disk_size=$value ;;
        rng-bytes=*) rng_bytes=$value ;;
        hvc-dev=*) hvc_dev=$value ;;
        hvc-lines=*) hvc_lines=$value ;;
        hvc-timeout=*) hvc_timeout=$value ;;
        net-if=*) net_if=$value ;;
        net-addr=*) net_addr=$value ;;
        net-gw=*) net_gw=$value ;;
        net-ping=*) net_ping=$value ;;
        net-url=*) net_url=$value ;;
        net-tcp=*) net_tcp=$value ;;
        sleep=*) sleep_s=$value ;;
        smp-ms=*) smp_ms=$value ;;
    esac
done
set +f

md5() { set -- $(md5sum); echo "$1"; }
why=

t_virtio() {
    n=0
    for d in /sys/bus/virtio/devices/*; do
        [ -e "$d/device" ] || continue
        echo "VIRTIO ${d##*/} device=$(cat "$d/device") vendor=$(cat "$d/vendor")"
        n=$((n + 1))
    done
    echo "VIRTIO-COUNT $n"
}

t_disk_md5() {
    [ -b "$disk_dev" ] || { why="no $disk_dev"; return 1; }
    sum=$(dd if="$disk_dev" bs=1M 2>/dev/null | md5)
    echo "DISK-MD5 $sum"
}

t_disk_write() {
    [ -b "$disk_dev" ] || { why="no $disk_dev"; return 1; }
    if [ $((disk_offset % 512)) != 0 ] || [ $((disk_size % 512)) != 0 ]; then
        why="disk-offset and disk-size must be multiples of 512"; return 1
    fi
    first=$((disk_offset / 16))
    printf 'KINDLING%07x\n' $(seq $first $((first + disk_size / 16 - 1))) > /tmp/pattern
    want=$(md5 < /tmp/pattern)
    if ! err=$(dd if=/tmp/pattern of="$disk_dev" bs=65536 seek="$disk_offset" \
            oflag=seek_bytes conv=notrunc,fsync 2>&1); then
        echo "DISK-WRITE-ERROR $(echo "$err" | head -n 1)"
        why="write refused"; return 1
    fi
    sync
    echo "DISK-WRITE $disk_dev $disk_offset $disk_size $want"
    blockdev --flushbufs "$disk_dev"
    got=$(dd if="$disk_dev" bs=65536 skip="$disk_offset" count="$disk_size" \
          iflag=skip_bytes,count_bytes 2>/dev/null | md5)
    echo "DISK-READBACK $got"
    rm -f /tmp/pattern
    [ "$got" = "$want" ] || { why="read back differs"; return 1; }
}

t_hwrng() {
    echo "HWRNG-CURRENT $(cat /sys/class/misc/hw_random/rng_current 2>/dev/null || echo none)"
    dd if=/dev/hwrng of=/tmp/rng bs="$rng_bytes" count=1 iflag=fullblock 2>/dev/null
    n=$(wc -c < /tmp/rng)
    echo "HWRNG $n $(md5 < /tmp/rng)"
    hex=$(hexdump -v -e '/1 "%02x"' /tmp/rng)
    echo "HWRNG-HEX $hex"
    rm -f /tmp/rng
    [ "$n" = "$rng_bytes" ] || { why="short read"; return 1; }
    case "$hex" in *[1-9a-f]*) ;; *) why="all zero"; return 1 ;; esac
}

t_hvc() {
    [ -c "$hvc_dev" ] || { why="no $hvc_dev"; return 1; }
    exec 3<>"$hvc_dev"
    # (while fd 3 is open: the tty forgets its settings on its last close)
    stty -echo icrnl <&3 2>/dev/null
    echo HVC-READY >&3
    echo "HVC-READY $hvc_dev"
    i=0
    while [ $i -lt "$hvc_lines" ]; do
        if ! IFS= read -r -t "$hvc_timeout" line <&3; then
            exec 3>&-
            why="no line"; return 1
        fi
        echo "HVC-ECHO $line" >&3
        echo "HVC-GOT $line"
        i=$((i + 1))
    done
    exec 3>&-
}

t_net() {
    [ -e "/sys/class/net/$net_if" ] || { why="no $net_if"; return 1; }
    echo "NET-MAC $(cat "/sys/class/net/$net_if/address")"
    ip link set lo up
    ip link set "$net_if" up
    how=dhcp
    case "$net_addr" in
        auto|dhcp)
            if ! udhcpc -i "$net_if" -s /etc/udhcpc.script -n -q -t 4 -T 2 >/tmp/dhcp 2>&1; then
                if [ "$net_addr" = dhcp ]; then
                    sed 's/^/NET-DHCP /' /tmp/dhcp
                    why="no DHCP lease"; return 1
                fi
                how=static
                ip addr add 10.0.2.15/24 dev "$net_if"
                ip route add default via 10.0.2.2
            fi ;;
        *)
            how=static
            ip addr add "$net_addr" dev "$net_if" || { why="bad net-addr"; return 1; }
            if [ -n "$net_gw" ]; then ip route add default via "$net_gw"; fi ;;
    esac
    set -- $(ip -4 -o addr show dev "$net_if")
    echo "NET-ADDR $4 $how"
    ok=0
    if [ -n "$net_ping" ]; then
        if ping -c 3 -W 2 "$net_ping" >/dev/null 2>&1; then
            echo "NET-PING $net_ping ok"
        else
            echo "NET-PING $net_ping FAIL"; why="ping"; ok=1
        fi
    fi
    if [ -n "$net_url" ]; then
        if timeout 60 wget -q -O /tmp/body "$net_url"; then
            n=$(wc -c < /tmp/body)
            echo "NET-GET $n $(md5 < /tmp/body)"
            if [ "$n" -le 4096 ]; then sed 's/^/NET-BODY /' /tmp/body; fi
        else
            echo "NET-GET FAIL"; why="wget"; ok=1
        fi
        rm -f /tmp/body
    fi
    if [ -n "$net_tcp" ]; then
        if echo KINDLING-NET-PING | timeout 30 nc "${net_tcp%:*}" "${net_tcp##*:}" > /tmp/tcp; then
            sed 's/^/NET-TCP /' /tmp/tcp
        else
            sed 's/^/NET-TCP /' /tmp/tcp
            echo "NET-TCP-FAIL"; why="nc"; ok=1
        fi
        rm -f /tmp/tcp
    fi
    return $ok
}

t_info() {
    echo "INFO-KERNEL $(uname -r)"
    echo "INFO-CPUS $(nproc)"
    set -- $(grep MemTotal /proc/meminfo)
    echo "INFO-MEM-KB $2"
    echo "INFO-CMDLINE $(cat /proc/cmdline)"
}

t_sleep() { sleep "$sleep_s"; }

t_privilege() {
    /bin/privcheck || why="privcheck failed"
    flags=
    for f in $(grep -m1 '^flags' /proc/cpuinfo); do
        case "$f" in smep|smap|umip|nx|pti) flags="$flags $f" ;; esac
    done
    echo "PRIV-FLAGS$flags"
    dmesg | grep -E 'Oops|BUG:|general protection|Kernel panic' > /tmp/klog
    sed 's/^/PRIV-KLOG /' /tmp/klog
    [ -s /tmp/klog ] && why="${why:+$why, }kernel log"
    rm -f /tmp/klog
    [ -z "$why" ]
}

t_smp() {
    /bin/smpcheck "$smp_ms" || why="smpcheck failed"
    dmesg | grep -E 'Oops|BUG:|WARNING:|general protection|Kernel panic' > /tmp/klog
    sed 's/^/SMP-KLOG /' /tmp/klog
    [ -s /tmp/klog ] && why="${why:+$why, }kernel log"
    rm -f /tmp/klog
    [ -z "$why" ]
}

shell() { exec setsid cttyhack sh; }

all=ok
for t in $tests; do
    why=
    case "$t" in
        virtio) t_virtio ;;
        disk-md5) t_disk_md5 ;;
        disk-write) t_disk_write ;;
        hwrng) t_hwrng ;;
        hvc) t_hvc ;;
        net) t_net ;;
        info) t_info ;;
        sleep) t_sleep ;;
        privilege) t_privilege ;;
        smp) t_smp ;;
        shell) shell ;;
        *) why="unknown test"; false ;;
    esac
    if [ $? = 0 ]; then
        echo "TEST $t ok"
    else
        echo "TEST $t FAIL${why:+ $why}"
        all=FAIL
    fi
done
[ -z "$tests" ] || echo "TESTS-DONE $all"

# Let the console finish sending before the board goes away: an
# interrupt-driven 8250 still holds the last lines in its transmit buffer
# when `reboot -f` runs (seen with Debian's kernel on the software CPU).
drain_console() {
    if [ ! -r /proc/tty/driver/serial ]; then
        sleep 0.2
        return
    fi
    last= n=0
    while [ $n -lt 40 ]; do
        now=$(grep -m1 '^0:' /proc/tty/driver/serial)
        [ "$now" = "$last" ] && return
        last=$now n=$((n + 1))
        sleep 0.05
    done
}

sync
if [ "$end" = auto ]; then
    if [ -d /sys/firmware/acpi ]; then end=poweroff; else end=reboot; fi
fi
echo "END $end"
case "$end" in reboot|poweroff|halt) drain_console ;; esac
case "$end" in
    reboot) reboot -f ;;
    poweroff) poweroff -f ;;
    halt) halt -f ;;
    hold) echo HOLD ;;
    shell) shell ;;
    *) echo "unknown end=$end" ;;
esac
sleep 2
[ "$end" = hold ] || echo END-FAILED
while :; do sleep 3600; done
INIT
chmod 755 "$root/init"

# --- the archive ----------------------------------------------------------
find "$root" -exec touch -h -d @0 {} +
mkdir -p "$(dirname "$out")"
tmp=$out.tmp.$$
# The kernel opens /dev/console before /init mounts devtmpfs, so the node
# must be in the archive (fakeroot lets a normal user make it).
pack='mknod -m 600 dev/console c 5 1 && touch -h -d @0 dev/console dev &&
      find . | LC_ALL=C sort | cpio --quiet --reproducible -o -H newc -R 0:0'
if [ "$(id -u)" = 0 ]; then
    (cd "$root" && sh -c "$pack") > "$tmp"
else
    (cd "$root" && fakeroot sh -c "$pack") > "$tmp"
fi
case "$out" in
    *.gz) gzip -9 -n < "$tmp" > "$tmp.gz" && mv "$tmp.gz" "$tmp" ;;
esac
mv "$tmp" "$out"
say "done: $out ($(wc -c < "$out") bytes, md5 $(md5sum < "$out" | cut -d' ' -f1))"
