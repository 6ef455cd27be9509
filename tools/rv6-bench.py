#!/usr/bin/env python3
"""rv6's file-system benchmark under QEMU (part of `make bench`).

Makes a 128 MiB NVMe image whose first 64 MiB hold an rv6 file system
(`rv6fs mkfs --fs-mib 64`), boots the kernel, loads the NVMe driver, its
shadow, `fs` and `usertests`, and runs ROUNDS rounds of
`rv6/usertests/src/bench.rs`:

- each round runs every row on the raw block device (blocks past the file
  system, through nvme-shadow) and then through the file system, back to
  back: the ratio fs/raw of that round;
- then, for the crash comparison, each file-system row repeated for a
  window of WINDOW seconds (whole iterations, their data over their time)
  once quietly and once with the NVMe driver crashed every second (typed
  on the console from another thread until the row's last iteration
  ends), the order flipping every round: the ratio crash/none of that
  round. (A single run of a row lasts 0.1 to 2 s and met zero to two
  crashes, which is why the windows: each meets about WINDOW crashes.)

Each ratio is reported as the median over the rounds with its minimum and
maximum. Writes are durable when they return on both paths (the raw path
flushes after each write, as a file-system write commits).

Usage: rv6-bench.py KERNEL ARCHIVE OUT.json [--rounds N] [--crash-rounds N] [--window S]
"""
import argparse
import importlib.util
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time

ROW_NAMES = ["null_call", "seq_write_4k", "seq_write_1m", "seq_read_4k", "seq_read_1m", "rand_read_4k",
             "rand_write_4k"]  # the order of rv6/usertests/src/bench.rs's ROWS
ROWS = {  # row: MiB of data it moves (null_call: thousands of calls)
    "null_call": 1, "seq_write_4k": 2, "seq_write_1m": 4, "seq_read_4k": 8, "seq_read_1m": 8,
    "rand_read_4k": 2, "rand_write_4k": 1,
}
LINE = re.compile(r"fsbench: (\w+) (\d+) (\d+) round")
TIMED = re.compile(r"fsbench-timed: (\w+) (\d+) (\d+) done")

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("qemu_test", os.path.join(here, "qemu-test.py"))
qt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(qt)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kernel")
    parser.add_argument("archive")
    parser.add_argument("out")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--crash-rounds", type=int, default=3)
    parser.add_argument("--window", type=float, default=4.0)
    args = parser.parse_args()
    if not 1 <= args.rounds <= 50 or not 1 <= args.crash_rounds <= 20 or not 1 <= args.window <= 60:
        parser.error("--rounds takes 1 to 50, --crash-rounds 1 to 20, --window 1 to 60 (seconds)")
    image = os.path.join(os.path.dirname(args.archive), "rv6-bench.img")
    status, out = qt.rv6fs("mkfs", image, "--size-mib", "128", "--fs-mib", "64")
    if status != 0:
        sys.exit(f"rv6-bench: mkfs failed: {out}")
    raw_start = 64 * 256
    qt.ARCHIVE = args.archive
    drive = ("-drive", f"file={image},if=none,id=nvm,format=raw", "-device", "nvme,serial=nvme0,drive=nvm")
    proc = subprocess.Popen(qt.qemu_command(args.kernel, 2, "512M", "log=info", extra=drive, disk=False),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    serial = qt.Serial(proc, deadline=time.monotonic() + 3600)
    lock = threading.Lock()

    def type_line(line):
        with lock:
            proc.stdin.write(line.encode() + b"\r")
            proc.stdin.flush()

    def command(line):
        serial.start_here()
        type_line(line)
        serial.read_prompt(60)
        return serial.text()

    try:
        if not serial.read_until(b"monitor> ", 60):
            sys.exit("rv6-bench: no prompt")
        for name in ("nvme", "nvme-shadow", "fs", "usertests"):
            if "loaded image" not in command(f"load {name}"):
                sys.exit(f"rv6-bench: load {name} failed")
        if not serial.read_until(b"fs: mounted", 30):
            sys.exit("rv6-bench: fs did not mount")

        def crashing(stop, crashes):
            kinds = ("panic", "pagefault", "panic")
            while not stop.wait(1.0):
                type_line(f"crash nvme {kinds[crashes[0] % 3]}")
                crashes[0] += 1

        def run_round(raw):
            serial.start_here()
            type_line(f"call usertests 20 {raw}")
            done = serial.read_until(b"fsbench: done", 900)
            text = serial.text()
            if not done:
                raise RuntimeError("round did not finish: " + text[-1500:])
            rows = {}
            for name, raw_us, fs_us in LINE.findall(text):
                rows[name] = (int(raw_us), int(fs_us))
            time.sleep(0.5)
            return rows

        def run_timed(row, crash):
            """MiB/s of file-system row `row` over a window (crashed every
            second if `crash`), and the crashes it met."""
            serial.start_here()
            type_line(f"call usertests 22 {ROW_NAMES.index(row) + 256 * int(args.window * 1000)}")
            stop, crashes = threading.Event(), [0]
            thread = threading.Thread(target=crashing, args=(stop, crashes)) if crash else None
            if thread:
                thread.start()
            done = serial.read_until(b" done", 900)
            stop.set()
            if thread:
                thread.join()
            text = serial.text()
            found = TIMED.search(text)
            if not done or not found or found.group(1) != row:
                raise RuntimeError(f"{row}: the timed run did not finish: " + text[-1500:])
            time.sleep(0.3)
            return ROWS[row] * int(found.group(2)) / (int(found.group(3)) / 1e6), crashes[0]

        fs_over_raw = {r: [] for r in ROWS}
        crash_over_none = {r: [] for r in ROWS}
        raw_mibs = {r: [] for r in ROWS}
        fs_mibs = {r: [] for r in ROWS}
        crash_counts = []
        for rnd in range(args.rounds):
            rows = run_round(raw_start)
            for r, (raw_us, fs_us) in rows.items():
                raw_mibs[r].append(ROWS[r] / (raw_us / 1e6))
                fs_mibs[r].append(ROWS[r] / (fs_us / 1e6))
                fs_over_raw[r].append(raw_us / fs_us)
            print(f"rv6-bench: round {rnd + 1}/{args.rounds} done", flush=True)
        for rnd in range(args.crash_rounds):
            count = 0
            for r in ROWS:
                order = (False, True) if rnd % 2 == 0 else (True, False)
                rates = {}
                for crash in order:
                    rates[crash], n = run_timed(r, crash)
                    count += n
                crash_over_none[r].append(rates[True] / rates[False])
            crash_counts.append(count)
            print(f"rv6-bench: crash round {rnd + 1}/{args.crash_rounds} done ({count} driver crashes)",
                  flush=True)
        command("shutdown")
    finally:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        try:
            os.unlink(image)
        except OSError:
            pass

    # spawn + wait of a trivial program (`/bin/true`, through the shell's
    # `timespawn`), in a boot of its own into rv6's shell.
    shell_image = os.path.join(os.path.dirname(args.archive), "rv6-bench-shell.img")
    spawn_medians = []
    made = subprocess.run(["bash", os.path.join(here, "rv6-image.sh"), shell_image,
                           os.path.join(os.path.dirname(args.archive), "programs")],
                          env={**os.environ, "FRESH": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if made.returncode == 0:
        drive = ("-drive", f"file={shell_image},if=none,id=nvm,format=raw", "-device",
                 "nvme,serial=nvme0,drive=nvm")
        proc = subprocess.Popen(qt.qemu_command(args.kernel, 2, "512M", "log=warn rv6=1", extra=drive, disk=False),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        serial = qt.Serial(proc, deadline=time.monotonic() + 900)
        try:
            if serial.read_until(b"$ ", 90):
                for _ in range(3):
                    serial.start_here()
                    proc.stdin.write(b"timespawn 30\r")
                    proc.stdin.flush()
                    if serial.read_until(b"max ", 300):
                        serial.read_until(b"\n$ ", 10)
                        found = re.search(r"median (\d+) us", serial.text())
                        if found:
                            spawn_medians.append(int(found.group(1)))
                proc.stdin.write(b"monitor shutdown\r")
                proc.stdin.flush()
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        for f in (shell_image, shell_image + ".programs"):
            try:
                os.unlink(f)
            except OSError:
                pass

    def spread(values):
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    result = {"cpu": cpu_model(), "rounds": args.rounds, "crash_rounds": args.crash_rounds,
              "window_s": args.window, "crashes_per_round": crash_counts, "rows": {}}
    print(f"\nrv6 file system on NVMe (QEMU TCG), {args.rounds} rounds (fs/raw); {args.crash_rounds} rounds "
          f"of {args.window:g}-second windows (crash/s); CPU: {result['cpu']}")
    print(f"{'row':14} {'raw MiB/s':>10} {'fs MiB/s':>9} {'fs/raw':>8} {'[min-max]':>14} "
          f"{'crash/s':>8} {'[min-max]':>14}")
    for r in ROWS:
        a, b, c = spread(fs_over_raw[r]), spread(crash_over_none[r]), statistics.median(raw_mibs[r])
        d = statistics.median(fs_mibs[r])
        result["rows"][r] = {"raw_mib_s": c, "fs_mib_s": d, "fs_over_raw": a, "crash_every_s_over_none": b}
        print(f"{r:14} {c:>10.2f} {d:>9.2f} {a['median']:>7.3f}x {a['min']:>6.3f}-{a['max']:<6.3f} "
              f"{b['median']:>7.3f}x {b['min']:>6.3f}-{b['max']:<6.3f}")
    print("(fs/raw: the file system's throughput over the raw device's in the same round; crash/s: the "
          f"file system's throughput over a {args.window:g}-second window with the NVMe driver crashed every "
          "second, over a quiet window, same round)")
    if spawn_medians:
        result["spawn_wait_us"] = spread(spawn_medians)
        print(f"spawn + wait of /bin/true: median {statistics.median(spawn_medians)} us "
              f"(3 runs of 30: {spawn_medians})")
    else:
        print("spawn + wait: not measured (the shell boot failed)")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
