#!/usr/bin/env bash
# Builds a guest kernel for `make test-kvm`: cloud-hypervisor's Linux branch with its ch_defconfig (virtio-vsock built
# in, so the guest init's exec agent is reachable), as the ELF vmlinux CH boots through its PVH entry. Prints its path
# last; a finished build is reused (the KVM workflow caches OUT_DIR).
#   scripts/build-guest-kernel.sh BRANCH OUT_DIR       (BRANCH: e.g. ch-6.12.8)
# Needs git, make, gcc, flex, bison, bc, libelf and libssl headers; about 15 minutes on 4 cores.
set -euo pipefail
branch=${1:?usage: $0 BRANCH OUT_DIR}
out=${2:?usage: $0 BRANCH OUT_DIR}
if [ -f "$out/vmlinux" ]; then echo "$out/vmlinux"; exit 0; fi
src="$out/src"
rm -rf "$src"
mkdir -p "$out"
git clone --quiet --depth 1 --branch "$branch" https://github.com/cloud-hypervisor/linux.git "$src"
make -C "$src" --quiet ch_defconfig
grep -q '^CONFIG_VIRTIO_VSOCKETS=y' "$src/.config" || { echo "build-guest-kernel: $branch's ch_defconfig does not build virtio-vsock in" >&2; exit 1; }
# Without the .note.gnu.property section newer binutils add, CH's loader finds the PVH note (CH's docs do the same).
KCFLAGS="-Wa,-mx86-used-note=no" make -C "$src" --quiet -j"$(nproc)" vmlinux >&2
cp "$src/vmlinux" "$out/vmlinux.tmp" && mv "$out/vmlinux.tmp" "$out/vmlinux"
rm -rf "$src"
echo "$out/vmlinux"
