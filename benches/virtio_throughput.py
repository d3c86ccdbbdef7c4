#!/usr/bin/env python3
"""Guest I/O throughput on the software CPU, side by side with QEMU TCG.

usage: benches/virtio_throughput.py [KINDLING] [QEMU]

Boots the test guest (vmlinux, a shell as init) on each emulator with the
same command line, then inside the guest:
  - disk read:  dd a 64 MiB raw image from /dev/vda to /dev/null;
  - disk write: dd 64 MiB of zeros to /dev/vda with conv=fsync
    (both timed in the guest with busybox time, i.e. guest time);
  - TCP:        send 32 MiB over user-mode networking (libslirp) to a host
                server at 10.0.2.2, timed on the host from first to last byte.
Prints one table row per emulator and measurement (MB/s). Needs the guest
(KINDLING_GUEST_DIR or ../shared/guest) and qemu-system-x86_64 for the
comparison.
"""
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDLING = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/kindling")
QEMU = sys.argv[2] if len(sys.argv) > 2 else "/usr/bin/qemu-system-x86_64"
GUEST = os.environ.get("KINDLING_GUEST_DIR", os.path.join(ROOT, "../shared/guest"))
MIB = 1 << 20
DISK_MIB = 64
NET_MIB = 32


class Shell:
    """A guest shell on the emulator's serial console."""

    def __init__(self, emu, disk, qemu):
        append = "console=ttyS0 reboot=t panic=-1 quiet rdinit=/bin/sh"
        if qemu:
            append += " tsc_early_khz=2600000"
        args = [emu, "-M", "microvm,acpi=off", "-accel", "tcg", "-m", "256m",
                "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-serial", "stdio",
                "-kernel", os.path.join(GUEST, "vmlinux"),
                "-initrd", os.path.join(GUEST, "initramfs.cpio"),
                "-drive", f"id=d0,file={disk},format=raw,if=none",
                "-device", "virtio-blk-device,drive=d0",
                "-netdev", "user,id=n0", "-device", "virtio-net-device,netdev=n0",
                "-append", append]
        if qemu:
            args += ["-cpu", "max"]
        self.p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
        self.out = b""
        threading.Thread(target=self._read, daemon=True).start()
        self.expect(b"# ", 120)

    def _read(self):
        while True:
            b = self.p.stdout.read1(4096)
            if not b:
                return
            self.out += b

    def expect(self, pattern, timeout=300):
        deadline = time.time() + timeout
        start = len(self.out)
        while time.time() < deadline:
            m = re.search(pattern, self.out[start:])
            if m:
                return m
            time.sleep(0.02)
        raise TimeoutError(f"{pattern!r} not seen:\n{self.out[-2000:].decode(errors='replace')}")

    def run(self, cmd, done_marker):
        self.out_mark = len(self.out)
        self.p.stdin.write(cmd.encode() + b"\n")
        self.p.stdin.flush()
        return self.expect(done_marker)

    def close(self):
        try:
            self.p.stdin.write(b"reboot -f\n")
            self.p.stdin.flush()
            self.p.wait(timeout=30)
        except Exception:
            self.p.kill()


def dd_rate(text, mib):
    """MB/s from busybox time's "real XmY.YYs" line for `mib` MiB moved."""
    m = re.search(rb"real\s+(\d+)m\s*([\d.]+)s", text)
    if not m:
        return None
    secs = int(m.group(1)) * 60 + float(m.group(2))
    return mib / max(secs, 1e-3)


def net_rate(sh):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    result = {}

    def serve():
        c, _ = srv.accept()
        total, first = 0, None
        while True:
            b = c.recv(1 << 16)
            if not b:
                break
            if first is None:
                first = time.time()
            total += len(b)
        result["rate"] = total / max(time.time() - first, 1e-9) / MIB if first else None
        result["bytes"] = total

    t = threading.Thread(target=serve)
    t.start()
    sh.run("busybox ip link set eth0 up; busybox ip addr add 10.0.2.15/24 dev eth0; "
           "busybox ip route add default via 10.0.2.2; echo net$((1+1))ready", rb"net2ready")
    sh.run(f"busybox dd if=/dev/zero bs=64k count={NET_MIB * 16} 2>/dev/null | "
           f"busybox nc 10.0.2.2 {port}; echo net$((2+1))done", rb"net3done")
    t.join(timeout=300)
    srv.close()
    return result.get("rate") if result.get("bytes") == NET_MIB * MIB else None


def measure(name, emu, qemu):
    with tempfile.TemporaryDirectory() as tmp:
        disk = os.path.join(tmp, "disk.img")
        with open(disk, "wb") as f:
            f.write(os.urandom(DISK_MIB * MIB))
        sh = Shell(emu, disk, qemu)
        try:
            sh.run("mount -t devtmpfs dev /dev; echo dev$((1+1))ok", rb"dev2ok")
            sh.run("busybox time busybox dd if=/dev/vda of=/dev/null bs=1M; echo rd$((1+1))done",
                   rb"rd2done")
            read = dd_rate(sh.out[sh.out_mark:], DISK_MIB)
            sh.run(f"busybox time busybox dd if=/dev/zero of=/dev/vda bs=1M count={DISK_MIB} "
                   "conv=fsync; echo wr$((1+1))done", rb"wr2done")
            write = dd_rate(sh.out[sh.out_mark:], DISK_MIB)
            net = net_rate(sh)
        finally:
            sh.close()
    for what, v in (("disk read 64 MiB", read), ("disk write 64 MiB + fsync", write),
                    ("TCP 32 MiB, user networking", net)):
        print(f"| {name} | {what} | {v:.1f} MB/s |" if v else f"| {name} | {what} | failed |",
              flush=True)


def main():
    print("| emulator | measurement | throughput |")
    print("|---|---|---|")
    measure("Kindling", KINDLING, False)
    if os.path.exists(QEMU):
        measure("qemu-system-x86_64 -accel tcg", QEMU, True)


if __name__ == "__main__":
    main()
