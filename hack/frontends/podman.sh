# Sourced by hack/frontends.sh: podman 4 (conmon, netavark) with $RUNTIME as its OCI runtime,
# on a private root/runroot/tmpdir/network config, cgroupfs (no systemd here), file events.

podman_start() {
  P=$T/pm
  mkdir -p "$P"/{root,run,tmp,net,data,www}
  GW=$SUBNET_PREFIX.1
  NET2=$SUBNET_PREFIX.128 # the user-defined network: SUBNET_PREFIX.128/25
  # podman reads this for every command, conmon's exit command (`podman container cleanup`)
  # too; podman's default NOFILE/NPROC limits are above this machine's hard limits.
  cat >"$P/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[network]
network_backend = "netavark"
network_config_dir = "$P/net"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$P/tmp"
lock_type = "file"
EOF
  cat >"$P/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$P/root"
runroot = "$P/run"
EOF
  export CONTAINERS_CONF=$P/containers.conf CONTAINERS_STORAGE_CONF=$P/storage.conf
  # The default network "podman", on this run's own bridge and subnet (not podman0/10.88).
  cat >"$P/net/podman.json" <<EOF
{"name": "podman", "id": "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9",
 "driver": "bridge", "network_interface": "${TAG}b0", "created": "2024-01-01T00:00:00Z",
 "subnets": [{"subnet": "$SUBNET_PREFIX.0/25", "gateway": "$GW"}],
 "ipv6_enabled": false, "internal": false, "dns_enabled": false,
 "ipam_options": {"driver": "host-local"}}
EOF
  PM=(podman --root "$P/root" --runroot "$P/run" --tmpdir "$P/tmp" --storage-driver vfs
    --cgroup-manager cgroupfs --events-backend file --network-config-dir "$P/net"
    --runtime "$RUNTIME")
  # Every container goes under this run's own cgroup.
  RUN=(run --cgroup-parent "/$TAG")
  CLEANUPS+=(podman_cleanup)
}

podman_cleanup() {
  local id
  for id in $("${PM[@]}" ps -aq); do note_netns "$id"; done
  "${PM[@]}" rm -af -t 0
  "${PM[@]}" network rm -f "${TAG}net"
  "${PM[@]}" volume rm -af
  local p n
  for p in $(pids_with "$P/"); do kill -9 "$p"; done
  # A network namespace podman made and did not remove.
  while read -r n; do [ -e "$n" ] && umount "$n" && rm -f "$n"; done <"$P/netns" 2>/dev/null
  ip link del "${TAG}b0" 2>/dev/null
  while read -r n; do ip link del "$n"; done <"$P/bridges" 2>/dev/null
  rm_cgroups "$TAG"
  # A runtime's record of one of this run's containers that its delete did not remove.
  for n in /run/hako/* /run/runc/*; do
    ! grep -qsF "$P/" "$n/state.json" || rm -rf "$n"
  done
  true
}

# Notes the container's network namespace so that cleanup can remove it if podman did not.
note_netns() {
  "${PM[@]}" inspect -f '{{.NetworkSettings.SandboxKey}}' "$1" >>"$P/netns" 2>/dev/null || true
}

pm_load() {
  must "${PM[@]}" load -i "$T/image/oci.tar"
  must "${PM[@]}" image exists "$IMG"
  must "${PM[@]}" import "$T/image/layer.tar" localhost/hako-busybox:imported
  x "${PM[@]}" "${RUN[@]}" --rm localhost/hako-busybox:imported /bin/echo imported-ok
  want "run of the imported image" "$OUT" imported-ok
}

pm_run() {
  x "${PM[@]}" "${RUN[@]}" --rm "$IMG" sh -c 'echo hello from the image; exit 7'
  want output "$OUT" "hello from the image"
  want_rc 7 "exit code of podman run"
}

pm_tty() {
  x "${PM[@]}" "${RUN[@]}" --rm -t "$IMG" sh -c 'tty; [ -t 0 ] && [ -t 1 ] && echo both-ends-are-a-tty'
  want tty "$OUT" /dev/pts/0
  want tty "$OUT" both-ends-are-a-tty
  want_rc 0
}

pm_memory() {
  must "${PM[@]}" "${RUN[@]}" -d --name "$TAG-mem" --memory 32m "$IMG" sleep 1000
  pid=$("${PM[@]}" inspect -f '{{.State.Pid}}' "$TAG-mem")
  cg=$(cgroup_of "$pid" memory)
  want "cgroup" "$cg" "/$TAG/"
  limit=$(cat "$cg/memory.limit_in_bytes")
  [ "$limit" = 33554432 ] || die "memory.limit_in_bytes: $limit"
  must "${PM[@]}" rm -f -t 0 "$TAG-mem"
  ! [ -d "$cg" ] || die "cgroup $cg left after rm"
}

pm_cap_drop() {
  x "${PM[@]}" "${RUN[@]}" --rm --cap-drop ALL "$IMG" grep ^Cap /proc/self/status
  for c in CapInh CapPrm CapEff CapBnd CapAmb; do want "$c" "$OUT" "$c:	0000000000000000"; done
  x "${PM[@]}" "${RUN[@]}" --rm "$IMG" grep ^CapBnd /proc/self/status
  [[ "$OUT" != *"CapBnd:	0000000000000000"* ]] || die "default bounding set is empty too"
}

pm_user() {
  x "${PM[@]}" "${RUN[@]}" --rm --user 1000:1001 "$IMG" sh -c 'id; touch /root/x'
  want uid "$OUT" "uid=1000("
  want gid "$OUT" "gid=1001("
  want "write to /root as 1000" "$OUT" "Permission denied"
}

pm_read_only() {
  x "${PM[@]}" "${RUN[@]}" --rm --read-only "$IMG" sh -c 'touch /bin/x; touch /tmp/x && echo tmp-writable'
  want "write to /bin" "$OUT" "Read-only file system"
  want "write to /tmp" "$OUT" tmp-writable
}

pm_detached() {
  must "${PM[@]}" "${RUN[@]}" -d --name "$TAG-c" "$IMG" sleep 1000
  want status "$("${PM[@]}" inspect -f '{{.State.Status}}' "$TAG-c")" running
}

pm_exec() {
  x "${PM[@]}" exec "$TAG-c" sh -c 'echo exec-ok; tr "\0" " " </proc/1/cmdline; exit 4'
  want "exec output" "$OUT" exec-ok
  want "exec sees pid 1" "$OUT" "sleep 1000"
  want_rc 4 "exit code of podman exec"
}

pm_exec_tty() {
  x "${PM[@]}" exec -t "$TAG-c" sh -c 'tty; [ -t 0 ] && echo exec-tty-ok'
  want "exec -t" "$OUT" /dev/pts/
  want "exec -t" "$OUT" exec-tty-ok
}

pm_top() {
  must "${PM[@]}" top "$TAG-c"
  want top "$OUT" "sleep 1000"
}

pm_pause() {
  pid=$("${PM[@]}" inspect -f '{{.State.Pid}}' "$TAG-c")
  fz=$(cgroup_of "$pid" freezer)/freezer.state
  must "${PM[@]}" pause "$TAG-c"
  want status "$("${PM[@]}" inspect -f '{{.State.Status}}' "$TAG-c")" paused
  want freezer.state "$(cat "$fz")" FROZEN
  must "${PM[@]}" unpause "$TAG-c"
  want status "$("${PM[@]}" inspect -f '{{.State.Status}}' "$TAG-c")" running
  want freezer.state "$(cat "$fz")" THAWED
}

pm_stop_rm() {
  pid=$("${PM[@]}" inspect -f '{{.State.Pid}}' "$TAG-c")
  cg=$(cgroup_of "$pid" memory)
  # sleep as pid 1 ignores TERM: stop sends KILL after 1 s.
  must "${PM[@]}" stop -t 1 "$TAG-c"
  want status "$("${PM[@]}" inspect -f '{{.State.Status}}' "$TAG-c")" exited
  ! [ -d "/proc/$pid" ] || die "pid $pid alive after stop"
  must "${PM[@]}" rm "$TAG-c"
  ! "${PM[@]}" container exists "$TAG-c" || die "container still listed after rm"
  ! [ -d "$cg" ] || die "cgroup $cg left after rm"
}

pm_bind() {
  echo from-the-host >"$P/data/host-file"
  x "${PM[@]}" "${RUN[@]}" --rm -v "$P/data:/data" "$IMG" sh -c 'cat /data/host-file; echo from-the-container >/data/ctr-file'
  want "host file read in the container" "$OUT" from-the-host
  want "container's file on the host" "$(cat "$P/data/ctr-file" 2>&1)" from-the-container
}

pm_named_volume() {
  must "${PM[@]}" volume create "${TAG}vol"
  must "${PM[@]}" "${RUN[@]}" --rm -v "${TAG}vol:/v" "$IMG" sh -c 'echo survives >/v/f'
  x "${PM[@]}" "${RUN[@]}" --rm -v "${TAG}vol:/v" "$IMG" cat /v/f
  want "a second container reads the volume" "$OUT" survives
  mp=$("${PM[@]}" volume inspect -f '{{.Mountpoint}}' "${TAG}vol")
  want "the volume on the host" "$(cat "$mp/f")" survives
  must "${PM[@]}" volume rm "${TAG}vol"
}

pm_tmpfs() {
  x "${PM[@]}" "${RUN[@]}" --rm --tmpfs /scratch:size=1m "$IMG" sh -c 'grep " /scratch " /proc/mounts; echo w >/scratch/f && cat /scratch/f'
  want "/scratch mount" "$OUT" "tmpfs /scratch tmpfs rw"
  want "/scratch size" "$OUT" "size=1024k"
  want "write to /scratch" "$OUT" "w"
}

pm_net_none() {
  x "${PM[@]}" "${RUN[@]}" --rm --network none "$IMG" ls /sys/class/net
  [ "$OUT" = lo ] || die "interfaces with --network none: $(echo $OUT)"
}

pm_net_bridge() {
  port=$((20000 + $$ % 10000))
  echo the-host-answers >"$P/www/index.html"
  busybox httpd -f -p "$port" -h "$P/www" &
  trap "kill $!" EXIT
  x "${PM[@]}" "${RUN[@]}" --rm "$IMG" sh -c "ip -4 addr show eth0; ip route; wget -qO- http://$GW:$port/"
  want "eth0 address" "$OUT" "inet $SUBNET_PREFIX."
  want "default route" "$OUT" "default via $GW dev eth0"
  want "the host's server through the bridge" "$OUT" the-host-answers
}

pm_net_user() {
  must "${PM[@]}" network create --disable-dns --subnet "$NET2/25" "${TAG}net"
  # podman 4.3 names the bridge itself (podmanN): noted for cleanup.
  "${PM[@]}" network inspect -f '{{.NetworkInterface}}' "${TAG}net" >>"$P/bridges"
  a=$SUBNET_PREFIX.140
  must "${PM[@]}" "${RUN[@]}" -d --name "$TAG-a" --network "${TAG}net" --ip "$a" "$IMG" httpd -f -p 8080 -h /www
  note_netns "$TAG-a"
  x "${PM[@]}" "${RUN[@]}" --rm --network "${TAG}net" "$IMG" sh -c \
    "ip -4 addr show eth0; for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://$a:8080/ && break; sleep 0.3; done"
  want "second container's address" "$OUT" "inet $SUBNET_PREFIX.1"
  want "container to container" "$OUT" served-by-busybox-httpd
  must "${PM[@]}" rm -f -t 0 "$TAG-a"
  must "${PM[@]}" network rm "${TAG}net"
}

pm_publish() {
  hp=$((30000 + $$ % 10000))
  must "${PM[@]}" "${RUN[@]}" -d --name "$TAG-web" -p "127.0.0.1:$hp:8080" -p "$((hp + 1)):8080" "$IMG" httpd -f -p 8080 -h /www
  note_netns "$TAG-web"
  until_true 10 curl -sf --max-time 2 "http://127.0.0.1:$hp/" || true
  x curl -s --max-time 5 "http://127.0.0.1:$hp/"
  want "127.0.0.1:$hp" "$OUT" served-by-busybox-httpd
  own=$(ip -4 -o route get 1.1.1.1 | sed -n 's/.* src \([0-9.]*\).*/\1/p')
  x curl -s --max-time 5 "http://$own:$((hp + 1))/"
  want "$own:$((hp + 1)) (the host's own address)" "$OUT" served-by-busybox-httpd
  must "${PM[@]}" rm -f -t 0 "$TAG-web"
}

pm_nothing_left() {
  [ -z "$("${PM[@]}" ps -aq)" ] || die "containers left: $("${PM[@]}" ps -a)"
  local left
  left=$(pids_with "$P/")
  [ -z "$left" ] || die "processes left: $(for p in $left; do tr '\0' ' ' </proc/$p/cmdline | cut -c1-80; done)"
  left=$(cgroups_below "$TAG")
  [ -z "$left" ] || die "cgroups left: $(echo $left | cut -c1-200)"
  left=$(findmnt -rn -o TARGET | grep "^$P/" || true)
  [ -z "$left" ] || die "mounts left: $(echo $left)"
  # podman gives the runtime no --root (and conmon's cleanup could not pass one): its state
  # is in the runtime's default root, /run/hako (/run/runc), under podman's container ids.
  ids=$("${PM[@]}" events --stream=false --filter type=container --format '{{.ID}}' | sort -u)
  [ "$(echo "$ids" | wc -w)" -ge 15 ] || die "podman's events name too few containers: $ids"
  for id in $ids; do
    for d in /run/hako /run/runc; do ! [ -e "$d/$id" ] || die "runtime state left: $d/$id"; done
  done
  left=$(cat "$P/netns" 2>/dev/null | while read -r n; do [ ! -e "$n" ] || echo "$n"; done)
  [ -z "$left" ] || die "network namespaces left: $left"
  left=$(iptables-save | grep -E -- "$SUBNET_PREFIX\.|${TAG}b|$(cat "$P/bridges" 2>/dev/null)" || true)
  [ -z "$left" ] || die "iptables rules left: $(echo "$left" | head -n2)"
}

podman_scenarios() {
  podman_start
  scenario pm-load-import pm_load
  scenario pm-run-output-exit-code pm_run
  scenario pm-run-tty pm_tty
  scenario pm-memory pm_memory
  scenario pm-cap-drop-all pm_cap_drop
  scenario pm-user pm_user
  scenario pm-read-only pm_read_only
  scenario pm-run-detached pm_detached
  needs_exec pm-exec pm_exec
  needs_exec pm-exec-tty pm_exec_tty
  scenario pm-top pm_top
  scenario pm-pause-unpause pm_pause
  scenario pm-stop-rm pm_stop_rm
  scenario pm-volume-bind pm_bind
  scenario pm-volume-named pm_named_volume
  scenario pm-volume-tmpfs pm_tmpfs
  scenario pm-network-none pm_net_none
  scenario pm-network-default-bridge pm_net_bridge
  scenario pm-network-user-bridge pm_net_user
  scenario pm-publish-port pm_publish
  scenario pm-nothing-left pm_nothing_left
}
