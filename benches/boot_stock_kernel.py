#!/usr/bin/env python3
"""A stock Debian kernel's boot on the software CPU, side by side with QEMU TCG.

usage: benches/boot_stock_kernel.py [--runs N] [--smp N] [KINDLING] [QEMU]

The kernel is Debian's own build (the image linux-image-amd64 depends on),
fetched once by scripts/guest/stock-kernel-path.sh; the initramfs is the
shared test guest's busybox one, whose /init prints BOOT-OK. Both emulators
get the same microvm command line with acpi=off; QEMU is given -cpu max and
tsc_early_khz= (its TCG needs them). Each run is timed from process start
to the BOOT-OK line, runs of the two emulators alternate, and the table
gives the median, the fastest run and Kindling's median over QEMU's.
Environment: KINDLING_GUEST_DIR (default ../shared/guest) and
KINDLING_STOCK_KERNEL (a vmlinuz to use instead of Debian's).
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

from bootlib import ROOT, guest_path, host_tsc_khz

GUEST = os.environ.get("KINDLING_GUEST_DIR", os.path.join(ROOT, "../shared/guest"))
TIMEOUT_S = 600


def command(emu, kernel, qemu, smp):
    append = "console=ttyS0 acpi=off reboot=t panic=-1 quiet"
    args = [emu, "-M", "microvm,acpi=off", "-accel", "tcg", "-m", "512m",
            "-smp", str(smp), "-nodefaults", "-no-user-config", "-display", "none",
            "-no-reboot", "-serial", "stdio", "-kernel", kernel,
            "-initrd", os.path.join(GUEST, "initramfs.cpio")]
    if qemu:
        append += f" tsc_early_khz={host_tsc_khz()}"
        args += ["-cpu", "max"]
    return args + ["-append", append]


def boot_once(args):
    """Seconds from start to the guest's BOOT-OK line."""
    start = time.monotonic()
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    try:
        seen = b""
        while time.monotonic() - start < TIMEOUT_S:
            chunk = p.stdout.read1(4096)
            if not chunk:
                break
            seen = (seen + chunk)[-4096:]
            if b"BOOT-OK" in seen:
                return time.monotonic() - start
        tail = seen.decode(errors="replace")[-400:]
        raise RuntimeError(f"{args[0]}: no BOOT-OK (last output: {tail!r})")
    finally:
        p.kill()
        p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--smp", type=int, default=1)
    ap.add_argument("kindling", nargs="?", default=os.path.join(ROOT, "target/release/kindling"))
    ap.add_argument("qemu", nargs="?", default="/usr/bin/qemu-system-x86_64")
    a = ap.parse_args()
    kernel = guest_path("stock-kernel-path.sh")
    emus = [("kindling", a.kindling, False)]
    if os.path.exists(a.qemu):
        emus.append(("qemu-tcg", a.qemu, True))
    else:
        print(f"note: {a.qemu} not found; Kindling only", file=sys.stderr)
    times = {name: [] for name, _, _ in emus}
    for _ in range(a.runs):
        for name, emu, qemu in emus:
            times[name].append(boot_once(command(emu, kernel, qemu, a.smp)))
    print(f"kernel: {os.path.basename(kernel)}, shared initramfs, acpi=off, -smp {a.smp}, "
          f"{a.runs} runs each (start -> BOOT-OK)")
    print(f"{'emulator':<10} {'median s':>9} {'best s':>8}")
    for name, ts in times.items():
        print(f"{name:<10} {statistics.median(ts):>9.2f} {min(ts):>8.2f}")
    if "qemu-tcg" in times:
        ratio = statistics.median(times["kindling"]) / statistics.median(times["qemu-tcg"])
        print(f"kindling / qemu-tcg: {ratio:.2f}x")


if __name__ == "__main__":
    main()
