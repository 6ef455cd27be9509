#!/usr/bin/env bash
# Builds a small Linux guest used as a benchmark baseline in QEMU: Debian's
# kernel, busybox, nginx and memcached, every byte taken from Debian
# packages (apt-get download + dpkg-deb -x; nothing is installed on the host).
#
#   bench/linux-guest/build.sh [OUT]     (OUT defaults to build/linux-guest)
#
# Produces OUT/vmlinuz and OUT/initramfs.cpio.gz. The guest's /init brings up
# eth0 as 10.0.2.15/24 via 10.0.2.2 (QEMU's user network), serves a docroot
# with nginx on port 80, runs memcached on TCP and UDP port 11211 and prints
# `linux-guest: ready` on the console. The launcher (run.py beside this file)
# boots it with `-append "console=ttyS0 quiet panic=-1 tsc=reliable"`: console=ttyS0 is
# required, the console is the first serial port.
#
# Idempotent: OUT/stamp records the package versions and this script's hash;
# when both match and the outputs exist, nothing is done.
#
# Shared libraries come from Debian packages too: the library packages among
# the (recursive) Depends of nginx and memcached are downloaded, and the
# NEEDED entries of every binary are resolved against their contents; a
# SONAME none of them holds is mapped to its package with `dpkg -S` on the
# host and that package is downloaded as well. The host's own files are
# never copied into the image.
set -euo pipefail

script_args=("$@")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/build/linux-guest}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cache=$out/cache          # downloaded .deb files, kept between builds
work=$out/work            # extracted packages and the staged root
arch=$(dpkg --print-architecture)
[ "$arch" = amd64 ] || { echo "build.sh: needs an amd64 Debian host (got $arch)" >&2; exit 1; }

log() { echo "linux-guest build: $*" >&2; }
die() { echo "linux-guest build: error: $*" >&2; exit 1; }

for tool in apt-get apt-cache dpkg-deb readelf objcopy cpio gzip awk sha256sum; do
    command -v "$tool" >/dev/null || die "missing host tool '$tool' (apt-get install binutils cpio)"
done

apt_opts=()
[ "$(id -u)" = 0 ] && apt_opts=(-o APT::Sandbox::User=root)

# The candidate version of a package, empty when apt does not know it.
candidate() {
    apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" { print $2 }'
}

self_hash=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)
outputs_exist() { [ -f "$out/stamp" ] && [ -f "$out/vmlinuz" ] && [ -f "$out/initramfs.cpio.gz" ]; }

# Fast path: the versions below are a function of apt's package lists, so
# while neither those lists nor this script changed since the last build,
# skip the (slow) apt-cache queries.
lists_sig() {
    { echo "script $self_hash"; ls -l --time-style=+%s /var/lib/apt/lists/ 2>/dev/null; } | sha256sum | cut -d' ' -f1
}
if outputs_exist && [ -f "$out/stamp.lists" ] && [ "$(cat "$out/stamp.lists")" = "$(lists_sig)" ]; then
    log "up to date ($out)"
    exit 0
fi

if [ -z "$(candidate linux-image-amd64)" ]; then
    [ "$(id -u)" = 0 ] || die "apt's package lists are missing: run 'apt-get update' as root"
    log "apt-get update"
    apt-get update -qq >&2
fi

# --- which packages --------------------------------------------------------
# The concrete kernel behind the metapackage (linux-image-6.1.0-NN-amd64).
kpkg=$(apt-cache depends linux-image-amd64 | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
[ -n "$kpkg" ] || die "cannot resolve linux-image-amd64 to a concrete kernel package"
kver=${kpkg#linux-image-}

# In bookworm the `nginx` package holds the binary itself (nginx-light and
# nginx-core only add dynamic modules); no module is needed for static files.
main_pkgs=(busybox-static nginx memcached)

# Is this package name a shared-library package (Debian's policy names them
# after the library and its soversion: libfoo1, libbar-2.1-7, zlib1g)?
is_libpkg() {
    [[ $1 =~ ^(lib[a-z0-9.+-]*[0-9][a-z0-9.+-]*|zlib1g)$ ]] && [[ ! $1 =~ -(dev|dbg|bin|common|data|doc|perl)$ ]]
}

# The recursive Depends/PreDepends of the binaries, walked only through
# library packages.
# (One apt-cache call per level: each call costs ~0.5 s.)
declare -A seen=()
level=(nginx memcached)
libpkgs=()
while [ ${#level[@]} -gt 0 ]; do
    next=()
    while read -r dep; do
        dep=${dep%:any}
        is_libpkg "$dep" || continue
        [ -z "${seen[$dep]:-}" ] || continue
        seen[$dep]=1
        libpkgs+=("$dep")
        next+=("$dep")
    done < <(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
                 --no-replaces --no-enhances "${level[@]}" |
             awk '$1 ~ /^\|?(Pre)?Depends:$/ && $2 !~ /^</ { print $2 }')
    level=("${next[@]}")
done

# Extra packages found later through `dpkg -S` (see resolve_libs), if any.
extra_file=$out/extra-packages
[ -f "$extra_file" ] || : >"$extra_file"
mapfile -t extra_pkgs <"$extra_file"

all_pkgs=("$kpkg" "${main_pkgs[@]}" "${libpkgs[@]}" "${extra_pkgs[@]}")
declare -A version=()
while read -r p v; do
    version[$p]=$v
done < <(apt-cache policy "${all_pkgs[@]}" |
         awk '/^[^ ].*:$/ { p = substr($0, 1, length($0) - 1) }
              $1 == "Candidate:" && $2 != "(none)" { print p, $2 }')
for p in "${all_pkgs[@]}"; do
    [ -n "${version[$p]:-}" ] || die "no candidate version for package $p"
done

pkg_list() { for p in "${all_pkgs[@]}"; do echo "$p=${version[$p]}"; done | sort -u; }
stamp_text=$(printf 'script %s\n%s\n' "$self_hash" "$(pkg_list)")

if outputs_exist && [ "$(cat "$out/stamp")" = "$stamp_text" ]; then
    lists_sig >"$out/stamp.lists"
    log "up to date ($out)"
    exit 0
fi

# --- download and extract ---------------------------------------------------
mkdir -p "$cache"
# The file apt-get download writes for package $1 at version $2.
deb_of() {
    local enc=${2//:/%3a}
    compgen -G "$cache/${1}_${enc}_*.deb" | head -n1 || true
}

fetch_pkgs() {
    local p want=()
    for p in "$@"; do
        [ -n "$(deb_of "$p" "${version[$p]}")" ] || want+=("$p=${version[$p]}")
    done
    if [ ${#want[@]} -gt 0 ]; then
        log "apt-get download ${want[*]}"
        if ! (cd "$cache" && apt-get "${apt_opts[@]}" download -q "${want[@]}" >&2); then
            # Stale package lists name versions the archive no longer has.
            if [ "$(id -u)" = 0 ] && [ -z "${LINUX_GUEST_UPDATED:-}" ]; then
                log "download failed; apt-get update and starting over"
                apt-get update -qq >&2
                LINUX_GUEST_UPDATED=1 exec bash "${BASH_SOURCE[0]}" "${script_args[@]}"
            fi
            die "apt-get download failed"
        fi
    fi
    for p in "$@"; do
        [ -n "$(deb_of "$p" "${version[$p]}")" ] || die "download of $p=${version[$p]} failed"
    done
}

extract_pkgs() {
    local p
    for p in "$@"; do
        rm -rf "$work/pkg/$p"
        mkdir -p "$work/pkg/$p"
        dpkg-deb -x "$(deb_of "$p" "${version[$p]}")" "$work/pkg/$p"
    done
}

rm -rf "$work"
mkdir -p "$work/pkg"
fetch_pkgs "${all_pkgs[@]}"
extract_pkgs "${all_pkgs[@]}"

root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,dev,proc,sys,run,tmp,root,lib/x86_64-linux-gnu,lib64}
mkdir -p "$root"/var/{log/nginx,lib/nginx,lib/memcached,www}
chmod 1777 "$root/tmp"

# --- binaries and their libraries -------------------------------------------
install -m 0755 "$work/pkg/busybox-static/bin/busybox" "$root/bin/busybox"
install -m 0755 "$work/pkg/nginx/usr/sbin/nginx" "$root/usr/sbin/nginx"
install -m 0755 "$work/pkg/memcached/usr/bin/memcached" "$root/usr/bin/memcached"
"$root/bin/busybox" --list | while read -r applet; do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done

# Find the file for a SONAME in the extracted library packages.
find_lib() {
    local p d
    for p in "${libpkgs[@]}" "${extra_pkgs[@]}"; do
        for d in lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu lib64 lib usr/lib; do
            if [ -e "$work/pkg/$p/$d/$1" ]; then
                echo "$work/pkg/$p/$d/$1"
                return 0
            fi
        done
    done
    return 1
}

needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }

# Copies the libraries the binaries need (transitively) into the root.
# Returns 1 and records the missing packages when a SONAME is not found.
resolve_libs() {
    local -A done_=()
    local todo=("$root/usr/sbin/nginx" "$root/usr/bin/memcached") f so src missing=0
    while [ ${#todo[@]} -gt 0 ]; do
        f=${todo[0]}; todo=("${todo[@]:1}")
        for so in $(needed "$f"); do
            [ -z "${done_[$so]:-}" ] || continue
            if src=$(find_lib "$so"); then
                done_[$so]=1
                cp -L "$src" "$root/lib/x86_64-linux-gnu/$so" || die "cannot copy $src"
                todo+=("$root/lib/x86_64-linux-gnu/$so")
            else
                # Fallback: ask the host which package holds that SONAME.
                local owner
                owner=$(dpkg -S "*/$so" 2>/dev/null | head -n1 | cut -d: -f1 || true)
                [ -n "$owner" ] || die "no package found for $so (needed by ${f##*/})"
                ! grep -qxF "$owner" "$extra_file" || die "$so: not found in package $owner either"
                log "$so is not in the dependency closure; adding package $owner"
                echo "$owner" >>"$extra_file"
                missing=1
            fi
        done
    done
    return $missing
}
if ! resolve_libs; then
    log "re-running with the added packages"
    exec bash "${BASH_SOURCE[0]}" "${script_args[@]}"
fi

# The dynamic loader, from libc6, at the path the binaries name.
interp=$(readelf -l "$root/usr/sbin/nginx" | sed -n 's/.*program interpreter: \(.*\)\]/\1/p')
[ "$interp" = /lib64/ld-linux-x86-64.so.2 ] || die "unexpected ELF interpreter $interp"
ldso=$(find_lib ld-linux-x86-64.so.2) || die "ld-linux-x86-64.so.2 not found in libc6"
cp -L "$ldso" "$root/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
ln -sf ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$root/lib64/ld-linux-x86-64.so.2"

# --- kernel and NIC modules -------------------------------------------------
kroot=$work/pkg/$kpkg
cp "$kroot/boot/vmlinuz-$kver" "$work/vmlinuz"
kconfig=$kroot/boot/config-$kver
moddir=$kroot/lib/modules/$kver
[ -d "$moddir" ] || moddir=$kroot/usr/lib/modules/$kver

# Drivers for QEMU's igb (82576) and virtio-net-pci; whatever of them (and
# of their dependencies) this kernel has built in needs no module.
roots=(igb virtio_net)
grep -q '^CONFIG_VIRTIO_PCI=y' "$kconfig" || roots+=(virtio_pci)
grep -q '^CONFIG_VIRTIO_PCI=[ym]' "$kconfig" || die "kernel has no CONFIG_VIRTIO_PCI"

declare -A modpath=()
while read -r f; do
    n=${f##*/}; n=${n%%.ko*}; modpath[${n//-/_}]=$f
done < <(find "$moddir/kernel" -name '*.ko*')

# Module dependencies from each module's .modinfo (the package ships no
# modules.dep: depmod writes it at install time).
mod_depends() {
    local f=${modpath[$1]} tmp
    tmp=$(mktemp)
    case $f in
        *.ko) cp "$f" "$tmp" ;;
        *.ko.xz) xz -dc "$f" >"$tmp" ;;
        *.ko.zst) zstd -qdc "$f" >"$tmp" ;;
        *.ko.gz) gzip -dc "$f" >"$tmp" ;;
        *) die "unknown module format $f" ;;
    esac
    objcopy -O binary --only-section=.modinfo "$tmp" /dev/stdout | tr '\0' '\n' |
        sed -n 's/^depends=//p' | tr ',' '\n' | sed '/^$/d; s/-/_/g'
    rm -f "$tmp"
}

# Depth-first: a module's dependencies go before it.
declare -A mstate=()
order=()
visit() {
    local m=$1 d
    [ -n "${modpath[$m]:-}" ] || die "module $m not in $kpkg"
    case ${mstate[$m]:-} in done) return ;; busy) die "module dependency cycle at $m" ;; esac
    mstate[$m]=busy
    for d in $(mod_depends "$m"); do visit "$d"; done
    mstate[$m]=done
    order+=("$m")
}
for m in "${roots[@]}"; do visit "$m"; done

mkdir -p "$root/lib/modules"
: >"$root/etc/modules.load"
for m in "${order[@]}"; do
    f=${modpath[$m]}
    case $f in
        *.ko) cp "$f" "$root/lib/modules/$m.ko" ;;
        *.ko.xz) xz -dc "$f" >"$root/lib/modules/$m.ko" ;;
        *.ko.zst) zstd -qdc "$f" >"$root/lib/modules/$m.ko" ;;
        *.ko.gz) gzip -dc "$f" >"$root/lib/modules/$m.ko" ;;
    esac
    echo "$m" >>"$root/etc/modules.load"
done
log "modules (load order): ${order[*]}"

# --- configuration and content ----------------------------------------------
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
cat >"$root/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files
EOF
echo "127.0.0.1 localhost" >"$root/etc/hosts"
echo "linux-guest" >"$root/etc/hostname"

# The same bodies as our httpd: 20-byte hello.txt, /bytes/N whose byte i is
# 'a' + i % 26.
printf 'hello from a domain\n' >"$root/var/www/hello.txt"
mkdir -p "$root/var/www/bytes"
for n in 64 1024 16384 65536; do
    awk -v n="$n" 'BEGIN { s = ""; for (i = 0; i < 26; i++) s = s sprintf("%c", 97 + i);
                           while (length(s) < n) s = s s; printf "%s", substr(s, 1, n) }' \
        >"$root/var/www/bytes/$n"
    [ "$(stat -c %s "$root/var/www/bytes/$n")" = "$n" ] || die "bad size for bytes/$n"
done

cat >"$root/init" <<'EOF'
#!/bin/sh
# Linux benchmark guest: nginx on :80 and memcached on :11211 (TCP and UDP).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# The initramfs has no /dev/console node: take the console once devtmpfs is up.
exec </dev/console >/dev/console 2>&1
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
hostname linux-guest

fail() { echo "linux-guest: FAILED: $*"; exec sh; }

while read -r m; do
    insmod "/lib/modules/$m.ko" || echo "linux-guest: insmod $m failed"
done </etc/modules.load

i=0
while [ ! -e /sys/class/net/eth0 ]; do
    i=$((i + 1)); [ $i -le 100 ] || fail "no eth0"
    sleep 0.1
done
ip link set lo up
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
ip route add default via 10.0.2.2

ncpu=$(grep -c '^processor' /proc/cpuinfo)
ulimit -n 65536
cat >/etc/nginx.conf <<CONF
user root;
worker_processes $ncpu;
pid /run/nginx.pid;
error_log stderr warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    server_tokens off;
    types {
        text/plain txt;
    }
    default_type application/octet-stream;
    server {
        listen 80 default_server backlog=4096;
        root /var/www;
        location / { }
    }
}
CONF
nginx -c /etc/nginx.conf || fail "nginx did not start"
memcached -u root -l 0.0.0.0 -p 11211 -U 11211 -m 64 -c 4096 -t "$ncpu" &

# Ready once both listen (LISTEN is state 0A; 0050 = 80, 2BCB = 11211).
i=0
until grep -q ':0050 00000000:0000 0A' /proc/net/tcp &&
      grep -q ':2BCB 00000000:0000 0A' /proc/net/tcp; do
    i=$((i + 1)); [ $i -le 100 ] || fail "servers not listening"
    sleep 0.1
done
echo "linux-guest: ready (cpus=$ncpu, kernel $(uname -r))"

# `lg.shell` on the kernel command line: a shell on the console.
if grep -qw lg.shell /proc/cmdline; then
    while true; do setsid cttyhack sh; sleep 1; done
fi
while true; do sleep 3600; done
EOF
chmod 0755 "$root/init"

# --- pack --------------------------------------------------------------------
find "$root" -exec touch -h -d @0 {} +
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
    cpio --quiet -o -H newc --owner=0:0 --reproducible) | gzip -9n >"$work/initramfs.cpio.gz"
mv "$work/vmlinuz" "$out/vmlinuz"
mv "$work/initramfs.cpio.gz" "$out/initramfs.cpio.gz"
{
    echo "# packages used for this guest (name=version)"
    pkg_list
    echo "# NIC modules, load order"
    printf '%s\n' "${order[@]}"
} >"$out/manifest.txt"
printf '%s\n' "$stamp_text" >"$out/stamp"
lists_sig >"$out/stamp.lists"
rm -rf "$work/pkg"    # the extracted kernel package alone is ~400 MB; the .debs stay in cache/
log "done: $out/vmlinuz ($(stat -c %s "$out/vmlinuz") bytes)," \
    "$out/initramfs.cpio.gz ($(stat -c %s "$out/initramfs.cpio.gz") bytes)"
