#!/usr/bin/env python3
"""Boots the Linux baseline guest (built by build.sh beside this file) in QEMU.

The guest runs nginx on port 80 and memcached on TCP and UDP port 11211 at
10.0.2.15 on QEMU's user network, forwarded to 127.0.0.1 on this host. It
uses the same machine, CPU model and NIC models (igb, virtio-net-pci modern)
as our OS's QEMU runs, TCG only.

As a library:

    import run                      # bench/linux-guest on sys.path
    guest = run.start("igb", smp=2, http_port=0, kv_port=0)   # 0: pick free
    ... guest.http_port, guest.kv_port, guest.kv_udp_port ...
    run.stop(guest)

`start` returns a Guest, which unpacks as (process, log) too; it waits, at
most `timeout` seconds, for the console line `linux-guest: ready` and raises
GuestError (with QEMU already killed) otherwise.

As a command: boots, waits for ready, fetches /hello.txt with curl, asks
memcached for its version over TCP and UDP, prints the results, and stops.

    bench/linux-guest/run.py --nic igb|virtio [--smp N] [--http-port P] [--kv-port P]

The kernel command line is `console=ttyS0 quiet panic=-1 tsc=reliable` (see
CLOCK below for the last; console=ttyS0 is
what puts the guest's console, and the ready line, on the serial port, which
is QEMU's stdout here). start(..., append_extra="lg.shell", stdin=...)
leaves a shell on the console after ready, for debugging.
"""

import argparse
import atexit
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_DIR = os.path.join(REPO, "build", "linux-guest")
READY = "linux-guest: ready"
GUEST_IP = "10.0.2.15"

NICS = {
    "igb": "igb,netdev=n0",
    "virtio": "virtio-net-pci,disable-legacy=on,netdev=n0",
}

# Every QEMU this module started and has not yet reaped: killed at exit.
_live = set()


class GuestError(RuntimeError):
    pass


class ConsoleLog:
    """The guest's console output, gathered by a reader thread."""

    def __init__(self, stream, echo=None, path=None):
        self._lines = []
        self._cond = threading.Condition()
        self._closed = False
        self._echo = echo
        self._file = open(path, "w") if path else None
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if self._echo:
                self._echo.write(line + "\n")
                self._echo.flush()
            if self._file:
                self._file.write(line + "\n")
                self._file.flush()
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._file:
            self._file.close()

    def wait_for(self, text, deadline):
        """True once a line containing `text` arrived; False at the deadline
        or when the output ended."""
        with self._cond:
            while True:
                if any(text in line for line in self._lines):
                    return True
                if self._closed:
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))

    @property
    def lines(self):
        with self._cond:
            return list(self._lines)

    def text(self):
        return "\n".join(self.lines) + "\n"

    def tail(self, n=30):
        return "\n".join(self.lines[-n:])


class Guest:
    def __init__(self, process, log, nic, smp, http_port, kv_port, kv_udp_port, boot_seconds):
        self.process = process
        self.log = log
        self.nic = nic
        self.smp = smp
        self.http_port = http_port
        self.kv_port = kv_port
        self.kv_udp_port = kv_udp_port
        self.boot_seconds = boot_seconds

    def __iter__(self):            # process, log = start(...)
        return iter((self.process, self.log))


def free_port(kind):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_kv_port():
    """A port free for both TCP and UDP (memcached takes both)."""
    for _ in range(50):
        port = free_port(socket.SOCK_STREAM)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise GuestError("no port free for both TCP and UDP")


# The guest's clock: the TSC, as our kernel's. Left to itself, Linux 6.1
# under TCG with two vCPUs finds their TSCs "unsynchronized" at boot (its
# check races the two vCPU threads), marks the TSC unstable and falls back
# to the HPET, and every clock read (packet timestamps, TCP timers, epoll
# timeouts) becomes an emulated MMIO read: nginx served 25 to 45 % fewer
# requests a second that way (docs/evaluation.md). QEMU's TCG TSC is one
# clock for all vCPUs, so telling Linux it is reliable is true here.
CLOCK = "tsc=reliable"


def qemu_command(nic, smp, http_port, kv_port, kv_udp_port, guest_dir=DEFAULT_DIR,
                 memory="512M", append_extra=""):
    if nic not in NICS:
        raise ValueError(f"unknown nic {nic!r} (one of {', '.join(NICS)})")
    netdev = (f"user,id=n0,net=10.0.2.0/24,"
              f"hostfwd=tcp:127.0.0.1:{http_port}-{GUEST_IP}:80,"
              f"hostfwd=tcp:127.0.0.1:{kv_port}-{GUEST_IP}:11211,"
              f"hostfwd=udp:127.0.0.1:{kv_udp_port}-{GUEST_IP}:11211")
    append = "console=ttyS0 quiet panic=-1 " + CLOCK + (f" {append_extra}" if append_extra else "")
    return [
        "qemu-system-x86_64", "-machine", "q35", "-cpu", "max", "-accel", "tcg",
        "-smp", str(smp), "-m", memory, "-display", "none", "-serial", "stdio",
        "-monitor", "none", "-no-reboot", "-nic", "none",
        "-kernel", os.path.join(guest_dir, "vmlinuz"),
        "-initrd", os.path.join(guest_dir, "initramfs.cpio.gz"),
        "-append", append,
        "-netdev", netdev, "-device", NICS[nic],
    ]


def start(nic="igb", smp=1, http_port=0, kv_port=0, kv_udp_port=None, timeout=120,
          guest_dir=DEFAULT_DIR, echo=None, log_path=None, append_extra="", stdin=None):
    """Boots the guest and waits (at most `timeout` s) for it to be ready.

    Ports 0 are picked free; kv_udp_port defaults to kv_port. `echo` (a text
    stream) gets the console as it comes, `log_path` a copy of it."""
    for name in ("vmlinuz", "initramfs.cpio.gz"):
        if not os.path.isfile(os.path.join(guest_dir, name)):
            raise GuestError(f"{guest_dir}/{name} missing: run bench/linux-guest/build.sh")
    if shutil.which("qemu-system-x86_64") is None:
        raise GuestError("qemu-system-x86_64 not found")
    http_port = http_port or free_port(socket.SOCK_STREAM)
    kv_port = kv_port or free_kv_port()
    kv_udp_port = kv_udp_port or kv_port
    cmd = qemu_command(nic, smp, http_port, kv_port, kv_udp_port, guest_dir,
                       append_extra=append_extra)
    began = time.monotonic()
    process = subprocess.Popen(cmd, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    _live.add(process)
    log = ConsoleLog(process.stdout, echo=echo, path=log_path)
    ok = log.wait_for(READY, began + timeout)
    seconds = time.monotonic() - began
    if not ok:
        exited = process.poll()
        stop(process)
        why = (f"QEMU exited with status {exited}" if exited is not None
               else f"no '{READY}' within {timeout} s")
        raise GuestError(f"guest ({nic}, smp={smp}) did not come up: {why}\n"
                         f"--- console (last lines) ---\n{log.tail()}")
    failed = [line for line in log.lines if "linux-guest: FAILED" in line]
    if failed:
        stop(process)
        raise GuestError(f"guest reported: {failed[0]}\n{log.tail()}")
    return Guest(process, log, nic, smp, http_port, kv_port, kv_udp_port, seconds)


def stop(process, timeout=10):
    """Ends QEMU (a Guest or its Popen): SIGTERM, then SIGKILL; bounded."""
    if isinstance(process, Guest):
        process = process.process
    try:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)
    finally:
        _live.discard(process)


@atexit.register
def _stop_all():
    for process in list(_live):
        try:
            stop(process, timeout=5)
        except Exception:
            pass


# --- checks used by the command ------------------------------------------------

def http_get(port, path="/hello.txt", timeout=10):
    """The body from curl -s, or None when curl failed."""
    r = subprocess.run(["curl", "-s", "--max-time", str(timeout), f"http://127.0.0.1:{port}{path}"],
                       capture_output=True, timeout=timeout + 5)
    return r.stdout if r.returncode == 0 else None


def memcached_version_tcp(port, timeout=10):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"version\r\n")
        data = b""
        deadline = time.monotonic() + timeout
        while not data.endswith(b"\r\n") and time.monotonic() < deadline:
            chunk = s.recv(256)
            if not chunk:
                break
            data += chunk
        return data.decode("ascii", "replace").strip()


def memcached_version_udp(port, timeout=5, tries=3):
    # memcached's UDP frame: request id, sequence number, datagram count, reserved.
    request = struct.pack("!HHHH", 0x1234, 0, 1, 0) + b"version\r\n"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        for _ in range(tries):
            s.sendto(request, ("127.0.0.1", port))
            try:
                data, _ = s.recvfrom(2048)
            except socket.timeout:
                continue
            return data[8:].decode("ascii", "replace").strip()
    return None


def expected_bytes(n):
    return bytes(ord("a") + i % 26 for i in range(n))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nic", choices=sorted(NICS), default="igb")
    ap.add_argument("--smp", type=int, default=1)
    ap.add_argument("--http-port", type=int, default=0, help="host port for nginx (0: pick a free one)")
    ap.add_argument("--kv-port", type=int, default=0, help="host port for memcached, TCP and UDP (0: free)")
    ap.add_argument("--dir", default=DEFAULT_DIR, help="where build.sh put vmlinuz and initramfs.cpio.gz")
    ap.add_argument("--timeout", type=float, default=120, help="seconds to wait for ready")
    ap.add_argument("--quiet", action="store_true", help="do not echo the guest console")
    ap.add_argument("--hold", type=float, default=0,
                    help="after the checks, keep the guest up this many seconds (bounded), e.g. to benchmark it")
    args = ap.parse_args()

    # SIGTERM/SIGHUP end the command the ordinary way, so QEMU is stopped.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))

    echo = None if args.quiet else sys.stderr
    try:
        guest = start(args.nic, args.smp, args.http_port, args.kv_port, timeout=args.timeout,
                      guest_dir=args.dir, echo=echo)
    except GuestError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    failures = 0
    try:
        print(f"linux guest up: nic={args.nic} smp={args.smp} boot={guest.boot_seconds:.1f}s "
              f"http=127.0.0.1:{guest.http_port} memcached=127.0.0.1:{guest.kv_port} (tcp+udp)")
        body = http_get(guest.http_port)
        ok = body == b"hello from a domain\n"
        failures += not ok
        print(f"{'ok' if ok else 'FAILED'}  curl /hello.txt -> {body!r}")
        for n in (64, 1024, 16384, 65536):
            ok = http_get(guest.http_port, f"/bytes/{n}") == expected_bytes(n)
            failures += not ok
            print(f"{'ok' if ok else 'FAILED'}  curl /bytes/{n}")
        try:
            v = memcached_version_tcp(guest.kv_port)
        except OSError as e:
            v = f"error: {e}"
        ok = v.startswith("VERSION ")
        failures += not ok
        print(f"{'ok' if ok else 'FAILED'}  memcached version (tcp) -> {v}")
        v = memcached_version_udp(guest.kv_udp_port)
        ok = bool(v) and v.startswith("VERSION ")
        failures += not ok
        print(f"{'ok' if ok else 'FAILED'}  memcached version (udp) -> {v}")
        if args.hold > 0:
            print(f"holding the guest for {args.hold:.0f} s", flush=True)
            deadline = time.monotonic() + args.hold
            while time.monotonic() < deadline and guest.process.poll() is None:
                time.sleep(min(1.0, deadline - time.monotonic()))
    finally:
        stop(guest)
    print(f"{'all checks passed' if not failures else f'{failures} check(s) failed'}; guest stopped")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
