#!/usr/bin/env bash
# Prints the path of the real cloud-hypervisor the tests run on (packages/ch-sim/test/real-ch.ts), or nothing:
#   - ../shared/cloud-hypervisor/cloud-hypervisor beside the checkout, once it matches its SHA256SUMS.bin;
#   - else, where only the source is there, what its build.sh builds into .run/ (cargo; about 4 minutes, once);
#   - else nothing, saying on stderr that the real-binary tests will skip (a clone without ../shared).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared="$(cd "$root/.." && pwd)/shared/cloud-hypervisor"
if [ -f "$shared/cloud-hypervisor" ]; then
  if ! (cd "$shared" && sha256sum --quiet -c SHA256SUMS.bin) >&2; then
    echo "real-cloud-hypervisor: $shared/cloud-hypervisor does not match its SHA256SUMS.bin" >&2
    exit 1
  fi
  echo "$shared/cloud-hypervisor"
elif [ -x "$shared/build.sh" ]; then
  echo "real-cloud-hypervisor: building it from the source in $shared" >&2
  "$shared/build.sh" "$root/.run/cloud-hypervisor-v53.0" | tail -1
else
  echo "real-cloud-hypervisor: no $shared beside this checkout; the tests on the real binary will skip" >&2
fi
