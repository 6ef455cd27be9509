#!/usr/bin/env python3
"""The HTTP server and the key-value store against nginx and memcached in
a Linux guest, in QEMU (TCG), part of `make bench-apps`.

Both systems boot in the same QEMU (q35, `-cpu max`, 2 vCPUs, 512 MiB,
the same NIC model, igb by default) on QEMU's user network, with their
ports forwarded to 127.0.0.1, and both are driven from this host by the
same clients with the same settings:

- HTTP: `wrk -t2 -c32 -d10s` on /bytes/64, /bytes/1024 and /bytes/16384
  (our `httpd` serves them from memory; nginx from the guest's initramfs,
  which is memory too); requests per second, and wrk's errors.
- Key-value: `memcslap --concurrency=4 --execute-number=N` with
  `--test=set` and `--test=get`; operations per second.
- HTTP from files ("http files" rows): our `httpd` in a boot of its own
  with `httpd_root=/www`, serving the same bodies from rv6's file system
  on an NVMe disk (`nvme`, `nvme-shadow`, `fs`; the image made by
  tools/rv6-image.sh), against the same nginx figures (nginx serves
  files too). `--no-files` leaves these rows out.

Ours is `igb` + `netstack` + `httpd` + `kvstore` (the driver called
directly; `--shadow` puts `nic-shadow` between). The Linux guest is
Debian's kernel with nginx and memcached from Debian's packages
(`bench/linux-guest/build.sh`, run here if its image is missing). Rounds
alternate which system goes first; each figure is the median over the
rounds, and the ratio is ours over Linux's in the same run.

Under TCG both the guests' CPUs and the NIC are emulated and the clients
share this host's cores with QEMU: the ratio compares the two systems'
software on the same emulated machine, not hardware rates.

Usage: apps-bench.py KERNEL ARCHIVE OUT.json [--rounds N] [--seconds S]
"""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "bench", "linux-guest"))
import run as linux_guest  # noqa: E402
import qemu_guest  # noqa: E402
from qemu_guest import free_port  # noqa: E402

PATHS = ["/bytes/64", "/bytes/1024", "/bytes/16384"]
NICS = {
    "igb": ("igb,netdev=n0", "igb"),
    "virtio": ("virtio-net-pci,disable-legacy=on,netdev=n0", "virtio-net"),
}


def free_kv_port():
    """A port free for both TCP and UDP (memcached's one port)."""
    for _ in range(100):
        port = free_port(socket.SOCK_STREAM)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no port free for TCP and UDP")


class Ours(qemu_guest.Guest):
    """Our kernel with igb, netstack, httpd and kvstore loaded."""

    name = "ours"

    def __init__(self, kernel, archive, nic, shadow, files_image=None):
        """With `files_image`, httpd serves /www of the rv6 file system on
        that NVMe image, and kvstore is not loaded."""
        self.http_port, self.kv_port = free_port(socket.SOCK_STREAM), free_kv_port()
        device, driver = NICS[nic]
        netdev = (f"user,id=n0,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:{self.http_port}-10.0.2.15:80,"
                  f"hostfwd=tcp:127.0.0.1:{self.kv_port}-10.0.2.15:11211,"
                  f"hostfwd=udp:127.0.0.1:{self.kv_port}-10.0.2.15:11211")
        append = "log=info httpd_root=/www" if files_image else "log=info"
        cmd = qemu_guest.kernel_command(kernel, archive, netdev, device, mem="512M", append=append)
        if files_image:
            cmd += ["-drive", f"file={files_image},if=none,id=nvm,format=raw",
                    "-device", "nvme,serial=nvme0,drive=nvm"]
        super().__init__(cmd)
        services = [("netstack", "address 10.0.2.15/24"), ("httpd", "listening on port 80")]
        if not files_image:
            services.append(("kvstore", "TCP: listening on port 11211"))
        try:
            self.require("monitor> ")
            if files_image:
                for name in ("nvme", "nvme-shadow", "fs"):
                    self.type(f"load {name}")
                self.require("fs: mounted nvme-shadow/bdev")
            self.type(f"load {driver}")
            self.require("receive buffers posted")
            if shadow:
                self.type("load nic-shadow")
            for name, ready in services:
                self.type(f"load {name}")
                self.require(ready)
        except Exception:
            self.stop()
            raise


class Linux:
    """The Debian guest with nginx and memcached."""

    name = "linux"

    def __init__(self, nic):
        self.guest = linux_guest.start(nic, smp=2, timeout=180)
        self.http_port = self.guest.http_port
        self.kv_port = self.guest.kv_port

    def stop(self):
        linux_guest.stop(self.guest)


def wrk(port, path, seconds):
    out = subprocess.run(["wrk", "-t2", "-c32", f"-d{seconds}s", "--timeout", "5s",
                          f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, timeout=seconds + 60)
    text = out.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if not rate:
        raise RuntimeError(f"wrk {path}: no rate in its output:\n{text}{out.stderr}")
    return {"requests_s": float(rate.group(1)),
            "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
            "non_2xx": int(non2xx.group(1)) if non2xx else 0}


def memcslap(port, test, concurrency, count):
    out = subprocess.run(["memcslap", f"--servers=127.0.0.1:{port}", f"--concurrency={concurrency}",
                          f"--execute-number={count}", f"--test={test}"],
                         capture_output=True, text=True, timeout=600)
    text = out.stdout + out.stderr
    # "Time to set   2000 keys by    4 threads:     2.156 seconds."
    took = re.search(r"Time to \w+\s+(\d+) keys by\s+\d+ threads:\s+([\d.]+) seconds", text)
    if out.returncode != 0 or not took or "Failed" in text or float(took.group(2)) <= 0:
        raise RuntimeError(f"memcslap --test={test}: {text.strip()[-500:]}")
    return int(took.group(1)) / float(took.group(2))


def measure(system, seconds, kv_count, files=False):
    # Warm-up, untimed: the first connections, caches, nginx's workers
    # (and, from files, rv6's buffer cache: every body read once).
    if files:
        for path in PATHS:
            wrk(system.http_port, path, 2)
        return {f"http files {path}": wrk(system.http_port, path, seconds) for path in PATHS}
    wrk(system.http_port, PATHS[1], 2)
    memcslap(system.kv_port, "set", 4, 100)
    row = {}
    for path in PATHS:
        row[f"http {path}"] = wrk(system.http_port, path, seconds)
    row["kv set"] = {"ops_s": memcslap(system.kv_port, "set", 4, kv_count)}
    row["kv get"] = {"ops_s": memcslap(system.kv_port, "get", 4, kv_count)}
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kernel")
    parser.add_argument("archive")
    parser.add_argument("out")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--kv-count", type=int, default=5000)
    parser.add_argument("--nic", choices=sorted(NICS), default="igb")
    parser.add_argument("--shadow", action="store_true", help="ours through nic-shadow")
    parser.add_argument("--no-files", action="store_true", help="leave out httpd serving rv6's files")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 10 or not 2 <= args.seconds <= 60 or not 100 <= args.kv_count <= 100000:
        parser.error("--rounds 1..10, --seconds 2..60, --kv-count 100..100000")
    for tool in ("wrk", "memcslap"):
        if shutil.which(tool) is None:
            sys.exit(f"apps-bench: '{tool}' is missing (make bench-apps installs it)")
    guest_dir = os.path.join(REPO, "build", "linux-guest")
    if not os.path.exists(os.path.join(guest_dir, "initramfs.cpio.gz")):
        subprocess.run(["bash", os.path.join(REPO, "bench", "linux-guest", "build.sh"), guest_dir],
                       check=True)
    files_image = None
    if not args.no_files:
        files_image = os.path.join(REPO, "build", "apps-bench-rv6.img")
        subprocess.run(["bash", os.path.join(HERE, "rv6-image.sh"), files_image,
                        os.path.join(os.path.dirname(args.archive), "programs")],
                       env={**os.environ, "FRESH": "1"}, check=True, stdout=subprocess.DEVNULL)
    runs = {"ours": [], "linux": [], "files": []}
    for r in range(args.rounds):
        order = ["ours", "linux"] if r % 2 == 0 else ["linux", "ours"]
        if files_image:
            order.insert(1, "files")
        for which in order:
            print(f"apps-bench: round {r + 1}, {which} ...", file=sys.stderr)
            system = (Ours(args.kernel, args.archive, args.nic, args.shadow) if which == "ours"
                      else Ours(args.kernel, args.archive, args.nic, args.shadow, files_image)
                      if which == "files" else Linux(args.nic))
            try:
                runs[which].append(measure(system, args.seconds, args.kv_count, files=which == "files"))
            finally:
                system.stop()
    rows = {}

    def add_row(key, ours_runs, linux_key):
        unit = "requests_s" if key.startswith("http") else "ops_s"
        ours = statistics.median(r[key][unit] for r in ours_runs)
        linux = statistics.median(r[linux_key][unit] for r in runs["linux"])
        rows[key] = {"ours": ours, "linux": linux, "ratio": ours / linux,
                     "ours_all": [r[key][unit] for r in ours_runs],
                     "linux_all": [r[linux_key][unit] for r in runs["linux"]]}
        if key.startswith("http"):
            rows[key]["ours_errors"] = sum(r[key]["socket_errors"] + r[key]["non_2xx"] for r in ours_runs)
            rows[key]["linux_errors"] = sum(r[linux_key]["socket_errors"] + r[linux_key]["non_2xx"]
                                            for r in runs["linux"])
    for key in runs["ours"][0]:
        add_row(key, runs["ours"], key)
    if runs["files"]:
        for key in runs["files"][0]:
            add_row(key, runs["files"], key.replace("http files ", "http "))
    label = "ours (through nic-shadow)" if args.shadow else "ours"
    print(f"{'application in QEMU (TCG), ' + args.nic:<40} {label:>14} {'Linux':>10} {'ratio':>8}")
    print("-" * 76)
    for key, row in rows.items():
        unit = "req/s" if key.startswith("http") else "ops/s"
        extra = (f"  (errors: ours {row['ours_errors']}, Linux {row['linux_errors']})"
                 if key.startswith("http") and (row["ours_errors"] or row["linux_errors"]) else "")
        print(f"{key + ' ' + unit:<40} {row['ours']:>14,.0f} {row['linux']:>10,.0f} "
              f"{row['ratio']:>7.2f}x{extra}")
    print(f"(httpd vs nginx with wrk -t2 -c32 -d{args.seconds}s; kvstore vs memcached with memcslap "
          f"--concurrency=4 --execute-number={args.kv_count}; medians of {args.rounds} rounds; "
          f"'http files': httpd serving rv6's file system on NVMe, against the same nginx figures)")
    cpu = qemu_guest.cpu_model()
    with open(args.out, "w") as f:
        json.dump({"cpu": cpu, "nic": args.nic, "shadow": args.shadow, "rounds": args.rounds,
                   "seconds": args.seconds, "kv_count": args.kv_count, "rows": rows}, f, indent=2)
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
