#!/usr/bin/env bash
# Prints the path of the uncompressed vmlinux inside a bzImage, extracting it once into .run/ (named by the
# bzImage's name and mtime, so an upgraded kernel of the same name is extracted again). Under QEMU's TCG,
# booting the vmlinux through its PVH entry spares the 4–6 s a bzImage spends decompressing itself.
# The vmlinux is the bzImage's payload: the boot protocol header (version ≥ 2.08 at 0x206) gives its offset
# (0x248, from the start of the protected-mode code, which follows the setup sectors counted at 0x1f1) and
# length (0x24c); Debian compresses it with xz, and the kernel appends the uncompressed size after the stream.
#   scripts/extract-vmlinux.sh /boot/vmlinuz-VERSION
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bz=${1:?usage: $0 BZIMAGE}
name=$(basename "$bz")
out="$root/.run/vmlinux-${name#vmlinuz-}-$(stat -c %Y "$bz")"
[ -s "$out" ] && { echo "$out"; exit 0; }
u16() { od -An -tu2 -j "$1" -N2 "$bz" | tr -d ' '; }
u32() { od -An -tu4 -j "$1" -N4 "$bz" | tr -d ' '; }
u8() { od -An -tu1 -j "$1" -N1 "$bz" | tr -d ' '; }
(($(u16 0x206) >= 0x208)) || { echo "extract-vmlinux: $bz: boot protocol older than 2.08 has no payload fields" >&2; exit 1; }
setup=$(u8 0x1f1)
((setup > 0)) || setup=4 # 0 means the historical default of 4
start=$(((setup + 1) * 512 + $(u32 0x248)))
mkdir -p "$(dirname "$out")"
# Under a temp name first: tests run in parallel.
tmp="$out.$$.tmp"
dd if="$bz" iflag=skip_bytes,count_bytes skip="$start" count="$(u32 0x24c)" bs=1M status=none | xz -dc --single-stream >"$tmp"
[ "$(head -c 4 "$tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] || { rm -f "$tmp"; echo "extract-vmlinux: $bz: the payload is not an xz-compressed ELF" >&2; exit 1; }
mv "$tmp" "$out"
echo "$out"
