"""What the benchmark scripts share (tools/net-bench.py, maglev-bench.py,
apps-bench.py): booting our kernel in QEMU with its serial console on a
pipe, typing monitor commands and reading what they print, free ports on
this host's loopback, and the CPU model for the results' JSON."""
import os
import socket
import subprocess
import threading
import time


def free_port(kind):
    """A port on 127.0.0.1 free for `kind` (SOCK_STREAM or SOCK_DGRAM) now."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")),
                        "unknown")
    except OSError:
        return "unknown"


def kernel_command(kernel, archive, netdev, device, smp=2, mem="256M", append="log=info"):
    """QEMU for our kernel (PVH) with one NIC on `netdev`, TCG, no display."""
    return ["qemu-system-x86_64", "-machine", "q35", "-cpu", "max", "-accel", "tcg",
            "-smp", str(smp), "-m", mem, "-kernel", kernel, "-initrd", archive,
            "-append", append, "-display", "none", "-serial", "stdio", "-monitor", "none",
            "-no-reboot", "-nic", "none", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-netdev", netdev, "-device", device]


class Guest:
    """A booted QEMU whose serial output a thread collects (`output`)."""

    def __init__(self, cmd):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.output = b""
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                return
            with self.lock:
                self.output += chunk

    def wait_for(self, text, limit=60, after=0):
        """Whether `text` appears (after byte `after`) within `limit` s."""
        end = time.monotonic() + limit
        while time.monotonic() < end:
            with self.lock:
                if text.encode() in self.output[after:]:
                    return True
            time.sleep(0.02)
        return False

    def require(self, text, limit=60):
        if not self.wait_for(text, limit):
            raise RuntimeError(f"no '{text}' in {limit} s:\n"
                               + self.output.decode(errors="replace")[-1500:])

    def type(self, line):
        self.proc.stdin.write(line.encode() + b"\r")
        self.proc.stdin.flush()

    def call(self, line, limit=30):
        """Types a console command; its output up to the next prompt."""
        with self.lock:
            mark = len(self.output)
        self.type(line)
        end = time.monotonic() + limit
        while time.monotonic() < end:
            with self.lock:
                text = self.output[mark:].decode(errors="replace")
            # The echoed line, then the answer, then a new prompt.
            if "\n" in text and "monitor> " in text.split("\n", 1)[1]:
                return text.split("\n", 1)[1]
            time.sleep(0.02)
        raise RuntimeError(f"{line!r}: no prompt after it")

    def stop(self):
        try:
            self.type("shutdown")
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
