#!/usr/bin/env bash
# Seccomp cost, hako vs runc, side by side (hyperfine):
#  0. hako's compile() of the Docker-sized profile alone (a unit bench, release build);
#  1. create+delete of a busybox bundle with the Docker-sized profile
#     (tests/oci-validation/fixtures/seccomp-docker-sized.json) vs without one: the difference
#     is what compiling and installing the profile costs each runtime;
#  2. a container making 1,000,000 getpid(2) calls under that profile (and without it).
# Usage: hack/bench-seccomp.sh [RUNS]   Needs: hyperfine, gcc with static glibc, runc, python3.
# HAKO (default: target/release/hako, built first) and RUNC (default runc) pick the binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
[ -n "${HAKO:-}" ] || nice -n 10 cargo build --release -j 1
hako=${HAKO:-$PWD/target/release/hako}
runc=${RUNC:-$(command -v runc)}
work=$(mktemp -d /tmp/bench-seccomp.XXXXXX)
trap 'for r in "$hako" "$runc"; do for c in $("$r" --root "$work/root-$(basename "$r")" list -q 2>/dev/null); do "$r" --root "$work/root-$(basename "$r")" delete -f "$c"; done; done; rm -rf "$work"' EXIT

hack/mkbundle.sh "$work/plain" "$hako" >/dev/null
gcc -O2 -static -o "$work/plain/rootfs/bin/getpid-loop" hack/getpid-loop.c
cp -a "$work/plain" "$work/profile"
# The profile bundle: the fixture as linux.seccomp; both run `getpid-loop N` or `true`.
python3 - "$work" tests/oci-validation/fixtures/seccomp-docker-sized.json <<'PY'
import json, sys
work, fixture = sys.argv[1], sys.argv[2]
for name in ["plain", "profile"]:
    path = f"{work}/{name}/config.json"
    c = json.load(open(path))
    c["process"]["args"] = ["true"]
    if name == "profile":
        c["linux"]["seccomp"] = json.load(open(fixture))
    json.dump(c, open(path, "w"), indent=1)
    c["process"]["args"] = ["/bin/getpid-loop", "1000000"]
    c["root"]["path"] = f"{work}/{name}/rootfs"
    json.dump(c, open(path.replace("config.json", "loop.json"), "w"), indent=1)
PY
for b in plain profile; do
  mkdir -p "$work/$b-loop"
  mv "$work/$b/loop.json" "$work/$b-loop/config.json"
done

cmd() { # RUNTIME BUNDLE ID ACTION
  local r=$1 root="$work/root-$(basename "$1")"
  case $4 in
    create) echo "$r --root $root create -b $work/$2 $3 && $r --root $root delete -f $3" ;;
    run) echo "$r --root $root run -b $work/$2 $3" ;;
  esac
}
hf() { hyperfine ${HF_OPTS:-} --warmup 3 --runs "$runs" --export-json "$1" "${@:2}" >/dev/null; }
echo "== hako: compile() alone"
nice -n 10 cargo test --release -j 1 --bin hako compile_time -- --ignored --nocapture 2>&1 |
  grep "compile of" || echo "(unit bench failed)"
echo "== create+delete, with and without the profile ($runs runs each)"
hf "$work/create.json" -n "hako plain" "$(cmd "$hako" plain h1 create)" \
  -n "hako profile" "$(cmd "$hako" profile h2 create)" \
  -n "runc plain" "$(cmd "$runc" plain r1 create)" \
  -n "runc profile" "$(cmd "$runc" profile r2 create)"
echo "== 1,000,000 getpid calls in a container"
hf "$work/loop.json" -n "hako plain" "$(cmd "$hako" plain-loop h3 run)" \
  -n "hako profile" "$(cmd "$hako" profile-loop h4 run)" \
  -n "runc plain" "$(cmd "$runc" plain-loop r3 run)" \
  -n "runc profile" "$(cmd "$runc" profile-loop r4 run)"

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
def means(f):
    return {r["command"]: r["mean"] * 1000 for r in json.load(open(f"{work}/{f}"))["results"]}
for title, f in [("create+delete", "create.json"), ("getpid x1e6 run", "loop.json")]:
    m = means(f)
    print(f"\n{title} (mean ms)")
    for rt in ["hako", "runc"]:
        print(f"  {rt}: plain {m[rt+' plain']:8.2f}  profile {m[rt+' profile']:8.2f}"
              f"  profile cost {m[rt+' profile'] - m[rt+' plain']:+8.2f}")
    print(f"  hako/runc with profile: {m['hako profile'] / m['runc profile']:.2f}x")
    hp = m["hako profile"] - m["hako plain"]
    rp = m["runc profile"] - m["runc plain"]
    if rp > 0:
        print(f"  profile cost hako/runc: {hp / rp:.2f}x")
PY
