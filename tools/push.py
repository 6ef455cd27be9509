#!/usr/bin/env python3
"""Sends a signed archive of domain images to a running kernel:

    python3 tools/push.py ARCHIVE SOCKET [--timeout SECONDS]

`make run` gives QEMU a second serial port (COM2) as the Unix socket
`build/push.sock`; `make push` rebuilds the images and runs this. The
kernel checks the archive as it checks the boot archive (the manifest's
signature with the key built into it), makes it the archive `load` and
`restart` use, and answers with one line (`push: ok: N signed images`
or `push: refused: WHY`), which this prints. Exit status 0 only for ok.
"""

import argparse
import os
import socket
import struct
import sys
import time

MAGIC = b"RVPUSH01"
MAX_ARCHIVE = 8 << 20


def push(archive_bytes, path, timeout):
    if not 0 < len(archive_bytes) <= MAX_ARCHIVE:
        return False, f"the archive is {len(archive_bytes)} bytes; the kernel takes 1 to {MAX_ARCHIVE}"
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
    except OSError as e:
        return False, (f"cannot reach the kernel's push port at {path} ({e}); "
                       "is it running under `make run`?")
    with sock:
        sock.settimeout(timeout)
        sock.sendall(MAGIC + struct.pack("<I", len(archive_bytes)) + archive_bytes)
        reply = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in reply:
            if time.monotonic() > deadline:
                return False, "no answer from the kernel"
            try:
                chunk = sock.recv(4096)
            except socket.timeout:
                return False, "no answer from the kernel"
            if not chunk:
                return False, "the kernel closed the port"
            reply += chunk
    line = reply.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    return line.startswith("push: ok"), line


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive")
    parser.add_argument("socket")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    try:
        data = open(args.archive, "rb").read()
    except OSError as e:
        print(f"push: {e}", file=sys.stderr)
        sys.exit(2)
    ok, message = push(data, args.socket, args.timeout)
    print(message if message.startswith("push:") else f"push: {message}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
