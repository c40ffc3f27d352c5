#!/usr/bin/env bash
# Installs what `make build` built under a prefix (default /usr/local), as a host runs it:
#   PREFIX/lib/my_hypervisor/    the daemon and the reference siblings, each one bundled file (Node 20 runs them),
#                                the one package they load beside them (koffi, an FFI with a native module: it reads
#                                the RPC callers' credentials), and my_hypervisor-init, the guest's PID 1 (for guest images)
#   PREFIX/bin/                  my_hypervisor-daemon, my_hypervisor-netd, my_hypervisor-vold
#   PREFIX/lib/systemd/system/   the units (packaging/systemd), with PREFIX's paths in them
#   PREFIX/share/doc/my_hypervisor/  the docs the units and --help point to
# DESTDIR stages it elsewhere (for a package): the files go under DESTDIR, the paths in them name PREFIX.
#   scripts/install.sh [PREFIX]        (or PREFIX=... DESTDIR=... in the environment)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:-${PREFIX:-/usr/local}}
dest=${DESTDIR:-}
case $prefix in /*) ;; *) echo "install: PREFIX must be an absolute path, not '$prefix'" >&2; exit 2 ;; esac
for f in packages/daemon/dist/my_hypervisor-daemon.mjs packages/siblings/dist/netd.js packages/siblings/dist/vold.js packages/init/dist/my_hypervisor-init; do
  [ -e "$root/$f" ] || { echo "install: $f is missing; run make build first" >&2; exit 1; }
done
lib=$dest$prefix/lib/my_hypervisor
bin=$dest$prefix/bin
units=$dest$prefix/lib/systemd/system
doc=$dest$prefix/share/doc/my_hypervisor
install -d -m 0755 "$lib" "$bin" "$units" "$doc"

install -m 0755 "$root/packages/daemon/dist/my_hypervisor-daemon.mjs" "$lib/my_hypervisor-daemon.mjs"
# The siblings as single files too.
for s in netd vold; do
  "$root/node_modules/.bin/esbuild" "$root/packages/siblings/dist/$s.js" --bundle --platform=node --target=node20 --format=esm --external:koffi \
    --banner:js="import { createRequire as __bundleCreateRequire } from 'node:module'; const require = __bundleCreateRequire(import.meta.url);" \
    --log-level=warning --outfile="$lib/my_hypervisor-$s.mjs"
  chmod 0755 "$lib/my_hypervisor-$s.mjs"
done
install -m 0755 "$root/packages/init/dist/my_hypervisor-init" "$lib/my_hypervisor-init"
# koffi stays outside the bundles (its loader finds its native module by path): it and this platform's binaries.
rm -rf "$lib/node_modules"
install -d -m 0755 "$lib/node_modules/@koromix"
cp -R "$root/node_modules/koffi" "$lib/node_modules/koffi"
cp -R "$root/node_modules/@koromix/koffi-$(node -p 'process.platform + "-" + process.arch')" "$lib/node_modules/@koromix/"
# The daemon's bundle runs itself (its #! line carries its node flags); the siblings' through node.
printf '#!/bin/sh\nexec %s "$@"\n' "$prefix/lib/my_hypervisor/my_hypervisor-daemon.mjs" >"$bin/my_hypervisor-daemon"
for s in netd vold; do printf '#!/bin/sh\nexec node %s "$@"\n' "$prefix/lib/my_hypervisor/my_hypervisor-$s.mjs" >"$bin/my_hypervisor-$s"; done
chmod 0755 "$bin"/my_hypervisor-*
for u in "$root"/packaging/systemd/*; do
  sed "s|@BINDIR@|$prefix/bin|g; s|@DOCDIR@|$prefix/share/doc/my_hypervisor|g" "$u" >"$units/$(basename "$u")"
  chmod 0644 "$units/$(basename "$u")"
done
install -m 0644 "$root/README.md" "$root"/docs/*.md "$doc/"
echo "installed under $dest$prefix: systemctl daemon-reload && systemctl enable --now my_hypervisor.socket my_hypervisor.service"
