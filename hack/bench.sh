#!/usr/bin/env bash
# Side-by-side benchmark of hako (its static release build), runc (and crun, youki when installed) on one busybox bundle,
# one hyperfine run per row, then a table of medians (wall time) and mean CPU time of the
# process tree, with ratios to runc:
#   run       `run` of /bin/true, no terminal (create + start + wait + delete); next to it the
#             floor: hack/floor.c (cgroups in every hierarchy, clone into new namespaces,
#             chroot, exec /bin/true, wait, rmdir), what any runtime has to do at least
#   cycle     create, start, delete -f of /bin/true as three commands
#   rss       peak RSS of `run`: /usr/bin/time's %M, i.e. the largest max RSS of any one process
#             of the runtime's tree (the runtime, its re-exec and init, the container's process),
#             median of RSS_RUNS runs
#   par32     32 containers 8 at a time (xargs -P8 of `run`), each under a 20 s timeout: a
#             failure or a hang fails the row
#   exec      `exec` of /bin/true into a running container (sleep)
# Each row is measured in ROUNDS (3) rounds, every runtime once per round, and a runtime's figure
# is the median of all its runs: this machine's speed drifts by a third within minutes, and a
# runtime measured in one block while the machine was slow got a ratio it did not earn.
# Needs: hyperfine, runc, busybox-static, a C compiler. RUNS (50), PAR_RUNS (10), RSS_RUNS (20),
# each a total over the rounds.
# BASELINE=/path/to/an/older/hako adds it to every row (before/after of a change).
# ROWS="run cycle" measures only those rows.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "bench.sh: run as root" >&2; exit 1; fi
missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
command -v runc >/dev/null || missing+=(runc)
command -v cc >/dev/null || missing+=(gcc)
[ -x /bin/busybox ] || missing+=(busybox-static)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The release binary as shipped: static glibc (static-pie), no dynamic loader at each start.
# crt-static only with --target, so build scripts and proc-macros stay dynamic. Packed relative
# relocations (DT_RELR, glibc 2.36): 3.5 KB to read at each start instead of 283 KB of .rela.dyn.
# build.rs adds the hot-function layout (hack/hot-functions.txt) to every release link.
triple=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs" cargo build --release --quiet --target "$triple"
hako=$PWD/target/$triple/release/hako
rounds=${ROUNDS:-3}
per_round() { echo $(( ($1 + rounds - 1) / rounds )); }
runs=$(per_round "${RUNS:-50}") par_runs=$(per_round "${PAR_RUNS:-10}")
rss_runs=${RSS_RUNS:-20}
rows=${ROWS:-run cycle rss par32 exec}
work=$(mktemp -d /tmp/hako-bench.XXXXXX)
# State directories and the bundle on a tmpfs, for every runtime alike: /run (runc's and hako's
# default root, containerd's bundles) is a tmpfs on the hosts they serve; on a machine where it
# is on the root disk, each state write is a journaled metadata update of 0.5-1.5 ms.
mount -t tmpfs -o mode=0700 hako-bench "$work"
cc -O2 -o "$work/floor" hack/floor.c

# name=binary for every runtime measured; runc is the reference of the ratios.
runtimes=("hako=$hako" "runc=$(command -v runc)")
others=()
for other in crun youki; do
  if command -v $other >/dev/null; then others+=("$other=$(command -v $other)"); fi
done
[ -z "${BASELINE:-}" ] || others+=("baseline=$BASELINE")

cleanup() {
  cd /
  for rt in "${runtimes[@]}"; do
    for id in b "e-${rt%%=*}" probe $(seq -f 'p%g' 32); do
      "${rt#*=}" --root "$work/${rt%%=*}" delete -f "$id" >/dev/null 2>&1 || true
    done
  done
  rmdir /sys/fs/cgroup/*/hako-bench-floor 2>/dev/null || true
  umount "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

hack/mkbundle.sh "$work/bundle" "$hako"
set_args() {
  python3 - "$work/bundle/config.json" "$@" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["process"]["args"] = sys.argv[2:]
c["ociVersion"] = "1.0.2"  # the newest that runc 1.1 and crun 1.8 know; the same config
json.dump(c, open(sys.argv[1], "w"))
PY
}
set_args true
cd "$work/bundle"
# crun and youki join only when they can run the bundle on this host (crun 1.8 refuses a hybrid
# host with a controller on the v2 hierarchy).
for rt in "${others[@]}"; do
  if err=$("${rt#*=}" --root "$work/${rt%%=*}" run probe </dev/null 2>&1 >/dev/null); then
    runtimes+=("$rt")
  else
    echo "bench.sh: ${rt%%=*} left out, it cannot run the bundle here: $err" >&2
  fi
done

# One hyperfine run for a row: ROW, then hyperfine options, then NAME COMMAND pairs built from
# a template in which RT is the runtime's binary, ROOT its --root and NAME its name.
row() {
  local name=$1 template=$2; shift 2
  local args=() rt
  for rt in "${runtimes[@]}"; do
    local cmd=${template//RT/${rt#*=}}
    cmd=${cmd//NAME/${rt%%=*}}
    args+=(-n "${rt%%=*}" "${cmd//ROOT/$work/${rt%%=*}}")
  done
  local round
  for round in $(seq "$rounds"); do
    echo "== $name (round $round of $rounds)"
    hyperfine --export-json "$work/$name.$round.json" "$@" "${args[@]}"
  done
}

for r in $rows; do
  case $r in
  run)
    row run "RT --root ROOT run b" -N --warmup 5 --runs "$runs" \
      -n floor "$work/floor $work/bundle/rootfs hako-bench-floor" ;;
  cycle)
    row cycle "RT --root ROOT create b && RT --root ROOT start b && RT --root ROOT delete -f b" \
      --warmup 5 --runs "$runs" ;;
  rss)
    echo "== rss"
    for _ in $(seq "$rss_runs"); do
      for rt in "${runtimes[@]}"; do
        /usr/bin/time -f %M -a -o "$work/rss.${rt%%=*}" "${rt#*=}" --root "$work/${rt%%=*}" run b \
          </dev/null >/dev/null
      done
    done ;;
  par32)
    row par32 "seq -f 'p%g' 32 | xargs -P8 -I{} timeout 20 RT --root ROOT run {}" \
      --warmup 1 --runs "$par_runs" ;;
  exec)
    set_args sleep 100000
    for rt in "${runtimes[@]}"; do
      # Ids differ between runtimes: the containers live at once, each in cgroup <own>/<id>.
      "${rt#*=}" --root "$work/${rt%%=*}" run -d "e-${rt%%=*}" </dev/null >/dev/null
    done
    set_args true
    row exec "RT --root ROOT exec e-NAME true" -N --warmup 5 --runs "$runs" ;;
  *) echo "bench.sh: unknown row $r" >&2; exit 1 ;;
  esac
done

cgmode=legacy
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then cgmode=unified
elif [ -d /sys/fs/cgroup/unified ]; then cgmode=hybrid; fi
echo
echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), Linux $(uname -r), cgroup $cgmode"
ROUNDS=$rounds python3 - "$work" "$rows" "${runtimes[@]%%=*}" <<'PY'
import json, os, statistics, sys
work, rows, names = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
labels = {"run": "`run`", "cycle": "create + start + delete", "rss": "peak RSS of `run`",
          "par32": "32 containers, 8 at a time", "exec": "`exec`"}
table, order = {}, []
for r in rows:
    if r == "rss":
        table[r] = {n: statistics.median(int(x) for x in open(f"{work}/rss.{n}")) / 1024
                    for n in names}
        order.append(r)
    else:
        times, cpu = {}, {}
        for i in range(1, int(os.environ["ROUNDS"]) + 1):
            for x in json.load(open(f"{work}/{r}.{i}.json"))["results"]:
                times.setdefault(x["command"], []).extend(x["times"])
                cpu.setdefault(x["command"], []).append(x["user"] + x["system"])
        # Medians of every run of every round: one stall of a shared machine moves a mean by
        # tens of ms.
        table[r] = {n: statistics.median(t) * 1000 for n, t in times.items()}
        # CPU time (user + system of the whole process tree, mean of the rounds' means):
        # steadier than wall time on a shared machine.
        table[r + " cpu"] = {n: statistics.mean(c) * 1000 for n, c in cpu.items()}
        order += [r, r + " cpu"]
cols = names + (["floor"] if "run" in rows else [])
others = [n for n in cols if n != "runc"]
print("| | " + " | ".join(cols) + " | " + " | ".join(f"{n}/runc" for n in others) + " |")
print("|---" * (1 + len(cols) + len(others)) + "|")
for r in order:
    unit = "MB" if r == "rss" else "ms"
    v = table[r]
    cells = [f"{v[n]:.1f} {unit}" if n in v else "—" for n in cols]
    ratios = [f"{v[n] / v['runc']:.2f}×" if n in v else "—" for n in others]
    label = labels[r] if r in labels else f"  CPU time of {labels[r.split()[0]]}"
    print(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
PY
