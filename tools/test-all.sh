#!/usr/bin/env bash
# `make test`: host unit tests, lint, kernel build, in-QEMU tests. Prints one
# final line `N passed, N failed` summing every stage; a stage that cannot
# run (build error, lint error) counts as one failure.
set -u
kernel="$1"; configs="$2"; profile_flag="$3"; archive="$4"; key="$5"; disk="$6"
# The test kernel (the `ktest` feature: in-QEMU tests and built-in images)
# is built next to the production kernel, in a target directory of its own.
test_kernel="${kernel%.elf}-test.elf"
profile_dir=debug; [ "$profile_flag" = "--release" ] && profile_dir=release
build=build
mkdir -p "$build"
passed=0; failed=0

echo "== domain images (tools/build-images.sh)"
if bash tools/build-images.sh "$build" "$key"; then :; else
    echo "domain images: build failed"; failed=$((failed + 1))
fi

echo "== host tests (cargo test --workspace --exclude kernel)"
# The loader's tests run on the images just built, and must not skip them.
if LOADER_TESTS_NEED_IMAGES=1 RV6_REQUIRE_XV6READER=1 cargo test --workspace --exclude kernel 2>&1 | tee "$build/host-tests.log"; then :; else
    echo "host tests: cargo test exited with an error"; failed=$((failed + 1))
fi
# Sum every "test result: ok. N passed; M failed" line.
read -r hp hf < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } } END { print p+0, f+0 }' "$build/host-tests.log")
passed=$((passed + hp)); failed=$((failed + hf))

echo "== lint (rustfmt, clippy -D warnings)"
if cargo fmt --all --check >/dev/null 2>&1 && cargo clippy --workspace --exclude kernel --all-targets -q -- -D warnings \
   && cargo clippy -p kernel --target x86_64-unknown-none -q -- -D warnings \
   && cargo clippy -p kernel --target x86_64-unknown-none --features ktest --target-dir target/ktest -q -- -D warnings; then
    passed=$((passed + 1)); echo "  ok      lint"
else
    failed=$((failed + 1)); echo "  FAILED  lint (run 'make lint')"
fi

echo "== host benchmark build (rrpc's kernel per-core words through GS)"
# What `make bench` times: `rrpc` built with `--cfg rrpc_gs`, run briefly on
# every row that enters a section or switches the owner (a crash here is
# the GS record disagreeing with rrpc's offsets).
if RUSTFLAGS="--cfg rrpc_gs" cargo build -q -p bench --release --target-dir target/bench \
   && target/bench/release/bench --quick --out "$build/bench-smoke.json" \
        --only domain-entry,rref-alloc-drop,rref-call-move,proxy-call,proxy-rref,proxy-async,nullnet,nullnet-crossing,nullnet-shadow,nullnet-tx-crossing,nullnet-tx-shadow >/dev/null; then
    passed=$((passed + 1)); echo "  ok      bench (rrpc_gs)"
else
    failed=$((failed + 1)); echo "  FAILED  bench (rrpc_gs)"
fi

echo "== kernel build"
if DOMAIN_PUBKEY="$(pwd)/$build/keys/domain.pub" cargo build -p kernel --target x86_64-unknown-none $profile_flag \
   && mkdir -p "$build" && cp "target/x86_64-unknown-none/$profile_dir/kernel" "$kernel" \
   && DOMAIN_PUBKEY="$(pwd)/$build/keys/domain.pub" cargo build -p kernel --target x86_64-unknown-none $profile_flag \
        --features ktest --target-dir target/ktest \
   && cp "target/ktest/x86_64-unknown-none/$profile_dir/kernel" "$test_kernel"; then
    python3 tools/qemu-test.py "$kernel" --test-kernel "$test_kernel" --archive "$archive" --key "$key" --disk "$disk" --configs "$configs" 2>&1 | tee "$build/qemu-tests.log"
    read -r qp qf < <(sed -n 's/^qemu: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$build/qemu-tests.log" | tail -1)
    if [ -z "${qp:-}" ]; then failed=$((failed + 1)); else passed=$((passed + qp)); failed=$((failed + qf)); fi
    # The authoring path end to end: `make new-domain` on a copy of the
    # tree, its host tests, its images, its sessions on this kernel.
    python3 tools/test-new-domain.py "$kernel" "$key" 2>&1 | tee "$build/new-domain-test.log"
    read -r np nf < <(sed -n 's/^qemu: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$build/new-domain-test.log" | tail -1)
    if [ -z "${np:-}" ]; then failed=$((failed + 1)); else passed=$((passed + np)); failed=$((failed + nf)); fi
else
    echo "kernel build failed"; failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
