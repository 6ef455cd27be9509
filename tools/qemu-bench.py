#!/usr/bin/env python3
"""Boots the kernel with `bench=1` under QEMU (TCG) REPEAT times, collects
its `kbench:` lines, prints them as a table and writes
bench/results/qemu.json.

Under TCG absolute ticks mean little: read the ratio column, which compares
each benchmark with its baseline measured in the same boot. Rows measured
in alternating rounds report the median of the per-round ratios with their
minimum and maximum; across the boots, each row's ratios are listed with
their spread ((max - min) / 2, relative to the median of the boots), which
is what "stable to within 3 %" is judged on.

Usage: qemu-bench.py KERNEL OUT.json [ARCHIVE [DISK]] [--repeat N]
With QEMU_BENCH_PIN=1, QEMU runs pinned to one host core (the last). It is
not by default: pinned, QEMU's I/O thread shares that core with the virtual
CPUs, and the NVMe rows' spread between boots grew from 2-5 % to 5-12 %.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys

parser = argparse.ArgumentParser(description="In-QEMU benchmarks (make bench)")
parser.add_argument("kernel")
parser.add_argument("out")
parser.add_argument("archive", nargs="?")
parser.add_argument("disk", nargs="?")
parser.add_argument("--repeat", type=int, default=3, help="boots (default 3)")
parser.add_argument("--only", default="all", choices=["all", "calls", "images", "block", "net"],
                    help="one group of rows (the kernel's bench=GROUP); default: all")
options = parser.parse_args()
if not 1 <= options.repeat <= 20:
    parser.error("--repeat takes 1 to 20 boots")
kernel, out, archive, disk, repeat = (options.kernel, options.out, options.archive,
                                      options.disk, options.repeat)
def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The packet-rate rows: QEMU's 82576 on a `dgram` netdev that sends to its
# own address on 127.0.0.1, so every frame the guest transmits comes back
# to it (nothing leaves this host's loopback).
loop_port = free_udp_port()
nic = ["-netdev", f"dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port={loop_port},"
                  f"remote.type=inet,remote.host=127.0.0.1,remote.port={loop_port}",
       "-device", "igb,netdev=n0"]
cmd = ["qemu-system-x86_64", "-machine", "q35", "-cpu", "max", "-smp", "2", "-m", "512M",
       "-kernel", kernel, *(["-initrd", archive] if archive else []),
       *(["-drive", f"file={disk},if=none,id=nvm,format=raw", "-device", "nvme,serial=nvme0,drive=nvm"] if disk else []),
       "-append", f"bench={options.only} log=error", "-display", "none", "-serial", "stdio",
       "-monitor", "none", "-no-reboot", "-nic", "none",
       "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", *nic]
cores = os.cpu_count() or 1
pinned = None
if shutil.which("taskset") and cores > 1 and os.environ.get("QEMU_BENCH_PIN", "0") == "1":
    pinned = cores - 1
    cmd = ["taskset", "-c", str(pinned)] + cmd


def boot():
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=600)
    except subprocess.TimeoutExpired:
        sys.exit("qemu-bench: the benchmark boot timed out")
    text = proc.stdout.decode("utf-8", "replace").replace("\r", "")
    lines = [l[len("kbench: "):] for l in text.splitlines() if l.startswith("kbench: ")]
    if "done" not in lines:
        sys.exit("qemu-bench: the kernel did not finish its benchmarks:\n" + text[-3000:])
    rows = []
    for line in lines[1:]:
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 6:
            name, workload, ticks, baseline, baseline_ticks, ratio = parts
            rows.append({"name": name, "workload": workload, "median": float(ticks),
                         "baseline": baseline, "baseline_median": float(baseline_ticks),
                         "ratio": float(ratio)})
        elif len(parts) == 9:
            name, workload, ticks, baseline, baseline_ticks, ratio, lo, hi, rounds = parts
            rows.append({"name": name, "workload": workload, "median": float(ticks),
                         "baseline": baseline, "baseline_median": float(baseline_ticks),
                         "ratio": float(ratio), "ratio_min": float(lo), "ratio_max": float(hi),
                         "rounds": int(rounds)})
    return rows


boots = []
for i in range(repeat):
    boots.append(boot())
    print(f"qemu-bench: boot {i + 1} of {repeat} done", file=sys.stderr)

# Rows by name, in the first boot's order.
names = [r["name"] for r in boots[0]]
merged = []
for name in names:
    per_boot = [next((r for r in b if r["name"] == name), None) for b in boots]
    per_boot = [r for r in per_boot if r is not None]
    ratios = [r["ratio"] for r in per_boot]
    middle = statistics.median(ratios)
    spread = (max(ratios) - min(ratios)) / 2 / middle * 100 if middle else 0.0
    row = dict(per_boot[0])
    row["ratio"] = middle
    row["median"] = statistics.median(r["median"] for r in per_boot)
    row["baseline_median"] = statistics.median(r["baseline_median"] for r in per_boot)
    row["ratios_per_boot"] = ratios
    row["spread_percent"] = round(spread, 2)
    if "rounds" in row:
        row["ratio_min"] = min(r["ratio_min"] for r in per_boot)
        row["ratio_max"] = max(r["ratio_max"] for r in per_boot)
    merged.append(row)

print(f"{'in QEMU (TCG)':<28} {'ticks':>9}   {'baseline':<20} {'ticks':>9} {'ratio':>7} {'rounds min..max':>15}  {'per boot':<22} {'spread':>7}")
print("-" * 130)
for r in merged:
    rounds = f"{r['ratio_min']:.2f}..{r['ratio_max']:.2f}" if "rounds" in r else "-"
    boots_text = " ".join(f"{x:.3f}" for x in r["ratios_per_boot"])
    print(f"{r['name']:<28} {r['median']:>9.1f}   {r['baseline']:<20} {r['baseline_median']:>9.1f} {r['ratio']:>6.3f}x {rounds:>15}  {boots_text:<22} {r['spread_percent']:>6.1f}%")
print(f"(median over {repeat} boots of each boot's ratio; rounds: per-round ratios within the boots; "
      f"spread: half the range of the boots' ratios over their median; QEMU pinned to host core: {pinned})")
cpu = "unknown"
try:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
except OSError:
    pass
with open(out, "w") as f:
    json.dump({"unit": "tsc_ticks_per_operation_under_tcg", "cpu": cpu, "boots": repeat,
               "pinned_core": pinned, "benchmarks": merged}, f, indent=2)
print(f"results written to {out}")
