#!/usr/bin/env python3
"""Sends Ethernet frames to the NIC of `make run NET=frames` and counts the
ones that come back (the `l2echo` domain turns every frame around):

    python3 tools/frames.py [--count N] [--port P]

`make run NET=frames` joins QEMU's 82576 to UDP port P (default 5600) on
127.0.0.1, one datagram per frame, and listens for the guest's frames on
P + 1, which this binds. Every echo is checked byte for byte. Traffic
stays on 127.0.0.1; at most N frames are sent, 16 in flight, for at most
30 seconds.
"""

import argparse
import random
import socket
import sys
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--port", type=int, default=5600)
    args = parser.parse_args()
    if not 1 <= args.count <= 1_000_000:
        sys.exit("frames: --count must be 1 to 1000000")
    ours = bytes.fromhex("020000000001")
    rng = random.Random()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", args.port + 1))
    except OSError as e:
        sys.exit(f"frames: cannot bind 127.0.0.1:{args.port + 1} ({e}); is another copy running?")
    sock.settimeout(0.2)
    sent, back, bad, seq = {}, 0, 0, 0
    start = time.monotonic()
    deadline = start + 30
    while (seq < args.count or sent) and time.monotonic() < deadline:
        while seq < args.count and len(sent) < 16:
            size = rng.randint(60, 1514)
            frame = b"\xff" * 6 + ours + b"\x88\xb5" + seq.to_bytes(4, "big") + rng.randbytes(size - 18)
            sent[seq] = frame
            sock.sendto(frame, ("127.0.0.1", args.port))
            seq += 1
        try:
            got, _ = sock.recvfrom(4096)
        except socket.timeout:
            if seq >= args.count and time.monotonic() > start + 5:
                break
            continue
        if len(got) < 18 or got[12:14] != b"\x88\xb5":
            continue
        want = sent.pop(int.from_bytes(got[14:18], "big"), None)
        if want is None:
            continue
        if got[:6] == ours and got[12:len(want)] == want[12:]:
            back += 1
        else:
            bad += 1
    took = time.monotonic() - start
    print(f"frames: {back} of {args.count} echoed intact, {bad} altered, {len(sent)} lost, in {took:.2f} s")
    sys.exit(0 if back == args.count else 1)


if __name__ == "__main__":
    main()
