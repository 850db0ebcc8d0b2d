#!/usr/bin/env bash
# Regenerate hack/hot-functions.txt: the functions (mangled, as the linker sees them) that hako
# runs on its usual paths — run, create/start/delete, exec, state, kill, ps, list and the init's
# path — in address order. build.rs hands the file to the linker of release builds
# (--symbol-ordering-file), which lays these functions out together at the start of .text: the
# kernel maps text 64 KB around each page fault, so hot code spread over the whole binary maps
# nearly all of it (the peak RSS of `run` is mostly text).
#
# When to re-run it (as root, on a host with uprobes and busybox-static): after a change that
# adds or renames much code on those paths, or a toolchain or dependency update (the mangled names
# change), if the peak RSS of `run` has grown back. A stale list is harmless: names the linker no
# longer finds are skipped, and new functions only land elsewhere in .text.
#
# How: an unstripped release build (same flags as hack/bench.sh), one uprobe at the entry of each
# of its functions (Rust's and static glibc's), the commands above run once against a busybox
# bundle, then every function whose probe was hit at least once (tracefs uprobe_profile). Page
# faults cannot tell it here: fault_around_bytes is behind debugfs, closed by kernel lockdown.
set -euo pipefail
cd "$(dirname "$0")/.."
out=hack/hot-functions.txt
triple=$(rustc -vV | sed -n 's/^host: //p')
tracefs=/sys/kernel/tracing
[ -e "$tracefs/uprobe_events" ] || mount -t tracefs nodev "$tracefs"

# The shipped binary itself (same flags and profile, so the same mangled names; its own target
# dir), with the linker's map of it: addresses and names of every function, stripped or not.
map=$PWD/target/hot-functions/hako.map
HAKO_LINK_MAP=$map \
  RUSTFLAGS="-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs" \
  cargo build --release --quiet --target "$triple" --target-dir target/hot-functions
bin=$PWD/target/hot-functions/$triple/release/hako

work=$(mktemp -d /tmp/hako-hot.XXXXXX)
group=hakohot$$
cleanup() {
  set +e
  echo 0 >"$tracefs/events/$group/enable" 2>/dev/null
  [ -s "$work/remove" ] && cat "$work/remove" >>"$tracefs/uprobe_events"
  for id in $("$bin" --root "$work/root" list -q 2>/dev/null); do
    "$bin" --root "$work/root" delete -f "$id"
  done
  umount "$work" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
mount -t tmpfs -o mode=0700 hako-hot "$work"

# Functions: the symbols of the map's executable output sections, one probe per address
# (aliases share it). A uprobe is placed at a file offset: the executable segment's shift.
# lld's map: output section names at column 50, input sections at 58, symbols at 66.
read -r seg_off seg_vaddr < <(readelf -lW "$bin" | awk '$1 == "LOAD" && $(NF-1) == "E" { print $2, $3 }')
awk -v so=$((seg_off)) -v sv=$((seg_vaddr)) -v g="$group" -v bin="$bin" \
  -v ev="$work/events" -v rm="$work/remove" -v names="$work/names" '
  NR == 1 { next }
  substr($0, 50, 1) != " " { exec = ($5 == ".text" || $5 == ".init" || $5 == ".fini"); next }
  !exec || substr($0, 66, 1) == " " || substr($0, 58, 1) != " " { next }
  {
    a = strtonum("0x" $1)
    if (!(a in id)) {
      id[a] = ++n
      printf "p:%s/f%d %s:0x%x\n", g, n, bin, a - sv + so > ev
      printf "-:%s/f%d\n", g, n > rm
    }
    printf "f%d %s %d\n", id[a], $5, a > names
  }' "$map"
# One write per probe: one the kernel refuses (an instruction it cannot probe) is left out.
while read -r line; do echo "$line" 2>/dev/null || true; done <"$work/events" >>"$tracefs/uprobe_events"
echo 1 >"$tracefs/events/$group/enable"

# The paths to lay out, once each; a second pass adds nothing (all hit counts are >= 1 already).
bundle=$work/bundle root=$work/root
hack/mkbundle.sh "$bundle" "$bin" >/dev/null
args() { jq --argjson a "$1" '.process.args = $a' "$bundle/config.json" >"$work/c" && mv "$work/c" "$bundle/config.json"; }
h() { "$bin" --root "$root" "$@"; }
args '["true"]'
h run -b "$bundle" hot-run
args '["sleep","30"]'
h create -b "$bundle" hot-c
h start hot-c
h state hot-c >/dev/null
h list >/dev/null
h ps hot-c >/dev/null
h exec hot-c true
h kill hot-c KILL
h delete -f hot-c

# Hit functions, in address order (the order the code had: callers near callees).
awk 'NR == FNR { if ($3 > 0) hit[$2] = 1; next } ($1 in hit) { print $3, $2 }' \
  "$tracefs/uprobe_profile" "$work/names" | sort -n -k1,1 | awk '{ print $2 }' >"$work/hot"
echo 0 >"$tracefs/events/$group/enable"
mv "$work/hot" "$out"
echo "hot-functions: $(wc -l <"$out") of $(wc -l <"$work/names") functions -> $out"
