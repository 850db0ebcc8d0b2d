#!/usr/bin/env bash
# Make a busybox bundle: hack/mkbundle.sh DIR [HAKO]
# DIR/rootfs holds Debian's static busybox with its applets; DIR/config.json is `hako spec`
# with no terminal and `sh` as the process. Needs: busybox-static.
set -euo pipefail
dir=${1:?usage: mkbundle.sh DIR [HAKO]}
hako=${2:-hako}
busybox=/bin/busybox
if [ ! -x "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
  echo "mkbundle: a static $busybox is needed: apt-get install -y busybox-static" >&2
  exit 1
fi
mkdir -p "$dir/rootfs"/{bin,etc,proc,sys,dev,tmp,root}
cp "$busybox" "$dir/rootfs/bin/busybox"
for applet in $("$dir/rootfs/bin/busybox" --list); do
  [ -e "$dir/rootfs/bin/$applet" ] || ln -s busybox "$dir/rootfs/bin/$applet"
done
cat > "$dir/rootfs/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$dir/rootfs/etc/group" <<'G'
root:x:0:
nogroup:x:65534:
G
rm -f "$dir/config.json"
"$hako" spec -b "$dir"
# No terminal by default: the bundle runs from scripts and tests.
sed -i 's/"terminal": true/"terminal": false/' "$dir/config.json"
