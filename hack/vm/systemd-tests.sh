#!/bin/sh
# The systemd-driver tests, run inside the systemd VM (hack/vm/run.sh --systemd) by a oneshot
# unit, as root, systemd being PID 1 on a cgroup v2-only kernel. Prints "ok - NAME" /
# "not ok - NAME: why" per check and "HAKO-VM: PASS n FAIL m" at the end.
PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CG=/sys/fs/cgroup
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
notok() { fail=$((fail + 1)); echo "not ok - $1: $2"; }
check() { if [ "$2" = "$3" ]; then ok "$1"; else notok "$1" "want '$2', got '$3'"; fi; }
has() { case "$3" in *"$2"*) ok "$1" ;; *) notok "$1" "no '$2' in: $(echo "$3" | head -c 300)" ;; esac; }
hasnt() { case "$3" in *"$2"*) notok "$1" "'$2' in: $(echo "$3" | head -c 300)" ;; *) ok "$1" ;; esac; }
val() { tr '\n' ' ' <"$1" 2>/dev/null | sed 's/ $//'; }
prop() { systemctl show -p "$2" --value "$1" 2>&1; }
hk() { hako --systemd-cgroup "$@"; }

CAPS='["CAP_KILL","CAP_AUDIT_WRITE","CAP_NET_BIND_SERVICE","CAP_MKNOD"]'
bundle() {
  mkdir -p "/tmp/b/$1"
  cat >"/tmp/b/$1/config.json" <<J
{"ociVersion":"1.0.2",
 "process":{"terminal":false,"user":{"uid":0,"gid":0},"args":$2,
  "env":["PATH=/bin","HOME=/root"],"cwd":"/",
  "capabilities":{"bounding":$CAPS,"effective":$CAPS,"permitted":$CAPS},
  "noNewPrivileges":true},
 "root":{"path":"/hako-tests/rootfs"},
 "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
  {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","mode=755","size=1m"]}],
 "linux":{"namespaces":[{"type":"pid"},{"type":"mount"},{"type":"ipc"},{"type":"uts"},
   {"type":"cgroup"}],
  "cgroupsPath":"$3","resources":$4}}
J
}

echo "# systemd $(systemctl --version | head -n1), kernel $(uname -r), up $(cut -d' ' -f1 /proc/uptime)s"
unit=hako-sd1.scope
dir=$CG/system.slice/$unit
bundle sd1 '["sleep","1000"]' system.slice:hako:sd1 \
  '{"memory":{"limit":67108864},"pids":{"limit":42},
    "cpu":{"shares":1024,"quota":50000,"period":100000},
    "devices":[{"allow":false,"access":"rwm"}]}'
hk run -d -b /tmp/b/sd1 sd1 </dev/null >/dev/null 2>/tmp/b/sd1.err
out=$(cat /tmp/b/sd1.err)
check "run -d with --systemd-cgroup" "" "$out"
check "the scope unit is active" active "$(systemctl is-active $unit)"
systemctl status --no-pager $unit 2>&1 | sed 's/^/# /' | head -n 12
check "MemoryMax property" 67108864 "$(prop $unit MemoryMax)"
check "TasksMax property" 42 "$(prop $unit TasksMax)"
check "CPUQuotaPerSecUSec property" 500ms "$(prop $unit CPUQuotaPerSecUSec)"
check "memory.max in the scope's cgroup" 67108864 "$(val $dir/memory.max)"
check "pids.max in the scope's cgroup" 42 "$(val $dir/pids.max)"
check "cpu.max in the scope's cgroup" "50000 100000" "$(val $dir/cpu.max)"
pid=$(hako state sd1 | grep -o '"pid": *[0-9]*' | grep -o '[0-9]*$')
check "the container's process is in the scope" "0::/system.slice/$unit" "$(cat /proc/$pid/cgroup)"

hk update --memory 80M --pids-limit 50 sd1
check "update: MemoryMax property" 83886080 "$(prop $unit MemoryMax)"
check "update: pids.max" 50 "$(val $dir/pids.max)"

hk pause sd1
check "pause: cgroup.freeze" 1 "$(val $dir/cgroup.freeze)"
hk resume sd1
check "resume: cgroup.freeze" 0 "$(val $dir/cgroup.freeze)"

# The device rules hold under the systemd driver too: a deny-all container with CAP_MKNOD
# cannot read the VM's root disk.
dev=$(cat /sys/block/nvme0n1/dev)
bundle sd2 "[\"sh\",\"-c\",\"mknod /dev/d b ${dev%:*} ${dev#*:} && head -c 4096 /dev/d >/dev/null && echo DISK-READ\"]" \
  system.slice:hako:sd2 '{"devices":[{"allow":false,"access":"rwm"}]}'
out=$(hk run -b /tmp/b/sd2 sd2 2>&1)
has "device escape under systemd: EPERM" "Operation not permitted" "$out"
hasnt "... and no disk bytes" DISK-READ "$out"
hk delete sd2 >/dev/null 2>&1

hk delete -f sd1
state=$(systemctl is-active $unit)
check "delete: the scope is gone" "inactive" "$state"
check "delete: its cgroup is gone" no "$(test -d $dir && echo yes || echo no)"
check "no container left" "" "$(hako list -q)"

echo "# done, up $(cut -d' ' -f1 /proc/uptime)s"
echo "HAKO-VM: PASS $pass FAIL $fail"
