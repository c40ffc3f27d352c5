#!/usr/bin/env bash
# Builds my_hypervisor-init, the guest's PID 1: the TypeScript in packages/init/src bundled by
# esbuild into one ES module, compiled to bytecode by QuickJS's qjsc, and linked statically with
# musl against libquickjs and the init's C module (packages/init/native/mh.c).
# QuickJS is Debian's source package, fetched with apt through a private configuration (the
# system's sources are neither read nor changed), checked against the hash pinned below and built
# with Debian's musl-gcc; nothing of it is committed. Reproducible: the same inputs, the same bytes.
#   scripts/build-init.sh [-o OUT]      (default OUT: packages/init/dist/my_hypervisor-init)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/packages/init/dist/my_hypervisor-init"
while getopts "o:" opt; do
  case $opt in
    o) out=$OPTARG ;;
    *) echo "usage: $0 [-o OUT]" >&2; exit 2 ;;
  esac
done

# The one place the QuickJS input is named: Debian's version, the suite that carries it, and the
# SHA-256 of the upstream tarball (apt checks it against the signed index too).
QUICKJS_VERSION=2025.04.26-1
QUICKJS_SUITE=trixie
QUICKJS_ORIG_SHA256=ec81da5b3249ed648dbc7df4a1654988910e66a118d9b71cb63534216efcfbbe
upstream=${QUICKJS_VERSION%-*}
cache="$root/.run/quickjs-$QUICKJS_VERSION"
src="$cache/quickjs-$upstream"
say() { echo "build-init: $*" >&2; }

need_musl() {
  command -v musl-gcc >/dev/null && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing musl-tools (Debian's musl-gcc)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends musl-tools >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends musl-tools >/dev/null; }
  fi
  command -v musl-gcc >/dev/null || { say "musl-gcc is missing: install Debian's musl-tools (as root this script does)"; exit 1; }
}

fetch_quickjs() {
  [ -f "$src/quickjs.h" ] && return
  command -v apt-get >/dev/null || { say "apt-get is needed to fetch Debian's quickjs source package"; exit 1; }
  local apt="$cache/apt"
  rm -rf "$cache" && mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/sources.list.d"
  echo "deb-src http://deb.debian.org/debian $QUICKJS_SUITE main" >"$apt/sources.list"
  local opts=(-o "Dir::Etc::sourcelist=$apt/sources.list" -o "Dir::Etc::sourceparts=$apt/sources.list.d"
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=$(id -un)" -qq)
  say "fetching Debian's quickjs $QUICKJS_VERSION source ($QUICKJS_SUITE)"
  apt-get "${opts[@]}" update
  (cd "$cache" && apt-get "${opts[@]}" source --download-only "quickjs=$QUICKJS_VERSION") ||
    { say "could not fetch quickjs $QUICKJS_VERSION from Debian's $QUICKJS_SUITE; if the suite has moved on, pin its version and the tarball's SHA-256 at the top of this script"; exit 1; }
  local orig="$cache/quickjs_$upstream.orig.tar.xz"
  echo "$QUICKJS_ORIG_SHA256  $orig" | sha256sum -c --quiet - || { say "$orig does not match the pinned SHA-256"; exit 1; }
  tar -xJf "$orig" -C "$cache"
  rm -rf "$apt"
}

build_quickjs() {
  [ -f "$src/libquickjs.a" ] && [ -x "$src/qjsc" ] && return
  say "building QuickJS $upstream with musl-gcc"
  make -s -C "$src" -j"$(nproc)" CC=musl-gcc libquickjs.a qjsc >/dev/null
}

need_musl
fetch_quickjs
build_quickjs

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One ES module; QuickJS's os and std and our mh are the only imports left. The bundle is named
# by a relative path: it is recorded in the bytecode, and the build's location must not be.
"$root/node_modules/.bin/esbuild" "$root/packages/init/src/main.ts" --bundle --format=esm --platform=neutral \
  --target=es2022 --main-fields=module,main --external:os --external:std --external:mh \
  --log-level=warning --outfile="$work/init.js"
(cd "$work" && "$src/qjsc" -e -m -M mh,mh -o init.c init.js)
cflags=(-Os -ffunction-sections -fdata-sections -I"$src")
musl-gcc "${cflags[@]}" -Wall -Werror -c -o "$work/mh.o" "$root/packages/init/native/mh.c"
musl-gcc "${cflags[@]}" -static -Wl,--gc-sections -Wl,--build-id=none -o "$work/init" "$work/init.c" "$work/mh.o" "$src/libquickjs.a" -lm
strip --strip-all "$work/init"
mkdir -p "$(dirname "$out")"
install -m 0755 "$work/init" "$out.tmp"
mv "$out.tmp" "$out"
say "$out: $(stat -c %s "$out") bytes"
