# Sourced by hack/frontends.sh: containerd 1.6 on a private socket/root/state, `ctr` driving
# the runc v2 shim, which runs $RUNTIME (hako) for create/start/exec/ps/pause/kill/delete.

containerd_start() {
  C=$T/ctr
  mkdir -p "$C"/{root,state,fifo,runc-root,opt}
  SOCK=$C/containerd.sock
  # Only what ctr needs; CRI (kubelet's plugin) is off. Its runtime table is where BinaryName
  # goes for CRI clients (README); ctr takes the runtime binary per container, --runc-binary.
  cat >"$C/config.toml" <<EOF
version = 2
root = "$C/root"
state = "$C/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
[plugins."io.containerd.internal.v1.opt"]
  path = "$C/opt"
EOF
  containerd --config "$C/config.toml" >"$T/logs/containerd.log" 2>&1 &
  CTRD_PID=$!
  CLEANUPS+=(containerd_cleanup)
  until_true 20 ctr --address "$SOCK" version || {
    echo "FAIL containerd-start: no socket after 20 s: $(tail -n1 "$T/logs/containerd.log")"
    FAIL=$((FAIL + 1))
    return 1
  }
  CTR=(ctr --address "$SOCK" --namespace "$TAG")
  # The shim runs the runtime with --root here, not the host's /run/containerd/runc.
  RA=(--runc-binary "$RUNTIME" --runc-root "$C/runc-root" --fifo-dir "$C/fifo")
  SHIM_SOCKS_BEFORE=$(ls /run/containerd/s 2>/dev/null | sort || true)
}

containerd_cleanup() {
  local id
  for id in $("${CTR[@]}" container ls -q 2>/dev/null); do
    "${CTR[@]}" task kill -s SIGKILL "$id"
    sleep 0.2
    "${CTR[@]}" task rm -f "$id"
    "${CTR[@]}" container rm "$id"
  done
  "${CTR[@]}" image rm "$IMG"
  kill "$CTRD_PID"
  wait "$CTRD_PID"
  for id in $(pids_with "$SOCK"); do kill -9 "$id"; done
  rm_cgroups "$TAG"
  true
}

# The README's recipe for CRI clients (kubelet, crictl: none here) is a config containerd 1.6
# takes, with BinaryName where the runc v2 shim will read it. ctr does not read it.
ctr_config_binaryname() {
  cat >"$C/cri.toml" <<EOF
version = 2
root = "$C/root"
state = "$C/state"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.hako]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.hako.options]
    BinaryName = "$RUNTIME"
EOF
  must containerd --config "$C/cri.toml" config dump
  want "runtime_type" "$(grep -A30 'runtimes.hako]' <<<"$OUT")" 'runtime_type = "io.containerd.runc.v2"'
  want "BinaryName" "$(grep -A3 'runtimes.hako.options]' <<<"$OUT")" "BinaryName = \"$RUNTIME\""
}

ctr_import() {
  must "${CTR[@]}" image import "$T/image/oci.tar"
  must "${CTR[@]}" image ls -q
  want "image list" "$OUT" "$IMG"
}

ctr_run_output_exit() {
  x "${CTR[@]}" run --rm "${RA[@]}" "$IMG" "$TAG-run" sh -c 'echo hello from the image; exit 7'
  want output "$OUT" "hello from the image"
  want_rc 7 "exit code of ctr run"
}

ctr_run_tty() {
  x_pty "${CTR[@]}" run --rm -t "${RA[@]}" "$IMG" "$TAG-tty" \
    sh -c 'tty; [ -t 0 ] && [ -t 1 ] && echo both-ends-are-a-tty; exit 3'
  want "tty" "$OUT" "/dev/pts/"
  want "tty" "$OUT" "both-ends-are-a-tty"
  want_rc 3 "exit code through the tty"
}

ctr_memory_limit() {
  must "${CTR[@]}" run -d --memory-limit 33554432 "${RA[@]}" "$IMG" "$TAG-d" sleep 1000
  pid=$("${CTR[@]}" task ls | awk -v id="$TAG-d" '$1 == id { print $2 }')
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || die "no running task: $("${CTR[@]}" task ls)"
  limit=$(cat "$(cgroup_of "$pid" memory)/memory.limit_in_bytes")
  [ "$limit" = 33554432 ] || die "memory.limit_in_bytes of the task's cgroup: $limit"
  want "cgroup path" "$(cgroup_of "$pid" memory)" "/$TAG/$TAG-d"
}

ctr_exec() {
  x "${CTR[@]}" task exec --exec-id e1 "$TAG-d" sh -c 'echo exec-ok; tr "\0" " " </proc/1/cmdline; exit 5'
  want "exec output" "$OUT" "exec-ok"
  want "exec sees the task's pid 1" "$OUT" "sleep 1000"
  want_rc 5 "exit code of ctr task exec"
}

ctr_exec_tty() {
  x_pty "${CTR[@]}" task exec -t --exec-id e2 "$TAG-d" sh -c 'tty; [ -t 0 ] && echo exec-tty-ok'
  want "exec -t" "$OUT" "/dev/pts/"
  want "exec -t" "$OUT" "exec-tty-ok"
  want_rc 0
}

ctr_ps() {
  pid=$("${CTR[@]}" task ls | awk -v id="$TAG-d" '$1 == id { print $2 }')
  must "${CTR[@]}" task ps "$TAG-d"
  want "task ps lists the task's pid" "$OUT" "$pid"
}

ctr_pause_resume() {
  pid=$("${CTR[@]}" task ls | awk -v id="$TAG-d" '$1 == id { print $2 }')
  fz=$(cgroup_of "$pid" freezer)/freezer.state
  must "${CTR[@]}" task pause "$TAG-d"
  want "task ls after pause" "$("${CTR[@]}" task ls)" PAUSED
  want "freezer.state" "$(cat "$fz")" FROZEN
  must "${CTR[@]}" task resume "$TAG-d"
  want "task ls after resume" "$("${CTR[@]}" task ls)" RUNNING
  want "freezer.state" "$(cat "$fz")" THAWED
}

ctr_kill_delete() {
  # The default signal is TERM: a shell that traps it stops.
  must "${CTR[@]}" run -d "${RA[@]}" "$IMG" "$TAG-term" \
    sh -c 'trap "exit 0" TERM; while :; do sleep 0.1; done'
  must "${CTR[@]}" task kill "$TAG-term"
  until_true 10 sh -c "${CTR[*]} task ls | grep -q '^$TAG-term .*STOPPED'" ||
    die "TERM did not stop the task: $("${CTR[@]}" task ls)"
  must "${CTR[@]}" task rm "$TAG-term"
  must "${CTR[@]}" container rm "$TAG-term"
  pid=$("${CTR[@]}" task ls | awk -v id="$TAG-d" '$1 == id { print $2 }')
  cg=$(cgroup_of "$pid" memory)
  must "${CTR[@]}" task kill -s SIGKILL "$TAG-d"
  until_true 10 sh -c "${CTR[*]} task ls | grep -q '^$TAG-d .*STOPPED'" ||
    die "SIGKILL did not stop the task: $("${CTR[@]}" task ls)"
  ! [ -d "/proc/$pid" ] || die "pid $pid still alive"
  must "${CTR[@]}" task rm "$TAG-d"
  must "${CTR[@]}" container rm "$TAG-d"
  ! [ -d "$cg" ] || die "cgroup $cg left behind"
}

ctr_nothing_left() {
  [ -z "$("${CTR[@]}" task ls -q)" ] || die "tasks left: $("${CTR[@]}" task ls -q | xargs)"
  [ -z "$("${CTR[@]}" container ls -q)" ] || die "containers left"
  local shims
  shims=$(pids_with "-address $SOCK")
  [ -z "$shims" ] || die "shim processes left: $shims"
  local cgs
  cgs=$(cgroups_below "$TAG")
  [ -z "$cgs" ] || die "cgroups left: $(echo $cgs | cut -c1-200)"
  local mnts
  mnts=$(findmnt -rn -o TARGET | grep "^$C/" || true)
  [ -z "$mnts" ] || die "mounts left: $mnts"
  local left
  left=$(find "$C/runc-root" "$C/state/io.containerd.runtime.v2.task" -mindepth 2 2>/dev/null)
  [ -z "$left" ] || die "state left: $left"
  [ "$(ls /run/containerd/s 2>/dev/null | sort)" = "$SHIM_SOCKS_BEFORE" ] ||
    die "shim sockets left in /run/containerd/s"
  [ -z "$(ls "$C/fifo")" ] || die "fifos left: $(ls "$C/fifo")"
}

containerd_scenarios() {
  containerd_start || return
  scenario ctr-config-binaryname-accepted ctr_config_binaryname
  scenario ctr-image-import ctr_import
  scenario ctr-run-output-exit-code ctr_run_output_exit
  scenario ctr-run-tty ctr_run_tty
  scenario ctr-memory-limit ctr_memory_limit
  needs_exec ctr-task-exec ctr_exec
  needs_exec ctr-task-exec-tty ctr_exec_tty
  scenario ctr-task-ps ctr_ps
  scenario ctr-pause-resume ctr_pause_resume
  scenario ctr-kill-delete ctr_kill_delete
  scenario ctr-nothing-left ctr_nothing_left
}
