#!/usr/bin/env bash
# The whole test suite: unit tests (no root needed) and tests/oci-validation (real containers,
# as root). Installs what it needs on a fresh Debian machine.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "test.sh: run as root (the suite creates real containers)" >&2
  exit 1
fi
missing=()
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || missing+=(busybox-static)
command -v ip >/dev/null || missing+=(iproute2)
command -v ps >/dev/null || missing+=(procps)
# strace: one test checks which system calls hako's first image makes.
command -v strace >/dev/null || missing+=(strace)
# cc -static: the kill --all exploit test builds its fork loop.
compgen -G '/usr/lib/*/libc.a' >/dev/null && command -v cc >/dev/null || missing+=(gcc libc6-dev)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# podman (with conmon) drives hako in one test; without it that test says so and passes over it.
if ! command -v podman >/dev/null; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman >/dev/null; } ||
    echo "test.sh: podman could not be installed: the podman test is skipped"
fi

cargo build --quiet
# Unit tests, then the conformance suite.
cargo test --quiet --bin hako
cargo test --quiet --test oci-validation

# --- cgroup v2 and systemd VMs (issue 10) ---------------------------------------------------
# The host is cgroup v1 without systemd: the v2 paths (eBPF device rules, every v2 resource
# file, update, freeze, kill --all, cgroup namespaces) run in a QEMU guest with a cgroup
# v2-only kernel, and --systemd-cgroup in a second guest with systemd as PID 1; about a minute
# each under TCG (plus ~2 minutes the first time, to build the cached systemd root).
# HAKO_SKIP_VM=1 leaves them out (say so when reporting results).
if [ "${HAKO_SKIP_VM:-}" = 1 ]; then
  echo "test.sh: HAKO_SKIP_VM=1: the cgroup v2 and systemd VM tests are skipped"
else
  bash hack/vm/run.sh
  bash hack/vm/run.sh --systemd
fi

# --- runc's integration suite (runc 1.1.5's tests/integration, from Debian's source package) ---
# against hako, then against Debian's runc 1.1.5 on the same host for comparison. Each run fails
# on a failure not listed, with its reason, in hack/runc-suite.expected-failures.
# HAKO_RUNC_SUITE=0 leaves it out; HAKO_RUNC_SUITE=hako runs only hako's half.
if [ "${HAKO_RUNC_SUITE:-1}" != 0 ]; then
  bash hack/runc-suite.sh target/debug/hako
  [ "${HAKO_RUNC_SUITE:-1}" = hako ] || bash hack/runc-suite.sh runc
fi

# --- Front-ends: containerd (ctr, runc v2 shim) and podman (conmon, netavark) drive hako with
# an image, volumes, networks and published ports, on private sockets/roots (about a minute).
# hack/frontends.sh installs them; `RUNTIME=/usr/sbin/runc bash hack/frontends.sh` runs the
# same scenarios against runc.
bash hack/frontends.sh
# ... and the same scenarios against runc, so a failure above is shown to be hako's.
command -v runc >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc >/dev/null
RUNTIME=$(command -v runc) bash hack/frontends.sh
