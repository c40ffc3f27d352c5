#!/usr/bin/env bash
# Runs my_hypervisor-daemon in the foreground with the test VMM (cloud-hypervisor-sim),
# everything under one directory (default ./.run), and prints how to talk to it.
set -euo pipefail
cd "$(dirname "$0")/.."
run_dir=$(realpath -m "${1:-.run}")
mkdir -p "$run_dir"
# The test VMM runs no guest code; any readable file passes for a kernel.
kernel="$run_dir/vmlinux"
[ -f "$kernel" ] || echo "placeholder kernel for cloud-hypervisor-sim" >"$kernel"
sock="$run_dir/rpc.sock"

cat <<MSG
my_hypervisor-daemon with the test VMM; state in $run_dir/state. Ctrl-C stops the daemon (VMs keep running).
Talk to it from another terminal with socat (apt-get install socat), one JSON-RPC message per line:

  call() { echo "\$1" | socat -t 30 - UNIX-CONNECT:$sock; }
  call '{"jsonrpc":"2.0","id":1,"method":"compute.vm.create","params":{"id":"vm1","vcpus":1,"memory_mib":256,"boot":{"kernel":"$kernel"}}}'
  call '{"jsonrpc":"2.0","id":2,"method":"compute.vm.start","params":{"id":"vm1"}}'
  call '{"jsonrpc":"2.0","id":3,"method":"compute.vm.list","params":{}}'
  call '{"jsonrpc":"2.0","id":4,"method":"compute.vm.stop","params":{"id":"vm1"}}'
  call '{"jsonrpc":"2.0","id":5,"method":"compute.vm.remove","params":{"id":"vm1"}}'
  call '{"jsonrpc":"2.0","id":6,"method":"rpc.discover"}'
  call '{"jsonrpc":"2.0","id":7,"method":"compute.vm.console.endpoint","params":{"id":"vm1"}}'   # then: socat - UNIX-CONNECT:<path>
  call '{"jsonrpc":"2.0","id":8,"method":"compute.vm.logs","params":{"id":"vm1","tail":2000}}'
  call '{"jsonrpc":"2.0","id":9,"method":"compute.vm.events.tail","params":{"wait_ms":30000}}'

MSG
exec node packages/daemon/dist/main.js \
  --rpc-socket "$sock" \
  --state-dir "$run_dir/state" \
  --console-dir "$run_dir/console" \
  --cloud-hypervisor "$PWD/packages/ch-sim/dist/main.js"
