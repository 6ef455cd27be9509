#!/usr/bin/env python3
"""Boots the kernel with `bench=1` under QEMU (TCG), collects its `kbench:`
lines, prints them as a table and writes bench/results/qemu.json.

Under TCG absolute ticks mean little: read the ratio column, which compares
each benchmark with its baseline measured in the same boot.
"""
import json
import subprocess
import sys

kernel, out = sys.argv[1], sys.argv[2]
archive = sys.argv[3] if len(sys.argv) > 3 else None
disk = sys.argv[4] if len(sys.argv) > 4 else None
cmd = ["qemu-system-x86_64", "-machine", "q35", "-cpu", "max", "-smp", "2", "-m", "512M",
       "-kernel", kernel, *(["-initrd", archive] if archive else []),
       *(["-drive", f"file={disk},if=none,id=nvm,format=raw", "-device", "nvme,serial=nvme0,drive=nvm"] if disk else []), "-append", "bench=1 log=error", "-display", "none", "-serial", "stdio",
       "-monitor", "none", "-no-reboot", "-nic", "none",
       "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
try:
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
except subprocess.TimeoutExpired:
    sys.exit("qemu-bench: the benchmark boot timed out")
lines = [l[len("kbench: "):] for l in proc.stdout.decode("utf-8", "replace").replace("\r", "").splitlines()
         if l.startswith("kbench: ")]
if "done" not in lines:
    sys.exit("qemu-bench: the kernel did not finish its benchmarks:\n" + proc.stdout.decode("utf-8", "replace")[-3000:])
rows = []
for line in lines[1:]:
    parts = [p.strip() for p in line.split("|")]
    if len(parts) == 6:
        name, workload, ticks, baseline, baseline_ticks, ratio = parts
        rows.append({"name": name, "workload": workload, "median": float(ticks), "baseline": baseline,
                     "baseline_median": float(baseline_ticks), "ratio": float(ratio)})
print(f"{'in QEMU (TCG)':<24} {'ticks':>8}   {'baseline':<20} {'ticks':>8} {'ratio':>7}")
print("-" * 74)
for r in rows:
    print(f"{r['name']:<24} {r['median']:>8.1f}   {r['baseline']:<20} {r['baseline_median']:>8.1f} {r['ratio']:>6.2f}x")
with open(out, "w") as f:
    json.dump({"unit": "tsc_ticks_per_operation_under_tcg", "benchmarks": rows}, f, indent=2)
print(f"results written to {out}")
