#!/usr/bin/env bash
# The demo: build hako, make a busybox bundle, run a container and show it is isolated.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "demo.sh: run as root" >&2; exit 1; fi
if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi
cargo build --release --quiet 2>/dev/null || cargo build --release
hako=$PWD/target/release/hako
work=$(mktemp -d /tmp/hako-demo.XXXXXX)
root=$work/state
trap 'rm -rf "$work"' EXIT
hack/mkbundle.sh "$work/bundle" "$hako"
# The container's process: report what it sees.
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
c = json.load(open(path))
c["hostname"] = "hako-demo"
c["process"]["args"] = ["sh", "-c",
  "echo \"hostname:   $(hostname)\"; "
  "echo \"my pid:     $$ (pid 1 of its own pid namespace)\"; "
  "echo \"processes:  $(ps -o pid= | wc -l) visible\"; "
  "echo \"network:    $(ls /sys/class/net | tr '\\n' ' ')\"; "
  "echo \"root fs:    $(ls / | tr '\\n' ' ')\"; "
  "echo \"uid:        $(id -u), CapEff $(grep CapEff /proc/self/status | cut -f2)\"; "
  "echo \"masked:     /sys/firmware has $(ls /sys/firmware | wc -l) entries\"; "
  "touch /etc/x 2>/dev/null && echo 'root fs:    writable' || echo 'root fs:    read-only'; "
  "exit 7"]
json.dump(c, open(path, "w"), indent=2)
PY
echo "== on the host"
echo "hostname:   $(hostname)"
echo "processes:  $(ls -d /proc/[0-9]* | wc -l) visible"
echo "network:    $(ls /sys/class/net | tr '\n' ' ')"
echo
echo "== hako run -b $work/bundle demo"
set +e
"$hako" --root "$root" run -b "$work/bundle" demo
code=$?
set -e
echo
echo "container exited with $code (its own exit code); state left behind: $(ls "$root" | wc -l) containers"
