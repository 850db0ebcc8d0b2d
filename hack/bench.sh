#!/usr/bin/env bash
# Side-by-side benchmark of hako and runc on the same busybox bundle (hyperfine, one run):
#   run     `run` of /bin/true (create + start + wait + delete)
#   cycle   create, start, delete of a short-lived process as separate commands
#   exec    `exec` of /bin/true into a running container
# Prints hyperfine's table and the runc/hako ratios. Needs: hyperfine, runc, busybox-static.
# BASELINE=/path/to/an/older/hako adds it to the same runs (before/after of a change).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "bench.sh: run as root" >&2; exit 1; fi
missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
command -v runc >/dev/null || missing+=(runc)
[ -x /bin/busybox ] || missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo build --release --quiet
hako=$PWD/target/release/hako
runs=${RUNS:-50}
work=$(mktemp -d /tmp/hako-bench.XXXXXX)
trap 'hako_cleanup; rm -rf "$work"' EXIT
hako_cleanup() {
  for id in b e; do
    "$hako" --root "$work/hako" delete -f $id 2>/dev/null || true
    runc --root "$work/runc" delete -f $id 2>/dev/null || true
    [ -z "${BASELINE:-}" ] || "$BASELINE" --root "$work/base" delete -f $id 2>/dev/null || true
  done
}
hack/mkbundle.sh "$work/bundle" "$hako"
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["process"]["args"] = ["true"]
json.dump(c, open(sys.argv[1], "w"))
PY
cd "$work/bundle"
base_run=() base_cycle=()
if [ -n "${BASELINE:-}" ]; then
  base_run=(-n "baseline run" "$BASELINE --root $work/base run b")
  base_cycle=(-n "baseline create+start+delete" "$BASELINE --root $work/base create b && $BASELINE --root $work/base start b && $BASELINE --root $work/base delete -f b")
fi
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/run.json" \
  -n "hako run" "$hako --root $work/hako run b" \
  -n "runc run" "runc --root $work/runc run b" "${base_run[@]}"
hyperfine --warmup 5 --runs "$runs" --export-json "$work/cycle.json" \
  -n "hako create+start+delete" "$hako --root $work/hako create b && $hako --root $work/hako start b && $hako --root $work/hako delete -f b" \
  -n "runc create+start+delete" "runc --root $work/runc create b && runc --root $work/runc start b && runc --root $work/runc delete -f b" \
  "${base_cycle[@]}"
# exec: a container of each runtime running sleep, the same bundle otherwise.
python3 - config.json <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["process"]["args"] = ["sleep", "100000"]
json.dump(c, open(sys.argv[1], "w"))
PY
"$hako" --root "$work/hako" run -d e </dev/null >/dev/null 2>&1
runc --root "$work/runc" run -d e </dev/null >/dev/null 2>&1
base_exec=()
if [ -n "${BASELINE:-}" ] && "$BASELINE" --root "$work/base" run -d e </dev/null >/dev/null 2>&1; then
  base_exec=(-n "baseline exec" "$BASELINE --root $work/base exec e true")
fi
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/exec.json" \
  -n "hako exec" "$hako --root $work/hako exec e true" \
  -n "runc exec" "runc --root $work/runc exec e true" "${base_exec[@]}"
python3 - "$work/run.json" "$work/cycle.json" "$work/exec.json" <<'PY'
import json, sys
for path in sys.argv[1:]:
    rows = [(x["command"], x) for x in json.load(open(path))["results"]]
    (h, hv), (c, cv) = rows[:2]
    for name, v in rows:
        print(f"{name:32s} {v['mean']*1000:8.2f} ms ± {v['stddev']*1000:.2f}  ({v['mean']/cv['mean']:.2f}x runc)")
    print(f"  runc/hako = {cv['mean']/hv['mean']:.2f}x")
PY
