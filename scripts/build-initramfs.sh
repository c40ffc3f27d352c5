#!/usr/bin/env bash
# Builds the guest image: a gzipped newc cpio initramfs holding my_hypervisor-init as /init (one
# static binary, scripts/build-init.sh), busybox's tools if the host has /bin/busybox (a static
# build: Debian's busybox-static), and the files of an optional extra directory. Nothing else: no
# shared libraries, no interpreter. Reproducible: entries sorted, every mtime 0, owners 0:0, inode
# numbers renumbered, gzip without name or time: the same inputs give the same bytes.
# docs/guest-image.md lists what it holds.
#   scripts/build-initramfs.sh [-o OUT] [-x EXTRA_DIR]     (default OUT: .run/initramfs.cpio.gz)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/.run/initramfs.cpio.gz"
extra=""
while getopts "o:x:" opt; do
  case $opt in
    o) out=$OPTARG ;;
    x) extra=$OPTARG ;;
    *) echo "usage: $0 [-o OUT] [-x EXTRA_DIR]" >&2; exit 2 ;;
  esac
done
command -v cpio >/dev/null || { echo "build-initramfs: cpio is not installed (scripts/install-guest-test-deps.sh installs it)" >&2; exit 1; }
init_binary="$root/packages/init/dist/my_hypervisor-init"
[ -x "$init_binary" ] || { echo "build-initramfs: $init_binary is missing; run make build" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,dev,proc,sys,run,tmp,etc,root}
install -m 0755 "$init_binary" "$stage/init"

# busybox: sh, ps and the rest, for workloads and exec.
if [ -x /bin/busybox ]; then
  install -m 0755 /bin/busybox "$stage/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ -e "$stage/bin/$applet" ] || ln -s busybox "$stage/bin/$applet"
  done
fi

[ -n "$extra" ] && cp -a "$extra/." "$stage/"

find "$stage" -exec touch -h -d @0 {} +
mkdir -p "$(dirname "$out")"
(cd "$stage" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
  cpio --null --create --format=newc --reproducible --owner=0:0 --quiet) | gzip -n >"$out.tmp"
mv "$out.tmp" "$out"
echo "$out: $(du -h "$out" | cut -f1)"
