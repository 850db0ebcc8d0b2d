#!/bin/sh
# netns-veth.sh: a createRuntime hook that gives a container a network the way Docker's bridge
# driver does, without the bridge: a veth pair, one end moved into the container's network
# namespace as eth0 with an address and a default route through the other end, which stays in
# the runtime's namespace with an address of its own.
#
#   "hooks": {"createRuntime": [{"path": "/abs/path/to/hack/hooks/netns-veth.sh",
#       "args": ["netns-veth.sh", "169.254.77.1/30", "169.254.77.2"]}]}
#
# Arguments: HOST_ADDR/PREFIX for the runtime-side end (the container's gateway) and
# CONTAINER_ADDR (same prefix). Defaults: 169.254.77.1/30 and 169.254.77.2 (link-local).
# The container needs a network namespace of its own ({"type": "network"} without a path).
# The state JSON on stdin gives the container's pid (the runtime's view) and id; the runtime-side
# end is called hk<cksum of the id>, so it can be found again.
#
# Cleanup: none needed. Deleting the container destroys its network namespace, that destroys
# its end of the pair, and the kernel removes the other end with it.
# Needs: iproute2 (ip), util-linux (nsenter), coreutils (cksum); jq if present.
set -eu
host_cidr=${1:-169.254.77.1/30}
ctr_addr=${2:-169.254.77.2}

state=$(cat)
if command -v jq >/dev/null 2>&1; then
  pid=$(printf '%s' "$state" | jq -r '.pid // empty')
  id=$(printf '%s' "$state" | jq -r '.id // empty')
else
  pid=$(printf '%s' "$state" | sed -n 's/.*"pid": *\([0-9][0-9]*\).*/\1/p')
  id=$(printf '%s' "$state" | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p')
fi
if [ -z "$pid" ] || [ -z "$id" ]; then
  echo "netns-veth: no pid or id in the state on stdin" >&2
  exit 1
fi
if [ "$(readlink "/proc/$pid/ns/net")" = "$(readlink /proc/self/ns/net)" ]; then
  echo "netns-veth: container $id has no network namespace of its own" >&2
  exit 1
fi

prefix=${host_cidr#*/}
host_addr=${host_cidr%/*}
sum=$(printf '%s' "$id" | cksum | cut -d' ' -f1)
host_if=hk$sum
peer_if=hc$sum

ip link add "$host_if" type veth peer name "$peer_if"
# Any failure from here on removes the pair (deleting one end deletes both).
trap 'ip link del "$host_if" 2>/dev/null || true' EXIT
ip link set "$peer_if" netns "$pid"
ip addr add "$host_cidr" dev "$host_if"
ip link set "$host_if" up
nsenter --net="/proc/$pid/ns/net" sh -eu -c "
  ip link set lo up
  ip link set $peer_if name eth0
  ip addr add $ctr_addr/$prefix dev eth0
  ip link set eth0 up
  ip route add default via $host_addr
"
trap - EXIT
