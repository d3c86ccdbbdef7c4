#!/usr/bin/env python3
"""Boot-time benchmark runner: boots one or more command lines N times and
tabulates every boot milestone.

usage: benches/bootbench.py [-n N] [--order interleaved|sequential]
           [--warmup K] [--booted TEXT] [--svg FILE] [--chart-metric time|icount]
           [--json FILE] [--timeout S] NAME=COMMAND [NAME=COMMAND ...]
       benches/bootbench.py --from-json FILE [--svg FILE] [--chart-metric ...]

Each NAME=COMMAND is a variant: a whole emulator command line in shell
quoting, e.g.

  kindling='target/release/kindling -M microvm,acpi=off -accel tcg ...'
  qemu='qemu-system-x86_64 -M microvm,acpi=off -accel tcg -cpu max ...'

A Kindling binary (recognised by its -version banner) gets
-kindling-boot-report, and its milestones come from the JSON report: times
since its process started and, with -icount, exact instruction counts.
Any other QEMU-compatible emulator is timed from outside: milestones come
from its serial console on stdout (first byte, Linux's well-known lines,
the --booted text), stamped as the runner reads them, relative to the
spawn. Every variant also gets `wall`, the runner's own spawn-to-reaped
time.

Boots run one at a time, interleaved across variants by default (so host
drift hits every variant alike); `--order sequential` runs each variant's
boots together. The report gives per milestone min/median/max and the
spread ((max-min)/median), the instruction count (and whether it was the
same on every run), the per-phase costs (median time and instructions
between consecutive milestones) and how noisy the host was: the spread
of a fixed CPU calibration loop run before every boot, the load average
and the CPU time stolen by the hypervisor. --svg draws each variant's
phases as a stacked bar (median time, or instructions with
--chart-metric icount) with the min-max range of the whole boot; --json
saves the boots, and --from-json tabulates and draws them again.
Only the standard library is used.
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

# Linux lines every boot prints unless `quiet` (the same table as
# machine/src/console_tap.rs), in boot order.
LINUX_LINES = [
    ("linux-banner", b"Linux version "),
    ("linux-initramfs", b"Unpacking initramfs"),
    ("linux-initramfs", b"Trying to unpack rootfs image as initramfs"),
    ("linux-free-initmem", b"Freeing unused kernel image"),
    ("linux-run-init", b" as init process"),
    ("linux-panic", b"Kernel panic - not syncing"),
]
MARKERS = ("debug-port", "boot-timer")


def is_kindling(prog):
    try:
        out = subprocess.run([prog, "-version"], capture_output=True, timeout=30).stdout
    except OSError as e:
        sys.exit(f"bootbench: {prog}: {e}")
    return b"Kindling" in out


class Variant:
    def __init__(self, spec):
        name, sep, cmd = spec.partition("=")
        if not sep or not name or not cmd.strip():
            sys.exit(f"bootbench: variant '{spec}': expected NAME=COMMAND")
        self.name = name
        self.argv = shlex.split(cmd)
        self.kindling = is_kindling(self.argv[0])
        self.boots = []  # one {milestone: (t_us, icount or None)} per run
        self.exact = False


class SerialWatch:
    """Milestones in a console byte stream, stamped by the caller."""

    def __init__(self, booted):
        self.booted = booted.encode() if booted else None
        self.line = b""
        self.tail = b""
        self.found = {}

    def feed(self, chunk, t_us):
        if not chunk:
            return
        self.found.setdefault("console-first-byte", t_us)
        if self.booted and "booted" not in self.found:
            self.tail = (self.tail + chunk)[-(len(self.booted) + len(chunk)):]
            if self.booted in self.tail:
                self.found["booted"] = t_us
        parts = (self.line + chunk).split(b"\n")
        self.line = parts.pop()[-512:]
        for line in parts:
            for name, text in LINUX_LINES:
                if name not in self.found and text in line:
                    self.found[name] = t_us


def calibrate():
    """Seconds a fixed CPU-bound loop takes (the host noise probe)."""
    t = time.perf_counter()
    x = 0
    for i in range(300_000):
        x += i * i
    return time.perf_counter() - t


def cpu_times():
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    steal = vals[7] if len(vals) > 7 else 0
    return sum(vals[:8]), steal


def boot_once(v, booted, timeout):
    """One boot of variant `v`: {milestone: (t_us, icount)}."""
    argv = list(v.argv)
    report = None
    if v.kindling:
        fd, report = tempfile.mkstemp(prefix="bootbench-", suffix=".json")
        os.close(fd)
        opt = report + (f",booted={booted.replace(',', ',,')}" if booted else "")
        argv += ["-kindling-boot-report", opt]
    watch = SerialWatch(booted)
    start = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    try:
        while True:
            chunk = p.stdout.read1(65536)
            now = time.monotonic()
            if not chunk:
                break
            watch.feed(chunk, int((now - start) * 1e6))
            if now - start > timeout:
                p.kill()
                sys.exit(f"bootbench: {v.name}: no exit within {timeout} s")
        p.wait()
        wall = int((time.monotonic() - start) * 1e6)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    out = {}
    if v.kindling:
        with open(report) as f:
            lines = [json.loads(line) for line in f if line.strip()]
        os.unlink(report)
        if not lines:
            sys.exit(f"bootbench: {v.name}: no boot report (exit status {p.returncode})")
        r = lines[0]
        v.exact = r.get("figures") == "exact"
        for m in r["milestones"]:
            name = m["name"]
            if name == "debug-port":
                name = f"debug-port {m['code']:#04x}"
            out.setdefault(name, (m["t-us"], m.get("icount")))
    else:
        out = {k: (t, None) for k, t in watch.found.items()}
        out["exit"] = (wall, None)
    out["wall"] = (wall, None)
    return out


def ordered_names(variants):
    """Milestone names in boot order: by median time in the variant that
    has the most of them (Kindling's report, usually), others by their own
    median; the runner's `wall` last."""
    def medians(v):
        at = {}
        for b in v.boots:
            for name, (t, _) in b.items():
                at.setdefault(name, []).append(t)
        return {n: statistics.median(ts) for n, ts in at.items()}
    per = [medians(v) for v in variants]
    ref = max(per, key=len)
    names = {n for m in per for n in m}
    own = {n: min(m[n] for m in per if n in m) for n in names}
    return sorted(names, key=lambda n: (n == "wall", ref.get(n, own[n])))


def fmt_ms(us):
    return f"{us / 1000:.1f}"


def summary(v, name):
    ts = [b[name][0] for b in v.boots if name in b]
    if not ts:
        return None
    counts = [b[name][1] for b in v.boots if name in b and b[name][1] is not None]
    med = statistics.median(ts)
    return {
        "n": len(ts), "min": min(ts), "median": med, "max": max(ts),
        "spread": (max(ts) - min(ts)) / med * 100 if med else 0.0,
        "icount": counts[0] if counts and len(set(counts)) == 1 else None,
        "icount_varies": len(set(counts)) > 1,
    }


def milestone_table(variants, names):
    rows = ["| milestone | variant | runs | min ms | median ms | max ms | spread | instructions |",
            "|---|---|---|---|---|---|---|---|"]
    for name in names:
        for v in variants:
            s = summary(v, name)
            if s is None:
                continue
            ic = ""
            if s["icount"] is not None:
                ic = f"{s['icount']:,} (same in all runs)" if s["n"] > 1 else f"{s['icount']:,}"
            elif s["icount_varies"]:
                ic = "varies"
            rows.append(f"| {name} | {v.name} | {s['n']} | {fmt_ms(s['min'])} | "
                        f"{fmt_ms(s['median'])} | {fmt_ms(s['max'])} | {s['spread']:.1f}% | {ic} |")
    return "\n".join(rows)


def phases(v, names):
    """(from, to, median Δt µs, Δicount or None) between consecutive
    milestones, from the spawn (time and instruction 0); Δt is the median
    of each run's own difference."""
    present = [n for n in names if n != "wall" and summary(v, n)]
    out = []
    for a, b in zip(["spawn"] + present, present):
        ds = [r[b][0] - (r[a][0] if a != "spawn" else 0)
              for r in v.boots if b in r and (a == "spawn" or a in r)]
        sa, sb = summary(v, a) if a != "spawn" else {"icount": 0}, summary(v, b)
        di = None
        if sa["icount"] is not None and sb["icount"] is not None:
            di = sb["icount"] - sa["icount"]
        out.append((a, b, max(0, statistics.median(ds)), di))
    return out


def phase_table(variants, names):
    rows = ["| variant | phase | median ms | instructions |", "|---|---|---|---|"]
    for v in variants:
        for a, b, dt, di in phases(v, names):
            rows.append(f"| {v.name} | {a} → {b} | {fmt_ms(dt)} | "
                        f"{'' if di is None else f'{di:,}'} |")
    return "\n".join(rows)


PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
           "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac", "#1f77b4", "#d62728"]


def svg_chart(variants, names, metric, title):
    """Stacked horizontal bars: each variant's phases, by median."""
    left, width, row, top = 150, 640, 34, 40
    bars = []
    for v in variants:
        ph = phases(v, names)
        if metric == "icount":
            ph = [(a, b, di, di) for a, b, _, di in ph if di is not None]
        last = ph[-1][1] if ph else None
        rng = None
        if metric == "time" and last:
            s = summary(v, last)
            rng = (s["min"], s["max"])
        bars.append((v.name, ph, rng))
    total = max([sum(p[2] for p in ph) for _, ph, _ in bars] +
                [r[1] for _, _, r in bars if r] + [1])
    colours = {}
    for _, ph, _ in bars:
        for a, b, _, _ in ph:
            colours.setdefault(b, PALETTE[len(colours) % len(PALETTE)])
    legend_rows = (len(colours) + 2) // 3
    height = top + row * len(bars) + 40 + 18 * legend_rows + 10
    unit, div = ("ms", 1000) if metric == "time" else ("M instructions", 1e6)
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 30}" height="{height}" '
         f'font-family="sans-serif" font-size="12">',
         f'<rect width="100%" height="100%" fill="white"/>',
         f'<text x="10" y="20" font-size="14" font-weight="bold">{title}</text>']
    scale = width / total
    for i, (name, ph, rng) in enumerate(bars):
        y = top + i * row
        o.append(f'<text x="{left - 8}" y="{y + 17}" text-anchor="end">{name}</text>')
        x = left
        for a, b, d, _ in ph:
            w = d * scale
            o.append(f'<rect x="{x:.1f}" y="{y + 4}" width="{max(w, 0.5):.1f}" height="20" '
                     f'fill="{colours[b]}"><title>{a} → {b}: {d / div:.2f} {unit}</title></rect>')
            x += w
        if rng:
            x0, x1 = left + rng[0] * scale, left + rng[1] * scale
            o.append(f'<line x1="{x0:.1f}" y1="{y + 28}" x2="{x1:.1f}" y2="{y + 28}" stroke="black"/>')
            for xx in (x0, x1):
                o.append(f'<line x1="{xx:.1f}" y1="{y + 25}" x2="{xx:.1f}" y2="{y + 31}" stroke="black"/>')
        o.append(f'<text x="{x + 4:.1f}" y="{y + 17}">{sum(p[2] for p in ph) / div:.1f}</text>')
    axis_y = top + row * len(bars) + 6
    o.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + width}" y2="{axis_y}" stroke="black"/>')
    step = nice_step(total / div)
    t = 0.0
    while t * div <= total:
        x = left + t * div * scale
        o.append(f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 4}" stroke="black"/>')
        o.append(f'<text x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle">{t:g}</text>')
        t += step
    o.append(f'<text x="{left + width}" y="{axis_y + 30}" text-anchor="end">{unit} '
             f'(bars: median per phase, ending at the milestone named; whisker: min-max)</text>')
    for k, (b, c) in enumerate(colours.items()):
        x = 10 + (k % 3) * 270
        y = axis_y + 44 + (k // 3) * 18
        o.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{c}"/>')
        o.append(f'<text x="{x + 16}" y="{y}">→ {b}</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


def nice_step(span):
    raw = span / 8 or 1
    mag = 10 ** (len(str(int(raw))) - 1) if raw >= 1 else 0.1
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("variants", nargs="*", metavar="NAME=COMMAND")
    ap.add_argument("--from-json", help="tabulate and draw the boots saved by --json; no boots")
    ap.add_argument("-n", "--runs", type=int, default=10)
    ap.add_argument("--order", choices=["interleaved", "sequential"], default="interleaved")
    ap.add_argument("--warmup", type=int, default=1, help="unrecorded boots per variant first")
    ap.add_argument("--booted", default="", help="console text that marks the guest booted")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--svg")
    ap.add_argument("--chart-metric", choices=["time", "icount"], default="time")
    ap.add_argument("--title", default="Boot phases")
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.from_json:
        with open(a.from_json) as f:
            saved = json.load(f)
        variants = [Saved(name, d) for name, d in saved["variants"].items()]
        noise = saved["noise"]
    elif a.variants:
        variants = [Variant(s) for s in a.variants]
        noise = run_boots(variants, a)
    else:
        ap.error("give NAME=COMMAND variants or --from-json")
    names = ordered_names(variants)
    print(f"{len(variants[0].boots)} boots per variant, {noise['order']}; figures: " +
          ", ".join(f"{v.name} {'exact (-icount)' if v.exact else 'wall-clock'}"
                    f"{'' if v.kindling else ' (serial console)'}" for v in variants))
    print()
    print(milestone_table(variants, names))
    print()
    print(phase_table(variants, names))
    print()
    print(noise["text"])
    if a.svg:
        with open(a.svg, "w") as f:
            f.write(svg_chart(variants, names, a.chart_metric, a.title))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"noise": noise, "variants": {
                v.name: {"argv": v.argv, "kindling": v.kindling, "exact": v.exact,
                         "boots": v.boots} for v in variants}}, f, indent=1)


class Saved:
    """A variant's boots read back from --json."""

    def __init__(self, name, d):
        self.name, self.argv = name, d["argv"]
        self.kindling, self.exact = d["kindling"], d["exact"]
        self.boots = [{k: tuple(t) for k, t in b.items()} for b in d["boots"]]


def run_boots(variants, a):
    """Warm up, then boot every variant a.runs times; returns the host noise."""
    for v in variants:
        for _ in range(a.warmup):
            boot_once(v, a.booted, a.timeout)
    if a.order == "interleaved":
        plan = [v for _ in range(a.runs) for v in variants]
    else:
        plan = [v for v in variants for _ in range(a.runs)]
    load0 = os.getloadavg()
    total0, steal0 = cpu_times()
    probes = []
    for i, v in enumerate(plan):
        probes.append(calibrate())
        v.boots.append(boot_once(v, a.booted, a.timeout))
        print(f"\r{i + 1}/{len(plan)} boots", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    total1, steal1 = cpu_times()
    load1 = os.getloadavg()
    pm = statistics.median(probes)
    steal = 100 * (steal1 - steal0) / max(1, total1 - total0)
    text = (f"host noise: calibration loop {pm * 1000:.1f} ms median, "
            f"spread {(max(probes) - min(probes)) / pm * 100:.0f}% (min {min(probes) * 1000:.1f}, "
            f"max {max(probes) * 1000:.1f} ms), stdev {statistics.pstdev(probes) / pm * 100:.1f}%; "
            f"load average {load0[0]:.2f} → {load1[0]:.2f}; steal {steal:.1f}% of CPU time")
    order = a.order + (f", {a.warmup} warm-up" if a.warmup else "")
    return {"order": order, "text": text, "probes": probes,
            "load": [load0[0], load1[0]], "steal_percent": steal}


if __name__ == "__main__":
    main()
