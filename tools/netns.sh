#!/bin/bash
# The network namespace `make run NET=tap` and the tap tests use: a tap
# device inside a namespace of our own, so the guest's traffic and the
# load generators' never touch the machine's real interfaces.
#
#   tools/netns.sh up      create it (idempotent): namespace $NETNS with
#                          loopback up and tap $TAP at $HOST_CIDR
#   tools/netns.sh down    delete it (and the tap with it)
#   tools/netns.sh exec CMD...   run CMD inside it
#   tools/netns.sh check   exit 0 if this machine can create it (root,
#                          iproute2, /dev/net/tun), else say why, exit 1
#
# The guest takes $GUEST_ADDR (give the kernel net=$GUEST_ADDR/24,gw=...).
set -euo pipefail

NETNS=${NETNS:-redleaf}
TAP=${TAP:-rltap0}
HOST_CIDR=${HOST_CIDR:-10.0.4.1/24}

check() {
    if [ "$(id -u)" != 0 ]; then
        echo "netns: needs root (network namespaces and tap devices)"
        return 1
    fi
    if ! command -v ip > /dev/null; then
        echo "netns: needs iproute2 (ip)"
        return 1
    fi
    if [ ! -c /dev/net/tun ]; then
        echo "netns: no /dev/net/tun"
        return 1
    fi
}

up() {
    check
    if ! ip netns list | grep -qw "^$NETNS"; then
        ip netns add "$NETNS"
    fi
    ip -n "$NETNS" link set lo up
    if ! ip -n "$NETNS" link show "$TAP" > /dev/null 2>&1; then
        ip -n "$NETNS" tuntap add dev "$TAP" mode tap
    fi
    if ! ip -n "$NETNS" addr show dev "$TAP" | grep -q "inet ${HOST_CIDR%/*}/"; then
        ip -n "$NETNS" addr add "$HOST_CIDR" dev "$TAP"
    fi
    ip -n "$NETNS" link set "$TAP" up
}

case "${1:-}" in
    up) up ;;
    down)
        if ip netns list 2> /dev/null | grep -qw "^$NETNS"; then
            ip netns del "$NETNS"
        fi
        ;;
    exec)
        shift
        exec ip netns exec "$NETNS" "$@"
        ;;
    check) check ;;
    *)
        echo "usage: $0 up|down|check|exec CMD..." >&2
        exit 2
        ;;
esac
