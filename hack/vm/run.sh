#!/usr/bin/env bash
# Boots a cgroup v2-only QEMU VM (Debian's cloud kernel, TCG) and reads test results from its
# serial console.
#   hack/vm/run.sh [HAKO_BINARY]            the cgroup v2 image: an initramfs with hako, busybox
#                                           and hack/vm/tests.sh
#   hack/vm/run.sh --systemd [HAKO_BINARY]  the systemd image: a minimal Debian root (mmdebstrap)
#                                           with systemd as PID 1 running hack/vm/systemd-tests.sh
# HAKO_BINARY defaults to target/debug/hako, built first.
# Exits non-zero when a test fails, the guest prints no summary, or it runs out of time. The
# whole console output is left in $HAKO_VM_LOG (default /tmp/hako-vm-console.log).
# Downloads (the kernel package, the systemd root) are cached in $HAKO_VM_CACHE (default
# /var/cache/hako-vm); without the cache the script fetches them again. Needs root and Debian.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${HAKO_VM_CACHE:-/var/cache/hako-vm}
timeout_s=${HAKO_VM_TIMEOUT:-600}
systemd=
if [ "${1:-}" = --systemd ]; then
  systemd=1
  shift
fi
hako=${1:-$repo/target/debug/hako}

say() { echo "vm: $*" >&2; }

# Host packages: QEMU, a static busybox (guest init and container rootfs), dpkg-deb.
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
command -v mke2fs >/dev/null || missing+=(e2fsprogs)
[ -z "$systemd" ] || command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null
fi

# The kernel: the versioned package the cloud meta package depends on, unpacked (not installed).
kernel_pkg() {
  apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}
pkg=$(kernel_pkg)
if [ -z "$pkg" ]; then
  apt-get update -qq
  pkg=$(kernel_pkg)
fi
[ -n "$pkg" ] || { say "no linux-image-cloud-amd64 in the apt sources"; exit 1; }
kdir=$cache/$pkg
if ! ls "$kdir"/boot/vmlinuz-* >/dev/null 2>&1; then
  say "fetching $pkg into $cache"
  mkdir -p "$cache"
  dl=$(mktemp -d)
  chmod 755 "$dl"   # apt's _apt user downloads into it
  (cd "$dl" && apt-get download -q "$pkg" >/dev/null)
  rm -rf "$kdir.tmp" && mkdir -p "$kdir.tmp"
  dpkg-deb -x "$dl"/"$pkg"_*.deb "$kdir.tmp"
  rm -rf "$dl" "$kdir" && mv "$kdir.tmp" "$kdir"
fi
vmlinuz=$(ls "$kdir"/boot/vmlinuz-* | head -n1)

if [ $# -eq 0 ]; then
  (cd "$repo" && cargo build --quiet)
fi
[ -x "$hako" ] || { say "no hako binary at $hako"; exit 1; }

work=$(mktemp -d /tmp/hako-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The container rootfs every test bundle shares: busybox and its applets.
make_rootfs() {
  mkdir -p "$1"/{bin,etc,proc,sys,dev,tmp,root}
  cp /bin/busybox "$1/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ -e "$1/bin/$applet" ] || ln -s busybox "$1/bin/$applet"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$1/etc/passwd"
  echo 'root:x:0:' >"$1/etc/group"
}

if [ -z "$systemd" ]; then
  root=$work/initramfs
  mkdir -p "$root"/{bin,sbin,lib,lib64,usr/bin,proc,sys,dev,tmp,run,newroot,tests,etc}
  cp /bin/busybox "$root/bin/busybox"
  for a in sh mount umount mkdir switch_root; do ln -s busybox "$root/bin/$a"; done
  cp "$hako" "$root/bin/hako"
  # hako's shared libraries (and the loader) at the paths it was linked against.
  for lib in $(ldd "$hako" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  cp "$here/init" "$root/init"
  cp "$here/tests.sh" "$root/tests/tests.sh"
  chmod 755 "$root/init" "$root/tests/tests.sh"
  make_rootfs "$root/tests/rootfs"
  (cd "$root" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1 >"$work/initrd.gz")
  # The guest's NVMe disk, with a marker the device test must not be able to read.
  disk=$work/disk.img
  printf 'HAKODISK-SECRET' >"$disk"
  truncate -s 8M "$disk"
  boot=(-initrd "$work/initrd.gz")
  append="quiet loglevel=3"
else
  # Debian with systemd, built once and cached as a tarball (the slow step: about 2 minutes).
  tarball=$cache/systemd-root-bookworm.tar
  if [ ! -s "$tarball" ]; then
    say "building the systemd root into $tarball"
    mkdir -p "$cache"
    mmdebstrap --quiet --format=tar --variant=minbase --include=systemd,systemd-sysv bookworm "$tarball.tmp"
    mv "$tarball.tmp" "$tarball"
  fi
  root=$work/root
  mkdir -p "$root"
  tar -C "$root" -xf "$tarball"
  cp "$hako" "$root/usr/local/bin/hako"
  mkdir -p "$root/hako-tests"
  cp "$here/systemd-tests.sh" "$root/hako-tests/"
  make_rootfs "$root/hako-tests/rootfs"
  # The tests run once the system is up, print to the serial console, then power the VM off.
  cat >"$root/etc/systemd/system/hako-tests.service" <<'UNIT'
[Unit]
Description=hako --systemd-cgroup tests
After=multi-user.target
SuccessAction=poweroff-force
FailureAction=poweroff-force
[Service]
Type=oneshot
ExecStart=/bin/sh /hako-tests/systemd-tests.sh
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
[Install]
WantedBy=multi-user.target
UNIT
  ln -s /etc/systemd/system/hako-tests.service \
    "$root/etc/systemd/system/multi-user.target.wants/hako-tests.service"
  for unit in serial-getty@ttyS0.service getty@tty1.service apt-daily.timer \
    apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
  done
  echo hako-vm >"$root/etc/hostname"
  disk=$work/root.img
  mke2fs -q -t ext4 -d "$root" -L root "$disk" 1G
  boot=()
  append="root=/dev/nvme0n1 rw systemd.show_status=0 quiet loglevel=3"
fi

say "booting $(basename "$vmlinuz") (TCG), timeout ${timeout_s}s"
log=$work/console.log
start=$(date +%s)
set +e
timeout "$timeout_s" qemu-system-x86_64 \
  -machine q35,accel=tcg -cpu max -smp 2 -m 1024 \
  -nographic -no-reboot -monitor none -serial stdio \
  -kernel "$vmlinuz" "${boot[@]}" \
  -append "console=ttyS0 panic=-1 $append systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all" \
  -drive "file=$disk,if=none,id=disk0,format=raw" -device nvme,serial=hakovm,drive=disk0 \
  </dev/null | tee "$log" | grep --line-buffered -E '^(ok|not ok|#|HAKO-VM)' >&2
qemu=${PIPESTATUS[0]}
set -e
secs=$(($(date +%s) - start))
cp "$log" "${HAKO_VM_LOG:-/tmp/hako-vm-console.log}"
summary=$(tr -d '\r' <"$log" | grep -E '^HAKO-VM: ' | tail -n1 || true)
if [ "$qemu" = 124 ]; then
  say "FAIL: no result within ${timeout_s}s; the console's last lines:"
  tail -n 30 "$log" >&2
  exit 1
fi
if [ -z "$summary" ]; then
  say "FAIL: the guest printed no summary (qemu exit $qemu); the console's last lines:"
  tail -n 30 "$log" >&2
  exit 1
fi
say "$summary (${secs}s)"
case "$summary" in
  *" FAIL 0"*) exit 0 ;;
  *) exit 1 ;;
esac
