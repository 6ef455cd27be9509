#!/usr/bin/env python3
"""Maglev packets per second in QEMU (TCG), part of `make bench-apps`.

The `maglev` domain on QEMU's 82576 (`igb`), the NIC joined to a UDP
socket on this host's loopback (one datagram per frame; no other
traffic). This host sends TCP frames of 1,000 flows with at most WINDOW
in flight and counts what comes back steered to one of 16 backends. One
boot per configuration:

- in the domain, no NIC: `call maglev 20`, the balancer's own loop over
  64-byte frames (the algorithm's rate under TCG);
- through the driver: `maglev` calls `igb` directly (a receive and a
  transmit crossing per batch of up to 32 frames);
- through the shadow: `maglev` calls `nic-shadow`, which calls `igb`
  (twice the crossings).

Each figure is the median of ROUNDS runs of SECONDS each. Under TCG the
rates through the NIC are mostly QEMU's device model and this host's
socket; the shadow's ratio to the driver is what compares our
configurations.

Usage: maglev-bench.py KERNEL ARCHIVE OUT.json [--rounds N] [--seconds S]
"""
import argparse
import json
import re
import socket
import statistics
import sys
import time

import qemu_guest

WINDOW = 64
FLOWS = 1000
BACKENDS = [0x0200_0000_0a00 + i for i in range(16)]


def free_udp_pair():
    """A port for QEMU and the next one for this host, both free."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        host = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            host.bind(("127.0.0.1", port + 1))
            return port, host
        except OSError:
            host.close()
    raise RuntimeError("no free pair of UDP ports")


def checksum(data):
    data += b"\0" * (len(data) % 2)
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total & 0xFFFF).to_bytes(2, "big")


def frame(flow):
    """A TCP frame of `flow` with valid IPv4 and TCP checksums (the NIC
    checks them and the driver drops what fails)."""
    src, dst = bytes([192, 168, flow >> 8, flow & 0xFF]), bytes([10, 0, 9, 1])
    payload = bytes(8)
    tcp = ((40000 + flow).to_bytes(2, "big") + (80).to_bytes(2, "big") + bytes(8)
           + bytes([0x50, 0x10]) + (65535).to_bytes(2, "big") + bytes(4))
    pseudo = src + dst + bytes([0, 6]) + (len(tcp) + len(payload)).to_bytes(2, "big")
    tcp = tcp[:16] + checksum(pseudo + tcp + payload) + tcp[18:]
    ip = bytes([0x45, 0, 0, 48, 0, 0, 0x40, 0, 64, 6, 0, 0]) + src + dst
    ip = ip[:10] + checksum(ip) + ip[12:]
    return b"\xff" * 6 + bytes.fromhex("020000000001") + b"\x08\x00" + ip + tcp + payload


class Guest(qemu_guest.Guest):
    """Our kernel with igb on a `dgram` netdev joined to this host's socket."""

    def __init__(self, kernel, archive):
        self.guest_port, self.host = free_udp_pair()
        netdev = (f"dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port={self.guest_port},"
                  f"remote.type=inet,remote.host=127.0.0.1,remote.port={self.guest_port + 1}")
        super().__init__(qemu_guest.kernel_command(kernel, archive, netdev, "igb,netdev=n0"))

    def start(self, shadow):
        if not self.wait_for("monitor> "):
            raise RuntimeError("no prompt")
        self.call("load igb")
        if not self.wait_for("receive buffers posted"):
            raise RuntimeError("the driver did not come up")
        if shadow:
            self.call("load nic-shadow")
        self.call("load maglev")
        for mac in BACKENDS:
            out = self.call(f"call maglev 10 {mac:#x}")
            if not re.search(r"^0\s*$", out, re.M):
                raise RuntimeError(f"adding backend {mac:#x}: {out.strip()}")

    def stop(self):
        super().stop()
        self.host.close()


def forward_rate(guest, seconds):
    """Frames per second steered back, WINDOW in flight; frames the NIC or
    the guest dropped are written off after 200 ms without progress."""
    frames = [frame(f) for f in range(FLOWS)]
    backends = {mac.to_bytes(8, "big")[2:] for mac in BACKENDS}
    tails = {f[12:] for f in frames}
    host, target = guest.host, ("127.0.0.1", guest.guest_port)
    host.settimeout(0.05)
    # Drain what an earlier run left.
    try:
        while True:
            host.recvfrom(4096)
    except socket.timeout:
        pass
    sent = back = wrong = written_off = 0
    last_progress = start = time.monotonic()
    while time.monotonic() - start < seconds:
        while sent - back - wrong - written_off < WINDOW:
            host.sendto(frames[sent % FLOWS], target)
            sent += 1
        try:
            got, _ = host.recvfrom(4096)
        except socket.timeout:
            got = None
        now = time.monotonic()
        if got is not None:
            last_progress = now
            if got[:6] in backends and got[12:] in tails:
                back += 1
            else:
                wrong += 1
        elif now - last_progress > 0.2:
            written_off += sent - back - wrong - written_off
            last_progress = now
    elapsed = time.monotonic() - start
    return back / elapsed, wrong, written_off, sent


def measure(kernel, archive, rounds, seconds):
    rows = {}
    for shadow in (False, True):
        label = "shadow" if shadow else "driver"
        guest = Guest(kernel, archive)
        try:
            guest.start(shadow)
            rates = []
            for _ in range(rounds):
                rate, wrong, lost, sent = forward_rate(guest, seconds)
                if wrong:
                    raise RuntimeError(f"{label}: {wrong} frames came back not steered")
                rates.append(rate)
                print(f"maglev-bench: through the {label}: {rate:,.0f} frames/s "
                      f"({sent} sent, {lost} written off)", file=sys.stderr)
            rows[f"pps_{label}"] = statistics.median(rates)
            rows[f"pps_{label}_all"] = rates
            if not shadow:
                inside = []
                for _ in range(rounds + 2):
                    m = re.search(r"^(\d+)\s*$", guest.call("call maglev 20"), re.M)
                    if not m or int(m.group(1)) == 0:
                        raise RuntimeError("call maglev 20 gave no rate")
                    inside.append(int(m.group(1)))
                rows["pps_in_domain"] = statistics.median(inside)
                rows["pps_in_domain_all"] = inside
            forwarded = re.search(r"^(\d+)\s*$", guest.call("call maglev 0"), re.M)
            rows[f"forwarded_{label}"] = int(forwarded.group(1)) if forwarded else None
        finally:
            guest.stop()
    rows["shadow_over_driver"] = rows["pps_shadow"] / rows["pps_driver"]
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kernel")
    parser.add_argument("archive")
    parser.add_argument("out")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if not 1 <= args.rounds <= 20 or not 1 <= args.seconds <= 60:
        parser.error("--rounds takes 1 to 20, --seconds 1 to 60")
    rows = measure(args.kernel, args.archive, args.rounds, args.seconds)
    print(f"{'Maglev in QEMU (TCG)':<40} {'frames/s':>12}")
    print("-" * 53)
    print(f"{'in the domain, no NIC (call maglev 20)':<40} {rows['pps_in_domain']:>12,.0f}")
    print(f"{'through igb (driver called directly)':<40} {rows['pps_driver']:>12,.0f}")
    print(f"{'through nic-shadow over igb':<40} {rows['pps_shadow']:>12,.0f}")
    print(f"shadow over driver: {rows['shadow_over_driver']:.3f}x "
          f"(median of {args.rounds} runs of {args.seconds:g} s; {WINDOW} frames in flight, "
          f"{FLOWS} flows, {len(BACKENDS)} backends)")
    cpu = qemu_guest.cpu_model()
    with open(args.out, "w") as f:
        json.dump({"cpu": cpu, "rounds": args.rounds, "seconds": args.seconds, "window": WINDOW,
                   "flows": FLOWS, "backends": len(BACKENDS), **rows}, f, indent=2)
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
