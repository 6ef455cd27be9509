#!/usr/bin/env python3
"""Small load clients for the guest's network services, run inside the
network namespace `tools/netns.sh` makes (`tools/netns.sh exec python3
tools/net-client.py ...`). Each prints one line saying what happened and
exits 0 only if it all did; each is bounded in count and time.

  ping ADDRESS COUNT            ICMP echo requests (a raw socket: root)
  tcp-echo ADDRESS PORT BYTES   random bytes over one connection, the echo
                                checked byte for byte
  udp-echo ADDRESS PORT COUNT   datagrams, each checked (losses counted)
  http-concurrent ADDRESS PORT COUNT
                                COUNT connections opened at once and all
                                held open; then each sends one GET and
                                must get the whole 200 response
"""
import os
import random
import socket
import struct
import sys
import threading
import time


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ping(address, count):
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.settimeout(2)
    ident = os.getpid() & 0xFFFF
    replies, rtts = 0, []
    for seq in range(count):
        payload = bytes(range(56))
        header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        header = struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq)
        start = time.monotonic()
        sock.sendto(header + payload, (address, 0))
        deadline = start + 2
        while time.monotonic() < deadline:
            try:
                packet, _ = sock.recvfrom(2048)
            except socket.timeout:
                break
            icmp = packet[(packet[0] & 0x0F) * 4:]
            kind, _, _, got_ident, got_seq = struct.unpack("!BBHHH", icmp[:8])
            if kind == 0 and got_ident == ident and got_seq == seq and icmp[8:] == payload:
                replies += 1
                rtts.append((time.monotonic() - start) * 1000)
                break
        time.sleep(0.2)
    worst = f", slowest {max(rtts):.1f} ms" if rtts else ""
    print(f"ping {address}: {replies} of {count} echo requests answered{worst}")
    return replies == count


def tcp_echo(address, port, size):
    data = random.Random(7).randbytes(size)
    conn = socket.create_connection((address, port), timeout=20)
    conn.settimeout(30)
    got = bytearray()

    def reader():
        try:
            while len(got) < size:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                got.extend(chunk)
        except OSError:
            pass

    thread = threading.Thread(target=reader)
    start = time.monotonic()
    thread.start()
    conn.sendall(data)
    thread.join(timeout=120)
    seconds = time.monotonic() - start
    conn.close()
    same = bytes(got) == data
    print(f"TCP echo from {address}:{port}: {len(got)} of {size} bytes, "
          f"{'intact' if same else 'DIFFERENT'}, {seconds:.2f} s")
    return same


def udp_echo(address, port, count):
    rng = random.Random(9)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(1)
    back = bad = 0
    deadline = time.monotonic() + 60
    for seq in range(count):
        if time.monotonic() > deadline:
            break
        body = seq.to_bytes(4, "big") + rng.randbytes(rng.randint(0, 1000))
        sock.sendto(body, (address, port))
        try:
            got, _ = sock.recvfrom(4096)
        except socket.timeout:
            continue
        back += got == body
        bad += got != body
    print(f"UDP echo from {address}:{port}: {back} of {count} datagrams back intact, "
          f"{bad} altered, {count - back - bad} lost")
    return bad == 0 and back >= count * 0.95


def http_concurrent(address, port, count):
    """All `count` connections are established (the guest's stack has
    completed each handshake) before any request is sent, so the server
    holds them all at once; then every one asks for /bytes/1024."""
    opened = [None] * count
    answered = [False] * count
    why = {}
    lock = threading.Lock()
    everyone_connected = threading.Barrier(count + 1, timeout=90)

    def note(reason):
        with lock:
            why[reason] = why.get(reason, 0) + 1

    def one(index):
        try:
            opened[index] = socket.create_connection((address, port), timeout=60)
        except OSError as e:
            note(f"connect: {type(e).__name__}")
        try:
            everyone_connected.wait()
        except threading.BrokenBarrierError:
            pass
        conn = opened[index]
        if conn is None:
            return
        try:
            conn.sendall(b"GET /bytes/1024 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            ok = data.startswith(b"HTTP/1.1 200 ") and data.endswith(
                bytes((ord("a") + i % 26) for i in range(1024)))
            answered[index] = ok
            if not ok:
                note(f"{len(data)} bytes back")
        except OSError as e:
            note(type(e).__name__)
        finally:
            conn.close()

    start = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    try:
        everyone_connected.wait()
    except threading.BrokenBarrierError:
        note("not all connected within 90 s")
    held = sum(c is not None for c in opened)
    for t in threads:
        t.join(timeout=120)
    good = sum(answered)
    print(f"HTTP from {address}:{port}: {held} of {count} connections open at once, "
          f"{good} answered 200 with the whole body ({time.monotonic() - start:.1f} s)"
          + (f"; failures: {why}" if why else ""))
    return good == count


def main():
    args = sys.argv[1:]
    if len(args) == 3 and args[0] == "ping":
        ok = ping(args[1], int(args[2]))
    elif len(args) == 4 and args[0] == "tcp-echo":
        ok = tcp_echo(args[1], int(args[2]), int(args[3]))
    elif len(args) == 4 and args[0] == "udp-echo":
        ok = udp_echo(args[1], int(args[2]), int(args[3]))
    elif len(args) == 4 and args[0] == "http-concurrent":
        ok = http_concurrent(args[1], int(args[2]), int(args[3]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
