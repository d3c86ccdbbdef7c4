"""Shared pieces of the Python boot benchmarks (boot_stock_kernel.py,
boot_debian_system.py): the repository root, the guest path scripts, QEMU's
TSC hint, a console reader that timestamps milestones and a minimal QMP
client for reading instruction counts.
"""
import json
import os
import select
import socket
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def host_tsc_khz():
    """The host's TSC rate for QEMU's tsc_early_khz= (its TCG needs it)."""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("cpu MHz"):
                return int(float(line.split(":")[1]) * 1000)
    return 2_600_000


def guest_path(script):
    """What scripts/guest/SCRIPT prints: the path of a cached guest piece."""
    return subprocess.run([os.path.join(ROOT, "scripts/guest", script)],
                          check=True, capture_output=True, text=True).stdout.strip()


class Console:
    """A started emulator whose serial console (stdout) is read as it comes,
    each milestone string timed from process start the first time it shows."""

    def __init__(self, args, env=None, stderr=subprocess.DEVNULL):
        self.start = time.monotonic()
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=stderr, env=env)
        self.text = b""
        self.first_byte = None

    def _read(self, deadline):
        """The next console bytes; b"" at EOF, None at the deadline."""
        fd = self.proc.stdout.fileno()
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 65536)
        if chunk and self.first_byte is None:
            self.first_byte = time.monotonic() - self.start
        self.text += chunk
        return chunk

    def read_until(self, wanted, deadline, on_seen=None):
        """Read until every string of `wanted` has shown (or EOF or the
        deadline); returns {string: seconds from start}. `on_seen(s)` runs
        as soon as `s` shows."""
        seen = {}
        scanned = 0
        while len(seen) < len(wanted):
            if not self._read(deadline):
                break
            now = time.monotonic() - self.start
            # Re-scan a little of the old text so a string split over two
            # reads is found.
            window = self.text[max(0, scanned - 256):]
            scanned = len(self.text)
            for s in wanted:
                if s not in seen and s.encode() in window:
                    seen[s] = now
                    if on_seen:
                        on_seen(s)
        return seen

    def wait_exit(self, deadline):
        """(seconds from start to the process's exit, CPU seconds it used in
        all its threads), or (None, None) at the deadline (the process is
        then killed)."""
        while self._read(deadline):
            pass
        left = deadline - time.monotonic()
        while left > 0:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                return time.monotonic() - self.start, usage.ru_utime + usage.ru_stime
            time.sleep(min(0.005, left))
            left = deadline - time.monotonic()
        self.kill()
        return None, None

    def tail(self, n=600):
        return self.text.decode(errors="replace")[-n:]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class Qmp:
    """A QMP session over a Unix socket: negotiated on connect, one command
    at a time, events skipped."""

    def __init__(self, path, timeout_s=30):
        end = time.monotonic() + timeout_s
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > end:
                    raise
                time.sleep(0.02)
        self.file = self.sock.makefile("rb")
        json.loads(self.file.readline())  # the greeting
        self.execute("qmp_capabilities")

    def execute(self, command):
        self.sock.sendall(json.dumps({"execute": command}).encode() + b"\n")
        while True:
            reply = json.loads(self.file.readline())
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise RuntimeError(f"{command}: {reply['error']}")

    def close(self):
        self.file.close()
        self.sock.close()
