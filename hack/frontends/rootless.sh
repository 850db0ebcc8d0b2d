# Sourced by hack/frontends.sh: rootless podman, run by an unprivileged user (`hakotest`, made
# with useradd when missing, with /etc/subuid and /etc/subgid ranges) with $RUNTIME as its OCI
# runtime. Podman runs the runtime inside its own user namespace (the user is root there, the
# subordinate ids the rest), so hako is rootless there: state under $XDG_RUNTIME_DIR/hako, no
# cgroup (none is writable by the user here), devices bound from the host.
#
# `--network none`: podman's rootless default network, slirp4netns, opens /dev/net/tun, which
# is mode 0600 on this host (no udev to make it 0666), so it fails with runc too:
#   slirp4netns failed: "open("/dev/net/tun"): Permission denied"
# The network scenario runs only where /dev/net/tun is open to others.

RL_USER=hakotest

rootless_start() {
  R=$T/rootless
  mkdir -p "$R"/{root,run,tmp,home,xdg,data}
  chmod 700 "$R/xdg"
  if ! id -u $RL_USER >/dev/null 2>&1; then
    # The oci-validation suite may be making it at the same time: its lock.
    flock /run/hako-rootless-test.lock sh -c "id -u $RL_USER >/dev/null 2>&1 || useradd -M -s /bin/sh $RL_USER"
  fi
  local f
  for f in /etc/subuid /etc/subgid; do
    grep -q "^$RL_USER:" "$f" 2>/dev/null || echo "$RL_USER:300000:65536" >>"$f"
  done
  RL_UID=$(id -u $RL_USER)
  RL_SUB=$(sed -n "s/^$RL_USER:\([0-9]*\):.*/\1/p" /etc/subuid | head -n1)
  cat >"$R/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$R/tmp"
lock_type = "file"
EOF
  cat >"$R/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$R/root"
runroot = "$R/run"
EOF
  cp "$T/image/oci.tar" "$R/oci.tar"
  chown -R $RL_USER: "$R"
  chmod 755 "$R"
  # The runtime must be reachable by the user: a copy when its directory is not.
  RL_RUNTIME=$RUNTIME
  if ! setpriv --reuid $RL_USER --regid $RL_USER --clear-groups test -x "$RUNTIME"; then
    cp "$RUNTIME" "$R/runtime" && chmod 755 "$R/runtime"
    RL_RUNTIME=$R/runtime
  fi
  RPM=(setpriv --reuid $RL_USER --regid $RL_USER --clear-groups
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$R/home" XDG_RUNTIME_DIR="$R/xdg"
    CONTAINERS_CONF="$R/containers.conf" CONTAINERS_STORAGE_CONF="$R/storage.conf"
    podman --root "$R/root" --runroot "$R/run" --tmpdir "$R/tmp" --storage-driver vfs
    --cgroup-manager cgroupfs --events-backend file --runtime "$RL_RUNTIME")
  CLEANUPS+=(rootless_cleanup)
}

rootless_cleanup() {
  "${RPM[@]}" rm -af -t 0
  local p
  # podman's pause process (it holds the user namespace), conmon, anything of this run.
  [ -f "$R/tmp/pause.pid" ] && kill -9 "$(cat "$R/tmp/pause.pid")" 2>/dev/null
  for p in $(pids_with "$R/"); do kill -9 "$p"; done
  # vfs layers are owned by subordinate ids: root removes them (cleanup's rm -rf of $T).
}

rl_load() {
  must "${RPM[@]}" load -i "$R/oci.tar"
  want load "$OUT" "$IMG"
}

rl_run() {
  x "${RPM[@]}" run --rm --network none "$IMG" sh -c 'id; cat /proc/self/uid_map; exit 7'
  want_rc 7 "exit code through rootless podman"
  want id "$OUT" "uid=0(root) gid=0(root)"
  # The container's root is the user; 1.. are the user's subordinate ids.
  [[ "$OUT" =~ 0[[:space:]]+$RL_UID[[:space:]]+1 ]] || die "uid_map: want 0 $RL_UID 1, got: $OUT"
  [[ "$OUT" =~ 1[[:space:]]+$RL_SUB[[:space:]]+ ]] || die "uid_map: want 1 $RL_SUB ..., got: $OUT"
}

rl_volume() {
  must "${RPM[@]}" run --rm --network none -v "$R/data:/data" "$IMG" sh -c 'echo hi >/data/f'
  [ "$(stat -c %u "$R/data/f")" = "$RL_UID" ] || die "file written in the volume: owner $(stat -c %u "$R/data/f"), want $RL_UID"
}

rl_lifecycle() {
  local nap=7$$ # a command line no other test's process has
  must "${RPM[@]}" run -d --network none --name rl1 "$IMG" sleep $nap
  must "${RPM[@]}" exec rl1 sh -c 'id -u; cat /proc/1/cmdline'
  want exec "$OUT" "0"
  want exec "$OUT" "sleep"
  must "${RPM[@]}" top rl1
  want top "$OUT" "sleep $nap"
  must "${RPM[@]}" stop -t 1 rl1
  must "${RPM[@]}" rm rl1
  # Nothing of the container's left running as the user or its subordinate ids.
  [ -z "$(pids_with "sleep $nap")" ] || die "processes left: $(pids_with "sleep $nap")"
  # Nothing of the runtime's left under the user's XDG_RUNTIME_DIR.
  local left
  left=$(ls -A "$R/xdg/$(basename "$RUNTIME")" 2>/dev/null)
  [ -z "$left" ] || die "runtime state left: $left"
}

rl_network() {
  must "${RPM[@]}" run --rm "$IMG" sh -c 'ip -o addr show | grep -v " lo "'
  want "slirp4netns network" "$OUT" "inet "
}

rootless_scenarios() {
  rootless_start
  scenario rootless-podman-load rl_load
  scenario rootless-podman-run rl_run
  scenario rootless-podman-volume rl_volume
  needs_exec rootless-podman-lifecycle rl_lifecycle
  if [ "$(stat -c %a /dev/net/tun 2>/dev/null)" = 666 ]; then
    scenario rootless-podman-network rl_network
  else
    echo "skip rootless-podman-network: /dev/net/tun is mode $(stat -c %a /dev/net/tun 2>/dev/null) (slirp4netns needs 0666)"
    SKIP=$((SKIP + 1))
  fi
}
