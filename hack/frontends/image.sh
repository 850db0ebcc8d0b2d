# Sourced by hack/frontends.sh. Makes the busybox image the front-ends run, with no registry:
# a root filesystem from busybox-static, its layer tar, and an OCI image layout (config,
# manifest, index, digests computed here) tarred for `ctr image import` and `podman load`.

# make_image DIR NAME: writes DIR/rootfs, DIR/layer.tar and DIR/oci.tar (image named NAME).
make_image() {
  local d=$1 name=$2 r=$1/rootfs ARCH
  ARCH=$(dpkg --print-architecture)
  mkdir -p "$r"/{bin,etc,tmp,proc,sys,dev,root,www}
  chmod 1777 "$r/tmp"
  cp /bin/busybox "$r/bin/busybox"
  local a
  for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || ln -sf busybox "$r/bin/$a"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
  echo served-by-busybox-httpd >"$r/www/index.html"
  # Fixed owner and times: the same bytes, so the same digests, on every run.
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$r" -cf "$d/layer.tar" .

  local o=$d/oci b=$d/oci/blobs/sha256
  mkdir -p "$b"
  blob() { # blob FILE: stores FILE under its digest, prints "DIGEST SIZE"
    local h
    h=$(sha256sum "$1" | cut -d' ' -f1)
    cp "$1" "$b/$h"
    echo "sha256:$h $(stat -c %s "$1")"
  }
  local layer config manifest
  layer=($(blob "$d/layer.tar"))
  cat >"$d/config.json" <<JSON
{"architecture":"$ARCH","os":"linux","created":"1970-01-01T00:00:00Z",
 "config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]},
 "rootfs":{"type":"layers","diff_ids":["${layer[0]}"]}}
JSON
  config=($(blob "$d/config.json"))
  cat >"$d/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
 "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"${config[0]}","size":${config[1]}},
 "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"${layer[0]}","size":${layer[1]}}]}
JSON
  manifest=($(blob "$d/manifest.json"))
  cat >"$o/index.json" <<JSON
{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",
 "digest":"${manifest[0]}","size":${manifest[1]},
 "platform":{"architecture":"$ARCH","os":"linux"},
 "annotations":{"io.containerd.image.name":"$name","org.opencontainers.image.ref.name":"$name"}}]}
JSON
  echo '{"imageLayoutVersion":"1.0.0"}' >"$o/oci-layout"
  tar -C "$o" -cf "$d/oci.tar" oci-layout index.json blobs
}
