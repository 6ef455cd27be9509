#!/usr/bin/env bash
# Builds every domain under domains/ (but the SDK) as its own loadable image
# and packs them into the signed boot archive.
#
#   tools/build-images.sh OUT_DIR KEY_FILE
#
# Each domain crate's binary target (its `src/main.rs`, one line:
# `domain_sdk::image!(...)`) is compiled for x86_64-unknown-none as a static
# position-independent executable whose ELF entry point is `domain_entry`.
# Before that, `vet` (tools/vet) screens each crate's sources (and those of
# `interfaces/`, linked into every image) for known compiler soundness-hole
# patterns; any finding aborts the build. Then `pack` (tools/pack) writes
# OUT_DIR/domains.cpio: the images, a manifest of their sizes, SHA-256
# digests and grants, and the manifest's Ed25519 signature. The grants (what
# each image may export, which PCI devices it may claim, which images it may
# supervise) are read by pack from `cargo metadata`: each crate's
# `[package.metadata.domain]`. KEY_FILE is the build's signing key; it is
# generated if missing, and its public half (OUT_DIR/keys/domain.pub) is
# what the kernel embeds.
set -euo pipefail
out=${1:?out dir}
key=${2:?key file}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# Where the images are compiled (IMAGES_TARGET_DIR overrides: the test of
# `make new-domain` builds a copy of the tree without recompiling it all).
images_target=${IMAGES_TARGET_DIR:-target/images}

# Images: every crate under domains/ and drivers/ with a binary target,
# found in `cargo metadata` (so the names come from the crates: the image
# is named after its binary target, whatever the package and directory are
# called). tools/image-crates.py says what it expects when a crate is off
# (no `image` feature, two binaries, a name the kernel would refuse).
mkdir -p "$out"
cargo metadata --format-version 1 --no-deps --offline >"$out/metadata.json.tmp" 2>"$out/metadata.err" || {
    cat "$out/metadata.err" >&2
    echo "build-images: cargo metadata failed (a Cargo.toml above is malformed)" >&2
    exit 1
}
listing=$(python3 tools/image-crates.py "$root" "$out/metadata.json.tmp") || exit 1
domains=()
dirs=(interfaces)
packages=()
features=()
while read -r name dir package; do
    [ -n "$name" ] || continue
    domains+=("$name")
    dirs+=("$dir")
    packages+=(-p "$package")
    features+=("$package/image")
done <<<"$listing"
if [ ${#domains[@]} -eq 0 ]; then
    echo "build-images: no image crates found under domains/, drivers/ or rv6/" >&2
    exit 1
fi

# Untrusted libraries images link (drivers/nic-ring) are screened too:
# every crate under domains/, drivers/ and rv6/, not only the image crates.
for lib in "$root"/domains/*/ "$root"/drivers/*/ "$root"/rv6/*/; do
    [ -f "$lib/Cargo.toml" ] || continue
    lib=${lib%/}
    case " ${dirs[*]} " in
        *" $lib "*|*" ${lib#"$root"/} "*) ;;
        *) dirs+=("$lib") ;;
    esac
done

# Before anything is built or signed: screen every crate packed here (and
# interfaces/, compiled into each image) for the code shapes through which
# known compiler soundness bugs let safe code break isolation (tools/vet,
# docs/architecture.md). A finding aborts the build.
if ! cargo run --release --quiet -p vet -- "${dirs[@]}"; then
    echo "build-images: vet rejected the domain sources above; no image is built or signed" >&2
    exit 1
fi

# The workspace's .cargo/config.toml makes bare-metal code non-PIC for the
# kernel; images need the opposite, so RUSTFLAGS (which replaces those
# flags) says so, in a target directory of their own.
RUSTFLAGS="-C relocation-model=pie -C link-arg=--entry=domain_entry -C link-arg=-zmax-page-size=4096 -C link-arg=-zseparate-code -C strip=debuginfo -C force-frame-pointers=yes" \
    cargo build --release --quiet --target x86_64-unknown-none --target-dir "$images_target" \
    "${packages[@]}" --features "$(IFS=,; echo "${features[*]}")" --bins

mkdir -p "$out/images" "$out/keys"
args=()
for name in "${domains[@]}"; do
    cp "$images_target/x86_64-unknown-none/release/$name" "$out/images/$name.elf"
    args+=("$name=$out/images/$name.elf")
done
# Each crate's policy, as declared in its Cargo.toml (no dependencies are
# resolved: only the workspace's own packages).
mv "$out/metadata.json.tmp" "$out/metadata.json"; rm -f "$out/metadata.err"
# START (e.g. "counter checksum client"): the domains the kernel starts at
# boot, written into the signed manifest.
cargo run --release --quiet -p pack -- --key "$key" --public "$out/keys/domain.pub" \
    --out "$out/domains.cpio" --start "${START:-}" --metadata "$out/metadata.json" "${args[@]}"

# rv6 programs (`program = true` in [package.metadata.domain]): each also
# packed alone into a signed archive of its own, build/programs/NAME, which
# rv6's file system holds and `Kernel::spawn_program` verifies and runs.
mkdir -p "$out/programs"
programs=$(python3 - "$out/metadata.json" <<'PY'
import json, sys
for p in json.load(open(sys.argv[1]))["packages"]:
    meta = (p.get("metadata") or {}).get("domain") or {}
    if meta.get("program") is True:
        for t in p["targets"]:
            if "bin" in t["kind"]:
                print(t["name"])
PY
)
for name in $programs; do
    cargo run --release --quiet -p pack -- --key "$key" --public "$out/keys/domain.pub" \
        --out "$out/programs/$name" --metadata "$out/metadata.json" "$name=$out/images/$name.elf" >/dev/null
done
