#!/usr/bin/env bash
# Installs, from Debian's packages, what the guest-image tests need: QEMU (software emulation),
# a Debian kernel to boot, busybox (the guest's shell tools) and cpio. Needs root and apt;
# without them it says so and exits 0, and the tests that need these skip with the reason.
set -euo pipefail
packages=(qemu-system-x86 linux-image-amd64 busybox-static cpio xz-utils)
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
compgen -G "/boot/vmlinuz-*" >/dev/null || missing+=(linux-image-amd64)
[ -x /bin/busybox ] || missing+=(busybox-static)
command -v cpio >/dev/null || missing+=(cpio)
# xz: the tests boot the kernel's uncompressed vmlinux, extracted from the bzImage.
command -v xz >/dev/null || missing+=(xz-utils)
if [ ${#missing[@]} -eq 0 ]; then
  echo "guest test dependencies present: ${packages[*]}"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "not installing ${missing[*]}: needs root and apt-get; the guest image tests will skip"
  exit 0
fi
echo "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
