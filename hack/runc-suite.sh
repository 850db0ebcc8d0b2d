#!/usr/bin/env bash
# runc's own integration suite (tests/integration/*.bats from Debian's runc 1.1.5 source package)
# run against a runtime binary, as root:
#
#   bash hack/runc-suite.sh [RUNTIME [EXPECTED]]    RUNTIME: a path (default target/release/hako,
#                                                    else target/debug/hako) or "runc"
#   ONLY='exec.bats kill.bats' bash hack/runc-suite.sh    a subset of the suite's files
#
# EXPECTED (default hack/runc-suite.expected-failures) lists the tests expected to fail, one per
# line: `RUNTIME | FILE.bats: test name | reason`, RUNTIME being hako, runc or any. Any other
# failure, and any expected failure that passes, makes the script fail. The last line is the
# summary `runc-suite: N passed, N failed, N skipped`, where failed counts those two (the line
# before it gives the number of expected failures).
#
# The source, the images and the Go helpers are cached in $CACHE (/var/cache/hako-runc-suite);
# without the cache everything is fetched and built again (about a minute).
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD

if [ "$(id -u)" != 0 ]; then
  echo "runc-suite.sh: run as root (the suite creates real containers)" >&2
  exit 1
fi

# One run at a time on this machine: the suite's tests share cgroup parents
# (runc-cgroups-integration-test), which the cleanup below removes when they are empty.
exec 9>/run/hako-runc-suite.lock
if ! flock -n 9; then
  echo "runc-suite.sh: another run holds /run/hako-runc-suite.lock; waiting" >&2
  flock 9
fi

runtime=${1:-}
if [ -z "$runtime" ]; then
  for b in target/release/hako target/debug/hako; do
    [ -x "$b" ] && { runtime=$here/$b; break; }
  done
  [ -n "$runtime" ] || { echo "runc-suite.sh: build hako first (cargo build)" >&2; exit 1; }
fi
[ "$runtime" = runc ] && runtime=$(command -v runc || echo /usr/sbin/runc)
runtime=$(readlink -f "$runtime")
expected=$(readlink -f "${2:-hack/runc-suite.expected-failures}")
label=any
case "$(basename "$runtime")" in
  runc) label=runc ;;
  hako) label=hako ;;
esac
CACHE=${CACHE:-/var/cache/hako-runc-suite}
TEST_TIMEOUT=${TEST_TIMEOUT:-120}
start_time=$(date +%s)

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "$@" >/dev/null
}

# What the suite and its helpers need, from Debian. runc itself too: the comparison run.
need=(bats jq gawk golang-go runc busybox-static gcc libc6-dev pkg-config libseccomp-dev iproute2
  golang-github-containerd-console-dev golang-github-urfave-cli-dev golang-golang-x-sys-dev
  golang-github-opencontainers-specs-dev golang-github-sirupsen-logrus-dev
  golang-github-seccomp-libseccomp-golang-dev golang-github-cyphar-filepath-securejoin-dev)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt_install "${missing[@]}"
fi

# runc's source package, through a deb-src entry that lives only as long as this step.
src=$(ls -d "$CACHE"/runc-1.1.5*/ 2>/dev/null | head -1 || true)
if [ -z "$src" ]; then
  list=/etc/apt/sources.list.d/hako-runc-suite-src.sources
  cleanup_src() { rm -f "$list"; apt-get update -qq || true; }
  trap cleanup_src EXIT
  cat >"$list" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  mkdir -p "$CACHE"
  (cd "$CACHE" && apt-get source -qq runc 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
  cleanup_src
  trap - EXIT
  src=$(ls -d "$CACHE"/runc-1.1.5*/ | head -1)
fi
src=${src%/}
integ=$src/tests/integration

# What the suite leaves in the cgroup hierarchies: empty cgroups under its parent
# runc-cgroups-integration-test (sub-cgroups its tests make inside a container's cgroup, such
# as exec.bats' submem, which that container's delete does not know about). Removed deepest
# first before and after the run; rmdir leaves any cgroup that still has processes.
cleanup_cgroups() {
  find /sys/fs/cgroup -depth -mindepth 2 -type d -path '*/runc-cgroups-integration-test*' \
    -exec rmdir {} + 2>/dev/null || true
}
cleanup_cgroups
trap cleanup_cgroups EXIT

# The Go helpers the suite calls (recvtty for consoles, seccompagent for seccomp notify), built
# in GOPATH mode against Debian's Go packages: the +ds source has no vendor/.
build_helper() {
  local name=$1 tags=${2:-}
  [ -x "$src/contrib/cmd/$name/$name" ] && return
  local gopath
  gopath=$(mktemp -d)
  mkdir -p "$gopath/src/github.com/opencontainers"
  ln -s "$src" "$gopath/src/github.com/opencontainers/runc"
  (cd "$gopath/src/github.com/opencontainers/runc" &&
    GO111MODULE=off GOPATH=$gopath:/usr/share/gocode GOCACHE=$CACHE/gocache \
      go build ${tags:+-tags "$tags"} -o "contrib/cmd/$name/$name" "./contrib/cmd/$name")
  rm -rf "$gopath"
}
build_helper recvtty
build_helper seccompagent seccomp

# The images get-images.sh would download, made from busybox-static instead: a busybox rootfs
# with the files the suite reads (/etc/passwd, /etc/group), and a "debian" one that adds glibc's
# static ldconfig for hooks.bats.
arch=$(go env GOARCH)
make_rootfs() {
  local dir=$1
  # /dev but no /proc or /sys, like the images the suite was written for (mask.bats checks that
  # a symlink put at /proc is refused; userns.bats makes them).
  mkdir -p "$dir"/{bin,sbin,etc,dev,tmp,root,home,var/spool/mail,usr/bin,usr/sbin,lib}
  chmod 1777 "$dir/tmp"
  cp /bin/busybox "$dir/bin/busybox"
  local applet
  for applet in $(/bin/busybox --list); do
    [ -e "$dir/bin/$applet" ] || ln -s busybox "$dir/bin/$applet"
  done
  cat >"$dir/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
EOF
  cat >"$dir/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:12:
audio:x:29:
www-data:x:33:
users:x:100:
nogroup:x:65534:
EOF
}
mkdir -p "$integ/testdata"
recipe=2 # bump when make_rootfs changes: cached images are made again
if [ "$(cat "$integ/testdata/hako-images" 2>/dev/null)" != "$recipe" ] ||
  [ ! -s "$integ/testdata/busybox-$arch.tar.xz" ] || [ ! -s "$integ/testdata/debian-$arch.tar.xz" ]; then
  work=$(mktemp -d)
  make_rootfs "$work/busybox"
  tar -C "$work/busybox" -cJf "$integ/testdata/busybox-$arch.tar.xz" .
  make_rootfs "$work/debian"
  cp /sbin/ldconfig "$work/debian/sbin/ldconfig"
  echo 'include /etc/ld.so.conf.d/*.conf' >"$work/debian/etc/ld.so.conf"
  tar -C "$work/debian" -cJf "$integ/testdata/debian-$arch.tar.xz" .
  rm -rf "$work"
  echo "$recipe" >"$integ/testdata/hako-images"
fi

# Which tests may fail for this runtime: "FILE.bats: name" → reason.
declare -A allowed=()
while IFS= read -r line; do
  [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
  who=$(echo "${line%%|*}" | xargs)
  rest=${line#*|}
  name=$(echo "${rest%|*}" | sed 's/^ *//; s/ *$//')
  reason=$(echo "${rest##*|}" | sed 's/^ *//')
  [ "$who" = any ] || [ "$who" = "$label" ] && allowed[$name]=$reason
done <"$expected"

# A run: one bats per test (so a hung test cannot stall the others), TAP output parsed.
out=$(mktemp -d /tmp/runc-suite.XXXXXX)
echo "runc-suite: $runtime ($("$runtime" --version 2>/dev/null | head -1)), log in $out"
files=()
if [ -n "${ONLY:-}" ]; then
  for f in $ONLY; do files+=("$integ/$f"); done
else
  files=("$integ"/*.bats)
fi
passed=0 failed=0 skipped=0
unexpected=() fixed=()
# Runs one test under a terminal, bounded; its TAP lines go to $tap. The suite's configs have
# `terminal: true` and run without a console socket, so it needs a controlling terminal (runc's
# CI runs it under `docker run -t`): script(1) gives it one. The timeout is per test and outside
# bats (BATS_TEST_TIMEOUT's watchdog is a background job that the tests' bare `wait` waits for).
run_one() {
  local file=$1 name=$2 tap=$3 tmp=$4 rc=0
  local filter
  filter="^$(printf '%s' "$name" | sed 's/[][\.*^$()+?{}|/]/\\&/g')\$"
  mkdir -p "$tmp"
  (cd "$integ" && RUNC=$runtime BATS_TMPDIR=$tmp FILTER=$filter F=$file TAP=$tap \
    timeout -k 10 "$TEST_TIMEOUT" script -qec 'bats --tap -f "$FILTER" "$F" >"$TAP" 2>&1' \
    /dev/null </dev/null >/dev/null 9>&-) || rc=$?
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    # Killed before its teardown: remove what it left, then say so in TAP.
    local state ct
    for state in "$tmp"/bats-run-*/runc.*/state; do
      [ -d "$state" ] || continue
      for ct in $("$runtime" --root "$state" list -q 2>/dev/null); do
        "$runtime" --root "$state" delete -f "$ct" >/dev/null 2>&1 || true
      done
    done
    echo "not ok 1 $name # timeout after ${TEST_TIMEOUT}s" >>"$tap"
  elif ! grep -qE '^(not )?ok ' "$tap" 2>/dev/null; then
    echo "not ok 1 $name # no result from bats (exit $rc)" >>"$tap"
  fi
  rm -rf "$tmp"
}

for f in "${files[@]}"; do
  base=$(basename "$f")
  t0=$(date +%s)
  : >"$out/$base.tap"
  n=0
  while IFS= read -r name; do
    n=$((n + 1))
    run_one "$f" "$name" "$out/$base.$n.tap" "$out/tmp.$base.$n"
    cat "$out/$base.$n.tap" >>"$out/$base.tap"
    rm -f "$out/$base.$n.tap"
  done < <(sed -n 's/^@test "\(.*\)" {$/\1/p' "$f")
  while IFS= read -r l; do
    if [[ "$l" =~ ^(not\ )?ok\ [0-9]+\ (.*)$ ]]; then
      name=${BASH_REMATCH[2]}
      key="$base: ${name%% # *}"
      if [[ "$name" == *" # skip"* ]]; then
        skipped=$((skipped + 1))
      elif [ -n "${BASH_REMATCH[1]}" ]; then
        failed=$((failed + 1))
        if [ -n "${allowed[$key]+x}" ]; then
          echo "  expected failure: $key (${allowed[$key]})"
        else
          unexpected+=("$key")
          echo "  FAIL: $key"
        fi
      else
        passed=$((passed + 1))
        [ -n "${allowed[$key]+x}" ] && fixed+=("$key")
      fi
    fi
  done <"$out/$base.tap"
  echo "$base: $(($(date +%s) - t0))s"
done

# An expected failure whose file ran but which did not fail is news either way.
status=0
for k in "${fixed[@]}"; do
  echo "runc-suite: now passes, remove it from $(basename "$expected"): $k"
  status=1
done
if [ ${#unexpected[@]} -gt 0 ]; then
  echo "runc-suite: ${#unexpected[@]} unexpected failure(s); TAP output in $out:"
  printf '  %s\n' "${unexpected[@]}"
  status=1
fi
expected_n=$((failed - ${#unexpected[@]}))
echo "runc-suite: $label took $(($(date +%s) - start_time))s; $expected_n failed as expected" \
  "($(basename "$expected")), ${#unexpected[@]} unexpectedly, ${#fixed[@]} expected failures passed"
# The closing line counts as failed what was not expected to fail (what CI judges).
echo "runc-suite: $passed passed, $((${#unexpected[@]} + ${#fixed[@]})) failed, $skipped skipped"
exit $status
