#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers that read untrusted bytes, on the
# pinned STABLE toolchain: AFL++ through `cargo afl` (crates.io's cargo-afl,
# which builds its own AFL++ when installed; rustc instruments with
# `-C passes=sancov-module`, no nightly needed).
#
#   tools/fuzz.sh [TARGET...]        # default: every target in fuzz/src/bin
#   FUZZ_SECONDS=600 tools/fuzz.sh cpio
#
# Targets (fuzz/src/bin): cpio (kcore::cpio::Archive), elf (loader::Plan).
# Seeds: fuzz/corpus/TARGET/ (checked in). Each run starts from the seeds
# (its queue goes to fuzz/out/TARGET, not kept); crashing inputs are copied
# to fuzz/crashes/TARGET/. Prints per target: executions, execs/s, crashes.
# Exits 1 if any target crashed, 0 otherwise.
#
# Idempotent install on a fresh Debian machine: a C toolchain and make (to
# build AFL++) from apt, then cargo-afl from crates.io; each step is skipped
# when already done.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
fuzz="$root/fuzz"
seconds=${FUZZ_SECONDS:-60}
afl_version=0.18.2
cd "$root" # so rustup picks the pinned toolchain (rust-toolchain.toml)

log() { printf '== %s\n' "$*" >&2; }

# --- install --------------------------------------------------------------
if ! command -v cc >/dev/null || ! command -v make >/dev/null; then
    log "installing a C toolchain (apt: build-essential)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q build-essential
fi
if ! cargo afl --version 2>/dev/null | grep -q "$afl_version"; then
    log "installing cargo-afl $afl_version (builds AFL++, about a minute)"
    cargo install --locked --force cargo-afl --version "$afl_version"
fi
# AFL++ is built per rustc version; cargo install did it for the toolchain
# it ran under. Build it for the pinned one if that was another.
if ! out=$(cargo afl config --build 2>&1); then
    grep -q "already built" <<<"$out" || { printf '%s\n' "$out" >&2; exit 1; }
fi

# --- build ----------------------------------------------------------------
log "building fuzz targets (cargo afl build --release)"
(cd "$fuzz" && cargo afl build --release --quiet)

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in "$fuzz"/src/bin/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi

# --- run ------------------------------------------------------------------
# A container has no cpufreq and may pipe core dumps elsewhere: tell AFL++
# not to stop over either. No UI, stop after $seconds (-V).
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export AFL_NO_UI=1
status=0
summary=()
for t in "${targets[@]}"; do
    bin="$fuzz/target/release/$t"
    [ -x "$bin" ] || { log "no such target: $t"; exit 2; }
    [ -d "$fuzz/corpus/$t" ] || { log "no seeds in fuzz/corpus/$t"; exit 2; }
    out="$fuzz/out/$t"
    rm -rf "$out"
    mkdir -p "$out"
    log "fuzzing $t for ${seconds}s"
    cargo afl fuzz -V "$seconds" -i "$fuzz/corpus/$t" -o "$out" "$bin" \
        >"$out/afl.log" 2>&1 || {
        log "afl-fuzz failed for $t (last lines of fuzz/out/$t/afl.log):"
        tail -n 20 "$out/afl.log" >&2
        exit 1
    }
    stats="$out/default/fuzzer_stats"
    get() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
    execs=$(get execs_done)
    run_time=$(get run_time)
    rate=$(awk -v e="$execs" -v s="$run_time" 'BEGIN { printf "%.0f", (s > 0 ? e / s : 0) }')
    crashes=$(get saved_crashes)
    hangs=$(get saved_hangs)
    edges="$(get edges_found)/$(get total_edges)"
    corpus=$(get corpus_count)
    if [ "${crashes:-0}" -gt 0 ]; then
        status=1
        mkdir -p "$fuzz/crashes/$t"
        for c in "$out"/default/crashes/id:*; do
            cp "$c" "$fuzz/crashes/$t/$(sha1sum "$c" | cut -c1-16)"
        done
    fi
    summary+=("$(printf '%-8s %12s %10s %8s %6s %8s %12s' \
        "$t" "$execs" "$rate" "$crashes" "$hangs" "$corpus" "$edges")")
done

printf '\n%-8s %12s %10s %8s %6s %8s %12s\n' \
    target executions execs/s crashes hangs corpus edges
printf '%s\n' "${summary[@]}"
if [ "$status" -ne 0 ]; then
    echo "crashing inputs: fuzz/crashes/<target>/ (replay: fuzz/target/release/<target> < FILE)"
fi
exit "$status"
