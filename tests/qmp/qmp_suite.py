#!/usr/bin/env python3
"""QMP conversation suite, driven by QEMU's own client library (qemu.qmp).

usage: qmp_suite.py EMULATOR GUEST_ELF ACCEL [--compare QEMU]

Runs every check against EMULATOR (Kindling). With --compare, also runs the
query commands against QEMU with the same command line and checks that the
replies have the same shape (keys and JSON types).
Prints one line per check and ends with 'N passed, M failed'.
"""
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from qemu.qmp import QMPClient, ExecuteError

EMU, GUEST, ACCEL = sys.argv[1], sys.argv[2], sys.argv[3]
COMPARE = sys.argv[5] if len(sys.argv) > 5 and sys.argv[4] == "--compare" else None
TMP = tempfile.mkdtemp(prefix="kindling-qmp-")
results = []


def check(name):
    def wrap(fn):
        results.append((name, fn))
        return fn
    return wrap


class Vm:
    """An emulator process with a QMP unix socket."""

    n = 0

    def __init__(self, emu=EMU, append="hold", extra=(), wait=False):
        Vm.n += 1
        self.sock = os.path.join(TMP, f"q{Vm.n}.sock")
        args = [emu, "-M", "microvm,acpi=off", "-accel", ACCEL, "-m", "64m",
                "-nodefaults", "-no-user-config", "-display", "none",
                "-serial", "null", "-kernel", GUEST, "-append", append,
                "-qmp", f"unix:{self.sock},server=on,wait={'on' if wait else 'off'}",
                *extra]
        self.p = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not wait:
            deadline = time.time() + 10
            while not os.path.exists(self.sock):
                if time.time() > deadline or self.p.poll() is not None:
                    raise RuntimeError(f"no QMP socket: {self.p.stderr.read().decode()}")
                time.sleep(0.01)

    async def client(self):
        c = QMPClient("suite")
        for _ in range(200):
            try:
                await c.connect(self.sock)
                return c
            except Exception:
                await asyncio.sleep(0.02)
        raise RuntimeError("cannot connect")

    def wait(self, timeout=10):
        return self.p.wait(timeout)

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


async def next_event(c, name, timeout=10):
    async def find():
        async for ev in c.events:
            if ev["event"] == name:
                return ev
    return await asyncio.wait_for(find(), timeout)


def shape(v):
    """Keys and JSON types, recursively (lists by their first element)."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in sorted(v.items())}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return type(v).__name__


@check("greeting names Kindling and negotiation succeeds")
async def t_greeting():
    vm = Vm()
    try:
        c = await vm.client()
        assert c.greeting is not None
        ver = c.greeting.QMP.version
        assert "Kindling" in ver["package"], ver
        r = await c.execute("query-version")
        assert r["qemu"]["major"] == 10 and "Kindling" in r["package"], r
        await c.disconnect()
    finally:
        vm.close()


@check("every documented command is listed and answers")
async def t_commands():
    vm = Vm()
    try:
        c = await vm.client()
        names = {x["name"] for x in await c.execute("query-commands")}
        for n in ["qmp_capabilities", "query-version", "query-commands", "query-status",
                  "query-name", "query-uuid", "query-target", "query-kvm", "query-machines",
                  "query-cpus-fast", "query-chardev", "query-block", "stop", "cont",
                  "system_reset", "system_powerdown", "quit", "inject-nmi", "pmemsave",
                  "memsave", "human-monitor-command", "query-qmp-schema"]:
            assert n in names, n
        st = await c.execute("query-status")
        assert st["status"] == "running" and st["running"] is True, st
        assert (await c.execute("query-target"))["arch"] == "x86_64"
        kvm = await c.execute("query-kvm")
        assert kvm["enabled"] == (ACCEL == "kvm"), kvm
        cpus = await c.execute("query-cpus-fast")
        assert len(cpus) == 1 and cpus[0]["target"] == "x86_64"
        tid = cpus[0]["thread-id"]
        assert os.path.exists(f"/proc/{vm.p.pid}/task/{tid}"), "thread-id is a real thread"
        schema = await c.execute("query-qmp-schema")
        assert any(e["name"] == "query-status" and e["meta-type"] == "command" for e in schema)
        machines = await c.execute("query-machines")
        assert machines[0]["name"] == "microvm"
        chardevs = await c.execute("query-chardev")
        assert any(d["filename"].startswith("unix:") for d in chardevs), chardevs
        text = await c.execute("human-monitor-command", {"command-line": "info status"})
        assert text == "VM status: running\r\n", repr(text)
        regs = await c.execute("human-monitor-command", {"command-line": "info registers"})
        # QEMU's layout: a CPU header, then 32-bit lines for tiny-pvh's code.
        assert regs.startswith("\r\nCPU#0\r\nEAX=") and "EIP=" in regs, regs
        await c.disconnect()
    finally:
        vm.close()


@check("errors carry QEMU's classes and messages; the monitor keeps serving")
async def t_errors():
    vm = Vm()
    try:
        c = await vm.client()
        for cmd, args, cls, desc in [
            ("no-such-command", None, "CommandNotFound", "The command no-such-command has not been found"),
            ("pmemsave", {"val": 0}, "GenericError", "Parameter 'size' is missing"),
            ("pmemsave", {"val": "x", "size": 1, "filename": "/dev/null"}, "GenericError",
             "Invalid parameter type for 'val', expected: integer"),
            ("query-status", {"bogus": 1}, "GenericError", "Parameter 'bogus' is unexpected"),
        ]:
            try:
                await c.execute(cmd, args)
                raise AssertionError(f"{cmd} succeeded")
            except ExecuteError as e:
                assert e.error_class == cls and str(e) == desc, (e.error_class, str(e))
        assert (await c.execute("query-status"))["running"]
        await c.disconnect()
    finally:
        vm.close()


@check("malformed input gets error replies, never a stuck monitor")
async def t_malformed():
    vm = Vm()
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(vm.sock)
        f = s.makefile("rwb")
        json.loads(f.readline())
        def reply():
            # Events (e.g. X_BOOT_MILESTONE) may come between replies.
            while "event" in (m := json.loads(f.readline())):
                pass
            return m
        def ask(b):
            f.write(b); f.flush()
            return reply()
        r = ask(b'{"execute":"query-status"}\n')
        assert r["error"]["desc"] == "Expecting capabilities negotiation with 'qmp_capabilities'"
        assert "return" in ask(b'{"execute":"qmp_capabilities"}')
        assert ask(b"[1,2]")["error"]["desc"] == "QMP input must be a JSON object"
        assert ask(b'{"execute": nope}')["error"]["desc"].startswith("JSON parse error")
        assert ask(b'{"execute":"query-status","extra":1}')["error"]["desc"] == "QMP input member 'extra' is unexpected"
        assert ask(b'{"execute":7}')["error"]["desc"] == "QMP input member 'execute' must be a string"
        assert ask(b'{"arguments":{}}')["error"]["desc"] == "QMP input lacks member 'execute'"
        r = ask(b"\x01" + b'{"execute":"query-status","id":"after-junk"}')
        if "id" not in r:
            r = reply()
        assert r["id"] == "after-junk" and r["return"]["running"], r
        big = b'{"execute":"query-status","id":"' + b"x" * (4 << 20) + b'"}'
        r = ask(big)
        assert r["return"]["running"], "a 4 MiB message is still a message"
        s.sendall(b'{"execute":"query-st')  # truncated, then the client leaves
        s.close()
        c = await vm.client()
        assert (await c.execute("query-status"))["running"]
        await c.disconnect()
    finally:
        vm.close()


@check("stop and cont really stop and resume, with STOP and RESUME events")
async def t_stop_cont():
    vm = Vm()
    try:
        c = await vm.client()
        await c.execute("stop")
        ev = await next_event(c, "STOP")
        assert set(ev["timestamp"]) == {"seconds", "microseconds"}
        assert (await c.execute("query-status"))["status"] == "paused"
        r1 = await c.execute("human-monitor-command", {"command-line": "info registers"})
        time.sleep(0.1)
        r2 = await c.execute("human-monitor-command", {"command-line": "info registers"})
        assert r1 == r2, "registers don't move while paused"
        await c.execute("cont")
        await next_event(c, "RESUME")
        assert (await c.execute("query-status"))["status"] == "running"
        await c.disconnect()
    finally:
        vm.close()


@check("-S starts in prelaunch until cont")
async def t_prelaunch():
    vm = Vm(extra=["-S"])
    try:
        c = await vm.client()
        st = await c.execute("query-status")
        assert st == {"status": "prelaunch", "running": False}, st
        await c.execute("cont")
        await next_event(c, "RESUME")
        assert (await c.execute("query-status"))["status"] == "running"
        await c.disconnect()
    finally:
        vm.close()


@check("wait=on holds the machine until a client connects")
async def t_wait_on():
    vm = Vm(wait=True, extra=["-S"])
    try:
        deadline = time.time() + 10
        while not os.path.exists(vm.sock) and time.time() < deadline:
            time.sleep(0.01)
        c = await vm.client()
        assert (await c.execute("query-status"))["status"] == "prelaunch"
        await c.disconnect()
    finally:
        vm.close()


@check("system_reset reboots with a RESET event (host-qmp-system-reset)")
async def t_reset():
    vm = Vm()
    try:
        c = await vm.client()
        await c.execute("system_reset")
        ev = await next_event(c, "RESET")
        assert ev["data"] == {"guest": False, "reason": "host-qmp-system-reset"}, ev
        assert (await c.execute("query-status"))["running"]
        await c.disconnect()
    finally:
        vm.close()


@check("guest triple fault: RESET (guest-reset), or SHUTDOWN under -no-reboot")
async def t_guest_reset():
    vm = Vm(append="x", extra=["-S"])
    try:
        c = await vm.client()
        await c.execute("cont")
        ev = await next_event(c, "RESET")
        assert ev["data"] == {"guest": True, "reason": "guest-reset"}, ev
        await c.disconnect()
    finally:
        vm.close()
    vm = Vm(append="x", extra=["-S", "-no-reboot"])
    try:
        c = await vm.client()
        await c.execute("cont")
        ev = await next_event(c, "SHUTDOWN")
        assert ev["data"] == {"guest": True, "reason": "guest-reset"}, ev
        assert vm.wait() == 0
    finally:
        vm.close()


@check("quit: SHUTDOWN (host-qmp-quit) and exit status 0")
async def t_quit():
    vm = Vm()
    try:
        c = await vm.client()
        await c.execute("quit")
        ev = await next_event(c, "SHUTDOWN")
        assert ev["data"] == {"guest": False, "reason": "host-qmp-quit"}, ev
        assert vm.wait() == 0
    finally:
        vm.close()


@check("SIGTERM: SHUTDOWN (host-signal) and exit status 0")
async def t_signal():
    vm = Vm()
    try:
        c = await vm.client()
        vm.p.send_signal(signal.SIGTERM)
        ev = await next_event(c, "SHUTDOWN")
        assert ev["data"] == {"guest": False, "reason": "host-signal"}, ev
        assert vm.wait() == 0
    finally:
        vm.close()


@check("events reach every negotiated client, in order")
async def t_many_clients():
    vm = Vm()
    try:
        cs = [await vm.client() for _ in range(3)]
        await cs[0].execute("stop")
        await cs[1].execute("cont")
        for c in cs:
            assert (await next_event(c, "STOP"))["event"] == "STOP"
            assert (await next_event(c, "RESUME"))["event"] == "RESUME"
        for c in cs:
            await c.disconnect()
    finally:
        vm.close()


@check("100 connect/disconnect cycles while the guest runs")
async def t_churn():
    vm = Vm()
    try:
        for i in range(100):
            c = await vm.client()
            if i % 10 == 0:
                assert (await c.execute("query-status"))["running"]
            await c.disconnect()
        assert vm.p.poll() is None
    finally:
        vm.close()


@check("pmemsave writes guest-physical memory")
async def t_pmemsave():
    vm = Vm()
    try:
        c = await vm.client()
        out = os.path.join(TMP, "pmem.bin")
        await c.execute("pmemsave", {"val": 0x100000, "size": 64, "filename": out})
        with open(GUEST, "rb") as g:
            g.seek(0x80)  # tiny-pvh.elf's PT_LOAD: file offset 0x80 -> 1 MiB
            want = g.read(64)
        assert open(out, "rb").read() == want
        await c.disconnect()
    finally:
        vm.close()


# Reply members older QEMU releases have and QEMU 10 removed.
DROPPED_BY_QEMU_10 = {"query-status": ("singlestep",)}


@check("replies have QEMU's shape (keys and types)")
async def t_compare():
    # A comparison that did not run is not a pass.
    assert COMPARE, "no reference QEMU (--compare): the shape comparison did not run"
    cmds = ["query-status", "query-version", "query-kvm", "query-name", "query-uuid",
            "query-target", "query-cpus-fast", "query-block"]
    shapes = {}
    for emu in (EMU, COMPARE):
        vm = Vm(emu=emu)
        try:
            c = await vm.client()
            shapes[emu] = {cmd: shape(await c.execute(cmd)) for cmd in cmds}
            ch = await c.execute("query-chardev")
            shapes[emu]["query-chardev"] = shape([d for d in ch if d["filename"].startswith("unix:")])
            m = [x for x in await c.execute("query-machines") if x["name"] == "microvm"]
            shapes[emu]["query-machines"] = sorted(m[0].keys())
            await c.disconnect()
        finally:
            vm.close()
    for cmd in shapes[EMU]:
        ours, theirs = shapes[EMU][cmd], shapes[COMPARE][cmd]
        # Kindling answers as QEMU 10 does; members an older reference QEMU
        # still has and QEMU 10 dropped are not held against it.
        for gone in DROPPED_BY_QEMU_10.get(cmd, ()):
            if isinstance(theirs, dict):
                theirs.pop(gone, None)
        if cmd == "query-machines":
            # QEMU 10 added "acpi"; an older reference QEMU lacks it. Every
            # key the reference has must be ours too.
            missing = set(theirs) - set(ours)
            assert not missing, f"{cmd}: missing {missing}"
            continue
        assert ours == theirs, f"{cmd}: kindling {ours} vs qemu {theirs}"


async def main():
    passed = failed = 0
    for name, fn in results:
        try:
            await asyncio.wait_for(fn(), 60)
            print(f"ok   {name}")
            passed += 1
        except Exception as e:  # report and go on
            print(f"FAIL {name}: {type(e).__name__}: {e}")
            failed += 1
    print(f"{passed} passed, {failed} failed")
    return failed


def quiet_eof(loop, context):
    # The client library reports the server's EOF after quit/SIGTERM as an
    # unretrieved exception; that EOF is expected.
    if isinstance(context.get("exception"), EOFError):
        return
    loop.default_exception_handler(context)


async def run():
    asyncio.get_running_loop().set_exception_handler(quiet_eof)
    return await main()


sys.exit(1 if asyncio.run(run()) else 0)
