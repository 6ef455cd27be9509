#!/usr/bin/env bash
# Makes a hybrid boot image for real machines (and QEMU): GRUB for BIOS
# (i386-pc) and UEFI (x86_64-efi) on one ISO 9660 image that can also be
# written to a USB stick (`dd if=build/redleaf.iso of=/dev/sdX bs=4M`).
# GRUB loads the kernel through its multiboot2 header and the signed
# domain archive as a module; menu and console are on the first serial
# port (115200 8N1) as well as the screen.
#
#   tools/make-iso.sh OUT.iso KERNEL ARCHIVE [TEST_KERNEL]
#
# Entries: the monitor; rv6 (its file system on the machine's NVMe disk);
# with TEST_KERNEL, the in-kernel test suite, all the benchmarks
# (`bench=all`), and one entry per group of them (`bench=calls`, `images`,
# `block`, `net`): results as JSON lines on the serial console, then
# power-off. Settings
# from the environment: ISO_DEFAULT (the entry booted when the timeout
# runs out, 0-based; default 0), ISO_TIMEOUT (seconds; default 5),
# ISO_CMDLINE (appended to every entry's command line).
set -euo pipefail
out=${1:?out.iso}
kernel=${2:?kernel}
archive=${3:?archive}
test_kernel=${4:-}
default=${ISO_DEFAULT:-0}
timeout=${ISO_TIMEOUT:-5}
extra=${ISO_CMDLINE:-}

for tool in grub-mkrescue xorriso mformat; do
    command -v "$tool" >/dev/null || {
        echo "make-iso: '$tool' is missing (make iso installs grub-pc-bin, grub-efi-amd64-bin, xorriso and mtools)" >&2
        exit 1
    }
done
for platform in i386-pc x86_64-efi; do
    [ -d "/usr/lib/grub/$platform" ] || {
        echo "make-iso: GRUB's $platform modules are missing (grub-pc-bin, grub-efi-amd64-bin)" >&2
        exit 1
    }
done

tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/boot/grub" "$tree/boot/redleaf"
cp "$kernel" "$tree/boot/redleaf/kernel.elf"
cp "$archive" "$tree/boot/redleaf/domains.cpio"
[ -n "$test_kernel" ] && cp "$test_kernel" "$tree/boot/redleaf/kernel-test.elf"

{
    cat <<EOF
serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1
terminal_input serial console
terminal_output serial console
set timeout=$timeout
set default=$default

menuentry "redleaf: the monitor" {
    multiboot2 /boot/redleaf/kernel.elf log=info $extra
    module2 /boot/redleaf/domains.cpio domains
    boot
}
menuentry "redleaf: rv6 (its file system on the NVMe disk)" {
    multiboot2 /boot/redleaf/kernel.elf log=info rv6=1 httpd_root=/www $extra
    module2 /boot/redleaf/domains.cpio domains
    boot
}
EOF
    if [ -n "$test_kernel" ]; then
        cat <<EOF
menuentry "redleaf: in-kernel tests (then power-off)" {
    multiboot2 /boot/redleaf/kernel-test.elf test=all log=warn $extra
    module2 /boot/redleaf/domains.cpio domains
    boot
}
menuentry "redleaf: benchmarks, all of them: JSON lines on the serial console, then power-off" {
    multiboot2 /boot/redleaf/kernel-test.elf bench=all log=error $extra
    module2 /boot/redleaf/domains.cpio domains
    boot
}
EOF
        for group in calls images block net; do
            cat <<EOF
menuentry "redleaf: benchmark $group (bench=$group), then power-off" {
    multiboot2 /boot/redleaf/kernel-test.elf bench=$group log=error $extra
    module2 /boot/redleaf/domains.cpio domains
    boot
}
EOF
        done
    fi
} > "$tree/boot/grub/grub.cfg"

mkdir -p "$(dirname "$out")"
grub-mkrescue -o "$out" "$tree" >/dev/null 2>/tmp/make-iso.$$.log || {
    cat /tmp/make-iso.$$.log >&2
    rm -f /tmp/make-iso.$$.log
    exit 1
}
rm -f /tmp/make-iso.$$.log
echo "make-iso: $out ($(du -h "$out" | cut -f1); default entry $default, timeout ${timeout} s)"
