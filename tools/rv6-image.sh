#!/usr/bin/env bash
# Makes rv6's file-system image: every rv6 program the build packed
# (build/programs/NAME, signed archives of one image) in /bin, each of
# coreutils' utilities as a copy of it under its own name, and a few
# files in /etc and /www. Kept if it is already there and the programs have not
# changed since it was made (so files made in rv6 survive a `make run`);
# `FRESH=1` makes it again anyway.
#
#   tools/rv6-image.sh IMAGE [PROGRAMS_DIR] [SIZE_MIB]
set -euo pipefail
image=${1:?image}
programs=${2:-build/programs}
size=${3:-64}
# The utilities in rv6/coreutils (its APPLETS), each run by name.
applets="ls cat echo mkdir rm rmdir ln mv cp touch wc grep head kill ps sync true false crash sleep timespawn tail"

stamp="$image.programs"
sum=$(cat "$programs"/* "$0" | sha256sum | cut -d' ' -f1)
if [ -f "$image" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ] && [ "${FRESH:-0}" != 1 ]; then
    exit 0
fi
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/bin" "$tree/etc" "$tree/tmp"
cp "$programs"/* "$tree/bin/"
for a in $applets; do cp "$programs/coreutils" "$tree/bin/$a"; done
printf 'Welcome to rv6.\nPrograms are in /bin; `ls /bin` lists them.\n`monitor help` lists the kernel monitor'"'"'s commands.\n' > "$tree/etc/motd"
# A larger file for pipelines that move more than a pipe holds.
seq 1 30000 > "$tree/etc/numbers"
# What httpd serves with httpd_root=/www (make run sets it): a page, and
# the bodies of the benchmark paths, byte i being 'a' + i % 26.
mkdir -p "$tree/www/bytes"
printf '<!doctype html>\n<title>rv6</title>\n<p>Served by httpd from rv6'"'"'s file system.</p>\n' > "$tree/www/index.html"
printf 'hello from a domain\n' > "$tree/www/hello.txt"
for n in 64 1024 16384 65536; do
    python3 -c "import sys; sys.stdout.buffer.write(bytes(97 + i % 26 for i in range($n)))" > "$tree/www/bytes/$n"
done
rm -f "$image"
cargo run --release --quiet -p rv6fs -- mkfs "$image" --size-mib "$size" --from "$tree"
echo "$sum" > "$stamp"
echo "rv6-image: $image ($size MiB) with $(ls "$tree/bin" | wc -l) programs in /bin"
