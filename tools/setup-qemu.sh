#!/usr/bin/env bash
# `make setup`'s QEMU: a qemu-system-x86_64 that emulates the Intel 82576
# (`-device igb`, the NIC the network path runs on in QEMU). Debian 12's
# own QEMU (7.2) has no igb; its backports suite has QEMU 10. This adds the
# backports suite to apt's sources by copying the machine's own Debian
# entry (so whatever mirror the machine uses is the one used: the
# repository names none), once, then installs QEMU from it.
#
# Idempotent: a QEMU with igb present means nothing to do; an existing
# backports entry is not added twice. If the backports QEMU cannot be
# installed (no network, not Debian), it says so and leaves what is
# there (everything but the igb tests runs on QEMU 7.2).
set -u
QEMU=${QEMU:-qemu-system-x86_64}
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)

has_igb() {
    command -v "$QEMU" >/dev/null 2>&1 && "$QEMU" -device help 2>/dev/null | grep -q '"igb"'
}

if has_igb; then
    exit 0
fi

codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
if [ -z "$codename" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: no Debian release found; QEMU with igb must be installed by hand" >&2
    command -v "$QEMU" >/dev/null 2>&1 || exit 1
    exit 0
fi
backports="$codename-backports"

if ! grep -rqs -- "$backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    target=/etc/apt/sources.list.d/debian-backports.sources
    entry=""
    # A deb822 entry of the main archive (Suites: CODENAME ...).
    for file in /etc/apt/sources.list.d/*.sources; do
        [ -f "$file" ] || continue
        entry=$(awk -v suite="$codename" '
            BEGIN { RS = ""; FS = "\n" }
            {
                types = ""; uris = ""; suites = ""; comps = ""; signed = ""
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^Types:/) types = $i
                    else if ($i ~ /^URIs:/) uris = $i
                    else if ($i ~ /^Suites:/) suites = $i
                    else if ($i ~ /^Components:/) comps = $i
                    else if ($i ~ /^Signed-By:/) signed = $i
                }
                n = split(suites, words, /[ \t]+/)
                found = 0
                for (w = 2; w <= n; w++) if (words[w] == suite) found = 1
                if (found && types ~ /deb/ && uris != "" && comps != "") {
                    print types; print uris; print "Suites: " suite "-backports"; print comps
                    if (signed != "") print signed
                    exit
                }
            }' "$file")
        [ -n "$entry" ] && break
    done
    if [ -n "$entry" ]; then
        echo "setup: adding $backports to apt's sources ($target), from the machine's Debian entry"
        printf '%s\n' "$entry" | $SUDO tee "$target" >/dev/null
    else
        # A one-line entry: deb URI CODENAME COMPONENTS...
        line=$(grep -hsE "^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[^[:space:]]+[[:space:]]+$codename[[:space:]]" \
            /etc/apt/sources.list /etc/apt/sources.list.d/*.list | head -1)
        if [ -z "$line" ]; then
            echo "setup: no Debian $codename entry in apt's sources to derive $backports from" >&2
            exit 0
        fi
        echo "setup: adding $backports to apt's sources (/etc/apt/sources.list.d/debian-backports.list)"
        echo "$line" | sed -E "s/[[:space:]]$codename[[:space:]]/ $backports /" |
            $SUDO tee /etc/apt/sources.list.d/debian-backports.list >/dev/null
    fi
fi

echo "setup: installing qemu-system-x86 from $backports (for its igb NIC model)"
if $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        -t "$backports" qemu-system-x86 >/dev/null; then
    if has_igb; then
        echo "setup: $("$QEMU" --version | head -1)"
        exit 0
    fi
fi
echo "setup: could not install a QEMU with igb from $backports; keeping $("$QEMU" --version 2>/dev/null | head -1)" >&2
command -v "$QEMU" >/dev/null 2>&1 || exit 1
exit 0
