#!/usr/bin/env bash
# Real front-ends drive hako: containerd 1.6 (ctr, the runc v2 shim) and podman 4 (conmon,
# netavark), with an image made here from busybox-static, volumes, networks and published
# ports. Each front-end runs on a private socket, root and state under one temp dir; everything
# is torn down on exit. Prints `ok NAME` / `FAIL NAME: why` per scenario and `N passed, N failed`.
#
#   bash hack/frontends.sh                          # against this tree's target/debug/hako
#   RUNTIME=/usr/sbin/runc bash hack/frontends.sh   # the same scenarios against runc
#   ONLY=containerd|podman|rootless bash hack/frontends.sh   # one front-end (rootless: podman as a user)
set -uo pipefail
shopt -s globstar nullglob
cd "$(dirname "$0")/.."
HERE=$PWD

if [ "$(id -u)" != 0 ]; then
  echo "frontends.sh: run as root" >&2
  exit 1
fi
if [ -z "${RUNTIME:-}" ]; then
  cargo build --quiet || exit 1
  RUNTIME=$HERE/target/debug/hako
fi
RUNTIME=$(readlink -f "$RUNTIME")
[ -x "$RUNTIME" ] || { echo "frontends.sh: RUNTIME=$RUNTIME is not executable" >&2; exit 1; }

need=()
for p in containerd:containerd podman:podman conmon:conmon netavark:/usr/lib/podman/netavark \
  iptables:iptables curl:curl script:script ip:ip busybox-static:/bin/busybox uidmap:newuidmap; do
  command -v "${p#*:}" >/dev/null || need+=("${p%%:*}")
done
[ -e /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || exit 1
fi

T=$(mktemp -d /tmp/hako-fe.XXXXXX)
chmod 755 "$T"
TAG=fe$$ # names this run's ctr namespace, cgroups, bridges
IMG=localhost/hako-busybox:fe
mkdir -p "$T/logs"
FORWARD_WAS=$(cat /proc/sys/net/ipv4/ip_forward)
IPT_BEFORE=$(iptables-save 2>/dev/null)
# Subnets this run's podman networks use (host has nothing there); used to find their rules.
SUBNET_PREFIX=10.213.$(($$ % 200))

PASS=0
FAIL=0
# scenario NAME FUNCTION: runs FUNCTION in a subshell (set -e), its output in $T/logs/NAME.log.
scenario() {
  local name=$1 fn=$2 log=$T/logs/$1.log why rc
  # In the background, so that a signal to this script is seen at once (by `wait`).
  (
    set -e
    "$fn"
  ) >"$log" 2>&1 </dev/null &
  SCENARIO_PID=$!
  wait $SCENARIO_PID
  rc=$?
  SCENARIO_PID=
  if [ $rc = 0 ]; then
    echo "ok $name"
    PASS=$((PASS + 1))
  else
    why=$(sed -n 's/^why: //p' "$log" | tail -n1)
    [ -n "$why" ] || why="exit $rc: $(tail -n1 "$log")"
    echo "FAIL $name: $why"
    FAIL=$((FAIL + 1))
    [ -z "${VERBOSE:-}" ] || sed 's/^/    /' "$log"
  fi
}
# needs_exec NAME FUNCTION: a scenario that runs `RUNTIME exec`; skipped, and said so, while
# the runtime has no exec command at all (hako before its exec landed).
SKIP=0
needs_exec() {
  if "$RUNTIME" exec --help >/dev/null 2>&1; then
    scenario "$@"
  else
    echo "skip $1: $RUNTIME has no exec command"
    SKIP=$((SKIP + 1))
  fi
}
die() {
  echo "why: $*"
  exit 1
}
# x CMD...: runs CMD (90 s at most); its output in OUT, its exit code in RC.
x() {
  if OUT=$(timeout 90 "$@" 2>&1); then RC=0; else RC=$?; fi
  OUT=${OUT//$'\r'/}
  printf '$ %s\n%s\n[exit %s]\n' "$*" "$OUT" "$RC"
}
# must CMD...: x, and it must succeed.
must() {
  x "$@"
  [ "$RC" = 0 ] || die "${*:1:3}...: exit $RC: $(printf %s "$OUT" | tail -n1)"
}
# want WHAT TEXT EXPECTED: TEXT contains EXPECTED.
want() {
  case "$2" in
  *"$3"*) ;;
  *) die "$1: want '$3', got '$(printf %s "$2" | tr '\n' ' ' | cut -c1-160)'" ;;
  esac
}
want_rc() {
  [ "$RC" = "$1" ] || die "${2:-exit code}: want $1, got $RC ($(printf %s "$OUT" | tail -n1))"
}
# x_pty CMD...: x, with a terminal as CMD's stdin/stdout (`ctr -t` insists on one).
x_pty() {
  x script -qefc "$(printf '%q ' "$@")" /dev/null
}
# cgroup_of PID CONTROLLER: the v1 cgroup directory of PID for CONTROLLER.
cgroup_of() {
  local p
  p=$(grep -E "^[0-9]+:([^:]*,)?$2(,[^:]*)?:" "/proc/$1/cgroup" | cut -d: -f3)
  echo "/sys/fs/cgroup/$2$p"
}
# until_true SECONDS CMD...: polls CMD.
until_true() {
  local n=$(($1 * 10))
  shift
  while ! "$@" >/dev/null 2>&1; do
    n=$((n - 1))
    [ $n -gt 0 ] || return 1
    sleep 0.1
  done
}
# Processes whose command line contains TEXT (not this shell's own pipeline).
pids_with() {
  local f
  for f in /proc/[0-9]*/cmdline; do
    tr '\0' ' ' 2>/dev/null <"$f" | grep -qF -- "$1" && [ "${f:6:-8}" != "$BASHPID" ] && echo "${f:6:-8}"
  done
  true
}

# rm_cgroups NAME: the cgroup NAME (and below) in every v1 hierarchy. Controllers this host
# does not mount (hugetlb, net_cls, net_prio, perf_event) are plain directories on the tmpfs,
# where containerd and conmon still make their directories: those are removed too.
# A process still in one (a container its front-end failed to remove) is thawed and killed.
rm_cgroups() {
  local d f p
  for f in /sys/fs/cgroup/freezer/"$1"/**/freezer.state; do echo THAWED >"$f"; done
  for d in /sys/fs/cgroup/*/"$1"; do
    [ "$(stat -f -c %T "$d" 2>/dev/null)" = cgroupfs ] || continue
    for p in $(cat "$d"/**/cgroup.procs); do kill -9 "$p"; done
  done
  sleep 0.2
  for d in /sys/fs/cgroup/*/"$1"; do
    [ -d "$d" ] || continue
    if [ "$(stat -f -c %T "$d")" = tmpfs ]; then
      rm -rf "$d"
    else
      find "$d" -depth -type d -exec rmdir {} +
    fi
  done
}
# cgroups_below NAME: the real cgroups below NAME, but conmon's own (podman leaves it, also with
# runc; rm_cgroups removes it).
cgroups_below() {
  local d
  for d in /sys/fs/cgroup/*/"$1"; do
    [ "$(stat -f -c %T "$d" 2>/dev/null)" = cgroup2fs ] || [ "$(stat -f -c %T "$d" 2>/dev/null)" = cgroupfs ] &&
      find "$d" -mindepth 1 -type d ! -name conmon
  done
  true
}

CLEANUPS=()
cleanup() {
  local i
  for ((i = ${#CLEANUPS[@]} - 1; i >= 0; i--)); do "${CLEANUPS[i]}" >>"$T/logs/cleanup.log" 2>&1; done
  # Anything still mounted under the temp dir (overlay snapshots, podman's shm and volumes).
  findmnt -rn -o TARGET | grep "^$T/" | sort -r | xargs -r -n1 umount -l 2>/dev/null
  # The rules netavark added for this run's networks, then its own chains if it made them.
  local t rule
  for t in nat filter; do
    iptables-save -t $t | grep -E -- "^-A .*($TAG|$SUBNET_PREFIX)" | sed 's/^-A //' |
      while read -r rule; do eval "iptables -t $t -D $rule" 2>/dev/null; done
  done
  for t in nat filter; do
    for c in $(iptables-save -t $t | sed -n 's/^:\(NETAVARK[^ ]*\) .*/\1/p'); do
      grep -q "^:$c " <<<"$IPT_BEFORE" && continue
      iptables-save -t $t | grep -E -- "^-A [A-Z]+ .*-j $c( |$)" | sed 's/^-A //' |
        while read -r rule; do eval "iptables -t $t -D $rule" 2>/dev/null; done
      iptables -t $t -F "$c" 2>/dev/null
    done
    for c in $(iptables-save -t $t | sed -n 's/^:\(NETAVARK[^ ]*\) .*/\1/p'); do
      grep -q "^:$c " <<<"$IPT_BEFORE" || iptables -t $t -X "$c" 2>/dev/null
    done
  done
  echo "$FORWARD_WAS" >/proc/sys/net/ipv4/ip_forward
  rm -rf "$T"
}
# kill_tree PID: PID and its descendants (the scenario running when a signal came).
kill_tree() {
  local c
  for c in $(ps -o pid= --ppid "$1"); do kill_tree "$c"; done
  kill -9 "$1" 2>/dev/null
}
interrupted() {
  [ -z "${SCENARIO_PID:-}" ] || kill_tree "$SCENARIO_PID"
  exit 130
}
trap cleanup EXIT
trap interrupted INT TERM

. hack/frontends/image.sh
make_image "$T/image" "$IMG" || exit 1

START=$SECONDS
echo "runtime: $RUNTIME"
if [ "${ONLY:-containerd}" = containerd ]; then
  . hack/frontends/containerd.sh
  containerd_scenarios
fi
if [ "${ONLY:-podman}" = podman ]; then
  . hack/frontends/podman.sh
  podman_scenarios
fi
if [ "${ONLY:-rootless}" = rootless ]; then
  . hack/frontends/rootless.sh
  rootless_scenarios
fi
echo "$PASS passed, $FAIL failed$([ $SKIP = 0 ] || echo ", $SKIP skipped") ($((SECONDS - START)) s)"
[ "$FAIL" = 0 ]
