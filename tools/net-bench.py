#!/usr/bin/env python3
"""Network benchmarks in QEMU (part of `make bench`): the TCP/IP domain
(`netstack`) and the `echo` domain over each NIC driver on QEMU's user
network, driven from this host through forwards on 127.0.0.1 (no other
traffic). For each NIC, in one boot per configuration:

- TCP echo throughput: MiB sent and echoed back on one connection, through
  the driver directly and through `nic-shadow` (ratio in the same run);
- the same through `nic-shadow` with the driver crashed every second,
  against none (the issue's target: at least 0.95 of it);
- UDP echo rate: 64-byte datagrams, 32 in flight;
- TCP connections per second: connect, one line echoed, close.

Each figure is the median of ROUNDS runs. Under TCG the absolute numbers
are QEMU's, and much of the TCP figure is QEMU's user-network stack
(slirp) on this host; the ratios are what compares our configurations.

Then the same again over a tap device inside a network namespace this
script makes (tools/netns.sh; removed after; skipped, and said so, where
the machine cannot make one): there the other end of each connection is
this host's own Linux TCP, as a real peer on a wire would be, not slirp's
(a 1990s BSD stack whose retransmission timer waits at least a second:
a frame lost while the driver restarts can cost that). The client runs
inside the namespace (this script re-runs itself there); nothing leaves
it.

Usage: net-bench.py KERNEL ARCHIVE OUT.json [--rounds N] [--megabytes M]
       [--net user,tap]
"""
import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import qemu_guest
from qemu_guest import free_port

NICS = {
    "igb": ("igb,netdev=n0", "igb"),
    "virtio": ("virtio-net-pci,disable-legacy=on,netdev=n0", "virtio-net"),
}


# The namespace of the tap runs (its own names: `make run NET=tap` and the
# tests use others).
TAP_ENV = {"NETNS": "redleaf-bench", "TAP": "rlbench0", "HOST_CIDR": "10.0.6.1/24"}
TAP_GUEST = "10.0.6.2"


class Guest(qemu_guest.Guest):
    """A booted kernel with a NIC on the user network (host forwards on
    127.0.0.1) or, with `tap`, on the namespace's tap device (run from
    inside the namespace; the guest at TAP_GUEST, port 7)."""

    def __init__(self, kernel, archive, nic, tap=False):
        device, self.driver = NICS[nic]
        if tap:
            self.address, self.tcp_port, self.udp_port = TAP_GUEST, 7, 7
            netdev = f"tap,id=n0,ifname={TAP_ENV['TAP']},script=no,downscript=no"
            append = f"log=info net={TAP_GUEST}/24,gw={TAP_ENV['HOST_CIDR'].split('/')[0]}"
        else:
            self.address = "127.0.0.1"
            self.tcp_port = free_port(socket.SOCK_STREAM)
            self.udp_port = free_port(socket.SOCK_DGRAM)
            netdev = (f"user,id=n0,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:{self.tcp_port}-:7,"
                      f"hostfwd=udp:127.0.0.1:{self.udp_port}-:7")
            append = "log=info"
        super().__init__(qemu_guest.kernel_command(kernel, archive, netdev, device,
                                                   append=append))

    def start(self, shadow):
        if not self.wait_for("monitor> "):
            raise RuntimeError("no prompt")
        self.type(f"load {self.driver}")
        if not self.wait_for("receive buffers posted"):
            raise RuntimeError("the driver did not come up")
        if shadow:
            self.type("load nic-shadow")
        self.type("load netstack")
        self.type("load echo")
        if not self.wait_for("TCP: listening on port 7"):
            raise RuntimeError("echo is not listening:\n" + self.output.decode(errors="replace")[-2000:])


def tcp_echo(address, port, size):
    """Seconds to send `size` bytes on one connection and read them back
    (verified); None if they did not come back intact."""
    data = random.Random(size).randbytes(size)
    conn = socket.create_connection((address, port), timeout=30)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    got = bytearray()

    def reader():
        while len(got) < size:
            chunk = conn.recv(262144)
            if not chunk:
                return
            got.extend(chunk)

    thread = threading.Thread(target=reader)
    start = time.monotonic()
    thread.start()
    conn.sendall(data)
    thread.join(timeout=300)
    seconds = time.monotonic() - start
    conn.close()
    return seconds if bytes(got) == data else None


def udp_rate(address, port, seconds=3.0, window=32):
    """64-byte datagrams echoed per second, `window` in flight; and the
    share lost."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.2)
    payload = b"x" * 64
    sent = back = 0
    end = time.monotonic() + seconds
    start = time.monotonic()
    in_flight = 0
    while time.monotonic() < end:
        while in_flight < window:
            sock.sendto(payload, (address, port))
            sent += 1
            in_flight += 1
        try:
            sock.recvfrom(2048)
            back += 1
            in_flight -= 1
        except socket.timeout:
            in_flight = 0  # lost: refill the window
    elapsed = time.monotonic() - start
    sock.close()
    return back / elapsed, (sent - back) / sent if sent else 0.0


def connection_rate(address, port, count=200):
    start = time.monotonic()
    for i in range(count):
        with socket.create_connection((address, port), timeout=10) as conn:
            line = f"{i}\n".encode()
            conn.sendall(line)
            back = b""
            while len(back) < len(line):
                chunk = conn.recv(64)
                if not chunk:
                    raise RuntimeError("connection closed early")
                back += chunk
    return count / (time.monotonic() - start)


def crasher(guest, stop):
    crashes = 0
    kinds = ("pagefault", "panic", "gpf")
    while not stop.wait(1.0):
        guest.type(f"crash {guest.driver} {kinds[crashes % 3]}")
        crashes += 1
    return crashes


def measure(kernel, archive, nic, rounds, megabytes, tap=False):
    size = megabytes << 20
    rows = {}
    for shadow in (False, True):
        guest = Guest(kernel, archive, nic, tap)
        where = (guest.address, guest.tcp_port)
        try:
            guest.start(shadow)
            tcp_echo(*where, 1 << 20)  # warm-up
            label = "shadow" if shadow else "direct"
            times = [tcp_echo(*where, size) for _ in range(rounds)]
            if None in times:
                raise RuntimeError(f"{nic} {label}: an echo came back altered or short")
            rows[f"tcp_mib_s_{label}"] = statistics.median(size / t / (1 << 20) for t in times)
            if shadow:
                crashed = []
                counts = []
                for _ in range(rounds):
                    stop = threading.Event()
                    result = {}
                    thread = threading.Thread(target=lambda: result.update(n=crasher(guest, stop)))
                    thread.start()
                    seconds = tcp_echo(*where, size)
                    stop.set()
                    thread.join()
                    time.sleep(1.5)  # let the last restart finish
                    if seconds is None:
                        raise RuntimeError(f"{nic}: the echo under crashes came back altered or short")
                    crashed.append(size / seconds / (1 << 20))
                    counts.append(result.get("n", 0))
                rows["tcp_mib_s_shadow_crash_every_s"] = statistics.median(crashed)
                rows["crashes_per_transfer"] = statistics.median(counts)
            else:
                rates = [udp_rate(guest.address, guest.udp_port) for _ in range(rounds)]
                rows["udp_echo_per_s"] = statistics.median(r[0] for r in rates)
                rows["udp_lost_share"] = statistics.median(r[1] for r in rates)
                rows["tcp_connections_per_s"] = statistics.median(
                    connection_rate(*where) for _ in range(rounds))
        finally:
            guest.stop()
    rows["shadow_over_direct"] = rows["tcp_mib_s_shadow"] / rows["tcp_mib_s_direct"]
    rows["crash_every_s_over_none"] = rows["tcp_mib_s_shadow_crash_every_s"] / rows["tcp_mib_s_shadow"]
    return rows


def run_in_namespace(args):
    """The tap runs: makes the namespace, runs this script inside it (its
    results in a file), removes the namespace. None, saying why, where the
    machine cannot make one."""
    tools = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, **TAP_ENV)
    netns = ["bash", f"{tools}/netns.sh"]
    check = subprocess.run(netns + ["check"], env=env, capture_output=True, text=True)
    if check.returncode != 0:
        print(f"net-bench: tap runs skipped: {check.stdout.strip()}", file=sys.stderr)
        return None
    made = subprocess.run(netns + ["up"], env=env, capture_output=True, text=True)
    try:
        if made.returncode != 0:
            print(f"net-bench: tap runs skipped: cannot make the namespace: "
                  f"{(made.stderr or made.stdout).strip()[-200:]}", file=sys.stderr)
            return None
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            subprocess.run(["ip", "netns", "exec", TAP_ENV["NETNS"], sys.executable,
                            os.path.abspath(__file__), args.kernel, args.archive, out.name,
                            "--rounds", str(args.rounds), "--megabytes", str(args.megabytes),
                            "--nics", args.nics, "--net", "tap", "--inside"],
                           check=True, timeout=1800)
            with open(out.name) as f:
                return json.load(f)["nics"]
    finally:
        subprocess.run(netns + ["down"], env=env, capture_output=True)


def table(title, results):
    print(f"{title:<24} {'TCP MiB/s':>10} {'shadow':>8} {'ratio':>7} "
          f"{'crash/s':>8} {'ratio':>7} {'UDP echo/s':>11} {'lost':>6} {'conn/s':>7}")
    print("-" * 96)
    for nic, r in results.items():
        print(f"{nic:<24} {r['tcp_mib_s_direct']:>10.2f} {r['tcp_mib_s_shadow']:>8.2f} "
              f"{r['shadow_over_direct']:>6.3f}x {r['tcp_mib_s_shadow_crash_every_s']:>8.2f} "
              f"{r['crash_every_s_over_none']:>6.3f}x {r['udp_echo_per_s']:>11.0f} "
              f"{r['udp_lost_share'] * 100:>5.1f}% {r['tcp_connections_per_s']:>7.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kernel")
    parser.add_argument("archive")
    parser.add_argument("out")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--megabytes", type=int, default=64)
    parser.add_argument("--nics", default="igb,virtio")
    parser.add_argument("--net", default="user,tap",
                        help="user (QEMU's user network, forwards on 127.0.0.1), tap (a tap in a "
                             "network namespace of our own), or both")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 1 <= args.rounds <= 20 or not 1 <= args.megabytes <= 256:
        parser.error("--rounds takes 1 to 20, --megabytes 1 to 256")
    nets = args.net.split(",")
    if not nets or any(n not in ("user", "tap") for n in nets):
        parser.error("--net takes user, tap or user,tap")
    if args.inside:
        # The tap runs, already inside the namespace.
        results = {nic: measure(args.kernel, args.archive, nic, args.rounds, args.megabytes,
                                tap=True) for nic in args.nics.split(",")}
        with open(args.out, "w") as f:
            json.dump({"nics": results}, f)
        return
    results, tap = {}, None
    if "user" in nets:
        for nic in args.nics.split(","):
            print(f"net-bench: {nic} on the user network ...", file=sys.stderr)
            results[nic] = measure(args.kernel, args.archive, nic, args.rounds, args.megabytes)
        table("user network (slirp)", results)
    if "tap" in nets:
        print("net-bench: the same on a tap in a network namespace ...", file=sys.stderr)
        tap = run_in_namespace(args)
        if tap is not None:
            table("tap (host Linux TCP)", tap)
    print(f"(TCG. TCP: {args.megabytes} MiB echoed on one connection, median of {args.rounds}; "
          f"shadow: through nic-shadow; crash/s: through nic-shadow with the driver crashed every "
          f"second, ratio against no crashes; UDP: 64-byte datagrams, 32 in flight)")
    cpu = qemu_guest.cpu_model()
    with open(args.out, "w") as f:
        json.dump({"cpu": cpu, "rounds": args.rounds, "megabytes": args.megabytes, "nics": results,
                   "tap": tap}, f, indent=2)
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
