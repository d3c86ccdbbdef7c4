#!/usr/bin/env python3
"""A Debian 12 system booted to multi-user.target, side by side with QEMU TCG.

usage: benches/boot_debian_system.py [--runs N] [--jit] [--no-interp]
           [--no-qemu] [--icount] [--kindling PATH] [--qemu PATH]

The system is built from Debian packages by
scripts/guest/debian-system-path.sh (debootstrap minbase, systemd,
linux-image-amd64 with its initramfs-tools initrd, on a raw ext4 virtio-blk
disk). Every emulator gets the same microvm command line with acpi=on
(Debian's kernel finds virtio-mmio devices only through ACPI), the same
kernel, initrd and kernel arguments plus kindling.poweroff=1, and a fresh
copy of the disk per run; QEMU also gets -cpu max and tsc_early_khz= (its
TCG needs them). Runs of the emulators alternate. Each run is timed from
process start to the first console byte (QEMU's: the real-mode setup's
"Probing EDD"; Kindling enters the kernel in 64-bit mode), to the kernel's
first log line ("Linux version", shown when the serial console
registers), to "Run /init", to the root mount
("EXT4-fs (vda): mounted"), to the KINDLING-MULTI-USER-OK line that
boot-ok.service prints once multi-user.target is reached, and to the
process's exit after the guest powers off, and the process's CPU time
(user + system, all threads: steadier than wall time on a loaded host) is
taken at its exit; the guest's own systemd-analyze figures are read from
the console. The table gives medians and Kindling's median over QEMU's for
the time to multi-user and for the CPU time.

--jit adds Kindling with KINDLING_JIT=1 (the compiled tier). --icount runs
each emulator once more with -icount shift=0 and reads QMP query-replay's
instruction count at each milestone (the read follows the console line by
the host's reaction time, a few milliseconds of guest time).
Environment: KINDLING_DEBIAN_SYSTEM (a built system directory to use).
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bootlib import ROOT, Console, Qmp, guest_path, host_tsc_khz

TIMEOUT_S = 1800
MARKER = "KINDLING-MULTI-USER-OK"
MILESTONES = [
    ("kernel log", "Linux version "),
    ("Run /init", "Run /init as init process"),
    ("root mounted", "EXT4-fs (vda): mounted"),
    ("multi-user", MARKER),
]
DONE = "KINDLING-BOOT-DONE"


def command(emu, system, qemu, disk, qmp=None, icount=False):
    with open(os.path.join(system, "cmdline")) as f:
        append = f.read().strip() + " kindling.poweroff=1"
    args = [emu, "-M", "microvm,acpi=on", "-accel", "tcg", "-m", "512m", "-smp", "1",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-serial", "stdio",
            "-kernel", os.path.join(system, "vmlinuz"),
            "-initrd", os.path.join(system, "initrd.img"),
            "-drive", f"id=d,file={disk},format=raw,if=none",
            "-device", "virtio-blk-device,drive=d"]
    if qemu:
        append += f" tsc_early_khz={host_tsc_khz()}"
        args += ["-cpu", "max"]
    if icount:
        args += ["-icount", "shift=0"]
    if qmp:
        args += ["-qmp", f"unix:{qmp},server=on,wait=off"]
    return args + ["-append", append]


def seconds(text):
    """systemd's time span ("1min 2.345s", "850ms") in seconds."""
    units = {"h": 3600, "min": 60, "s": 1, "ms": 1e-3, "us": 1e-6}
    return sum(float(n) * units[u] for n, u in re.findall(r"([\d.]+)(h|min|ms|us|s)\b", text))


def analyze(text):
    """{kernel, initrd, userspace} seconds from systemd-analyze's line."""
    m = re.search(r"KINDLING-ANALYZE Startup finished in (.*?) = ", text)
    if not m:
        return {}
    parts = {}
    for part in m.group(1).split(" + "):
        name = re.search(r"\((\w+)\)", part)
        if name:
            parts[name.group(1)] = seconds(part[:name.start()])
    return parts


def boot_once(name, emu, qemu, env, system, icount=False):
    """One boot: {milestone: seconds}, systemd-analyze's figures and, with
    icount, {milestone: instructions}."""
    tmp = tempfile.mkdtemp(prefix="kindling-debsys-")
    try:
        disk = os.path.join(tmp, "disk.img")
        subprocess.run(["cp", "--sparse=always", os.path.join(system, "disk.img"), disk], check=True)
        qmp_path = os.path.join(tmp, "qmp.sock") if icount else None
        con = Console(command(emu, system, qemu, disk, qmp_path, icount), env=env)
        deadline = con.start + TIMEOUT_S
        counts = {}
        try:
            qmp = Qmp(qmp_path) if icount else None

            def count(s):
                if qmp:
                    counts[s] = qmp.execute("query-replay").get("icount")

            wanted = [s for _, s in MILESTONES] + [DONE]
            seen = con.read_until(wanted, deadline, count)
            if MARKER not in seen:
                raise RuntimeError(f"{name}: no {MARKER} (last output: {con.tail()!r})")
            times = {label: seen.get(s) for label, s in MILESTONES}
            times["first output"] = con.first_byte
            times["exit"], times["cpu"] = con.wait_exit(deadline)
            if qmp:
                qmp.close()
            return times, analyze(con.text.decode(errors="replace")), \
                {label: counts.get(s) for label, s in MILESTONES}
        finally:
            con.kill()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, unit=""):
    return f"{v:.2f}{unit}" if v is not None else "-"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jit", action="store_true", help="also Kindling with KINDLING_JIT=1")
    ap.add_argument("--no-interp", action="store_true", help="no Kindling interpreter runs")
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--icount", action="store_true",
                    help="also one -icount shift=0 run each, counting instructions")
    ap.add_argument("--kindling", default=os.path.join(ROOT, "target/release/kindling"))
    ap.add_argument("--qemu", default="/usr/bin/qemu-system-x86_64")
    a = ap.parse_args()
    system = guest_path("debian-system-path.sh")
    plain = {k: v for k, v in os.environ.items() if k != "KINDLING_JIT"}
    emus = []
    if not a.no_interp:
        emus.append(("kindling", a.kindling, False, plain))
    if a.jit:
        emus.append(("kindling-jit", a.kindling, False, dict(plain, KINDLING_JIT="1")))
    if not a.no_qemu and os.path.exists(a.qemu):
        emus.append(("qemu-tcg", a.qemu, True, plain))
    elif not a.no_qemu:
        print(f"note: {a.qemu} not found; Kindling only", file=sys.stderr)

    results = {name: [] for name, *_ in emus}
    for run in range(a.runs):
        for name, emu, qemu, env in emus:
            results[name].append(boot_once(name, emu, qemu, env, system))
            t = results[name][-1][0]
            print(f"run {run + 1} {name}: multi-user {t['multi-user']:.2f} s", file=sys.stderr)

    labels = ["first output"] + [label for label, _ in MILESTONES] + ["exit", "cpu"]
    print(f"system: {system} ({a.runs} runs each, -M microvm,acpi=on -smp 1 -m 512m; "
          "medians of seconds from process start; cpu: the process's user+system seconds)")
    print(f"{'emulator':<13}" + "".join(f"{lab:>13}" for lab in labels)
          + f"{'m-u / qemu':>12}{'cpu / qemu':>12}")
    qemu = {lab: median([r[0][lab] for r in results.get("qemu-tcg", [])]) for lab in labels}
    for name, runs in results.items():
        meds = dict((lab, median([r[0][lab] for r in runs])) for lab in labels)
        ratios = [fmt(meds[k] / qemu[k], "x") if qemu[k] and meds[k] else "-"
                  for k in ("multi-user", "cpu")]
        print(f"{name:<13}" + "".join(f"{fmt(meds[lab]):>13}" for lab in labels)
              + "".join(f"{r:>12}" for r in ratios))
    print("guest's systemd-analyze (medians, seconds of guest time):")
    print(f"{'emulator':<13}{'kernel':>10}{'initrd':>10}{'userspace':>11}")
    for name, runs in results.items():
        meds = [median([r[1].get(k) for r in runs]) for k in ("kernel", "initrd", "userspace")]
        print(f"{name:<13}" + "".join(f"{fmt(m):>10}" for m in meds[:2]) + f"{fmt(meds[2]):>11}")

    if a.icount:
        print("-icount shift=0, one run each: guest instructions retired "
              "(QMP query-replay at each console line)")
        print(f"{'emulator':<13}" + "".join(f"{lab:>18}" for lab, _ in MILESTONES)
              + f"{'multi-user s':>14}")
        for name, emu, qemu, env in emus:
            try:
                times, _, counts = boot_once(name, emu, qemu, env, system, icount=True)
            except RuntimeError as e:
                print(f"{name:<13} failed: {e}")
                continue
            print(f"{name:<13}" + "".join(f"{counts[lab] or 0:>18,}" for lab, _ in MILESTONES)
                  + f"{times['multi-user']:>14.2f}")


if __name__ == "__main__":
    main()
