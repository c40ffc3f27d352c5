#!/usr/bin/env bash
# Builds the guest image: a gzipped newc cpio initramfs holding Node and the shared libraries it
# needs, my_hypervisor-init as /init, koffi (its FFI), busybox's tools if the host has
# /bin/busybox, and the files of an optional extra directory. Reproducible: entries sorted,
# every mtime 0, owners 0:0, inode numbers renumbered, gzip without name or time: the same
# inputs give the same bytes.
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
init_bundle="$root/packages/init/dist/init.cjs"
[ -f "$init_bundle" ] || { echo "build-initramfs: $init_bundle is missing; run make build" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,dev,proc,sys,run,tmp,etc,root,node_modules/@koromix}

# Node, and each shared library at the path the dynamic loader will look for it.
node_bin=$(readlink -f "$(command -v node)")
install -m 0755 "$node_bin" "$stage/bin/node"
for lib in $(ldd "$node_bin" | grep -o '/[^ ]*'); do
  install -D -m 0755 "$(readlink -f "$lib")" "$stage$lib"
done

# The init: the kernel runs /init; the #! line points it at Node.
{ echo '#!/bin/node'; cat "$init_bundle"; } >"$stage/init"
chmod 0755 "$stage/init"

# koffi and its prebuilt binary for this platform, where Node resolves require("koffi") from /init.
cp -a "$root/node_modules/koffi" "$stage/node_modules/koffi"
rm -rf "$stage/node_modules/koffi/doc"
cp -a "$root/node_modules/@koromix/koffi-linux-x64" "$stage/node_modules/@koromix/"
rm -rf "$stage/node_modules/@koromix/koffi-linux-x64/musl_x64"

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
