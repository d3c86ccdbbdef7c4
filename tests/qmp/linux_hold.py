#!/usr/bin/env python3
"""QMP lifecycle of a real Linux guest on the software CPU, driven by QEMU's
own client library (qemu.qmp).

usage: linux_hold.py EMULATOR KERNEL INITRD

Boots Linux with ACPI and `bench=hold` (prints HOLD, then sleeps), then:
stop really stops the vCPU, cont resumes it, system_reset reboots the
guest, system_powerdown presses the ACPI power button (POWERDOWN; the
shared kernel has no button driver and ignores it, as under QEMU), and
quit ends the process with SHUTDOWN and status 0.
Prints one line per step; exits non-zero on the first failure.
"""
import asyncio
import os
import subprocess
import sys
import tempfile
import time

from qemu.qmp import QMPClient

EMU, KERNEL, INITRD = sys.argv[1], sys.argv[2], sys.argv[3]
TMP = tempfile.mkdtemp(prefix="kindling-linux-qmp-")
SOCK = os.path.join(TMP, "qmp.sock")
CONSOLE = os.path.join(TMP, "console.txt")


def console():
    with open(CONSOLE, "rb") as f:
        return f.read().decode(errors="replace")


async def wait_console(text, count=1, timeout=120):
    deadline = time.time() + timeout
    while console().count(text) < count:
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {text!r} x{count}:\n{console()}")
        await asyncio.sleep(0.05)


async def next_event(c, name, timeout=60):
    async def find():
        async for ev in c.events:
            if ev["event"] == name:
                return ev
    return await asyncio.wait_for(find(), timeout)


def step(msg):
    print(f"ok   {msg}", flush=True)


async def main():
    p = subprocess.Popen(
        [EMU, "-M", "microvm,acpi=on", "-accel", "tcg", "-m", "256m",
         "-nodefaults", "-no-user-config", "-display", "none",
         "-serial", f"file:{CONSOLE}", "-kernel", KERNEL, "-initrd", INITRD,
         "-append", "console=ttyS0 panic=-1 quiet bench=hold",
         "-qmp", f"unix:{SOCK},server=on,wait=off"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 20
        while not os.path.exists(SOCK):
            if time.time() > deadline or p.poll() is not None:
                raise AssertionError(f"no QMP socket: {p.stderr.read().decode()}")
            await asyncio.sleep(0.02)
        c = QMPClient("linux")
        await c.connect(SOCK)
        await wait_console("HOLD")
        st = await c.execute("query-status")
        assert st["status"] == "running" and st["running"], st
        step("Linux reached bench=hold; query-status: running")

        await c.execute("stop")
        await next_event(c, "STOP")
        st = await c.execute("query-status")
        assert st["status"] == "paused", st
        regs1 = await c.execute("human-monitor-command", {"command-line": "info registers"})
        size1 = len(console())
        await asyncio.sleep(0.5)
        regs2 = await c.execute("human-monitor-command", {"command-line": "info registers"})
        assert regs1 == regs2, "registers changed while paused"
        assert len(console()) == size1, "console output while paused"
        step("stop: STOP event, paused, registers frozen for 0.5 s")

        await c.execute("cont")
        await next_event(c, "RESUME")
        st = await c.execute("query-status")
        assert st["status"] == "running", st
        step("cont: RESUME event, running again")

        await c.execute("system_reset")
        ev = await next_event(c, "RESET")
        assert ev["data"] == {"guest": False, "reason": "host-qmp-system-reset"}, ev
        await wait_console("BOOT-OK", 2)
        await wait_console("HOLD", 2)
        step("system_reset: RESET event, the guest booted again to HOLD")

        await c.execute("system_powerdown")
        await next_event(c, "POWERDOWN")
        # The shared kernel has no ACPI button driver, so (as under QEMU)
        # the press is delivered and ignored: the guest keeps running.
        await asyncio.sleep(0.5)
        st = await c.execute("query-status")
        assert st["status"] == "running", st
        step("system_powerdown: POWERDOWN event; this guest ignores the button")

        await c.execute("quit")
        ev = await next_event(c, "SHUTDOWN")
        assert ev["data"] == {"guest": False, "reason": "host-qmp-quit"}, ev
        step("quit: SHUTDOWN host-qmp-quit")
        code = p.wait(timeout=30)
        assert code == 0, f"exit status {code}: {p.stderr.read().decode()}"
        step("the process exited with status 0")
        try:
            await c.disconnect()
        except EOFError:
            # The server closed the connection after `quit` (as QEMU's
            # does) before the client's reader was told to stop.
            pass
    finally:
        if p.poll() is None:
            p.kill()


asyncio.run(main())
print("all steps passed")
