#!/usr/bin/env python3
"""The authoring path, end to end, as `make test` runs it:

    python3 tools/test-new-domain.py KERNEL KEY

On a copy of this tree (tracked and new files, nothing ignored), runs
`make new-domain NAME=... CLIENT=1 INTERFACE=1`, the new service's host
tests (`cargo test -p domain-NAME`), the image build (signed with KEY, the
key whose public half KERNEL embeds), then boots KERNEL with the copy's
archive and runs the sessions the tool wrote for the service and its
client. Also checks that the tool refuses bad names and existing crates
without writing anything. Prints `qemu: N passed, M failed` like
tools/qemu-test.py (tools/test-all.sh adds it to the total).

The copy's builds use target directories under this tree's `target/`
(`new-domain`, `new-domain-images`), so a second run compiles only what
changed.
"""

import os
import shutil
import subprocess
import sys
import tempfile

NAME = "e2e-notes"
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main():
    kernel, key = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    passed = failed = 0

    def record(name, ok, detail=""):
        nonlocal passed, failed
        print(f"  {'ok    ' if ok else 'FAILED'}  new-domain: {name}")
        if not ok and detail:
            print(detail[-3000:])
        passed, failed = passed + ok, failed + (not ok)
        return ok

    def run(command, cwd, env=None, timeout=900):
        try:
            done = subprocess.run(command, cwd=cwd, env={**os.environ, **(env or {})},
                                  capture_output=True, text=True, timeout=timeout)
            return done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as e:
            return -1, f"timed out after {timeout} s: {e}"

    tmp = tempfile.mkdtemp(prefix="new-domain-test.")
    try:
        print(f"== make new-domain, end to end (a copy of the tree in {tmp})")
        files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                               capture_output=True, check=True).stdout.decode().split("\0")
        for name in files:
            source = os.path.join(ROOT, name)
            if name and os.path.isfile(source):
                target = os.path.join(tmp, name)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copy2(source, target)

        # Bad input first: refused, nothing written.
        before = sorted(os.listdir(os.path.join(tmp, "domains")))
        for bad, why in [("Bad_Name", "bad NAME"), ("type", "Rust keyword"),
                         ("counter", "exists already"), ("x" * 40, "too long")]:
            status, out = run(["make", "-s", "new-domain", f"NAME={bad}"], tmp)
            record(f"refuses NAME={bad[:12]} ({why})", status != 0 and why in out, out)
        after = sorted(os.listdir(os.path.join(tmp, "domains")))
        record("a refused name writes nothing", before == after, f"{before} -> {after}")

        status, out = run(["make", "-s", "new-domain", f"NAME={NAME}", "CLIENT=1", "INTERFACE=1"], tmp)
        if not record(f"make new-domain NAME={NAME} CLIENT=1 INTERFACE=1", status == 0, out):
            return passed, failed
        expected = [f"domains/{NAME}/Cargo.toml", f"domains/{NAME}/src/lib.rs", f"domains/{NAME}/src/main.rs",
                    f"domains/{NAME}/session.console", f"domains/{NAME}-client/src/lib.rs",
                    f"domains/{NAME}-client/session.console", "interfaces/src/e2e_notes.rs"]
        missing = [f for f in expected if not os.path.exists(os.path.join(tmp, f))]
        record("writes the service, the client, the interface and both sessions", not missing, f"missing {missing}")
        status, out = run(["make", "-s", "new-domain", f"NAME={NAME}"], tmp)
        record("refuses to write over a domain that exists", status != 0 and "exists already" in out, out)
        # The guide shows (an excerpt of) the session the tool writes.
        guide = open(os.path.join(ROOT, "docs", "authoring-domains.md")).read()
        blocks = guide.split("```console\n")
        example = [b.split("```", 1)[0] for b in blocks[1:] if "monitor> load notes" in b]
        written = open(os.path.join(tmp, "domains", NAME, "session.console")).read()
        missing = [line for line in (example[0].splitlines() if example else ["(no example in the guide)"])
                   if line.replace("notes", NAME) not in written.splitlines()]
        record("the guide's example session is what the tool writes", not missing, f"not written: {missing}")

        env = {"CARGO_TARGET_DIR": os.path.join(ROOT, "target", "new-domain")}
        status, out = run(["cargo", "test", "-p", f"domain-{NAME}", "-p", f"domain-{NAME}-client"], tmp, env)
        record(f"cargo test -p domain-{NAME} -p domain-{NAME}-client (on the host test kit)",
               status == 0 and "calls_go_through_the_proxy_and_a_crash_is_contained ... ok" in out
               and "the_client_keeps_calling_across_a_crash_of_the_service ... ok" in out, out)
        status, out = run(["cargo", "clippy", "-q", "-p", f"domain-{NAME}", "-p", f"domain-{NAME}-client",
                           "-p", "interfaces", "--all-targets", "--", "-D", "warnings"], tmp, env)
        record("the generated crates are clippy-clean (-D warnings)", status == 0, out)
        status, out = run(["cargo", "fmt", "--check", "-p", f"domain-{NAME}", "-p", f"domain-{NAME}-client",
                           "-p", "interfaces"], tmp, env)
        record("the generated crates are rustfmt-clean", status == 0, out)

        env["IMAGES_TARGET_DIR"] = os.path.join(ROOT, "target", "new-domain-images")
        # The image builder says what it expects of a crate that is off
        # (here: a binary without the `image` feature), before building.
        broken = os.path.join(tmp, "domains", "offbeat")
        os.makedirs(os.path.join(broken, "src"))
        with open(os.path.join(broken, "Cargo.toml"), "w") as f:
            f.write('[package]\nname = "domain-offbeat"\nedition = "2024"\nversion = "0.1.0"\n\n'
                    '[[bin]]\nname = "offbeat"\npath = "src/main.rs"\n')
        for source in ("main.rs", "lib.rs"):
            with open(os.path.join(broken, "src", source), "w") as f:
                f.write("fn main() {}\n" if source == "main.rs" else "")
        status, out = run(["bash", "tools/build-images.sh", "build", key], tmp, env)
        record("the image builder names what an image crate lacks",
               status != 0 and "domains/offbeat (domain-offbeat): no `image` feature" in out, out)
        shutil.rmtree(broken)
        status, out = run(["bash", "tools/build-images.sh", "build", key], tmp, env)
        if not record("tools/build-images.sh builds and signs the new images", status == 0
                      and f"{NAME}-client" in out, out):
            return passed, failed

        # `make push`: the kernel booted with this tree's archive (no
        # e2e-notes in it) takes the copy's, and loads the new domain
        # without a reboot.
        status, out = run(["python3", os.path.join(ROOT, "tools", "qemu-test.py"), kernel,
                           "--archive", os.path.join(ROOT, "build", "domains.cpio"),
                           "--push", os.path.join(tmp, "build", "domains.cpio"), NAME], ROOT, timeout=600)
        print(out)
        tail = [line for line in out.splitlines() if line.startswith("qemu: ")]
        if tail:
            p, f = tail[-1][len("qemu: "):].replace(" passed,", "").replace(" failed", "").split()
            passed, failed = passed + int(p), failed + int(f)
        else:
            record("the push test reports a result", False, out)

        status, out = run(["python3", os.path.join(ROOT, "tools", "qemu-test.py"), kernel,
                           "--archive", os.path.join(tmp, "build", "domains.cpio"), "--sessions", tmp], ROOT,
                          timeout=600)
        print(out)
        sessions = [line for line in out.splitlines() if line.startswith("== domains/")]
        record("the sessions of the new service and client run", any(NAME + "/" in s for s in sessions)
               and any(NAME + "-client/" in s for s in sessions), "\n".join(sessions))
        tail = [line for line in out.splitlines() if line.startswith("qemu: ")]
        if tail:
            p, f = tail[-1][len("qemu: "):].replace(" passed,", "").replace(" failed", "").split()
            passed, failed = passed + int(p), failed + int(f)
        else:
            record("the sessions report a result", False, out)
        return passed, failed
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    p, f = main()
    print(f"qemu: {p} passed, {f} failed")
    sys.exit(0 if f == 0 else 1)
