#!/usr/bin/env python3
"""Runs the kernel's in-QEMU tests and the console end-to-end test.

Each boot is a fresh QEMU (TCG) with a time limit and -no-reboot, so a hang,
a triple fault or a reboot fails instead of stalling. The in-kernel runner
(`test=all` on the kernel command line) prints one line per test and exits
through isa-debug-exit; we require both its final line and its exit status.

Prints every result line and ends with `qemu: N passed, N failed`; the exit
status is 0 only if nothing failed.
"""
import argparse
import glob
import json
import os
import random
import re
import select
import subprocess
import shutil
import sys
import tempfile
import time

PASSED_STATUS = (0x13 << 1) | 1   # power::EXIT_TESTS_PASSED
FAILED_STATUS = (0x11 << 1) | 1   # power::EXIT_TESTS_FAILED
SHUTDOWN_FALLBACK_STATUS = (0x10 << 1) | 1
FATAL_STATUS = (0x12 << 1) | 1            # power::EXIT_FATAL

RESULT = re.compile(r"^ktest: (\S+) \.\.\. (ok|FAILED)(.*)$")
SUMMARY = re.compile(r"^ktest: (\d+) passed, (\d+) failed")


# The signed boot archive of domain images (--archive), passed to every boot,
# and the NVMe scratch disk (--disk), attached unless a boot says otherwise.
ARCHIVE = None
DISK = None


def qemu_command(kernel, smp, mem, append, extra=(), archive=None, disk=True, machine="q35"):
    archive = archive or ARCHIVE
    if disk and DISK:
        extra = (*extra, "-drive", f"file={DISK},if=none,id=nvm,format=raw",
                 "-device", "nvme,serial=nvme0,drive=nvm")
    return [
        "qemu-system-x86_64", "-machine", machine, "-cpu", "max", "-smp", str(smp), "-m", mem,
        "-kernel", kernel, *(["-initrd", archive] if archive else []),
        "-append", append, "-display", "none", "-serial", "stdio",
        "-monitor", "none", "-no-reboot", "-nic", "none",
        "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", *extra,
        # Extra options for debugging a session (for example a packet
        # capture: -object filter-dump,id=f0,netdev=n0,file=x.pcap).
        *os.environ.get("QEMU_EXTRA", "").split(),
    ]


class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def record(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"  ok      {name}")
        else:
            self.failed += 1
            print(f"  FAILED  {name} {detail}")
        sys.stdout.flush()


# QEMU's Intel VT-d model (before every other PCI device on the line).
IOMMU = ("-device", "intel-iommu,intremap=off")


def run_suite(tally, kernel, smp, mem, timeout, selection, iommu=False, x2apic=False, flags=()):
    """The in-kernel suite in one machine configuration. Flags: `iommu`
    (VT-d); `x2apic`: the kernel switches the local APICs to x2APIC mode,
    as firmware on large machines leaves them, and every IPI, timer and
    EOI goes through the x2APIC MSRs; `nopit`: a machine without the 8254
    PIT and the HPET (the TSC calibrated against the ACPI PM timer, as
    always when there is one); `pit`: calibrated against the PIT
    (`calibrate=pit`) although the PM timer is there."""
    x2apic = x2apic or "x2apic" in flags
    iommu = iommu or "iommu" in flags
    label = f"smp={smp} mem={mem}" + "".join(f" {f}" for f in flags if f != "iommu" and f != "x2apic") + (
        " iommu" if iommu else "") + (" x2apic" if x2apic else "")
    print(f"== in-QEMU tests ({label})")
    sys.stdout.flush()
    append = f"test={selection} log=warn" + (" x2apic" if x2apic else "") + (
        " calibrate=pit" if "pit" in flags else "")
    cmd = qemu_command(kernel, smp, mem, append, extra=IOMMU if iommu else (),
                       machine="q35,pit=off,hpet=off" if "nopit" in flags else "q35")
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout)
        output, status = proc.stdout.decode("utf-8", "replace"), proc.returncode
    except subprocess.TimeoutExpired as e:
        output = (e.stdout or b"").decode("utf-8", "replace")
        status = None
    summary = None
    for line in output.replace("\r", "").splitlines():
        m = RESULT.match(line)
        if m:
            tally.record(f"[{label}] {m.group(1)}", m.group(2) == "ok", m.group(3).strip())
        elif SUMMARY.match(line):
            summary = SUMMARY.match(line)
    elapsed = time.monotonic() - start
    expected = PASSED_STATUS if summary and summary.group(2) == "0" else FAILED_STATUS
    healthy = summary is not None and status == expected
    if not healthy:
        why = "timed out (hang)" if status is None else f"exit status {status}, summary {'seen' if summary else 'missing'}"
        tally.record(f"[{label}] kernel ran the suite to the end", False, why)
        print("---- serial output ----")
        print(output[-6000:])
        print("-----------------------")
    print(f"   ({elapsed:.1f} s)")


def fatal_paths(tally, kernel, timeout):
    """A panic or fault in kernel context prints a report and exits QEMU
    with status 37 (power::EXIT_FATAL) on every core count."""
    print("== fatal kernel errors are reported, not hung")
    for smp, how, marker in [(1, "panic", "KERNEL PANIC"), (4, "pagefault", "KERNEL FAULT")]:
        cmd = qemu_command(kernel, smp, "256M", f"fail={how}")
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=timeout)
            out, status = proc.stdout.decode("utf-8", "replace"), proc.returncode
        except subprocess.TimeoutExpired:
            out, status = "", None
        detail_ok = marker in out and ("page fault" in out if how == "pagefault" else "fail=panic" in out)
        registers_ok = how != "pagefault" or ("rip" in out and "cr2 0x0000000000001008" in out)
        tally.record(f"fatal: fail={how} on {smp} cpus reports and exits with status 37",
                     status == FATAL_STATUS and detail_ok and registers_ok, f"(status {status})")
        if status != FATAL_STATUS or not detail_ok or not registers_ok:
            print(out[-3000:])


class Serial:
    """What a QEMU booted with `-serial stdio` has printed so far, read
    until a marker (or a time limit, or QEMU's exit); optionally copied to
    `log` as it arrives."""

    def __init__(self, proc, log=None, deadline=None):
        self.proc, self.log, self.deadline = proc, log, deadline
        self.buffer = b""
        # Where the output of interest starts (see `start_here`): searches
        # and `text` look from here, while what came before stays
        # available to tell a redraw of the input line from a prompt.
        self.mark = 0

    def start_here(self):
        """What is read from now on is the output of interest."""
        self.mark = len(self.buffer)

    def reset(self):
        self.buffer, self.mark = b"", 0

    def read_until(self, marker, limit):
        end = time.monotonic() + limit
        if self.deadline is not None:
            end = min(end, self.deadline)
        while self.buffer.find(marker, self.mark) < 0:
            remaining = end - time.monotonic()
            if remaining <= 0 or self.proc.poll() is not None:
                return False
            ready, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    return False
                self.buffer += chunk
                if self.log:
                    self.log.write(chunk.decode("utf-8", "replace"))
                    self.log.flush()
        return True

    def prompt_after_command(self):
        """Where the console's prompt after a command starts, or -1. The
        console draws its input line again after output that arrives while
        a command is being typed (a line it first clears with ESC [K), so a
        `monitor> ` that follows such a line is a redraw, not the prompt a
        finished command prints; the latter starts a line after the Enter
        was echoed."""
        start = self.mark
        while True:
            at = self.buffer.find(b"monitor> ", start)
            if at < 0:
                return -1
            # The prompt starts a line; the line before it says what it is.
            line_end = self.buffer.rfind(b"\n", 0, at)
            line_start = self.buffer.rfind(b"\n", 0, max(line_end, 0)) + 1
            if line_end >= 0 and b"\x1b[K" not in self.buffer[line_start:line_end]:
                return at
            start = at + 1

    def read_prompt(self, limit):
        """Reads until the prompt after a command (see
        `prompt_after_command`)."""
        end = time.monotonic() + limit
        if self.deadline is not None:
            end = min(end, self.deadline)
        while self.prompt_after_command() < 0:
            remaining = end - time.monotonic()
            if remaining <= 0 or self.proc.poll() is not None:
                return False
            ready, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    return False
                self.buffer += chunk
                if self.log:
                    self.log.write(chunk.decode("utf-8", "replace"))
                    self.log.flush()
        return True

    def text(self):
        return self.buffer[self.mark:].decode("utf-8", "replace").replace("\r", "")


def shut_down(proc, send=True):
    """Types `shutdown` (if `send`) and waits for QEMU to exit; its exit
    status, or None if it had to be killed."""
    if send:
        proc.stdin.write(b"shutdown\r")
        proc.stdin.flush()
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return None


def console_session(tally, kernel, smp, mem, timeout, checks=None, archive=None, label="console",
                    boot_check=None, disk=True, extra=(), handle=None, append="log=info",
                    prefix=()):
    """Boots to the monitor prompt, types commands, checks replies and that
    `shutdown` makes QEMU exit with status 0. If `handle` is a dict,
    `handle["type"](line)` types a command from another thread (during a
    `@run` step; its output is read with the next command's)."""
    print(f"== {label} end-to-end (smp={smp} mem={mem})")
    proc = subprocess.Popen([*prefix, *qemu_command(kernel, smp, mem, append, archive=archive,
                                                    disk=disk, extra=extra)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    serial = Serial(proc, deadline=time.monotonic() + timeout)
    read_until = serial.read_until
    if handle is not None:
        def type_line(line):
            proc.stdin.write(line.encode() + b"\r")
            proc.stdin.flush()
        handle["type"] = type_line

    def command(line):
        serial.start_here()
        proc.stdin.write(line.encode() + b"\r")
        proc.stdin.flush()
        ok = serial.read_prompt(30)
        return ok, serial.text()

    boot_start = time.monotonic()
    booted = read_until(b"monitor> ", 60)
    tally.record(f"{label}: prompt reached ({time.monotonic() - boot_start:.2f} s)", booted)
    if booted and boot_check is not None:
        boot_log = serial.text()
        tally.record(f"{label}: boot log", boot_check(boot_log), boot_log[-600:])
    if checks is None:
        checks = [
            ("help", lambda out: "shutdown" in out and "cpus" in out and "uptime" in out),
            ("cpus", lambda out: len(re.findall(r"^\d+\s+\d+\s+\d+", out, re.M)) == smp),
            ("mem", lambda out: "physical:" in out and "free" in out and "kernel heap" in out),
            ("tasks", lambda out: "owner" in out),
            ("uptime", lambda out: re.search(r"up \d+\.\d{3} s", out) is not None),
            ("frobnicate", lambda out: "unknown command 'frobnicate'" in out),
            ("mem now", lambda out: "unexpected argument 'now'" in out and "usage: mem" in out),
            ("log shouting", lambda out: "unknown level 'shouting'" in out),
            ('help "unterminated', lambda out: "error" in out or "no command" in out),
            ("x" * 300, lambda out: "monitor>" in out),  # over-long line: refused, prompt survives
            # Domains: the acceptance flow of issue 3.
            ("load counter", lambda out: "loaded image counter as domain" in out),
            ("load checksum", lambda out: "loaded image checksum as domain" in out),
            ("load client", lambda out: "loaded image client as domain" in out),
            ("@pause", None),  # let the client call its services a few times
            ("domains", lambda out: re.search(r"counter\s+alive\s+1\s", out) is not None
                and re.search(r"checksum\s+alive.*checksum,control", out) is not None),
            ("call client 2", lambda out: re.search(r"^[1-9]\d*$", out, re.M) is not None),  # RRef blocks verified
            # What a domain says about its operations, and a text answer.
            ("call client help", lambda out: "2: blocks verified" in out and "4: all of them, as text" in out),
            ("call client 4", lambda out: re.search(r"^rounds ok \d+, calls failed \d+, blocks verified [1-9]", out,
                                                    re.M) is not None),
            ("call counter help", lambda out: "0: calls of `counter` so far" in out),
            ("call counter helpme", lambda out: "OP must be a number" in out),
            ("call counter 4294967295", lambda out: "OP must be a number below 4294967295" in out),
            ("call client 3", lambda out: re.search(r"^0$", out, re.M) is not None),  # digest mismatches
            ("crash counter pagefault", lambda out: "domain crashed" in out and "page fault" in out),
            ("domains", lambda out: re.search(r"counter\s+(dead|reclaiming|poisoned)\s+1\s", out) is not None
                and re.search(r"client\s+alive", out) is not None),
            ("mem", lambda out: re.search(r"domain counter\s+heap 0 B in use, 0 B mapped", out) is not None),
            ("@pause", None),
            ("call client 0", lambda out: re.search(r"^[1-9]\d*$", out, re.M) is not None),  # successful calls
            ("call client 1", lambda out: re.search(r"^[1-9]\d*$", out, re.M) is not None),  # errors seen, still running
            ("restart counter", lambda out: "restarted as generation 2" in out),
            # Per-domain log levels and recent lines (the client logged its
            # failed calls while counter was dead).
            ("log counter debug", lambda out: "counter: log level debug" in out),
            ("log", lambda out: re.search(r"^\s+counter\s+debug$", out, re.M) is not None),
            ("log show client", lambda out: re.search(r"\d+\.\d{3} \[ info\] call failed", out) is not None),
            ("log show client 1", lambda out: len(re.findall(r"^\s*\d+\.\d{3} \[", out, re.M)) == 1),
            ("log show client 0", lambda out: "LINES must be a positive number" in out),
            ("log show nosuch", lambda out: "no domain named 'nosuch'" in out),
            ("log counter loud", lambda out: "unknown level 'loud'" in out),
            ("log counter", lambda out: "set which level for 'counter'" in out),
            ("log counter default", lambda out: "counter: log level default" in out),
            # The tick profile: a domain spinning until its watchdog stops
            # it (100 ms, at 1000 ticks a second) shows in it.
            ("prof reset", lambda out: "prof: samples reset" in out),
            ("crash client loop", lambda out: "watchdog" in out),
            ("prof", lambda out: re.search(r"^client\s+.*\b([1-9]\d*\.\d|0\.[1-9])%", out, re.M) is not None
                and re.search(r"^\(halted\)\s+\d", out, re.M) is not None),
            ("prof now", lambda out: "usage: prof [reset]" in out),
            ("crash counter frobnicate", lambda out: "unknown fault 'frobnicate'" in out),
            ("load broken", lambda out: "during initialisation" in out and "index out of bounds" in out),
            ("kill nosuch", lambda out: "no domain named 'nosuch'" in out),
            ("load counter two three", lambda out: "too many arguments" in out),
            ("load idle bad/name", lambda out: "bad domain name" in out),
            # Block devices: the NVMe driver behind its shadow.
            ("pci", lambda out: "NVMe controller" in out),
            ("load nvme", lambda out: "loaded image nvme as domain" in out),
            ("load nvme-shadow", lambda out: "loaded image nvme-shadow as domain" in out),
            ("blk", lambda out: "nvme-shadow" in out and "bdev" in out),
            ("blk check nvme-shadow 32", lambda out: "running" in out),
            ("@pause", None),
            ("crash nvme pagefault", lambda out: "domain crashed" in out),
            ("blk check nvme-shadow 16", lambda out: "running" in out),
            ("@await blk check nvme-shadow: 16 blocks from block", None),
            # Output from a background task while a command is half typed:
            # the line is cleared, the output printed, the prompt and the
            # typed text drawn again, and typing goes on where it was.
            ("blk check nvme-shadow 8", lambda out: "running" in out),
            ("@type dom", None),
            ("@await blk check nvme-shadow: 8 blocks from block", None),
            ("@redrawn monitor> dom", None),
            ("ains", lambda out: re.search(r"nvme-shadow\s+alive", out) is not None),
            ("call nvme-shadow 0", lambda out: re.search(r"^[1-9]\d*$", out, re.M) is not None),
            ("blk check nvme-shadow 99999", lambda out: "BLOCKS must be 1 to 4096" in out),
            ("domains", lambda out: "supervised by nvme-shadow" in out),
            # Killed by the operator, the driver stays dead: its shadow
            # restarts it only after a crash.
            ("kill nvme", lambda out: "killed" in out),
            ("@pause", None),
            ("blk check nvme-shadow 4", lambda out: "running" in out),
            # The check fails (the shadow does not restart a killed
            # driver): waited for, not assumed within a fixed pause (a
            # loaded host made that flaky).
            ("@await blk check nvme-shadow: FAILED", None),
            ("domains", lambda out: re.search(r"nvme\s+dead\s+", out) is not None),
            ("restart nvme", lambda out: "restarted as generation" in out),
            ("blk check nvme-shadow 4", lambda out: "running" in out),
            ("@await blk check nvme-shadow: 4 blocks from block", None),
            # The fault campaign refuses bad arguments, and domains it would
            # load that are already alive (it must own their whole life).
            ("storm 0", lambda out: "FAULTS must be 1 to 1000000" in out),
            ("storm 99999999999", lambda out: "FAULTS must be 1 to 1000000" in out),
            ("storm 5 frobnicate", lambda out: "'frobnicate' is not a storm target" in out),
            ("storm 5 seed=zz", lambda out: "seed:" in out),
            ("storm 5 counter", lambda out: "domain 'counter' is alive" in out),
        ]
    if booted:
        for line, check in checks:
            if line == "@pause":
                time.sleep(0.5)
                continue
            if line == "@drain":
                # Reads what commands typed from another thread printed
                # (until 1 s of quiet, at most 10 s), so that the next
                # command's reply is its own.
                quiet_until = time.monotonic() + 10
                while time.monotonic() < quiet_until:
                    before = len(serial.buffer)
                    serial.read_until(b"\x00never\x00", 1)
                    if len(serial.buffer) == before:
                        break
                serial.start_here()
                continue
            if line == "@run":
                # A step on the host (`check` returns whether it worked and
                # what to show if not).
                ok, detail = check()
                tally.record(f"{label}: {detail if ok else 'host step'}", ok, "" if ok else detail)
                continue
            if line.startswith("@type "):
                # Typed without Enter (the next command line continues it).
                serial.start_here()
                proc.stdin.write(line[len("@type "):].encode())
                proc.stdin.flush()
                continue
            if line.startswith("@redrawn "):
                # After asynchronous output: the input line was cleared
                # (ANSI erase-in-line) and is drawn again below it.
                text = line[len("@redrawn "):]
                seen = read_until(b"\n" + text.encode(), 10) and b"\x1b[K" in serial.buffer[serial.mark:]
                tally.record(f"{label}: '{text}' drawn again after asynchronous output", seen,
                             repr(serial.buffer[-400:]))
                continue
            if line.startswith("@await "):
                # Output printed later by a background task (a `blk check`):
                # wait for it, up to 20 s.
                text = line[len("@await "):]
                seen = read_until(text.encode(), 20)
                tally.record(f"{label}: eventually '{text[:40]}'", seen, serial.text()[-400:])
                continue
            ok, out = command(line)
            good = ok and check(out)
            tally.record(f"{label}: '{line[:30]}'", good, "" if ok else "(no prompt after it)")
            if not good:
                print(out[-2000:])
    status = shut_down(proc, send=booted)
    tally.record(f"{label}: shutdown exits QEMU with status 0", booted and status == 0, f"(status {status})")


STORM_SUMMARY = re.compile(
    r"storm: summary faults=(\d+) contained=(\d+) data_errors=(\d+) leaked_bytes=(\d+) "
    r"unexpected_crashes=(\d+) stuck=(\d+) recovery_median_us=(\d+) recovery_p99_us=(\d+) result=(\w+)")


STALL_MARKS = ("did not finish", "not reclaimed", "served no request", "without a poll")


def print_cpu_registers(monitor, kernel):
    """Every virtual CPU's instruction pointer, stack pointer and flags,
    read from QEMU's monitor, with the code each is in (`addr2line`)."""
    import socket
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.connect(monitor)
        sock.sendall(b"info registers -a\n")
        data = b""
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            data += chunk
            if data.count(b"EFER=") >= 1 and data.rstrip().endswith(b"(qemu)"):
                break
        sock.close()
    except OSError as e:
        print(f"    (no registers from QEMU's monitor: {e})")
        return
    text = data.decode("utf-8", "replace")
    for block in re.split(r"(?=CPU#\d+)", text):
        cpu = re.match(r"CPU#(\d+)", block)
        rip = re.search(r"RIP=([0-9a-f]+)", block)
        rsp = re.search(r"RSP=([0-9a-f]+)", block)
        rfl = re.search(r"RFL=([0-9a-f]+)", block)
        hlt = re.search(r"HLT=(\d)", block)
        if not (cpu and rip):
            continue
        flags = int(rfl.group(1), 16) if rfl else 0
        where = ""
        try:
            out = subprocess.run(["addr2line", "-f", "-C", "-e", kernel, "0x" + rip.group(1)],
                                 capture_output=True, text=True, timeout=10).stdout.split("\n")
            where = out[0] if out else ""
        except (OSError, subprocess.TimeoutExpired):
            pass
        print(f"    cpu {cpu.group(1)}: rip {rip.group(1)} rsp {rsp.group(1) if rsp else '?'} "
              f"interrupts {'on' if flags & 0x200 else 'OFF'}{' halted' if hlt and hlt.group(1) == '1' else ''}"
              f" in {where}")


def storm_session(tally, kernel, faults, smp=4, mem="512M", log=None, mode="entry"):
    """The fault campaign (issue 12): boots the production kernel on `smp`
    cores with the NVMe disk and the IOMMU, runs the console's `storm
    FAULTS`, and checks its summary: every fault injected and contained,
    no data error, no byte leaked, no task stuck; then that the kernel
    still answers and shuts down cleanly (a kernel crash would end the
    boot with the fatal status instead). Returns the summary's fields."""
    words = f"storm {faults}" + (" entry" if mode == "entry" else "")
    label = f"{words} (smp={smp})"
    print(f"== fault campaign: {label}")
    sys.stdout.flush()
    # QEMU's monitor on a socket: if the campaign reports a stall, every
    # virtual CPU's registers are read from it (a core stuck with
    # interrupts off cannot report itself).
    monitor = f"/tmp/storm-monitor-{os.getpid()}.sock"
    command = qemu_command(kernel, smp, mem, "log=info", extra=IOMMU)
    command[command.index("-monitor") + 1] = f"unix:{monitor},server,nowait"
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    serial = Serial(proc, log=log)
    read_until = serial.read_until

    booted = read_until(b"monitor> ", 60)
    tally.record(f"{label}: prompt reached", booted)
    result = None
    kernel_crashes = 0
    if booted:
        serial.reset()
        start = time.monotonic()
        proc.stdin.write(f"{words}\r".encode())
        proc.stdin.flush()
        # Generous: about 0.5 s per fault under TCG, plus the warm-up.
        done = read_until(b"storm: summary", 180 + faults) and read_until(b"monitor> ", 30)
        elapsed = time.monotonic() - start
        out = serial.text()
        for line in out.splitlines():
            if line.startswith("storm:"):
                print(f"    {line}")
        if any(mark in out for mark in STALL_MARKS):
            print_cpu_registers(monitor, kernel)
        if "KERNEL PANIC" in out or "FATAL" in out:
            kernel_crashes = 1
        m = STORM_SUMMARY.search(out)
        if m:
            (n, contained, data_errors, leaked, unexpected, stuck, median, p99,
             verdict) = m.groups()
            result = {"faults": int(n), "contained": int(contained), "data_errors": int(data_errors),
                      "leaked_bytes": int(leaked), "unexpected_crashes": int(unexpected),
                      "stuck": int(stuck), "recovery_median_us": int(median),
                      "recovery_p99_us": int(p99), "seconds": round(elapsed, 1)}
            tally.record(f"{label}: {n} faults injected, {contained} contained", int(n) == faults
                         and int(contained) == faults and int(unexpected) == 0)
            tally.record(f"{label}: 0 data errors", int(data_errors) == 0, f"({data_errors})")
            tally.record(f"{label}: 0 bytes leaked after every domain was killed", int(leaked) == 0,
                         f"({leaked} B)")
            tally.record(f"{label}: no task stuck, summary says ok", int(stuck) == 0 and verdict == "ok",
                         f"(stuck {stuck}, result {verdict})")
        else:
            tally.record(f"{label}: summary printed", False, "(none: hang or crash)" if done else "(timed out)")
            print(out[-3000:])
        if done:
            serial.reset()
            proc.stdin.write(b"mem\r")
            proc.stdin.flush()
            answered = read_until(b"monitor> ", 30)
            tally.record(f"{label}: the kernel still answers afterwards", answered)
    status = shut_down(proc, send=booted and done)
    try:
        os.unlink(monitor)
    except OSError:
        pass
    if status == FATAL_STATUS:
        kernel_crashes = 1
    tally.record(f"{label}: 0 kernel crashes, shutdown exits QEMU with status 0",
                 kernel_crashes == 0 and status == 0, f"(status {status})")
    if result is not None:
        result["kernel_crashes"] = kernel_crashes
        print(f"   storm result: {json.dumps(result)}")
    return result


def cpu_cap_session(tally, kernel):
    """`cpus=N` brings up at most N of the machine's cpus (for servers with
    more cores than a run wants); a bad value is refused with a warning
    and every cpu started."""
    print("== cpus= on the command line")
    for append, want in (("log=info cpus=2", "smp: 2 of 4 cpus online"),
                         ("log=info cpus=0", "smp: 4 of 4 cpus online")):
        proc = subprocess.Popen(qemu_command(kernel, 4, "256M", append, disk=False),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        serial = Serial(proc, deadline=time.monotonic() + 60)
        booted = serial.read_until(b"monitor> ", 60)
        text = serial.text()
        warned = "cpus= takes 1.." in text if "cpus=0" in append else True
        tally.record(f"console: {append.split()[-1]}: '{want}'", booted and want in text and warned,
                     text[-600:])
        if shut_down(proc) is None:
            proc.wait()


def spcr_session(tally, kernel):
    """The console follows the firmware's ACPI SPCR table: QEMU given an
    SPCR naming COM2 (I/O port 0x2f8, IRQ 3), with COM1 going nowhere and
    COM2 on this test's pipe: the monitor's prompt comes on COM2 and a
    command typed there runs (its input interrupt routed from the SPCR's
    IRQ)."""
    import struct
    print("== the console on the port the ACPI SPCR names")
    body = bytearray(80 - 36)
    body[0] = 0                                   # a full 16550
    body[4:8] = bytes([1, 8, 0, 1])               # system I/O, 8 bits, byte access
    body[8:16] = struct.pack("<Q", 0x2F8)
    body[16], body[17] = 1, 3                     # a PC-AT IRQ: 3
    body[22] = 7                                  # 115200 baud
    with tempfile.NamedTemporaryFile(suffix=".spcr", delete=False) as f:
        f.write(bytes(body))
        data = f.name
    cmd = qemu_command(kernel, 2, "256M", "log=info", disk=False,
                       extra=("-acpitable", f"sig=SPCR,rev=2,data={data}"))
    # COM1 to nowhere, COM2 to the pipe this test reads.
    at = cmd.index("-serial")
    cmd[at:at + 2] = ["-serial", "null", "-serial", "stdio"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    serial = Serial(proc, deadline=time.monotonic() + 90)
    try:
        booted = serial.read_until(b"monitor> ", 60)
        text = serial.text()
        tally.record("console: on COM2 as the SPCR says: prompt reached",
                     booted and "console on port 0x2f8 (ACPI SPCR)" in text, text[-800:])
        if booted:
            serial.start_here()
            proc.stdin.write(b"uptime\r")
            proc.stdin.flush()
            ran = serial.read_until(b"monitor> ", 30) and re.search(r"up \d+\.\d{3} s", serial.text())
            tally.record("console: a command typed on COM2 runs", bool(ran), serial.text()[-300:])
            status = shut_down(proc)
            tally.record("console: shutdown from COM2 exits QEMU with status 0", status == 0, f"status {status}")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.unlink(data)


def typed_during_boot(tally, kernel):
    """A command typed before the monitor is up is not lost: all at once
    when QEMU starts, and one key at a time across the whole boot (the
    UART's FIFOs are switched on only if no input is waiting, since
    switching them on discards what was received)."""
    print("== typing while the machine boots")
    for label, gap in (("at once", 0.0), ("a key every 150 ms", 0.15)):
        proc = subprocess.Popen(qemu_command(kernel, 1, "128M", "log=warn"), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        buffer = b""
        for key in b"uptime\r":
            proc.stdin.write(bytes([key]))
            proc.stdin.flush()
            if gap:
                time.sleep(gap)
        deadline = time.monotonic() + 30
        done = re.compile(rb"up \d+\.\d{3} s|unknown command")
        while not done.search(buffer) and time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                buffer += os.read(proc.stdout.fileno(), 4096)
        text = buffer.decode("utf-8", "replace")
        tally.record(f"console: a command typed during boot ({label}) runs whole",
                     re.search(r"up \d+\.\d{3} s", text) is not None and "unknown command" not in text,
                     text[-300:])
        shut_down(proc)


# ---- boot archives, good and bad -------------------------------------------

def cpio_read(data):
    """(name, bytes) entries of a cpio newc archive, trailer excluded."""
    entries, at = [], 0
    while True:
        header = data[at:at + 110]
        fields = [int(header[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        size, namesize = fields[6], fields[11]
        name = data[at + 110:at + 110 + namesize - 1].decode()
        at = (at + 110 + namesize + 3) & ~3
        body = data[at:at + size]
        at = (at + size + 3) & ~3
        if name == "TRAILER!!!":
            return entries
        entries.append((name, body))


def cpio_write(entries):
    out = bytearray()
    for index, (name, body) in enumerate(entries + [("TRAILER!!!", b"")]):
        fields = [index + 1, 0o100644, 0, 0, 1, 0, len(body), 0, 0, 0, 0, len(name) + 1, 0]
        out += b"070701" + "".join(f"{f:08x}" for f in fields).encode() + name.encode() + b"\0"
        out += b"\0" * (-len(out) % 4)
        out += body
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def guide_session(tally, kernel):
    """Runs the console session of docs/authoring-domains.md, command for
    command as the guide lists them, on the guide's example domains."""
    guide = open(os.path.join(os.path.dirname(__file__), "../docs/authoring-domains.md")).read()
    block = guide.split("```console\n", 1)[1].split("```", 1)[0]
    commands = [line[len("monitor> "):] for line in block.splitlines() if line.startswith("monitor> ")]
    seen = {}

    def number(out):
        found = re.search(r"^(\d+)$", out, re.M)
        return int(found.group(1)) if found else None

    def greetings(out):
        n = number(out)
        previous = seen.get("greetings")
        seen["greetings"] = n
        return n is not None and n > 0 and (previous is None or n > previous)

    expect = {
        "load greeter": lambda out: "loaded image greeter as domain" in out,
        "load greeter-client": lambda out: "loaded image greeter-client as domain" in out,
        "domains": lambda out: re.search(r"greeter\s+alive.*greeter", out) is not None
            and re.search(r"greeter-client\s+alive.*control", out) is not None,
        "call greeter-client 0": greetings,
        "crash greeter panic": lambda out: "domain crashed" in out,
        "call greeter-client 1": lambda out: (number(out) or 0) >= 1,
        "restart greeter": lambda out: "restarted as generation 2" in out,
        "kill greeter-client": lambda out: "error" not in out.lower(),
        "mem": lambda out: "physical:" in out,
    }
    checks = []
    for command in commands:
        if command.startswith("call") or command.startswith("domains"):
            checks.append(("@pause", None))
        checks.append((command, expect.get(command, lambda out: False)))
    tally.record("guide: its session lists the expected commands",
                 set(commands) == set(expect), f"{commands}")
    console_session(tally, kernel, 2, "256M", 120, checks=checks, label="authoring guide")


def parse_session(text, origin="session"):
    """The checks of a `session.console` file (see tools/new-domain.py):
    `monitor> COMMAND` lines, each followed by the regular expressions its
    reply must contain (`!` in front: must not), `@pause` and `@await TEXT`.
    Returns (checks, problems): a malformed file is reported, not run."""
    checks, problems = [], []
    command, patterns = None, []

    def close():
        if command is None:
            return
        compiled = []
        for pattern in patterns:
            negate = pattern.startswith("!")
            try:
                compiled.append((negate, re.compile(pattern[1:] if negate else pattern, re.M)))
            except re.error as e:
                problems.append(f"{origin}: bad pattern {pattern!r} after '{command}': {e}")

        def check(out, compiled=compiled):
            return all((regex.search(out) is None) == negate for negate, regex in compiled)
        checks.append((command, check))

    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("monitor> "):
            close()
            command, patterns = line[len("monitor> "):].strip(), []
            if not command:
                problems.append(f"{origin}:{number}: an empty command")
        elif line == "@pause" or line.startswith("@await "):
            close()
            command, patterns = None, []
            checks.append((line, None))
        elif command is None:
            problems.append(f"{origin}:{number}: a reply pattern before any `monitor>` command")
        else:
            patterns.append(line)
    close()
    if not any(check for _, check in checks):
        problems.append(f"{origin}: no `monitor>` command")
    return checks, problems


def domain_sessions(tally, kernel, root=None):
    """Every `session.console` next to a domain (ROOT/domains/*/,
    ROOT/drivers/*/; ROOT is this repository unless given): the console
    session its author wrote (or `make new-domain` did), each on a boot of
    its own with the archive given by --archive."""
    root = root or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    files = sorted(glob.glob(os.path.join(root, "domains", "*", "session.console"))
                   + glob.glob(os.path.join(root, "drivers", "*", "session.console")))
    for path in files:
        where = os.path.relpath(path, root)
        checks, problems = parse_session(open(path).read(), where)
        tally.record(f"{where}: well-formed", not problems, "; ".join(problems))
        if problems:
            continue
        console_session(tally, kernel, 2, "256M", 120, checks=checks, label=where)


def free_udp_port():
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


NICS = {
    # name: (QEMU device, driver image, its "call DRIVER 5" text, its `net` line)
    # (igb: a queue pair per core, and these boots have two cores)
    "igb": ("igb,netdev=n0", "igb", r"^82576 52:54:00:[0-9a-f:]+, link up at 1000 Mb/s, 2 queue pairs",
            r"^igb\s+52:54:00:[0-9a-f:]+\s+link up, 1000 Mb/s\s+2 queue pair"),
    "virtio": ("virtio-net-pci,disable-legacy=on,netdev=n0", "virtio-net",
               r"^virtio-net 52:54:00:[0-9a-f:]+, up, 1 queue pair",
               r"^virtio-net\s+52:54:00:[0-9a-f:]+\s+link up\s+1 queue pair"),
}


def net_session(tally, kernel, nic="igb", shadow=False):
    """A NIC driver end to end, below any IP stack: QEMU's 82576 (`igb`)
    or virtio-net device joined to a UDP socket on this host's loopback
    (`-netdev dgram`: one datagram per Ethernet frame), the `l2echo`
    domain turning every frame around.
    Frames of every size are sent in windows and each echo is checked byte
    for byte; malformed frames crash nothing; a crashed driver is restarted
    and echoing resumes. Traffic stays on 127.0.0.1."""
    import random
    import socket
    # Two adjacent free ports (the guest's, then this side's), as
    # `make run NIC=igb` uses them.
    host = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(100):
        guest_port = free_udp_port()
        host_port = guest_port + 1
        try:
            host.bind(("127.0.0.1", host_port))
            break
        except OSError:
            continue
    host.settimeout(0.2)
    ours = bytes.fromhex("020000000001")
    guest_mac = {}
    rng = random.Random(7)

    def frame(seq, size):
        body = seq.to_bytes(4, "big") + bytes(rng.getrandbits(8) for _ in range(size - 18))
        return b"\xff" * 6 + ours + b"\x88\xb5" + body

    def echo(count, window=16, sizes=(60, 1514)):
        sent, back, bad = {}, 0, 0
        seq = 0
        deadline = time.monotonic() + 30
        while (seq < count or sent) and time.monotonic() < deadline:
            while seq < count and len(sent) < window:
                size = rng.randint(*sizes)
                data = frame(seq, size)
                sent[seq] = data
                host.sendto(data, ("127.0.0.1", guest_port))
                seq += 1
            try:
                got, _ = host.recvfrom(4096)
            except socket.timeout:
                # Lost frames: give up on those in flight for a while.
                if time.monotonic() > deadline - 25 and seq >= count:
                    break
                continue
            if len(got) < 18 or got[12:14] != b"\x88\xb5":
                continue
            number = int.from_bytes(got[14:18], "big")
            want = sent.pop(number, None)
            if want is None:
                continue
            guest_mac.setdefault("mac", got[6:12])
            # QEMU may pad a short frame to the 60-byte minimum.
            same = got[:6] == ours and got[12:len(want)] == want[12:] and got[6:12] == guest_mac["mac"]
            back += same
            bad += not same
        return back, bad

    def echo_step(count, label):
        def step():
            back, bad = echo(count)
            return back == count and bad == 0, f"{label}: {back} of {count} frames echoed intact, {bad} altered"
        return step

    def garbage():
        # Shorter than a header, exactly a header, oversized (no jumbo
        # frames: the device drops them), random bytes.
        for data in (b"\x01\x02\x03", b"\xff" * 6 + ours + b"\x88\xb5", b"\x00" * 9000,
                     bytes(rng.getrandbits(8) for _ in range(777))):
            host.sendto(data, ("127.0.0.1", guest_port))
        time.sleep(0.5)
        while True:
            try:
                host.recvfrom(4096)
            except socket.timeout:
                break
        back, bad = echo(50)
        return back == 50 and bad == 0, f"after malformed frames: {back} of 50 echoed intact"

    def frames_tool():
        # The README's host side: tools/frames.py, on the same ports.
        host.close()
        done = subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                            "frames.py"), "--count", "100",
                               "--port", str(guest_port)], capture_output=True, text=True, timeout=60)
        line = (done.stdout + done.stderr).strip()
        return done.returncode == 0 and "100 of 100 echoed intact" in line, f"tools/frames.py: {line}"

    netdev = (f"dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port={guest_port},"
              f"remote.type=inet,remote.host=127.0.0.1,remote.port={host_port}")
    device, driver, text, line = NICS[nic]
    if shadow:
        import threading
        stream = {}

        def start_stream():
            # Frames all along while the driver crashes under the shadow:
            # each echo must be intact; frames that arrive while the driver
            # is down are lost (counted, not failed).
            def run():
                back = bad = sent = 0
                end = time.monotonic() + 12
                while time.monotonic() < end:
                    b, x = echo(64, window=8)
                    back, bad, sent = back + b, bad + x, sent + 64
                stream.update(back=back, bad=bad, sent=sent)
            thread = threading.Thread(target=run)
            thread.start()
            stream["thread"] = thread
            return True, "frames streaming while the driver crashes"

        def end_stream():
            stream["thread"].join(timeout=60)
            back, bad, sent = stream.get("back", 0), stream.get("bad", 1), stream.get("sent", 0)
            return (back > sent // 2 and bad == 0,
                    f"through 3 driver crashes: {back} of {sent} frames echoed intact, {bad} altered, "
                    f"{sent - back - bad} lost while the driver was down")

        checks = [
            (f"load {driver}", lambda out: f"loaded image {driver} as domain" in out),
            ("@await receive buffers posted", None),
            ("load nic-shadow", lambda out: "loaded image nic-shadow as domain" in out),
            ("load l2echo", lambda out: "loaded image l2echo as domain" in out),
            ("@run", echo_step(500, "through the shadow")),
            ("@run", start_stream),
            ("@pause", None), ("@pause", None),
            (f"crash {driver} pagefault", lambda out: "domain crashed" in out),
            ("@pause", None), ("@pause", None), ("@pause", None), ("@pause", None),
            (f"crash {driver} panic", lambda out: "domain crashed" in out),
            ("@pause", None), ("@pause", None), ("@pause", None), ("@pause", None),
            (f"crash {driver} gpf", lambda out: "domain crashed" in out),
            ("@run", end_stream),
            ("@run", echo_step(300, "after the crashes, through the restarted driver")),
            ("call nic-shadow 0", lambda out: (lambda n: n is not None and int(n.group(1)) >= 3)(
                re.search(r"^(\d+)$", out, re.M))),
            ("call nic-shadow help", lambda out: "0: driver restarts" in out),
            ("domains", lambda out: f"supervised by nic-shadow" in out),
        ]
        netdev = (f"dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port={guest_port},"
                  f"remote.type=inet,remote.host=127.0.0.1,remote.port={host_port}")
        console_session(tally, kernel, 2, "256M", 300, checks=checks, label=f"{nic} echo through nic-shadow",
                        disk=False, extra=("-netdev", netdev, "-device", device))
        host.close()
        return
    checks = [
        ("net", lambda out: "no network interfaces" in out),
        (f"load {driver}", lambda out: f"loaded image {driver} as domain" in out),
        ("@await receive buffers posted", None),
        (f"call {driver} 0", lambda out: re.search(r"^1$", out, re.M) is not None),
        (f"call {driver} 5", lambda out: re.search(text, out, re.M) is not None),
        ("load l2echo", lambda out: "loaded image l2echo as domain" in out),
        ("@run", echo_step(2000, "2,000 frames of 60 to 1,514 bytes")),
        ("@run", garbage),
        ("call l2echo 0", lambda out: (lambda n: n is not None and int(n.group(1)) >= 2050)(
            re.search(r"^(\d+)$", out, re.M))),
        (f"call {driver} 1", lambda out: (lambda n: n is not None and int(n.group(1)) >= 2050)(
            re.search(r"^(\d+)$", out, re.M))),
        ("net", lambda out: re.search(line, out, re.M) is not None
            and re.search(r"queue 0: rx \d{4,} frames \d+ B \(\d+ refused\), tx \d{4,} frames", out)
            is not None),
        (f"crash {driver} pagefault", lambda out: "domain crashed" in out),
        (f"restart {driver}", lambda out: "restarted as generation 2" in out),
        ("@await receive buffers posted", None),
        ("@run", echo_step(200, "after the driver crashed and restarted")),
        ("call l2echo 2", lambda out: re.search(r"^[1-9]\d*$", out, re.M) is not None),
        ("@run", frames_tool),
    ]
    console_session(tally, kernel, 2, "256M", 300, checks=checks, label=f"{nic} echo",
                    disk=False, extra=("-netdev", netdev, "-device", device))
    try:
        host.close()
    except OSError:
        pass


def free_tcp_port():
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stack_session(tally, kernel, nic="igb", shadow=False, megabytes=10, static=False):
    """The TCP/IP domain (`netstack`, smoltcp) end to end: QEMU's user
    network with host forwards on 127.0.0.1 (TCP and UDP to the guest's
    port 7, as `make run` sets them up), the driver (`nic`), optionally
    `nic-shadow`, and `netstack` serving echo. From this host: a TCP echo
    of MEGABYTES MiB verified byte for byte; sequential connections;
    concurrent ones; UDP datagrams (losses counted); with the shadow, the
    driver crashed five times during a transfer that must arrive whole
    on the same connection; the stack crashed and restarted. The address
    comes from QEMU's DHCP server (10.0.2.15), or with `static`, from
    `net=` on the kernel command line on another subnet (10.0.3.0/24, where
    DHCP's default would not do). Traffic goes only to 127.0.0.1."""
    import random
    import socket
    import threading
    tcp_port = free_tcp_port()
    udp_port = free_udp_port()
    rng = random.Random(11)
    handle = {}

    def connect():
        deadline = time.monotonic() + 20
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", tcp_port), timeout=20)
                conn.settimeout(30)
                return conn
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def bulk(size, during=None, pace=0):
        """Sends `size` random bytes on one connection while reading the echo
        (spread over at least `pace` seconds); returns (whether all came back
        intact, bytes back, seconds, errors)."""
        data = rng.randbytes(size)
        conn = connect()
        got = bytearray()
        errors = []

        def reader():
            try:
                while len(got) < size:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    got.extend(chunk)
            except OSError as e:
                errors.append(f"receive: {e}")

        thread = threading.Thread(target=reader)
        start = time.monotonic()
        thread.start()
        if during is not None:
            during.start()
        try:
            view = memoryview(data)
            for at in range(0, size, 16384):
                conn.sendall(view[at:at + 16384])
                ahead = start + pace * at / size - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        except OSError as e:
            errors.append(f"send: {e}")
        thread.join(timeout=300)
        end = time.monotonic()
        seconds = end - start
        conn.close()
        if during is not None:
            during.join(timeout=60)
            if handle.get("last crash", end + 1) > end:
                errors.append("the transfer ended before the last crash")
        same = bytes(got) == data and not errors
        return same, len(got), seconds, "; ".join(errors)

    def bulk_step(size, label, during=None, pace=0):
        def step():
            same, got, seconds, errors = bulk(size, during() if during else None, pace)
            rate = got / seconds / 1e6 if seconds else 0
            return same, (f"{label}: {got} of {size} bytes echoed, "
                          f"{'intact' if same else 'DIFFERENT'}, {seconds:.1f} s ({rate:.2f} MB/s)"
                          f"{', ' + errors if errors else ''}")
        return step

    def read_back(conn, size):
        """Up to `size` bytes from `conn` (fewer if it closes)."""
        back = b""
        while len(back) < size:
            chunk = conn.recv(size - len(back))
            if not chunk:
                break
            back += chunk
        return back

    def sequential(count):
        def step():
            good = 0
            failures = 0
            start = time.monotonic()
            for i in range(count):
                try:
                    with connect() as conn:
                        message = f"connection {i}\n".encode()
                        conn.sendall(message)
                        good += read_back(conn, len(message)) == message
                except OSError:
                    # Each failure may have waited 20 s to connect: with the
                    # service down, stop after a few rather than for hours.
                    failures += 1
                    if failures >= 3:
                        break
            seconds = time.monotonic() - start
            return good == count, f"{good} of {count} sequential connections echoed ({seconds:.1f} s)"
        return step

    def concurrent(count):
        def step():
            conns = []
            try:
                for _ in range(count):
                    conns.append(connect())
                for i, conn in enumerate(conns):
                    conn.sendall(f"concurrent {i}\n".encode())
                good = 0
                for i, conn in enumerate(conns):
                    want = f"concurrent {i}\n".encode()
                    good += read_back(conn, len(want)) == want
            except OSError as e:
                return False, f"{len(conns)} of {count} concurrent connections opened: {e}"
            finally:
                for conn in conns:
                    conn.close()
            return good == count, f"{good} of {count} concurrent connections echoed, all open at once"
        return step

    def udp_echo(count):
        def step():
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.settimeout(0.5)
            sent, back, bad = {}, 0, 0
            seq = 0
            deadline = time.monotonic() + 60
            while (seq < count or sent) and time.monotonic() < deadline:
                while seq < count and len(sent) < 16:
                    body = seq.to_bytes(4, "big") + rng.randbytes(rng.randint(0, 1000))
                    sent[seq] = body
                    sock.sendto(body, ("127.0.0.1", udp_port))
                    seq += 1
                try:
                    got, _ = sock.recvfrom(4096)
                except socket.timeout:
                    if seq >= count:
                        break
                    sent.clear()  # lost: move on
                    continue
                want = sent.pop(int.from_bytes(got[:4], "big"), None)
                if want is None:
                    continue
                back += got == want
                bad += got != want
            sock.close()
            lost = count - back - bad
            return (bad == 0 and back >= count * 0.95,
                    f"UDP: {back} of {count} datagrams echoed intact, {bad} altered, {lost} lost")
        return step

    device, driver, _, _ = NICS[nic]
    subnet = "10.0.3" if static else "10.0.2"
    netdev = (f"user,id=n0,net={subnet}.0/24,dhcpstart={subnet}.15,"
              f"hostfwd=tcp:127.0.0.1:{tcp_port}-{subnet}.15:7,"
              f"hostfwd=udp:127.0.0.1:{udp_port}-{subnet}.15:7")
    append = f"log=info net={subnet}.15/24,gw={subnet}.2" if static else "log=info"
    up = r"TCP: listening on port 7"
    address = f"address {subnet}.15/24, gateway {subnet}.2"
    if static:
        checks = [
            (f"load {driver}", lambda out: f"loaded image {driver} as domain" in out),
            ("@await receive buffers posted", None),
            ("load netstack", lambda out: "loaded image netstack as domain" in out),
            # Awaited before the next command: the line may come at once.
            (f"@await {address}", None),
            ("load echo", lambda out: "loaded image echo as domain" in out),
            (f"@await {up}", None),
            ("@run", bulk_step(1 << 20, f"TCP echo on {nic}, address from net= on the command line")),
            ("@run", udp_echo(1000)),
        ]
        console_session(tally, kernel, 2, "256M", 300, checks=checks,
                        label=f"{nic} TCP/IP, static address", disk=False,
                        extra=("-netdev", netdev, "-device", device), append=append)
        return
    checks = [
        (f"load {driver}", lambda out: f"loaded image {driver} as domain" in out),
        ("@await receive buffers posted", None),
    ]
    if shadow:
        def crashes():
            # Five driver crashes while the transfer runs, spread over it
            # (each after the shadow has had time to restart the last one).
            def run():
                for kind in ("pagefault", "panic", "gpf", "panic", "pagefault"):
                    time.sleep(1.6)
                    handle["type"](f"crash {driver} {kind}")
                handle["last crash"] = time.monotonic()
            return threading.Thread(target=run)

        checks += [
            ("load nic-shadow", lambda out: "loaded image nic-shadow as domain" in out),
            ("load netstack", lambda out: "loaded image netstack as domain" in out),
            ("load echo", lambda out: "loaded image echo as domain" in out),
            (f"@await {up}", None),
            ("@run", bulk_step(megabytes << 20,
                               f"TCP echo through nic-shadow, the driver crashed 5 times", crashes,
                               pace=10)),
            ("@drain", None),
            ("call nic-shadow 0", lambda out: (lambda n: n is not None and int(n.group(1)) >= 5)(
                re.search(r"^(\d+)$", out, re.M))),
            ("@run", bulk_step(1 << 20, "TCP echo after the crashes")),
            # A crash while the shadow brings a restarted driver up (its
            # link takes the 82576 half a second): the shadow restarts it
            # again at once, rather than waiting out the link's timeout
            # (under a crash a second it never caught up, once).
            (f"crash {driver} panic", lambda out: "domain crashed" in out),
            (f"@await {driver} restarted", None),
            (f"crash {driver} gpf", lambda out: "domain crashed" in out),
            (f"@await {driver} crashed while starting; restarted", None),
            ("@run", bulk_step(1 << 20, "TCP echo after a crash while the driver started")),
        ]
    else:
        checks += [
            ("load netstack", lambda out: "loaded image netstack as domain" in out),
            # Awaited before the next command: the lease can come at once.
            (f"@await {address}", None),
            ("load echo", lambda out: "loaded image echo as domain" in out),
            (f"@await {up}", None),
            ("call netstack help", lambda out: f"{address}; sockets exported" in out),
            # The console's ping, through netstack/icmp: QEMU's gateway
            # answers; an address on the subnet that nobody holds does not
            # (its ARP request goes unanswered); bad input is refused.
            (f"ping {subnet}.2 3", lambda out: f"PING {subnet}.2: 56 data bytes, 3 requests" in out),
            (f"@await --- {subnet}.2 ping: 3 sent, 3 received, 0% loss", None),
            (f"ping {subnet}.99 1", lambda out: f"PING {subnet}.99" in out),
            (f"@await --- {subnet}.99 ping: 1 sent, 0 received, 100% loss", None),
            ("ping example.org", lambda out: "is not an IPv4 address" in out),
            (f"ping {subnet}.2 0", lambda out: "COUNT must be 1 to 100" in out),
            ("ping 10.0.2.256", lambda out: "is not an IPv4 address" in out),
            ("@run", bulk_step(megabytes << 20, f"TCP echo on {nic}")),
            ("@run", sequential(1000)),
            ("@run", concurrent(100)),
            ("@run", udp_echo(10000)),
            # The 82576 has a queue pair per core (two here), and its
            # receive-side scaling spread the 1,100 connections' flows over
            # both: each received frames, and the stack polled each.
            *([(f"call {driver} 5", lambda out: all(
                (lambda m: m is not None and int(m.group(1)) > 100)(
                    re.search(rf"^queue {q}: (\d+) frames received", out, re.M)) for q in (0, 1)))]
              if nic == "igb" else []),
            ("call echo 2", lambda out: (lambda n: n is not None and int(n.group(1)) >= 9500)(
                re.search(r"^(\d+)$", out, re.M))),
            ("call netstack 0", lambda out: (lambda n: n is not None and int(n.group(1)) >= 1101)(
                re.search(r"^(\d+)$", out, re.M))),
            # A client that dies leaves no socket behind: the stack closes
            # what its dead incarnation held, so the port is free for the
            # restarted one (which could not listen on 7 otherwise).
            ("crash echo panic", lambda out: "domain crashed" in out),
            ("@await sockets of clients that are gone", None),
            ("restart echo", lambda out: "restarted as generation 2" in out),
            (f"@await {up}", None),
            ("@run", bulk_step(1 << 20, "TCP echo after the echo domain restarted")),
            ("call netstack 8", lambda out: (lambda n: n is not None and int(n.group(1)) >= 2)(
                re.search(r"^(\d+)$", out, re.M))),
            ("crash netstack panic", lambda out: "domain crashed" in out),
            ("restart netstack", lambda out: "restarted as generation 2" in out),
            (f"@await {up}", None),
            ("call echo 3", lambda out: (lambda n: n is not None and int(n.group(1)) >= 1)(
                re.search(r"^(\d+)$", out, re.M))),
            ("@run", bulk_step(1 << 20, "TCP echo after the stack restarted")),
        ]
    console_session(tally, kernel, 2, "256M", 900, checks=checks,
                    label=f"{nic} TCP/IP{' through nic-shadow' if shadow else ''}",
                    disk=False, extra=("-netdev", netdev, "-device", device), handle=handle)


def under_crashes(handle, driver, load, label, crashes=2, seconds=6.0):
    """A `@run` step: `load(stop)` runs on the host (it returns (ok,
    detail) and ends when `stop()` says so), while `crashes` panics of
    the NIC driver are typed on the console, the first after 1 s and the
    others 1.5 s apart; the load goes on `seconds` in all. Follow it with
    `@drain`. Used by the applications' sessions: each must see no
    client-visible error through the NIC shadow."""
    import threading

    def step():
        start = time.monotonic()

        def crash():
            for i in range(crashes):
                time.sleep(1.0 if i == 0 else 1.5)
                handle["type"](f"crash {driver} panic")
        thread = threading.Thread(target=crash)
        thread.start()
        ok, detail = load(lambda: time.monotonic() - start >= seconds)
        thread.join()
        return ok, f"{label}, the driver crashed {crashes} times under the load: {detail}"
    return step


def maglev_session(tally, kernel, nic="igb", shadow=False):
    """The Maglev load balancer (`domains/maglev`) on a NIC joined to a UDP
    socket on this host's loopback (one datagram per frame): TCP frames
    of 100 flows go in, each must come back addressed to one of the two
    backends (its MAC as destination, the NIC's as source, the rest
    intact), every flow always to the same one and both used; with one
    backend removed, its flows move to the other and no other flow moves;
    frames that are not IPv4 TCP/UDP are dropped and counted.

    With `shadow`, Maglev runs through `nic-shadow`: a stream of frames of
    the 100 flows while the driver is crashed twice, every frame that
    comes back steered to the backend its flow had before (frames the
    NIC dropped while its driver restarted are counted, not failed: a
    NIC reset loses what is on the wire, and TCP between the clients and
    backends resends it), then every flow again, none lost, none moved."""
    import socket
    host = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(100):
        guest_port = free_udp_port()
        try:
            host.bind(("127.0.0.1", guest_port + 1))
            break
        except OSError:
            continue
    host.settimeout(0.3)
    backends = {bytes.fromhex("0200000000aa"), bytes.fromhex("0200000000bb")}
    seen = {}

    def checksum(data):
        data += b"\0" * (len(data) % 2)
        total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        return (~total & 0xFFFF).to_bytes(2, "big")

    def frame(flow, seq, protocol=6):
        # Valid IPv4 and TCP checksums: the NIC checks them and the
        # driver drops what fails.
        src, dst = bytes([192, 168, flow >> 8, flow & 0xff]), bytes([10, 0, 9, 1])
        payload = seq.to_bytes(4, "big") + bytes(4)
        tcp = ((40000 + flow).to_bytes(2, "big") + (80).to_bytes(2, "big") + bytes(8)
               + bytes([0x50, 0x10]) + (65535).to_bytes(2, "big") + bytes(4))
        pseudo = src + dst + bytes([0, protocol]) + (len(tcp) + len(payload)).to_bytes(2, "big")
        tcp = tcp[:16] + checksum(pseudo + tcp + payload) + tcp[18:]
        ip = bytes([0x45, 0, 0, 48, 0, 0, 0x40, 0, 64, protocol, 0, 0]) + src + dst
        ip = ip[:10] + checksum(ip) + ip[12:]
        return b"\xff" * 6 + bytes.fromhex("020000000001") + b"\x08\x00" + ip + tcp + payload

    def run(flows, label, check):
        def step():
            sent, back, bad = {}, 0, 0
            seq = 0
            got_for = {}
            work = [(f, r) for r in range(3) for f in range(flows)]
            deadline = time.monotonic() + 40
            while (work or sent) and time.monotonic() < deadline:
                while work and len(sent) < 16:
                    flow, _ = work.pop(0)
                    data = frame(flow, seq)
                    sent[seq] = (flow, data)
                    host.sendto(data, ("127.0.0.1", guest_port))
                    seq += 1
                try:
                    got, _ = host.recvfrom(4096)
                except socket.timeout:
                    if not work:
                        break
                    continue
                if len(got) < 62 or got[12:14] != b"\x08\x00":
                    continue
                flow, want = sent.pop(int.from_bytes(got[54:58], "big"), (None, None))
                if want is None:
                    continue
                seen.setdefault("mac", got[6:12])
                ok = got[:6] in backends and got[6:12] == seen["mac"] and got[12:len(want)] == want[12:]
                ok = ok and got_for.setdefault(flow, got[:6]) == got[:6]
                back += ok
                bad += not ok
            good, detail = check(got_for)
            return (back == 3 * flows and bad == 0 and good,
                    f"{label}: {back} of {3 * flows} frames steered, {bad} wrong; {detail}")
        return step

    def first(got_for):
        seen["first"] = dict(got_for)
        shares = {b.hex(): sum(1 for v in got_for.values() if v == b) for b in backends}
        return len(got_for) == 100 and all(shares.values()), f"flows per backend {shares}"

    def after_removal(got_for):
        before = seen.get("first", {})
        bb = bytes.fromhex("0200000000bb")
        moved_wrongly = [f for f, b in before.items() if b == bb and got_for.get(f) != bb]
        all_bb = all(v == bb for v in got_for.values())
        return (len(got_for) == 100 and all_bb and not moved_wrongly,
                f"all on the remaining backend; flows of it that moved: {len(moved_wrongly)}")

    def junk():
        arp = b"\xff" * 6 + bytes.fromhex("020000000001") + b"\x08\x06" + bytes(46)
        icmp = frame(1, 0, protocol=1)
        for data in (arp, bytes(icmp), b"\x01\x02\x03"):
            host.sendto(data, ("127.0.0.1", guest_port))
        time.sleep(0.5)
        try:
            got, _ = host.recvfrom(4096)
            return False, f"a frame came back: {got[:20].hex()}"
        except socket.timeout:
            return True, "ARP, ICMP and a runt frame: nothing forwarded"

    def stream(stop):
        before = seen.get("first", {})
        sent, back, bad, lost, moved = {}, 0, 0, 0, 0
        seq, flow = 1 << 20, 0
        while not stop():
            while len(sent) < 16:
                data = frame(flow % 100, seq)
                sent[seq] = (flow % 100, data)
                host.sendto(data, ("127.0.0.1", guest_port))
                seq, flow = seq + 1, flow + 1
            try:
                got, _ = host.recvfrom(4096)
            except socket.timeout:
                lost += len(sent)  # what the NIC dropped while its driver restarted
                sent.clear()
                continue
            if len(got) < 62 or got[12:14] != b"\x08\x00":
                continue
            f, want = sent.pop(int.from_bytes(got[54:58], "big"), (None, None))
            if want is None:
                continue
            ok = got[:6] in backends and got[6:12] == seen.get("mac") and got[12:len(want)] == want[12:]
            moved += before.get(f) != got[:6]
            back += ok
            bad += not ok
        lost += len(sent)
        return (bad == 0 and moved == 0 and back > 0,
                f"{back} frames steered, {bad} wrong, {moved} to another backend, {lost} dropped by the NIC")

    def same_as_first(got_for):
        before = seen.get("first", {})
        moved = [f for f, b in got_for.items() if before.get(f) != b]
        return len(got_for) == 100 and not moved, f"flows on another backend than before the crashes: {len(moved)}"

    netdev = (f"dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port={guest_port},"
              f"remote.type=inet,remote.host=127.0.0.1,remote.port={guest_port + 1}")
    device, driver, _, _ = NICS[nic]
    number = lambda want: lambda out: re.search(rf"^{want}$", out, re.M) is not None
    at_least = lambda n: lambda out: (lambda m: m is not None and int(m.group(1)) >= n)(
        re.search(r"^(\d+)$", out, re.M))
    handle = {}
    if shadow:
        checks = [
            (f"load {driver}", lambda out: f"loaded image {driver} as domain" in out),
            ("@await receive buffers posted", None),
            ("load nic-shadow", lambda out: "loaded image nic-shadow as domain" in out),
            ("load maglev", lambda out: "loaded image maglev as domain" in out),
            ("call maglev 10 0x0200000000aa", number("0")),
            ("call maglev 10 0x0200000000bb", number("0")),
            ("@run", run(100, "two backends, through nic-shadow", first)),
            ("@run", under_crashes(handle, driver, stream, "Maglev through nic-shadow")),
            ("@drain", None),
            ("@run", run(100, "after the crashes", same_as_first)),
            ("call nic-shadow 0", at_least(2)),
        ]
        console_session(tally, kernel, 2, "256M", 300, checks=checks, label=f"maglev through nic-shadow on {nic}",
                        disk=False, handle=handle, extra=("-netdev", netdev, "-device", device))
        host.close()
        return
    checks = [
        (f"load {driver}", lambda out: f"loaded image {driver} as domain" in out),
        ("@await receive buffers posted", None),
        ("load maglev", lambda out: "loaded image maglev as domain" in out),
        ("call maglev 6", number("65537")),
        ("call maglev 10 0x0200000000aa", number("0")),
        ("call maglev 10 0x0200000000bb", number("0")),
        ("call maglev 10 0x0200000000aa", number("1")),
        ("@run", run(100, "two backends", first)),
        ("call maglev 11 0x0200000000aa", number("0")),
        ("call maglev 11 0x0200000000aa", number("3")),
        ("@run", run(100, "one backend removed", after_removal)),
        # The 82576's two queue pairs (two cores here) both carried flows:
        # maglev's task on each core received and sent on its queue.
        *([(f"call {driver} 5", lambda out: all(
            (lambda m: m is not None and int(m.group(1)) > 0)(
                re.search(rf"^queue {q}: \d+ frames received, (\d+) sent", out, re.M)) for q in (0, 1)))]
          if nic == "igb" else []),
        ("@run", junk),
        ("call maglev 0", at_least(600)),
        ("call maglev 1", at_least(3)),
        ("call maglev help", lambda out: "10 MAC: add the backend" in out),
        # The benchmark's rate in the domain: a number of frames per second.
        ("call maglev 20", at_least(1000)),
    ]
    console_session(tally, kernel, 2, "256M", 300, checks=checks, label=f"maglev on {nic}",
                    disk=False, extra=("-netdev", netdev, "-device", device))
    host.close()


# Connections opened at once through QEMU's forward (see httpd_session).
FORWARDED_CONCURRENT = 10


def httpd_session(tally, kernel, nic="igb"):
    """The HTTP server (`domains/httpd`) over `netstack` on QEMU's user
    network, from this host through a forward on 127.0.0.1: curl for GET,
    HEAD and a 404; pipelined requests on one connection; malformed,
    oversized and unsupported requests each get their status; 10
    concurrent connections; a client that stops mid-request gets 408 and
    a closed connection; the driver crashed under the shadow twice while
    four keep-alive connections send requests, and once between
    requests, unnoticed by the clients.

    Only 10 connections at once here: QEMU's forward listens on the host
    with a backlog of 1, so a burst of 100 waits in the host's TCP
    retransmissions, not in our server, and on a busy machine some wait
    past any sane timeout (CI saw 9 of 100 get nothing in 60 s, while the
    guest had accepted every connection that reached it).
    `tap_session` holds 100 open at once straight to the guest."""
    import socket
    import threading
    port = free_tcp_port()

    def curl(*args):
        def step():
            try:
                out = subprocess.run(["curl", "-s", "--max-time", "20", *args], capture_output=True,
                                     timeout=30)
            except (OSError, subprocess.TimeoutExpired) as e:
                return False, f"curl {' '.join(args)}: {e}"
            text = out.stdout.decode("utf-8", "replace")
            return text, out.returncode
        return step

    def curl_check(args, want, label):
        def step():
            text, code = curl(*args)()
            ok = code == 0 and all(w in text for w in want)
            return ok, f"curl {label}: {text.splitlines()[0] if text else '(nothing)'}"
        return step

    def raw(request, timeout=20):
        conn = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        conn.sendall(request)
        data = b""
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            pass
        conn.close()
        return data

    def statuses(data):
        return re.findall(rb"^HTTP/1\.1 (\d{3}) ", data, re.M)

    def pipelined():
        request = (b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"
                   b"HEAD /bytes/65536 HTTP/1.1\r\nHost: t\r\n\r\n"
                   b"GET /bytes/16384 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = raw(request)
        got = statuses(data)
        ok = got == [b"200", b"200", b"200"] and data.endswith(bytes((ord("a") + i % 26) for i in range(16384)))
        return ok, f"three pipelined requests on one connection: statuses {[g.decode() for g in got]}"

    def bad_requests():
        host = b"Host: t\r\n"
        cases = [
            (b"GARBAGE\r\n\r\n", b"400"),
            (b"GET / HTTP/2.0\r\n" + host + b"\r\n", b"505"),
            (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n" + host + b"\r\n", b"414"),
            (b"GET / HTTP/1.1\r\n" + host + b"X-A: b\r\n" * 60 + b"\r\n", b"431"),
            (b"POST / HTTP/1.1\r\n" + host + b"Content-Length: 2\r\n\r\nhi", b"405"),
            (b"GET / HTTP/1.1\r\n" + host + b"Content-Length: 999999\r\n\r\n", b"413"),
            (b"GET / HTTP/1.1\r\n\r\n", b"400"),
        ]
        wrong = []
        for request, want in cases:
            got = statuses(raw(request))
            if got != [want]:
                wrong.append(f"{request[:20]!r}: {got}")
        return not wrong, f"{len(cases) - len(wrong)} of {len(cases)} bad requests got their status" + (
            f"; wrong: {wrong}" if wrong else "")

    def concurrent(count):
        def step():
            results, why = [], {}
            start = time.monotonic()

            def one():
                try:
                    data = raw(b"GET /bytes/1024 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                               timeout=60)
                    ok = statuses(data) == [b"200"] and len(data) > 1024
                    results.append(ok)
                    if not ok:
                        key = f"{len(data)} bytes back"
                        why[key] = why.get(key, 0) + 1
                except OSError as e:
                    results.append(False)
                    why[type(e).__name__] = why.get(type(e).__name__, 0) + 1
            threads = [threading.Thread(target=one) for _ in range(count)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            good = sum(results)
            return good == count, (f"{good} of {count} concurrent connections answered "
                                   f"({time.monotonic() - start:.1f} s){'; failures: ' + str(why) if why else ''}")
        return step

    def keepalive_load(stop):
        # Four keep-alive connections, each sending GETs one after another
        # and checking every answer whole.
        import http.client
        body = bytes((ord("a") + i % 26) for i in range(1024))
        tally_ = {"ok": 0, "bad": 0}
        why = {}
        lock = threading.Lock()

        def worker():
            conn = None
            for _ in range(5000):
                if stop():
                    break
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
                    conn.request("GET", "/bytes/1024")
                    reply = conn.getresponse()
                    data = reply.read()
                    good, reason = reply.status == 200 and data == body, f"status {reply.status}"
                except (OSError, http.client.HTTPException) as e:
                    good, reason = False, type(e).__name__
                    conn.close()
                    conn = None
                with lock:
                    tally_["ok" if good else "bad"] += 1
                    if not good:
                        why[reason] = why.get(reason, 0) + 1
            if conn is not None:
                conn.close()
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        return (tally_["bad"] == 0 and tally_["ok"] > 0,
                f"{tally_['ok']} GETs on 4 keep-alive connections answered whole, {tally_['bad']} failed"
                + (f" ({why})" if why else ""))

    def slow_client():
        start = time.monotonic()
        data = raw(b"GET /hello.txt HT", timeout=30)
        seconds = time.monotonic() - start
        return (statuses(data) == [b"408"] and seconds < 25,
                f"a request left unfinished: {statuses(data)} after {seconds:.1f} s, connection closed")

    handle = {}
    device, driver, _, _ = NICS[nic]
    netdev = f"user,id=n0,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:{port}-10.0.2.15:80"
    url = f"http://127.0.0.1:{port}"
    checks = [
        (f"load {driver}", lambda out: f"loaded image {driver} as domain" in out),
        ("@await receive buffers posted", None),
        ("load nic-shadow", lambda out: "loaded image nic-shadow as domain" in out),
        ("load netstack", lambda out: "loaded image netstack as domain" in out),
        ("@await address 10.0.2.15/24", None),
        ("load httpd", lambda out: "loaded image httpd as domain" in out),
        ("@await listening on port 80", None),
        ("@run", curl_check([f"{url}/hello.txt", "-D", "-"],
                            ["HTTP/1.1 200 OK", "Content-Length: 20", "hello from a domain"], "GET")),
        ("@run", curl_check(["-I", f"{url}/bytes/65536"], ["200 OK", "Content-Length: 65536"], "HEAD")),
        ("@run", curl_check(["-D", "-", f"{url}/missing"], ["HTTP/1.1 404 Not Found"], "404")),
        ("@run", pipelined),
        ("@run", bad_requests),
        ("@run", concurrent(FORWARDED_CONCURRENT)),
        ("@run", under_crashes(handle, driver, keepalive_load, "httpd")),
        ("@drain", None),
        # Both crashes happened (the shadow counts the restarts).
        ("call nic-shadow 0", lambda out: (lambda n: n is not None and int(n.group(1)) >= 2)(
            re.search(r"^(\d+)$", out, re.M))),
        *([("call httpd 0", lambda out: print(out) or True), ("call httpd 3", lambda out: print(out) or True),
           ("call netstack 0", lambda out: print(out) or True), ("call netstack 4", lambda out: print(out) or True),
           ("call netstack 5", lambda out: print(out) or True), ("call netstack 6", lambda out: print(out) or True),
           ("call netstack 7", lambda out: print(out) or True), ("call netstack 9", lambda out: print(out) or True),
           ("net", lambda out: print(out) or True), ("log show httpd 5", lambda out: print(out) or True),
           ("log show netstack 10", lambda out: print(out) or True)] if os.environ.get("HTTPD_DEBUG") else []),
        (f"crash {driver} panic", lambda out: "domain crashed" in out),
        ("@run", curl_check([f"{url}/bytes/16384", "-D", "-"], ["HTTP/1.1 200 OK", "Content-Length: 16384"],
                            "GET after a driver crash under the shadow")),
        ("@run", slow_client),
        # 13 before the burst, the burst, one after the crash.
        ("call httpd 1", lambda out: (lambda n: n is not None and int(n.group(1)) >= 14 + FORWARDED_CONCURRENT)(
            re.search(r"^(\d+)$", out, re.M))),
        ("call httpd 3", lambda out: (lambda n: n is not None and int(n.group(1)) >= 1)(
            re.search(r"^(\d+)$", out, re.M))),
    ]
    console_session(tally, kernel, 2, "256M", 400, checks=checks, label=f"httpd on {nic}",
                    disk=False, handle=handle, extra=("-netdev", netdev, "-device", device,
                                       *(("-object", f"filter-dump,id=dump0,netdev=n0,file={os.environ['HTTPD_PCAP']}")
                                         if os.environ.get("HTTPD_PCAP") else ())))


def httpd_files_session(tally, kernel, nic="igb"):
    """`httpd` serving rv6's file system (`httpd_root=/www`), on an image
    the host's `rv6fs mkfs` made: curl gets a page, a directory's
    index.html, and a 1 MiB file whose SHA-256 must match; HEAD gives the
    length alone; a missing file, `..` and a device are 404; two
    pipelined requests on one connection; with `fs` crashed the answer is
    503, and after `restart fs` files come back."""
    import hashlib
    import socket
    label = f"httpd files on {nic}"
    image = os.path.join(os.path.dirname(ARCHIVE or "build/x"), "httpd-files.img")
    tree = tempfile.mkdtemp(prefix="httpd-tree-")
    big = random.Random(17).randbytes((1 << 20) + 123)
    files = {
        "www/index.html": b"<!doctype html><title>t</title><p>the root page</p>\n",
        "www/hello.txt": b"hello from rv6\n",
        "www/docs/index.html": b"<p>docs</p>\n",
        "www/big.bin": big,
        "etc/secret": b"not to be served\n",
    }
    for name, data in files.items():
        os.makedirs(os.path.dirname(os.path.join(tree, name)), exist_ok=True)
        with open(os.path.join(tree, name), "wb") as f:
            f.write(data)
    status, out = rv6fs("mkfs", image, "--size-mib", "32", "--from", tree)
    shutil.rmtree(tree, ignore_errors=True)
    tally.record(f"{label}: rv6fs mkfs makes the image", status == 0, out)
    if status != 0:
        return
    port = free_tcp_port()
    url = f"http://127.0.0.1:{port}"

    def fetch(path, *flags):
        try:
            # -I writes the head to stdout itself.
            dump = [] if "-I" in flags else ["-D", "-"]
            out = subprocess.run(["curl", "-s", "--max-time", "60", *dump, "--path-as-is",
                                  *flags, url + path], capture_output=True, timeout=90)
        except subprocess.TimeoutExpired:
            return None, {}, b""
        head, _, body = out.stdout.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status_line = lines[0] if lines else ""
        headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        return status_line, headers, body

    def get(path, want_status, want_body=None, want_type=None, head=False):
        def step():
            status_line, headers, body = fetch(path, *(["-I"] if head else []))
            ok = status_line is not None and f" {want_status} " in f"{status_line} "
            if want_body is not None:
                ok = ok and body == want_body and headers.get("content-length") == str(len(want_body))
            if want_type is not None:
                ok = ok and headers.get("content-type", "").startswith(want_type)
            if head:
                ok = ok and body == b"" and headers.get("content-length") == str(len(big))
            return ok, (f"{'HEAD' if head else 'GET'} {path}: {status_line}, "
                        f"{len(body)} bytes, {headers.get('content-type')}")
        return step

    def big_file():
        start = time.monotonic()
        status_line, headers, body = fetch("/big.bin")
        seconds = time.monotonic() - start
        same = hashlib.sha256(body).hexdigest() == hashlib.sha256(big).hexdigest()
        return (status_line is not None and " 200 " in status_line and same
                and headers.get("content-length") == str(len(big)),
                f"GET /big.bin: {status_line}, {len(body)} bytes in {seconds:.1f} s, "
                f"SHA-256 {'matches' if same else 'differs'}")

    def pipelined():
        conn = socket.create_connection(("127.0.0.1", port), timeout=30)
        conn.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"
                     b"GET /docs/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        try:
            while chunk := conn.recv(65536):
                data += chunk
        except socket.timeout:
            pass
        conn.close()
        got = re.findall(rb"^HTTP/1\.1 (\d{3}) ", data, re.M)
        ok = (got == [b"200", b"200"] and files["www/hello.txt"] in data
              and data.endswith(files["www/docs/index.html"]))
        return ok, f"two pipelined requests: {[g.decode() for g in got]}"

    netdev = f"user,id=n0,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:{port}-10.0.2.15:80"
    device, driver, _, _ = NICS[nic]
    checks = [
        ("load nvme", lambda out: "loaded image nvme as domain" in out),
        ("load nvme-shadow", lambda out: "loaded image nvme-shadow as domain" in out),
        ("load fs", lambda out: "loaded image fs as domain" in out),
        ("@await fs: mounted nvme-shadow/bdev", None),
        (f"load {driver}", lambda out: f"loaded image {driver} as domain" in out),
        ("@await receive buffers posted", None),
        ("load netstack", lambda out: "loaded image netstack as domain" in out),
        ("@await address 10.0.2.15/24", None),
        ("load httpd", lambda out: "loaded image httpd as domain" in out),
        ("@await listening on port 80", None),
        ("call httpd help", lambda out: "the files under /www in rv6's file system" in out),
        ("@run", get("/", 200, files["www/index.html"], "text/html")),
        ("@run", get("/hello.txt", 200, files["www/hello.txt"], "text/plain")),
        ("@run", get("/docs", 200, files["www/docs/index.html"])),
        ("@run", get("/docs/", 200, files["www/docs/index.html"])),
        ("@run", big_file),
        ("@run", get("/big.bin", 200, head=True)),
        ("@run", get("/missing.txt", 404)),
        ("@run", get("/../etc/secret", 404)),
        ("@run", get("/docs/../../etc/secret", 404)),
        ("@run", pipelined),
        ("call httpd 5", lambda out: (lambda n: n is not None and int(n.group(1)) >= 7)(
            re.search(r"^(\d+)$", out, re.M))),
        ("crash fs panic", lambda out: "domain crashed" in out),
        ("@run", get("/hello.txt", 503)),
        ("restart fs", lambda out: "restarted as generation" in out),
        ("@await fs: mounted nvme-shadow/bdev", None),
        ("@run", get("/hello.txt", 200, files["www/hello.txt"])),
    ]
    drive = ("-drive", f"file={image},if=none,id=nvm,format=raw", "-device", "nvme,serial=nvme0,drive=nvm")
    console_session(tally, kernel, 2, "512M", 400, checks=checks, label=label, disk=False,
                    extra=("-netdev", netdev, "-device", device, *drive),
                    append="log=info httpd_root=/www")
    try:
        os.unlink(image)
    except OSError:
        pass


def kvstore_session(tally, kernel, nic="igb"):
    """The key-value store (`domains/kvstore`) over `netstack` on QEMU's
    user network, from this host through forwards on 127.0.0.1 (TCP and
    UDP): a set and get over TCP and over UDP (memcached's frame header),
    a value of 1 MiB, Debian's `memccapable -a` (the text protocol's
    conformance tests) and a bounded `memcslap` load without errors (both
    from libmemcached-tools, which `make setup` installs; said and skipped
    if missing), two driver crashes under the shadow while four connections
    set and get, one between requests, and the
    store still holding its items after the stack restarted."""
    import shutil
    import socket
    tcp_port = free_tcp_port()
    udp_port = free_udp_port()

    def tcp_exchange(request, until, timeout=30):
        conn = socket.create_connection(("127.0.0.1", tcp_port), timeout=timeout)
        conn.sendall(request)
        data = b""
        while not data.endswith(until):
            chunk = conn.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        conn.close()
        return data

    def set_get():
        value = bytes((i * 7) % 251 for i in range(1 << 20))
        stored = tcp_exchange(b"set big 3 0 %d\r\n" % len(value) + value + b"\r\nset small 9 0 5\r\nhello\r\n",
                              b"STORED\r\nSTORED\r\n")
        got = tcp_exchange(b"get big small\r\n", b"END\r\n")
        want = (b"VALUE big 3 %d\r\n" % len(value) + value + b"\r\nVALUE small 9 5\r\nhello\r\nEND\r\n")
        return stored == b"STORED\r\nSTORED\r\n" and got == want, (
            f"TCP: a 1 MiB value and a small one stored and read back: {'intact' if got == want else 'DIFFERENT'}")

    def udp_get():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(2)
        replies = {}
        try:
            for _ in range(5):
                sock.sendto(b"\x00\x2a\x00\x00\x00\x01\x00\x00get small\r\n", ("127.0.0.1", udp_port))
                try:
                    data, _ = sock.recvfrom(2048)
                    replies[data[:8]] = data[8:]
                    break
                except socket.timeout:
                    continue
        finally:
            sock.close()
        ok = replies.get(b"\x00\x2a\x00\x00\x00\x01\x00\x00") == b"VALUE small 9 5\r\nhello\r\nEND\r\n"
        return ok, f"UDP: get with the frame header: {list(replies.values())[:1]}"

    def set_get_load(stop):
        # Four connections, each setting a fresh key and reading it back,
        # one request at a time, every reply checked.
        import threading
        counts = {"ok": 0, "bad": 0}
        why = {}
        lock = threading.Lock()

        def worker(t):
            conn, buffered = None, b""

            def reply(until):
                nonlocal buffered
                while until not in buffered:
                    chunk = conn.recv(65536)
                    if not chunk:
                        raise ConnectionError("closed")
                    buffered += chunk
                end = buffered.index(until) + len(until)
                got, buffered = buffered[:end], buffered[end:]
                return got
            for n in range(5000):
                if stop():
                    break
                key = b"load%d_%d" % (t, n)
                value = bytes((n + i) % 251 for i in range(200))
                try:
                    if conn is None:
                        conn = socket.create_connection(("127.0.0.1", tcp_port), timeout=20)
                        buffered = b""
                    conn.sendall(b"set %s 5 0 %d\r\n" % (key, len(value)) + value + b"\r\n")
                    stored = reply(b"\r\n")
                    conn.sendall(b"get %s\r\n" % key)
                    got = reply(b"END\r\n")
                    want = b"VALUE %s 5 %d\r\n" % (key, len(value)) + value + b"\r\nEND\r\n"
                    good = stored == b"STORED\r\n" and got == want
                    reason = "wrong reply"
                except OSError as e:
                    good, reason = False, type(e).__name__
                    conn.close()
                    conn = None
                with lock:
                    counts["ok" if good else "bad"] += 1
                    if not good:
                        why[reason] = why.get(reason, 0) + 1
            if conn is not None:
                conn.close()
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        return (counts["bad"] == 0 and counts["ok"] > 0,
                f"{counts['ok']} set+get pairs on 4 connections intact, {counts['bad']} failed"
                + (f" ({why})" if why else ""))

    def tool(args, label, want_ok):
        def step():
            if shutil.which(args[0]) is None:
                return False, f"{args[0]} is missing (make setup installs libmemcached-tools)"
            try:
                out = subprocess.run(args, capture_output=True, text=True, timeout=240)
            except subprocess.TimeoutExpired:
                return False, f"{label}: no end in 240 s"
            text = (out.stdout + out.stderr).strip()
            ok = out.returncode == 0 and want_ok(text)
            failed = [l.strip() for l in text.splitlines() if "[FAIL]" in l or "FAIL" in l.split()[:1]]
            tail = " | ".join(failed[:6] + text.splitlines()[-1:])
            return ok, f"{label}: {tail}"
        return step

    def still_there():
        got = tcp_exchange(b"get small\r\n", b"END\r\n")
        return got == b"VALUE small 9 5\r\nhello\r\nEND\r\n", f"after the stack restarted: {got[:40]!r}"

    handle = {}
    device, driver, _, _ = NICS[nic]
    netdev = (f"user,id=n0,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:{tcp_port}-10.0.2.15:11211,"
              f"hostfwd=udp:127.0.0.1:{udp_port}-10.0.2.15:11211")
    server = f"127.0.0.1:{tcp_port}"
    checks = [
        (f"load {driver}", lambda out: f"loaded image {driver} as domain" in out),
        ("@await receive buffers posted", None),
        ("load nic-shadow", lambda out: "loaded image nic-shadow as domain" in out),
        ("load netstack", lambda out: "loaded image netstack as domain" in out),
        ("@await address 10.0.2.15/24", None),
        ("load kvstore", lambda out: "loaded image kvstore as domain" in out),
        ("@await UDP: bound to port 11211", None),
        ("@run", set_get),
        ("@run", udp_get),
        ("@run", under_crashes(handle, driver, set_get_load, "kvstore over TCP")),
        ("@drain", None),
        # Both crashes happened (the shadow counts the restarts).
        ("call nic-shadow 0", lambda out: (lambda n: n is not None and int(n.group(1)) >= 2)(
            re.search(r"^(\d+)$", out, re.M))),
        (f"crash {driver} panic", lambda out: "domain crashed" in out),
        ("@run", tool(["memccapable", "-a", "-h", "127.0.0.1", "-p", str(tcp_port), "-t", "10"],
                      "memccapable -a (text protocol)", lambda t: "All tests passed" in t)),
        ("@run", tool(["memcslap", f"--servers={server}", "--concurrency=4", "--execute-number=2000",
                       "--test=set"], "memcslap set, 4 threads x 2000",
                      lambda t: "Failed" not in t and "error" not in t.lower())),
        ("@run", tool(["memcslap", f"--servers={server}", "--concurrency=4", "--execute-number=2000",
                       "--test=get"], "memcslap get, 4 threads x 2000",
                      lambda t: "Failed" not in t and "error" not in t.lower())),
        ("@run", set_get),
        ("crash netstack panic", lambda out: "domain crashed" in out),
        ("restart netstack", lambda out: "restarted as generation 2" in out),
        ("@await TCP: listening on port 11211", None),
        ("@run", still_there),
        ("call kvstore help", lambda out: "memcached text protocol" in out),
    ]
    console_session(tally, kernel, 2, "256M", 600, checks=checks, label=f"kvstore on {nic}",
                    disk=False, handle=handle, extra=("-netdev", netdev, "-device", device))


def tap_session(tally, kernel, nic="igb"):
    """`make run NET=tap`'s set-up, tested: QEMU with a tap device inside a
    network namespace this test makes (tools/netns.sh; removed after),
    the guest at a static address, and clients run inside the namespace:
    the host pings the guest, TCP and UDP echo through `netstack`, and
    100 connections to `httpd` held open at once, each answered.
    No traffic leaves the namespace. Skipped, and said so, where the
    machine cannot make one (not root, no /dev/net/tun)."""
    tools = os.path.dirname(os.path.abspath(__file__))
    netns, tap = "redleaf-test", "rltest0"
    env = dict(os.environ, NETNS=netns, TAP=tap, HOST_CIDR="10.0.5.1/24")
    check = subprocess.run(["bash", f"{tools}/netns.sh", "check"], env=env, capture_output=True,
                           text=True)
    if check.returncode != 0:
        print(f"== {nic} on a tap: skipped: {check.stdout.strip()}")
        return
    made = subprocess.run(["bash", f"{tools}/netns.sh", "up"], env=env, capture_output=True,
                          text=True)
    if made.returncode != 0:
        # Root without the capability to make namespaces (a container).
        print(f"== {nic} on a tap: skipped: cannot make the namespace: "
              f"{(made.stderr or made.stdout).strip()[-200:]}")
        subprocess.run(["bash", f"{tools}/netns.sh", "down"], env=env, capture_output=True)
        return
    guest = "10.0.5.15"

    def client(*args):
        def step():
            try:
                out = subprocess.run(["ip", "netns", "exec", netns, sys.executable,
                                      f"{tools}/net-client.py", *args],
                                     capture_output=True, text=True, timeout=180)
            except subprocess.TimeoutExpired:
                return False, f"{args[0]}: no answer in 180 s"
            return out.returncode == 0, (out.stdout.strip() or out.stderr.strip()[-300:])
        return step

    device, driver, _, _ = NICS[nic]
    checks = [
        (f"load {driver}", lambda out: f"loaded image {driver} as domain" in out),
        ("@await receive buffers posted", None),
        ("load netstack", lambda out: "loaded image netstack as domain" in out),
        (f"@await address {guest}/24, gateway 10.0.5.1", None),
        ("load echo", lambda out: "loaded image echo as domain" in out),
        ("@await TCP: listening on port 7", None),
        ("@run", client("ping", guest, "3")),
        ("@run", client("tcp-echo", guest, "7", str(4 << 20))),
        ("@run", client("udp-echo", guest, "7", "1000")),
        # The server's concurrency is tested here, straight to the guest:
        # through the user network's forward (httpd_session) a burst
        # queues in QEMU's own listening socket first (backlog 1).
        ("load httpd", lambda out: "loaded image httpd as domain" in out),
        ("@await listening on port 80", None),
        ("@run", client("http-concurrent", guest, "80", os.environ.get("HTTPD_CONCURRENT", "100"))),
        ("call httpd 1", lambda out: (lambda n: n is not None and int(n.group(1)) >= int(
            os.environ.get("HTTPD_CONCURRENT", "100")))(re.search(r"^(\d+)$", out, re.M))),
        ("ping 10.0.5.1 2", lambda out: "PING 10.0.5.1" in out),
        ("@await --- 10.0.5.1 ping: 2 sent, 2 received, 0% loss", None),
    ]
    try:
        console_session(tally, kernel, 2, "256M", 400, checks=checks,
                        label=f"{nic} on a tap in network namespace {netns}", disk=False,
                        extra=("-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
                               "-device", device),
                        append=f"log=info net={guest}/24,gw=10.0.5.1",
                        prefix=("ip", "netns", "exec", netns))
    finally:
        subprocess.run(["bash", f"{tools}/netns.sh", "down"], env=env)


def qemu_has_igb():
    try:
        out = subprocess.run(["qemu-system-x86_64", "-device", "help"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return '"igb"' in out


def push_session(tally, kernel, base_archive, pushed_archive, name):
    """`make push`: boots `kernel` with `base_archive`, which lacks image
    `name`, pushes `pushed_archive` (which has it, signed with the same
    key) over COM2, and loads `name` without a reboot; a tampered archive
    and a bad length pushed on top are refused and change nothing."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import importlib
    push = importlib.import_module("push")
    sock = os.path.join(tempfile.mkdtemp(prefix="push-test."), "push.sock")
    good = open(pushed_archive, "rb").read()
    tampered = bytearray(good)
    # Flip a bit of the manifest's signature (file `manifest.sig`: a 110-byte
    # cpio header, the name and its NUL padded to 4 bytes, then the data).
    sig = tampered.find(b"manifest.sig\x00")
    data = (sig + len(b"manifest.sig\x00") + 3) & ~3
    tampered[data + 10] ^= 0x01

    def send(data, expect):
        def step():
            ok, line = push.push(bytes(data), sock, 120)
            return (ok == (expect == "ok") and line.startswith(f"push: {expect}"),
                    f"push ({len(data)} bytes): {line}")
        return step

    def bad_length():
        import socket
        import struct
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(sock)
            conn.settimeout(30)
            conn.sendall(b"noise" + push.MAGIC + struct.pack("<I", 0xFFFFFFFF))
            reply = b""
            while b"\n" not in reply:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                reply += chunk
            reply = reply.decode("utf-8", "replace")
        return "push: refused: length 4294967295" in reply, f"bad length: {reply.strip()}"

    checks = [
        (f"load {name}", lambda out: f"no image named '{name}'" in out),
        ("@run", send(good, "ok")),
        (f"load {name}", lambda out: f"loaded image {name} as domain" in out),
        (f"call {name} 1 5", lambda out: re.search(r"^5$", out, re.M) is not None),
        ("@run", send(tampered, "refused")),
        ("@run", bad_length),
        (f"restart {name}", lambda out: "restarted as generation 2" in out),
        (f"call {name} 0", lambda out: re.search(r"^0$", out, re.M) is not None),
        ("load counter", lambda out: "loaded image counter as domain" in out),
    ]
    console_session(tally, kernel, 2, "256M", 300, checks=checks, archive=base_archive,
                    label="make push", extra=("-serial", f"unix:{sock},server=on,wait=off"))
    shutil.rmtree(os.path.dirname(sock), ignore_errors=True)


def archive_sessions(tally, kernel, archive, key):
    """Bad archives: a tampered image, a tampered manifest, an image the
    signed manifest does not list. Each is refused with a clear message and
    the rest of the system works."""
    entries = cpio_read(open(archive, "rb").read())
    work = os.path.join(os.path.dirname(archive), "bad-archives")
    os.makedirs(work, exist_ok=True)

    def write(name, new_entries):
        path = os.path.join(work, name)
        with open(path, "wb") as f:
            f.write(cpio_write(new_entries))
        return path

    # One flipped byte in the middle of counter's code.
    tampered = [(n, bytes(b[:len(b) // 2]) + bytes([b[len(b) // 2] ^ 0x40]) + bytes(b[len(b) // 2 + 1:]))
                if n == "counter.elf" else (n, b) for n, b in entries]
    console_session(tally, kernel, 2, "256M", 120, archive=write("tampered-image.cpio", tampered),
                    label="tampered image (no NVMe disk)", disk=False, checks=[
        ("load nvme", lambda out: "no NVMe controller: no such device" in out),
        ("load counter", lambda out: "SHA-256 does not match the signed manifest" in out),
        # Refused before anything was created for it.
        ("domains", lambda out: re.search(r"^\d+\s+counter\s", out, re.M) is None),
        ("load idle", lambda out: "loaded image idle" in out),
        ("call idle 2 7", lambda out: re.search(r"^7$", out, re.M) is not None),
        ("mem", lambda out: "physical:" in out),
    ])
    # One changed character in the manifest: the signature fails.
    forged = [(n, b.replace(b"image idle", b"image idlf") if n == "manifest" else b) for n, b in entries]
    console_session(tally, kernel, 1, "256M", 120, archive=write("tampered-manifest.cpio", forged),
                    label="tampered manifest",
                    boot_check=lambda log: "manifest signature does not verify" in log, checks=[
        ("load idle", lambda out: "signature does not verify" in out),
        # No kernel has built-in images to fall back on.
        ("load builtin:idle", lambda out: "no images are built into this kernel" in out),
    ])
    # A validly signed manifest that leaves `broken` out, with broken.elf
    # still in the archive: only what the manifest lists is loadable.
    partial = os.path.join(work, "partial.cpio")
    images = [f"{n[:-4]}={os.path.join(work, n)}" for n, _ in entries if n.endswith(".elf") and n != "broken.elf"]
    for n, b in entries:
        if n.endswith(".elf"):
            open(os.path.join(work, n), "wb").write(b)
    # The images' grants, from their crates (as tools/build-images.sh does).
    metadata = os.path.join(os.path.dirname(archive), "metadata.json")
    policy = ["--metadata", metadata] if os.path.exists(metadata) else []
    subprocess.run(["cargo", "run", "--release", "--quiet", "-p", "pack", "--", "--key", key,
                    "--public", os.path.join(work, "unused.pub"), "--out", partial, *policy, *images],
                   check=True, stdout=subprocess.DEVNULL)
    # The initial domain graph: the signed manifest's `start` lines.
    booting = os.path.join(work, "start.cpio")
    subprocess.run(["cargo", "run", "--release", "--quiet", "-p", "pack", "--", "--key", key,
                    "--public", os.path.join(work, "unused.pub"), "--out", booting,
                    "--start", "counter,checksum,client:my-client", *policy, *images],
                   check=True, stdout=subprocess.DEVNULL)
    console_session(tally, kernel, 2, "256M", 120, archive=booting, label="boot domain graph",
                    boot_check=lambda log: "started my-client (client)" in log, checks=[
        ("@pause", None),
        ("domains", lambda out: re.search(r"counter\s+alive", out) is not None
            and re.search(r"my-client\s+alive", out) is not None),
        ("call my-client 0", lambda out: (int((re.search(r"^(\d+)$", out, re.M) or [0, 0])[1]) > 0)),
    ])
    extra = cpio_read(open(partial, "rb").read()) + [(n, b) for n, b in entries if n == "broken.elf"]
    console_session(tally, kernel, 1, "256M", 120, archive=write("unlisted-image.cpio", extra),
                    label="image not in manifest", checks=[
        ("load broken", lambda out: "no image named 'broken' in the archive in use" in out),
        ("load idle", lambda out: "loaded image idle" in out),
    ])


RV6_TESTS = ["smallfile", "bigwrite", "bigfile", "truncate", "createdelete", "dirtest", "unlinkread",
             "linktest", "subdir", "fourteen", "rmdot", "dirfile", "bigdir", "iref", "badargs",
             "fourfiles", "concreate", "sharedfd", "linkunlink", "manywrites", "programs"]


OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"


def iso_sessions(tally, kernel, test_kernel, archive):
    """The hybrid boot image (`make iso`, tools/make-iso.sh) booted as a
    real machine boots it: from a CD-ROM through GRUB, under SeaBIOS and
    under OVMF (UEFI), the kernel entered through its multiboot2 header
    with the domain archive as a GRUB module. Under each firmware: the
    monitor's entry reaches the prompt, loads a domain from the archive
    and powers off (ACPI S5); the in-kernel test suite's entry runs the
    suite to the end. Under SeaBIOS the benchmark entry prints its rows as
    JSON lines and powers off. Skipped, and said so, without GRUB's
    files or OVMF (make setup installs them)."""
    tools = os.path.dirname(os.path.abspath(__file__))
    missing = [p for p in ("/usr/lib/grub/i386-pc", "/usr/lib/grub/x86_64-efi", OVMF_CODE, OVMF_VARS)
               if not os.path.exists(p)] + [t for t in ("grub-mkrescue", "xorriso", "mformat")
                                             if shutil.which(t) is None]
    if missing:
        tally.record(f"ISO boots: missing {', '.join(missing)} (make setup installs them)", False)
        return
    work = tempfile.mkdtemp(prefix="redleaf-iso-")

    def make(default):
        iso = os.path.join(work, f"entry{default}.iso")
        env = dict(os.environ, ISO_DEFAULT=str(default), ISO_TIMEOUT="1")
        made = subprocess.run(["bash", f"{tools}/make-iso.sh", iso, kernel, archive, test_kernel],
                              env=env, capture_output=True, text=True)
        tally.record(f"ISO: make-iso.sh builds entry {default}", made.returncode == 0,
                     (made.stdout + made.stderr)[-500:])
        return iso if made.returncode == 0 else None

    def command(iso, firmware):
        cmd = ["qemu-system-x86_64", "-machine", "q35", "-cpu", "max", "-smp", "2", "-m", "512M",
               "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot",
               "-nic", "none", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
               "-cdrom", iso]
        if DISK:
            cmd += ["-drive", f"file={DISK},if=none,id=nvm,format=raw",
                    "-device", "nvme,serial=nvme0,drive=nvm"]
        if firmware == "UEFI":
            variables = os.path.join(work, "vars.fd")
            shutil.copyfile(OVMF_VARS, variables)
            cmd += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
                    "-drive", f"if=pflash,format=raw,unit=1,file={variables}"]
        return cmd

    def monitor(iso, firmware):
        label = f"ISO under {firmware}: the monitor"
        proc = subprocess.Popen(command(iso, firmware), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        serial = Serial(proc, deadline=time.monotonic() + 300)
        try:
            booted = serial.read_until(b"monitor> ", 180)
            text = serial.text()
            tally.record(f"{label}: GRUB started the kernel through multiboot2, prompt reached",
                         booted and "multiboot2 information" in text, text[-1500:])
            if not booted:
                return
            serial.start_here()
            proc.stdin.write(b"load echo\r")
            proc.stdin.flush()
            ok = serial.read_prompt(60) and "loaded image echo as domain" in serial.text()
            tally.record(f"{label}: a domain loads from the archive GRUB passed as a module", ok,
                         serial.text()[-500:])
            status = shut_down(proc)
            tally.record(f"{label}: shutdown powers off (QEMU exits with status 0)", status == 0,
                         f"status {status}")
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    def suite(iso, firmware):
        label = f"ISO under {firmware}: the in-kernel tests"
        try:
            proc = subprocess.run(command(iso, firmware), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=600)
            output, status = proc.stdout.decode("utf-8", "replace"), proc.returncode
        except subprocess.TimeoutExpired as e:
            output, status = (e.stdout or b"").decode("utf-8", "replace"), None
        summary = re.compile(SUMMARY.pattern, re.M).search(output.replace("\r", ""))
        ok = summary is not None and summary.group(2) == "0" and status == PASSED_STATUS
        failed = [m.group(1) for m in re.compile(RESULT.pattern, re.M).finditer(output.replace("\r", ""))
                  if m.group(2) == "FAILED"]
        tally.record(f"{label}: " + (f"{summary.group(1)} passed, {summary.group(2)} failed"
                                     if summary else "no summary")
                     + (f" ({', '.join(failed)})" if failed else ""), ok,
                     "" if ok else f"status {status}\n{output[-3000:]}")

    def bench(iso, group=None):
        label = "ISO under BIOS: the benchmark entry" + (f" for {group}" if group else "")
        try:
            proc = subprocess.run(command(iso, "BIOS"), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=900)
            output, status = proc.stdout.decode("utf-8", "replace"), proc.returncode
        except subprocess.TimeoutExpired as e:
            output, status = (e.stdout or b"").decode("utf-8", "replace"), None
        rows, bad = [], []
        for line in output.replace("\r", "").splitlines():
            if line.startswith("kbench-json: "):
                try:
                    rows.append(json.loads(line[len("kbench-json: "):]))
                except ValueError:
                    bad.append(line)
        ok = (status == PASSED_STATUS and "kbench: done" in output and len(rows) >= 5 and not bad
              and all({"name", "ticks", "baseline_ticks", "ratio"} <= set(r) for r in rows))
        if group == "calls":
            # Only the crossing rows: no block or packet rows.
            ok = ok and any(r["name"] == "domain call" for r in rows) and not any(
                r["name"].startswith(("nvme", "ramdisk", "igb", "load ")) for r in rows)
        tally.record(f"{label}: {len(rows)} rows as JSON lines, {len(bad)} malformed, then power-off",
                     ok, "" if ok else f"status {status}\n{output[-2000:]}")

    try:
        first = make(0)
        tests = make(2)
        for firmware in ("BIOS", "UEFI"):
            print(f"== ISO under {firmware}")
            if first:
                monitor(first, firmware)
            if tests:
                suite(tests, firmware)
        if os.environ.get("ISO_BENCH", "1") == "1":
            bench_iso = make(3)
            if bench_iso:
                bench(bench_iso)
            calls_iso = make(4)
            if calls_iso:
                bench(calls_iso, "calls")
        # An unknown group is refused, saying which there are.
        try:
            proc = subprocess.run(qemu_command(test_kernel, 1, "128M", "bench=nosuch log=error", disk=False),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=120)
            output, status = proc.stdout.decode("utf-8", "replace"), proc.returncode
        except subprocess.TimeoutExpired as e:
            output, status = (e.stdout or b"").decode("utf-8", "replace"), None
        tally.record("bench=nosuch: refused with the list of groups, failure status",
                     status == FAILED_STATUS and "no benchmark 'nosuch'" in output and "calls, images" in output,
                     f"status {status}: {output[-400:]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def rv6fs(*args):
    """Runs the host tool `rv6fs` (tools/rv6fs); (exit status, output)."""
    proc = subprocess.run(["cargo", "run", "--release", "--quiet", "-p", "rv6fs", "--", *args],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc.returncode, proc.stdout


def rv6_session(tally, kernel):
    """rv6's file system on NVMe, behind the NVMe shadow, on an image the
    host's `rv6fs mkfs` made: the usertests suite in the guest; a write
    workload through a crash of the file-system domain and two of the
    driver, every acknowledged file then checked; QEMU killed in the
    middle of the workload, and after a reboot (log replay at mount)
    every file acknowledged before the kill is there; the host's fsck
    finds the image clean at the end."""
    label = "rv6 fs"
    print(f"== {label} end-to-end")
    image = os.path.join(os.path.dirname(ARCHIVE or "build/x"), "rv6-test.img")
    tree = tempfile.mkdtemp(prefix="rv6-tree-")
    os.makedirs(os.path.join(tree, "etc"))
    with open(os.path.join(tree, "etc", "motd"), "w") as f:
        f.write("made on the host\n")
    with open(os.path.join(tree, "big"), "wb") as f:
        f.write(bytes(range(256)) * 2048)
    # The rv6 programs the build packed (signed archives of one image).
    programs = os.path.join(os.path.dirname(ARCHIVE or "build/x"), "programs")
    os.makedirs(os.path.join(tree, "bin"))
    for name in sorted(os.listdir(programs)) if os.path.isdir(programs) else []:
        shutil.copyfile(os.path.join(programs, name), os.path.join(tree, "bin", name))
    status, out = rv6fs("mkfs", image, "--size-mib", "64", "--from", tree)
    shutil.rmtree(tree, ignore_errors=True)
    tally.record(f"{label}: rv6fs mkfs makes the image", status == 0, out)
    if status != 0:
        return
    drive = ("-drive", f"file={image},if=none,id=nvm,format=raw", "-device", "nvme,serial=nvme0,drive=nvm")

    def boot(step):
        proc = subprocess.Popen(qemu_command(kernel, 2, "512M", "log=info", extra=drive, disk=False),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        serial = Serial(proc, deadline=time.monotonic() + 900)
        booted = serial.read_until(b"monitor> ", 60)
        tally.record(f"{label}: {step}: prompt reached", booted)

        def command(line):
            serial.start_here()
            proc.stdin.write(line.encode() + b"\r")
            proc.stdin.flush()
            ok = serial.read_prompt(60)
            return ok, serial.text()

        def number(line):
            ok, out = command(line)
            found = re.search(r"^(\d+)\s*$", out, re.M)
            return int(found.group(1)) if ok and found else None

        for name in ("nvme", "nvme-shadow", "fs", "usertests"):
            ok, out = command(f"load {name}")
            tally.record(f"{label}: {step}: load {name}", ok and "loaded image" in out, out[-300:])
        mounted = serial.read_until(b"fs: mounted nvme-shadow/bdev", 30)
        tally.record(f"{label}: {step}: fs mounts the image through nvme-shadow", mounted, serial.text()[-500:])
        return proc, serial, command, number

    # Boot 1: the suite, then the workload through crashes.
    proc, serial, command, number = boot("boot 1")
    serial.start_here()
    started = number("call usertests 1") == 1
    done = serial.read_until(f"usertests: {len(RV6_TESTS)} passed, 0 failed".encode(), 400)
    text = serial.text()
    for name in RV6_TESTS:
        tally.record(f"{label}: usertests {name}", f"usertests: {name} ok" in text,
                     "\n".join(l for l in text.splitlines() if f"usertests: {name} " in l)[-600:])
    summary = f"{len(RV6_TESTS)} passed, 0 failed"
    tally.record(f"{label}: usertests: {summary}", started and done and summary in text, text[-800:])
    tally.record(f"{label}: fs counted the suite's calls", (number("call fs 0") or 0) > 1000)
    command("call usertests 10")
    time.sleep(3)
    ok, out = command("crash fs panic")
    tally.record(f"{label}: fs crashed in the middle of the workload", ok and "domain crashed" in out, out[-300:])
    ok, out = command("restart fs")
    tally.record(f"{label}: fs restarted (its mount replays the log)", ok and "restarted" in out, out[-300:])
    time.sleep(3)
    for fault in ("panic", "pagefault"):
        ok, out = command(f"crash nvme {fault}")
        tally.record(f"{label}: NVMe driver crashed ({fault}) during the workload", ok and "domain crashed" in out,
                     out[-300:])
        time.sleep(2)
    acked = number("call usertests 11")
    errors = number("call usertests 15")
    tally.record(f"{label}: writer acknowledged files across the crashes ({acked}; {errors} failed calls seen)",
                 bool(acked) and acked > 10 and errors is not None and errors >= 1)
    serial.start_here()
    command(f"call usertests 13 {acked or 0}")
    verified = serial.read_until(f"usertests: verified {acked} files: 0 bad".encode(), 300)
    tally.record(f"{label}: all {acked} acknowledged files intact after the crashes", verified,
                 serial.text()[-800:])
    # The workload again, and QEMU killed in the middle of it.
    command("call usertests 10")
    time.sleep(4)
    before_kill = number("call usertests 12")
    time.sleep(0.3)
    proc.kill()
    proc.wait()
    tally.record(f"{label}: QEMU killed with {before_kill} files acknowledged", bool(before_kill)
                 and before_kill > (acked or 0))
    copy = image + ".replayed"
    shutil.copyfile(image, copy)
    status, out = rv6fs("fsck", copy, "--replay")
    os.unlink(copy)
    tally.record(f"{label}: fsck after the kill (log replayed on a copy): clean", status == 0, out[-800:])

    # Boot 2: the mount replays the log; every acknowledged file is there.
    proc, serial, command, number = boot("boot 2")
    serial.start_here()
    command(f"call usertests 13 {before_kill or 0}")
    verified = serial.read_until(f"usertests: verified {before_kill} files: 0 bad".encode(), 300)
    tally.record(f"{label}: after the kill and a reboot, all {before_kill} acknowledged files intact", verified,
                 serial.text()[-800:])
    status = shut_down(proc)
    tally.record(f"{label}: shutdown exits QEMU with status 0", status == 0, f"(status {status})")
    status, out = rv6fs("fsck", image)
    tally.record(f"{label}: rv6fs fsck: the image is clean", status == 0 and "clean" in out, out[-800:])
    status, out = rv6fs("cat", image, "/etc/motd")
    tally.record(f"{label}: the host's files survived", status == 0 and out == "made on the host\n", out[-300:])
    try:
        os.unlink(image)
    except OSError:
        pass


def boot_rv6_shell(tally, kernel, image, label):
    """Boots into rv6's shell (`rv6=1`) on the NVMe image `image`; (QEMU,
    its serial) at the `$ ` prompt, or (None, None) (recorded) if not."""
    drive = ("-drive", f"file={image},if=none,id=nvm,format=raw", "-device", "nvme,serial=nvme0,drive=nvm")
    qemu = subprocess.Popen(qemu_command(kernel, 2, "512M", "log=info rv6=1", extra=drive, disk=False),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    serial = Serial(qemu, deadline=time.monotonic() + 600)
    up = serial.read_until(b"$ ", 90)
    tally.record(f"{label}: rv6=1 boots into the shell", up, serial.text()[-800:])
    if not up:
        shut_down(qemu, send=False)
        return None, None
    return qemu, serial


def rv6_shell_session(tally, kernel):
    """rv6's shell on the console (`rv6=1`, as `make run` boots): an image
    from tools/rv6-image.sh; pipelines, redirections, a background job
    and `kill`, a crashing program reported with its status, `$?`,
    quoting, the utilities, bad commands, the monitor's commands from the
    shell, and `exit` giving the console back to the monitor."""
    label = "rv6 shell"
    print(f"== {label} end-to-end")
    build = os.path.dirname(ARCHIVE or "build/x")
    image = os.path.join(build, "rv6-shell.img")
    proc = subprocess.run(["bash", "tools/rv6-image.sh", image, os.path.join(build, "programs")],
                          env={**os.environ, "FRESH": "1"}, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    tally.record(f"{label}: tools/rv6-image.sh makes the image", proc.returncode == 0, proc.stdout[-500:])
    if proc.returncode != 0:
        return
    qemu, serial = boot_rv6_shell(tally, kernel, image, label)
    if qemu is None:
        return

    def sh(line, timeout=60):
        serial.start_here()
        qemu.stdin.write(line.encode() + b"\r")
        qemu.stdin.flush()
        ok = serial.read_until(b"\n$ ", timeout)
        return ok, serial.text()

    bg = {}
    steps = [
        ("echo hello rv6", lambda out: "hello rv6" in out),
        ("cat /etc/motd | grep rv6 | wc", lambda out: re.search(r"^1 3 16\s*$", out, re.M) is not None),
        ("echo one > /tmp/f; echo two >> /tmp/f; cat < /tmp/f", lambda out: "one\ntwo" in out),
        ("wc /tmp/f", lambda out: "2 2 8 /tmp/f" in out),
        ("mkdir /tmp/d; cd /tmp/d; touch a b; ls; cd /", lambda out: re.search(r"^a\s+file", out, re.M)
            is not None and re.search(r"^b\s+file", out, re.M) is not None),
        ("ln /tmp/f /tmp/g; mv /tmp/g /tmp/h; cp /tmp/h /tmp/i; cat /tmp/i; rm /tmp/h /tmp/i; ls /tmp",
            lambda out: "one\ntwo" in out and re.search(r"^f\s+file", out, re.M) is not None
            and re.search(r"^[hi]\s+file", out, re.M) is None),
        ("crash; echo status $?", lambda out: "sh: crash: crashed (status 139)" in out and "status 139" in out),
        ('echo "a | b" \'c > d\'', lambda out: "a | b c > d" in out),
        ("nosuch", lambda out: "sh: nosuch: no such file or directory" in out),
        ("rmdir /tmp/d", lambda out: "directory not empty" in out),
        ("cat /nonexistent; echo $?", lambda out: "no such file or directory" in out and re.search(r"^1\s*$", out, re.M)),
        ("grep rv6 /etc/motd /tmp/f", lambda out: "/etc/motd:Welcome to rv6." in out),
        ("| wc", lambda out: "syntax error" in out),
        ("cat /etc/motd > /tmp/bg &", lambda out: re.search(r"^\[\d+\]", out, re.M) is not None),
        ("cat /tmp/bg | head -n 1", lambda out: "Welcome to rv6." in out),
        ("sleep 60 &", lambda out: bg.update(pid=(re.search(r"^\[(\d+)\]", out, re.M) or [None, None])[1]) or True),
        ("ps", lambda out: "sleep 60" in out and "sh" in out),
        ("@kill", None),
        # The killed job is reported before a later prompt (after the kill
        # or after the next command, as the reaper's timing goes).
        ("echo after", lambda out: re.search(r"done \(status 137\)", bg.get("kill_output", "") + out)
            is not None and "after" in out),
        ("monitor domains", lambda out: re.search(r"rv6\s+alive", out) is not None),
        # More through a pipeline than a pipe holds (64 KiB).
        ("cat /etc/numbers | grep 0 | wc", lambda out: re.search(r"^9498 9498 \d+\s*$", out, re.M) is not None),
        ("cat /etc/numbers | wc", lambda out: "30000 30000 168894" in out),
        ("tail -c 12 /etc/numbers", lambda out: "29999\n30000" in out),
        ("echo to the console > /dev/console", lambda out: "to the console" in out),
        ("ls /bin | wc", lambda out: re.search(r"^\d+ \d+ \d+\s*$", out, re.M) is not None),
        # The usertests suite as an rv6 program (rv6/utests): through the
        # process domain's calls, several processes at once where a test
        # needs them.
        ("@utests", None),
    ]
    for line, check in steps:
        if line == "@utests":
            ok, out = sh("utests; echo status $?", 600)
            summary = re.search(r"^utests: (\d+) passed, (\d+) failed", out, re.M)
            failures = re.findall(r"^utests: (\S+) FAILED: (.*)$", out, re.M)
            tally.record(f"{label}: utests: " + (f"{summary.group(1)} passed, {summary.group(2)} failed"
                                                 if summary else "no summary"),
                         ok and summary is not None and summary.group(2) == "0"
                         and int(summary.group(1)) >= 22 and "status 0" in out,
                         "; ".join(f"{n}: {w}" for n, w in failures) or out[-800:])
            continue
        if line == "@kill":
            pid = bg.get("pid")
            ok, out = sh(f"kill {pid}")
            bg["kill_output"] = out
            tally.record(f"{label}: kill {pid} (the background sleep)", ok and pid is not None, out[-300:])
            continue
        ok, out = sh(line)
        good = ok and bool(check(out))
        tally.record(f"{label}: '{line[:40]}'", good, out[-600:])
    # `exit` ends the shell; the next line gives the console back.
    serial.start_here()
    qemu.stdin.write(b"exit 3\r")
    qemu.stdin.flush()
    time.sleep(1)
    qemu.stdin.write(b"\r")
    qemu.stdin.flush()
    back = serial.read_until(b"monitor> ", 30)
    tally.record(f"{label}: exit gives the console back to the monitor", back and "the shell has ended" in serial.text(),
                 serial.text()[-400:])
    # Handed over again, then rv6 crashes under the console: typing goes
    # on at the monitor (a regression: the console kept rv6's prompt on
    # rv6's heap, and the next keystroke read it after the heap was gone).
    def send(data):
        # QEMU may be gone (a kernel fault ends it): recorded, not raised.
        try:
            qemu.stdin.write(data)
            qemu.stdin.flush()
        except OSError:
            pass

    serial.start_here()
    send(b"rv6\r")
    again = serial.read_until(b"$ ", 30)
    tally.record(f"{label}: 'rv6' hands the console over again (a new shell)", again, serial.text()[-300:])
    serial.start_here()
    send(b"monitor crash rv6 panic\r")
    time.sleep(1)
    send(b"x")
    time.sleep(0.5)
    send(b"\r")
    # The keystroke finds rv6 dead: the line runs at the monitor.
    back = serial.read_until(b"unknown command 'x'", 30)
    # The monitor's prompt after that line (not the one drawn with the
    # keystroke before it).
    serial.mark = max(serial.mark, serial.buffer.find(b"unknown command 'x'"))
    back = back and serial.read_until(b"monitor> ", 10)
    serial.start_here()
    send(b"domains\r")
    listed = serial.read_prompt(30)
    text = serial.text()
    tally.record(f"{label}: rv6 crashed under the console: the monitor takes over, no kernel fault",
                 back and listed and "KERNEL FAULT" not in serial.buffer.decode("utf-8", "replace")
                 and re.search(r"\brv6\s+(dead|poisoned|reclaiming)", text) is not None, text[-600:])
    status = shut_down(qemu, send=back)
    tally.record(f"{label}: shutdown exits QEMU with status 0", status == 0, f"(status {status})")
    code, out = rv6fs("fsck", image)
    tally.record(f"{label}: rv6fs fsck: the image is clean", code == 0 and "clean" in out, out[-600:])
    code, out = rv6fs("cat", image, "/tmp/f")
    tally.record(f"{label}: what the shell wrote is on the image", code == 0 and out == "one\ntwo\n", out[-200:])
    try:
        os.unlink(image)
        os.unlink(image + ".programs")
    except OSError:
        pass


def rv6_small_session(tally, kernel):
    """The usertests that fill the device (diskfull, outofinodes) on a
    small one: the 16 MiB RAM disk, given a file system by `fs` itself
    (`fs_mkfs=1`)."""
    label = "rv6 small device"
    print(f"== {label} end-to-end")
    checks = [
        ("load ramdisk", lambda out: "loaded image ramdisk" in out),
        ("load fs", lambda out: "loaded image fs" in out),
        ("load usertests", lambda out: "loaded image usertests" in out),
        ("@await fs: ramdisk/bdev had no file system: made one", None),
        # The timed benchmark op refuses a row that does not exist and a
        # window of 0 ms (answers 0, starts nothing).
        ("call usertests 22 7", lambda out: re.search(r"^0\s*$", out, re.M) is not None),
        ("call usertests 22 2", lambda out: re.search(r"^0\s*$", out, re.M) is not None),
        ("call usertests 5", lambda out: re.search(r"^1\s*$", out, re.M) is not None),
        ("@await usertests: diskfull ok", None),
        ("@await usertests: small device: 2 passed, 0 failed", None),
    ]
    console_session(tally, kernel, 2, "512M", 600, checks=checks, label=label, disk=False,
                    append="log=info rv6_disk=ramdisk/bdev fs_mkfs=1")


def rv6_full_image_session(tally, kernel):
    """diskfull and outofinodes as rv6 programs: `utests diskfull
    outofinodes` from rv6's shell on a small NVMe image (8 MiB, 192
    inodes) holding only `sh`, `utests` and `echo`, through the process domain
    and the file system to a full device; then the host's fsck finds the
    image clean."""
    label = "rv6 full image"
    print(f"== {label} end-to-end")
    build = os.path.dirname(ARCHIVE or "build/x")
    programs = os.path.join(build, "programs")
    image = os.path.join(build, "rv6-small.img")
    tree = tempfile.mkdtemp(prefix="rv6-small-")
    try:
        os.makedirs(os.path.join(tree, "bin"))
        for name in ("sh", "utests"):
            shutil.copy(os.path.join(programs, name), os.path.join(tree, "bin", name))
        shutil.copy(os.path.join(programs, "coreutils"), os.path.join(tree, "bin", "echo"))
        if os.path.exists(image):
            os.unlink(image)
        code, out = rv6fs("mkfs", image, "--size-mib", "8", "--inodes", "192", "--from", tree)
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    tally.record(f"{label}: rv6fs mkfs makes an 8 MiB image", code == 0, out[-500:])
    if code != 0:
        return
    qemu, serial = boot_rv6_shell(tally, kernel, image, label)
    if qemu is None:
        return
    # A test that does not exist: refused, saying which exist, status 2.
    serial.start_here()
    qemu.stdin.write(b"utests nosuch; echo status $?\r")
    qemu.stdin.flush()
    ok = serial.read_until(b"status ", 60) and serial.read_until(b"\n$ ", 30)
    out = serial.text()
    tally.record(f"{label}: 'utests nosuch' is refused with status 2",
                 ok and "no test 'nosuch'" in out and "diskfull" in out and "status 2" in out, out[-400:])
    serial.start_here()
    qemu.stdin.write(b"utests diskfull outofinodes; echo status $?\r")
    qemu.stdin.flush()
    ok = serial.read_until(b"\n$ ", 420)
    out = serial.text()
    for name in ("diskfull", "outofinodes"):
        tally.record(f"{label}: utests {name} on a full device", ok and f"utests: {name} ok" in out,
                     out[-800:])
    tally.record(f"{label}: utests: 2 passed, 0 failed, status 0",
                 ok and "utests: 2 passed, 0 failed" in out and "status 0" in out, out[-400:])
    filled = re.search(r"diskfull: (\d+) files", out)
    inodes = re.search(r"outofinodes: (\d+) files", out)
    if filled and inodes:
        print(f"   ({filled.group(1)} files of 256 KiB, {inodes.group(1)} empty files before ENOSPC)")
    serial.start_here()
    qemu.stdin.write(b"exit 0\r")
    qemu.stdin.flush()
    time.sleep(1)
    qemu.stdin.write(b"\r")
    qemu.stdin.flush()
    serial.read_until(b"monitor> ", 30)
    status = shut_down(qemu)
    tally.record(f"{label}: shutdown exits QEMU with status 0", status == 0, f"(status {status})")
    code, out = rv6fs("fsck", image)
    tally.record(f"{label}: rv6fs fsck: the filled and emptied image is clean", code == 0 and "clean" in out,
                 out[-600:])
    try:
        os.unlink(image)
    except OSError:
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kernel", help="the production kernel (console, fatal paths)")
    parser.add_argument("--test-kernel",
                        help="the test kernel (the ktest feature) that runs the in-QEMU suites; default: KERNEL")
    parser.add_argument("--configs", default="4:512M:iommu:pit,1:128M:nopit,2:4G:x2apic",
                        help="comma-separated SMP:MEMORY[:iommu] boots of the suite")
    parser.add_argument("--tests", default="all")
    parser.add_argument("--archive", help="the signed boot archive of domain images")
    parser.add_argument("--disk", help="the NVMe scratch disk image")
    parser.add_argument("--key", default="build/keys/domain.key",
                        help="the signing key (to make a validly signed partial archive)")
    parser.add_argument("--timeout", type=int, default=300)
    parser.add_argument("--storm", type=int, default=1000,
                        help="faults in the fault campaign (0: none)")
    parser.add_argument("--soak", type=int, metavar="FAULTS",
                        help="run only the fault campaign, with FAULTS faults (make soak)")
    parser.add_argument("--storm-log", help="where to write the campaign's serial output")
    parser.add_argument("--storm-mode", choices=["entry", "mid"], default="entry",
                        help="entry: every fault raised at a domain entry; mid: armed for the "
                             "timer tick first (mid-code), see docs/reliability.md")
    parser.add_argument("--push", nargs=2, metavar=("ARCHIVE", "IMAGE"),
                        help="run only the test of `make push`: boot with --archive, push ARCHIVE, "
                             "load IMAGE (tools/test-new-domain.py)")
    parser.add_argument("--net", choices=sorted(NICS), help="run only the echo session on this NIC")
    parser.add_argument("--shadow", action="store_true", help="with --net: through nic-shadow")
    parser.add_argument("--stack", action="store_true",
                        help="with --net: the TCP/IP session (netstack) instead of the frame echo")
    parser.add_argument("--kvstore", action="store_true",
                        help="with --net: the key-value store session")
    parser.add_argument("--httpd", action="store_true",
                        help="with --net: the HTTP server session")
    parser.add_argument("--maglev", action="store_true",
                        help="with --net: the Maglev session")
    parser.add_argument("--rv6", action="store_true", help="run only the rv6 file-system session")
    parser.add_argument("--iso", action="store_true",
                        help="run only the boot-image sessions (SeaBIOS and OVMF through GRUB)")
    parser.add_argument("--tap", action="store_true",
                        help="with --net: the tap session in a network namespace (root)")
    parser.add_argument("--megabytes", type=int, default=10, help="with --stack: size of the TCP echo")
    parser.add_argument("--static", action="store_true",
                        help="with --stack: the address from net= on the command line")
    parser.add_argument("--sessions", metavar="ROOT",
                        help="run only the session.console files of ROOT's domains "
                             "(tools/test-new-domain.py)")
    args = parser.parse_args()
    global ARCHIVE, DISK
    ARCHIVE = args.archive
    DISK = args.disk
    tally = Tally()
    if args.iso:
        iso_sessions(tally, args.kernel, args.test_kernel or args.kernel, args.archive)
        print(f"qemu: {tally.passed} passed, {tally.failed} failed")
        sys.exit(0 if tally.failed == 0 else 1)
    if args.rv6:
        rv6_session(tally, args.kernel)
        rv6_shell_session(tally, args.kernel)
        rv6_small_session(tally, args.kernel)
        rv6_full_image_session(tally, args.kernel)
        print(f"qemu: {tally.passed} passed, {tally.failed} failed")
        sys.exit(0 if tally.failed == 0 else 1)
    if args.net:
        if args.kvstore:
            kvstore_session(tally, args.kernel, args.net)
        elif args.httpd:
            httpd_session(tally, args.kernel, args.net)
            httpd_files_session(tally, args.kernel, args.net)
        elif args.maglev:
            maglev_session(tally, args.kernel, args.net, shadow=args.shadow)
        elif args.tap:
            tap_session(tally, args.kernel, args.net)
        elif args.stack:
            stack_session(tally, args.kernel, args.net, shadow=args.shadow, megabytes=args.megabytes,
                          static=args.static)
        else:
            net_session(tally, args.kernel, args.net, shadow=args.shadow)
        print(f"qemu: {tally.passed} passed, {tally.failed} failed")
        sys.exit(0 if tally.failed == 0 else 1)
    if args.push:
        push_session(tally, args.kernel, args.archive, *args.push)
        print(f"qemu: {tally.passed} passed, {tally.failed} failed")
        sys.exit(0 if tally.failed == 0 else 1)
    if args.sessions:
        domain_sessions(tally, args.kernel, args.sessions)
        print(f"qemu: {tally.passed} passed, {tally.failed} failed")
        sys.exit(0 if tally.failed == 0 else 1)
    if args.soak:
        with open(args.storm_log or os.devnull, "w") as log:
            storm_session(tally, args.kernel, args.soak, log=log, mode=args.storm_mode)
        print(f"qemu: {tally.passed} passed, {tally.failed} failed")
        sys.exit(0 if tally.failed == 0 else 1)
    for config in args.configs.split(","):
        smp, mem, *flags = config.split(":")
        run_suite(tally, args.test_kernel or args.kernel, int(smp), mem, args.timeout, args.tests,
                  flags=tuple(flags))
    fatal_paths(tally, args.kernel, 60)
    console_session(tally, args.kernel, 2, "256M", 120)
    typed_during_boot(tally, args.kernel)
    cpu_cap_session(tally, args.kernel)
    spcr_session(tally, args.kernel)
    if args.archive:
        guide_session(tally, args.kernel)
        domain_sessions(tally, args.kernel)
        if qemu_has_igb():
            net_session(tally, args.kernel, "igb")
            net_session(tally, args.kernel, "virtio")
            net_session(tally, args.kernel, "igb", shadow=True)
            net_session(tally, args.kernel, "virtio", shadow=True)
            stack_session(tally, args.kernel, "igb")
            stack_session(tally, args.kernel, "virtio")
            stack_session(tally, args.kernel, "igb", shadow=True)
            stack_session(tally, args.kernel, "virtio", shadow=True)
            stack_session(tally, args.kernel, "igb", static=True)
            tap_session(tally, args.kernel, "virtio")
            maglev_session(tally, args.kernel, "igb")
            maglev_session(tally, args.kernel, "igb", shadow=True)
            httpd_session(tally, args.kernel, "igb")
            httpd_files_session(tally, args.kernel, "igb")
            kvstore_session(tally, args.kernel, "virtio")
        else:
            tally.record("igb echo: this QEMU has no igb model (make setup installs QEMU 10)", False)
        rv6_session(tally, args.kernel)
        rv6_shell_session(tally, args.kernel)
        rv6_small_session(tally, args.kernel)
        rv6_full_image_session(tally, args.kernel)
        iso_sessions(tally, args.kernel, args.test_kernel or args.kernel, args.archive)
        archive_sessions(tally, args.kernel, args.archive, args.key)
        if args.storm:
            storm_session(tally, args.kernel, args.storm, mode=args.storm_mode)
    print(f"qemu: {tally.passed} passed, {tally.failed} failed")
    sys.exit(0 if tally.failed == 0 else 1)


if __name__ == "__main__":
    main()
