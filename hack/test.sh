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

# --- Front-ends: containerd (ctr, runc v2 shim) and podman (conmon, netavark) drive hako with
# an image, volumes, networks and published ports, on private sockets/roots (about a minute).
# hack/frontends.sh installs them; `RUNTIME=/usr/sbin/runc bash hack/frontends.sh` runs the
# same scenarios against runc.
bash hack/frontends.sh
