#!/bin/sh
# The cgroup v2 tests, run inside the VM by hack/vm/init as root on a cgroup v2-only kernel.
# Prints "ok - NAME" / "not ok - NAME: why" per check and "HAKO-VM: PASS n FAIL m" at the end.
# Every container gets its own bundle under /tmp/b and an absolute cgroupsPath under /hako-vm
# (except the relative-path test), so the files the kernel exposes can be read directly.
PATH=/bin
CG=/sys/fs/cgroup
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
notok() { fail=$((fail + 1)); echo "not ok - $1: $2"; }
# check NAME WANT GOT
check() { if [ "$2" = "$3" ]; then ok "$1"; else notok "$1" "want '$2', got '$3'"; fi; }
# has NAME NEEDLE HAYSTACK
has() { case "$3" in *"$2"*) ok "$1" ;; *) notok "$1" "no '$2' in: $(echo "$3" | head -c 300)" ;; esac; }
hasnt() { case "$3" in *"$2"*) notok "$1" "'$2' in: $(echo "$3" | head -c 300)" ;; *) ok "$1" ;; esac; }
val() { tr '\n' ' ' <"$1" 2>/dev/null | sed 's/ $//'; }

CAPS='["CAP_KILL","CAP_AUDIT_WRITE","CAP_NET_BIND_SERVICE"]'
CAPS_MKNOD='["CAP_KILL","CAP_AUDIT_WRITE","CAP_NET_BIND_SERVICE","CAP_MKNOD"]'
# bundle ID ARGS_JSON RESOURCES_JSON CGROUPS_PATH [CAPS]
bundle() {
  mkdir -p "/tmp/b/$1"
  caps=${5:-$CAPS}
  cat >"/tmp/b/$1/config.json" <<J
{"ociVersion":"1.0.2",
 "process":{"terminal":false,"user":{"uid":0,"gid":0},"args":$2,
  "env":["PATH=/bin","HOME=/root"],"cwd":"/",
  "capabilities":{"bounding":$caps,"effective":$caps,"permitted":$caps},
  "noNewPrivileges":true},
 "root":{"path":"/tests/rootfs"},
 "hostname":"vm",
 "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
  {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","mode=755","size=1m"]}],
 "linux":{"namespaces":[{"type":"pid"},{"type":"mount"},{"type":"ipc"},{"type":"uts"},
   {"type":"cgroup"}],
  "cgroupsPath":"$4","resources":$3}}
J
}
run() { hako run -b "/tmp/b/$1" "$1" 2>&1; }
runbg() { hako run -d -b "/tmp/b/$1" "$1" </dev/null >/dev/null 2>"/tmp/b/$1.err" || cat "/tmp/b/$1.err"; }
# wait_for CONDITION...: up to ~30 s (TCG guests on a busy host are slow)
wait_for() { i=0; while ! "$@" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done; }
status() { hako state "$1" 2>/dev/null | grep -o '"status": *"[a-z]*"' | grep -o '[a-z]*"$' | tr -d '"'; }
is_status() { test "$(status "$1")" = "$2"; }
nprocs() { wc -l <"$CG/$1/cgroup.procs"; }
has_procs() { test "$(nprocs "$1")" -ge "$2"; }

cgroups_before=$(find $CG -mindepth 1 -type d | sort)
mounts_before=$(wc -l </proc/mounts)

section() { echo "# $1 (guest uptime $(cut -d' ' -f1 /proc/uptime)s)"; }
section "device rules"
# --- device rules (eBPF) ---------------------------------------------------------------------
disk=nvme0n1
dev=$(cat /sys/block/$disk/dev)
maj=${dev%:*}
min=${dev#*:}
check "control: the guest reads its disk $disk ($dev) outside any container" \
  HAKODISK-SECRET "$(head -c 15 /dev/$disk)"

bundle dev1 "[\"sh\",\"-c\",\"mknod /dev/d b $maj $min && head -c 15 /dev/d\"]" \
  '{"devices":[{"allow":false,"access":"rwm"}]}' /hako-vm/dev1 "$CAPS_MKNOD"
out=$(run dev1)
rc=$?
hasnt "device escape: CAP_MKNOD + deny-all cannot read the disk" HAKODISK "$out"
has "device escape: the read fails with EPERM (rc $rc)" "Operation not permitted" "$out"
hako delete dev1 >/dev/null 2>&1

bundle dev2 '["sh","-c","head -c 4 /dev/zero | wc -c; echo x >/dev/null && echo null-ok; head -c 8 /dev/urandom | wc -c; head -c 3 /dev/full | wc -c"]' \
  '{"devices":[{"allow":false,"access":"rwm"}]}' /hako-vm/dev2
check "default devices still work: zero, null, urandom, full" "4 null-ok 8 3" \
  "$(run dev2 | tr '\n' ' ' | sed 's/ $//')"
hako delete dev2 >/dev/null 2>&1

bundle dev3 "[\"sh\",\"-c\",\"mknod /dev/d b $maj $min && head -c 15 /dev/d && echo && (echo x >/dev/d) 2>&1\"]" \
  "{\"devices\":[{\"allow\":false,\"access\":\"rwm\"},{\"allow\":true,\"type\":\"b\",\"major\":$maj,\"minor\":$min,\"access\":\"r\"}]}" \
  /hako-vm/dev3 "$CAPS_MKNOD"
out=$(run dev3)
has "a config rule allowing r on the disk lets it be read" HAKODISK-SECRET "$out"
has "... but not written" "Operation not permitted" "$out"
hako delete dev3 >/dev/null 2>&1

# update swaps the device program with no moment where everything is allowed: the container
# reads the disk in a loop while update runs.
bundle dev4 "[\"sh\",\"-c\",\"mknod /dev/d b $maj $min; while :; do if head -c 15 /dev/d >/dev/null 2>&1; then echo READ; else echo DENIED; fi >>/tmp/dev4.log; done\"]" \
  '{"devices":[{"allow":false,"access":"rwm"}],"pids":{"limit":100}}' /hako-vm/dev4 "$CAPS_MKNOD"
rm -f /tests/rootfs/tmp/dev4.log
runbg dev4
wait_for test -s /tests/rootfs/tmp/dev4.log
for n in 1 2 3 4 5 6 7 8; do hako update --pids-limit $((100 + n)) dev4 || notok "update dev4" "$n"; done
sleep 0.3
pids_after=$(val $CG/hako-vm/dev4/pids.max)
hako kill dev4 KILL >/dev/null 2>&1
wait_for is_status dev4 stopped
hako delete dev4 >/dev/null 2>&1
reads=$(grep -c READ /tests/rootfs/tmp/dev4.log)
denied=$(grep -c DENIED /tests/rootfs/tmp/dev4.log)
check "update x8 while the container reads the disk in a loop ($denied attempts denied)" 0 "$reads"
check "... and update applied the pids limit" 108 "$pids_after"

section "resources land"
# --- resources land in their files -----------------------------------------------------------
RES='{"memory":{"limit":67108864,"reservation":16777216,"swap":100663296},
 "cpu":{"shares":2048,"quota":50000,"period":100000,"burst":10000,"cpus":"0","mems":"0"},
 "pids":{"limit":42},
 "blockIO":{"weight":500},
 "hugepageLimits":[{"pageSize":"2MB","limit":4194304}],
 "unified":{"memory.high":"50331648"}}'
bundle res '["sleep","1000"]' "$RES" /hako-vm/res
out=$(runbg res)
check "run -d with every v2 resource" "" "$out"
d=$CG/hako-vm/res
check memory.max 67108864 "$(val $d/memory.max)"
check "memory.low (reservation)" 16777216 "$(val $d/memory.low)"
check "memory.swap.max (swap - limit)" 33554432 "$(val $d/memory.swap.max)"
check "cpu.weight (from shares 2048, runc 1.3's conversion)" 174 "$(val $d/cpu.weight)"
check cpu.max "50000 100000" "$(val $d/cpu.max)"
check cpu.max.burst 10000 "$(val $d/cpu.max.burst)"
check cpuset.cpus 0 "$(val $d/cpuset.cpus)"
check cpuset.mems 0 "$(val $d/cpuset.mems)"
check pids.max 42 "$(val $d/pids.max)"
check "io.weight (from blkio weight 500)" "default 4950" "$(val $d/io.weight)"
if [ -e $d/hugetlb.2MB.max ]; then
  check hugetlb.2MB.max 4194304 "$(val $d/hugetlb.2MB.max)"
else
  echo "# no hugetlb controller in this kernel"
fi
check "unified memory.high" 50331648 "$(val $d/memory.high)"
pid=$(hako state res | grep -o '"pid": *[0-9]*' | grep -o '[0-9]*$')
check "the container's process is in the cgroup" 0::/hako-vm/res "$(cat /proc/$pid/cgroup)"

hako update --memory 80M --memory-swap 160M --pids-limit 50 --cpu-quota 20000 --cpu-period 100000 \
  --cpu-share 1024 --cpuset-cpus 0-1 --blkio-weight 1000 res
echo '{"unified":{"memory.high":"62914560"},"memory":{"reservation":8388608}}' | hako update -r - res
check "update: memory.max" 83886080 "$(val $d/memory.max)"
check "update: memory.swap.max" 83886080 "$(val $d/memory.swap.max)"
check "update: memory.low" 8388608 "$(val $d/memory.low)"
check "update: pids.max" 50 "$(val $d/pids.max)"
check "update: cpu.max" "20000 100000" "$(val $d/cpu.max)"
check "update: cpu.weight (shares 1024)" 100 "$(val $d/cpu.weight)"
check "update: cpuset.cpus" 0-1 "$(val $d/cpuset.cpus)"
check "update: io.weight" "default 10000" "$(val $d/io.weight)"
check "update: unified memory.high" 62914560 "$(val $d/memory.high)"

# swap equal to the limit means no swap at all (libcgroups alone leaves memory.swap.max at max)
bundle noswap '["sleep","1000"]' '{"memory":{"limit":33554432,"swap":33554432}}' /hako-vm/noswap
out=$(runbg noswap)
check "run -d with swap = limit" "" "$out"
check "memory.swap.max is 0 when swap = limit" 0 "$(val $CG/hako-vm/noswap/memory.swap.max)"
hako delete -f noswap

hako pause res
check "pause: cgroup.freeze" 1 "$(val $d/cgroup.freeze)"
wait_for grep -q "frozen 1" $d/cgroup.events
has "pause: cgroup.events says frozen" "frozen 1" "$(cat $d/cgroup.events)"
check "pause: state" paused "$(status res)"
hako resume res
check "resume: cgroup.freeze" 0 "$(val $d/cgroup.freeze)"
check "resume: state" running "$(status res)"

stats=$(hako events --stats res 2>&1)
has "events --stats: pids from pids.current" '"pids":{"current":1' "$(echo "$stats" | tr -d ' ')"
has "events --stats: memory usage with its limit" '"limit":83886080' "$(echo "$stats" | tr -d ' ')"
has "events --stats: cpu usage" '"cpu":{"usage":{' "$(echo "$stats" | tr -d ' ')"
hako kill res KILL
wait_for is_status res stopped
hako delete res
check "delete removes the cgroup" no "$(test -d $d && echo yes || echo no)"

section "kill --all"
# Throttles, in a container of their own: with a throttle and no I/O yet, Linux 6.1 lists the
# device in io.stat with no keys, which libcgroups 0.7's parser refuses (events --stats fails).
bundle thr '["true"]' '{"blockIO":{"throttleReadBpsDevice":[{"major":'$maj',"minor":'$min',"rate":1048576}],
   "throttleWriteIOPSDevice":[{"major":'$maj',"minor":'$min',"rate":100}]}}' /hako-vm/thr
hako create -b /tmp/b/thr thr
check "io.max (throttles)" "$maj:$min rbps=1048576 wbps=max riops=max wiops=100" "$(val $CG/hako-vm/thr/io.max)"
hako delete -f thr

# --- kill --all --------------------------------------------------------------------------------
bundle ka '["sh","-c","sleep 1000 & sleep 1000 & sleep 1000 & wait"]' '{}' /hako-vm/ka
runbg ka
wait_for has_procs hako-vm/ka 4
check "kill --all: the container has 4 processes" 4 "$(nprocs hako-vm/ka)"
hako kill --all ka KILL
wait_for test ! -s $CG/hako-vm/ka/cgroup.procs
left=$(for p in $(cat $CG/hako-vm/ka/cgroup.procs); do
  echo "$p:$(cat /proc/$p/comm):$(cut -d' ' -f3 /proc/$p/stat)"
done)
check "kill --all: every process is gone" "" "$left"
wait_for is_status ka stopped
check "kill --all: stopped" stopped "$(status ka)"
hako delete ka

section "cgroup paths"
# --- cgroup paths and the cgroup namespace -------------------------------------------------------
bundle nest '["sh","-c","cat /proc/self/cgroup"]' '{"pids":{"limit":7}}' /hako-vm/a/b/c
hako create -b /tmp/b/nest nest >/tmp/b/nest.out 2>&1
check "nested cgroupsPath: pids.max" 7 "$(val $CG/hako-vm/a/b/c/pids.max)"
hako start nest
wait_for is_status nest stopped
check "a cgroup namespace shows the container's cgroup as /" 0::/ "$(cat /tmp/b/nest.out)"
hako delete nest
bundle born '["true"]' '{"pids":{"limit":5}}' /hako-vm/born
has "the init is cloned into its cgroup (clone3 CLONE_INTO_CGROUP), not moved there" \
  "init cloned into its cgroup" "$(hako --debug run -b /tmp/b/born born 2>&1)"
bundle rel '["sh","-c","sleep 1000"]' '{"pids":{"limit":9}}' rel-hako/x
runbg rel
check "relative cgroupsPath: under hako's own cgroup's parent (/ here)" 9 "$(val $CG/rel-hako/x/pids.max)"
hako kill rel KILL
wait_for is_status rel stopped
hako delete rel
# A container given a writable cgroup2 mount makes cgroups inside its own: delete removes them
# (rmdir alone refuses a cgroup with children, which stayed on the host), and create refuses a
# cgroup that already has one below it (delete would remove another's).
bundle mk '["sh","-c","mkdir /sys/fs/cgroup/made /sys/fs/cgroup/made/deeper; exec sleep 1000"]' \
  '{}' /hako-vm/mk
sed -i 's|"mounts":\[|"mounts":[{"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["rw","nosuid","nodev","noexec"]},|' \
  /tmp/b/mk/config.json
runbg mk
wait_for test -d $CG/hako-vm/mk/made/deeper
check "a container makes cgroups inside its own" yes \
  "$(test -d $CG/hako-vm/mk/made/deeper && echo yes)"
hako kill mk KILL
wait_for is_status mk stopped
hako delete mk
check "delete removes the cgroups the container made inside its own" gone \
  "$(test -e $CG/hako-vm/mk || echo gone)"
mkdir -p $CG/hako-vm/busy/other
bundle busy '["true"]' '{}' /hako-vm/busy
has "create refuses a cgroup with a cgroup below it" "has a cgroup below it" "$(run busy)"
check "... and leaves it as it was" yes "$(test -d $CG/hako-vm/busy/other && echo yes)"
hako delete busy >/dev/null 2>&1
rmdir $CG/hako-vm/busy/other $CG/hako-vm/busy
rmdir $CG/hako-vm/a/b $CG/hako-vm/a $CG/hako-vm/born $CG/hako-vm $CG/rel-hako 2>/dev/null

section "rootless, delegated subtree"
# --- a user's container in a cgroup v2 subtree delegated to the user (chowned) ---------------------
echo 'rl:x:1000:1000::/tmp:/bin/sh' >>/etc/passwd
echo 'rl:x:1000:' >>/etc/group
D=$CG/hako-vm-rl
mkdir -p $D/shell
chown -R 1000:1000 $D
mkdir -p /tmp/rlx /tmp/b/rl
chown 1000:1000 /tmp/rlx
chmod 700 /tmp/rlx
cat >/tmp/b/rl/config.json <<J
{"ociVersion":"1.0.2",
 "process":{"terminal":false,"user":{"uid":0,"gid":0},
  "args":["sleep","1000"],
  "env":["PATH=/bin"],"cwd":"/",
  "capabilities":{"bounding":$CAPS,"effective":$CAPS,"permitted":$CAPS},"noNewPrivileges":true},
 "root":{"path":"/tests/rootfs","readonly":true},
 "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
  {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","mode=755","size=1m"]}],
 "linux":{"namespaces":[{"type":"pid"},{"type":"mount"},{"type":"ipc"},{"type":"uts"},
   {"type":"cgroup"},{"type":"user"}],
  "uidMappings":[{"containerID":0,"hostID":1000,"size":1}],
  "gidMappings":[{"containerID":0,"hostID":1000,"size":1}],
  "cgroupsPath":"/hako-vm-rl/c","resources":{"pids":{"limit":7},"memory":{"limit":33554432}}}}
J
# The user's shell starts in the delegated subtree (v2 moves need the common ancestor's
# cgroup.procs writable), then runs hako as uid 1000.
asrl() { sh -c "echo \$\$ >$D/shell/cgroup.procs; exec su rl -s /bin/sh -c \"XDG_RUNTIME_DIR=/tmp/rlx $*\"" 2>&1; }
# (Output to a file: the container holds its stdio open.)
asrl hako run -d -b /tmp/b/rl rl1 </dev/null >/tmp/b/rl.out 2>&1
out=$(cat /tmp/b/rl.out)
has "rootless: uses the delegated cgroup, one warning line" "is writable by this user: using it" "$out"
pid=$(asrl hako state rl1 | grep -o '"pid": *[0-9]*' | grep -o '[0-9]*$')
check "rootless: the init is in the container's cgroup" "$pid" "$(val $D/c/cgroup.procs)"
check "rootless: pids.max" 7 "$(val $D/c/pids.max)"
check "rootless: memory.max" 33554432 "$(val $D/c/memory.max)"
check "rootless: uid_map" "0 1000 1" "$(tr -s ' ' <"/proc/$pid/uid_map" | sed 's/^ //')"
check "rootless: exec is root inside" 0 "$(asrl hako exec rl1 id -u)"
asrl hako kill rl1 KILL >/dev/null
rl_stopped() { asrl hako state rl1 | grep -q '"stopped"'; }
wait_for rl_stopped
check "rootless: delete" "" "$(asrl hako delete rl1)"
check "rootless: state under XDG_RUNTIME_DIR, removed" "" "$(ls -A /tmp/rlx/hako 2>&1)"
check "rootless: the container's cgroup removed" "" "$(ls -d $D/c 2>/dev/null)"
rmdir $D/shell $D

section "nothing left"
# --- nothing left behind -------------------------------------------------------------------------
check "no cgroup left behind" "$cgroups_before" "$(find $CG -mindepth 1 -type d | sort)"
check "no container left" "" "$(hako list -q)"
check "no mount left" "$mounts_before" "$(wc -l </proc/mounts)"
check "no process left" "" "$(ps -o comm | grep -E 'sleep|hako' | grep -v grep)"

section end
echo "HAKO-VM: PASS $pass FAIL $fail"
