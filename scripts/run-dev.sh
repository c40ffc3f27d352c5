#!/usr/bin/env bash
# Runs my_hypervisor-daemon in the foreground with the test VMM (cloud-hypervisor-sim) and the two
# reference siblings (my_hypervisor-netd, my_hypervisor-vold), everything under one directory
# (default ./.run), and prints how to talk to it. netd runs in a network namespace of its own, so its
# bridges and taps never touch this host's interfaces (it needs root; without root it is left out).
set -euo pipefail
cd "$(dirname "$0")/.."
run_dir=$(realpath -m "${1:-.run}")
mkdir -p "$run_dir"
# The test VMM boots my_hypervisor-init instead of a kernel; any readable file passes for one.
kernel="$run_dir/vmlinux"
[ -f "$kernel" ] || echo "placeholder kernel for cloud-hypervisor-sim" >"$kernel"
sock="$run_dir/rpc.sock"

# As root, each VMM runs under a uid of its own (ADR 0009): it must reach the test VMM, the init and the kernel,
# so every directory above them must let others through. A checkout under a private home (/root is 0700) does
# not: VMMs then run as root, and this says so.
vmm_flags=()
if [ "$(id -u)" = 0 ]; then
  private=""
  for d in "$PWD" "$run_dir"; do
    while [ "$d" != / ]; do
      [ "$(( $(stat -c %a "$d" | tail -c 2 | head -c 1) & 1 ))" = 1 ] || private="$d"
      d=$(dirname "$d")
    done
  done
  if [ -n "$private" ]; then
    echo "($private is closed to other users: VMMs run as root here; clone elsewhere (/srv, /tmp) to run them under their own uids)"
    vmm_flags=(--vmm-uid-range off)
  else
    chmod 0711 "$run_dir"
    # The jailed test VMM must see the checkout: its own modules and the guest init it runs.
    vmm_flags=(--vmm-dir "$run_dir/vmm" --vmm-jail-bind "$PWD")
  fi
fi

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
sibling_flags=()
node packages/siblings/dist/vold.js --socket "$run_dir/vold.sock" --state-dir "$run_dir/vold" --dir "$run_dir/volumes" &
pids+=($!)
sibling_flags+=(--vol-socket "$run_dir/vold.sock")
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
  unshare --net node packages/siblings/dist/netd.js --socket "$run_dir/netd.sock" --state-dir "$run_dir/netd" &
  pids+=($!)
  sibling_flags+=(--net-socket "$run_dir/netd.sock")
  net_example=',"nets":[{"network":"lan"}]'
else
  echo "(not root: my_hypervisor-netd is left out; VMs can use volumes but not networks by name)"
  net_example=''
fi
for s in "$run_dir/vold.sock" ${net_example:+"$run_dir/netd.sock"}; do
  for _ in $(seq 1 100); do [ -S "$s" ] && break; sleep 0.05; done
done

cat <<MSG
my_hypervisor-daemon with the test VMM and the reference siblings; state in $run_dir. Ctrl-C stops the
daemon and the siblings (VMs keep running). Talk to it from another terminal with socat
(apt-get install socat), one JSON-RPC message per line:

  call() { echo "\$1" | socat -t 60 - UNIX-CONNECT:$sock; }
  call '{"jsonrpc":"2.0","id":1,"method":"compute.vm.create","params":{"id":"vm1","vcpus":1,"memory_mib":256,"boot":{"kernel":"$kernel"},"hostname":"vm1","workload":{"argv":["sh","-c","echo hello; sleep 3600"]},"disks":[{"volume":"data","size_mib":64}]${net_example}}}'
  call '{"jsonrpc":"2.0","id":2,"method":"compute.vm.start","params":{"id":"vm1"}}'
  call '{"jsonrpc":"2.0","id":3,"method":"compute.vm.exec","params":{"id":"vm1","argv":["uname","-a"]}}'
  call '{"jsonrpc":"2.0","id":4,"method":"compute.vm.status","params":{"id":"vm1"}}'
  call '{"jsonrpc":"2.0","id":4,"method":"compute.vm.stats","params":{"id":"vm1"}}'
  call '{"jsonrpc":"2.0","id":4,"method":"compute.vm.snapshot","params":{"id":"vm1","name":"before"}}'   # pauses, snapshots, resumes
  call '{"jsonrpc":"2.0","id":4,"method":"compute.vm.pause","params":{"id":"vm1"}}'   # then compute.vm.resume
  call '{"jsonrpc":"2.0","id":5,"method":"compute.vm.console.endpoint","params":{"id":"vm1"}}'   # then: socat - UNIX-CONNECT:<path>
  call '{"jsonrpc":"2.0","id":6,"method":"compute.vm.logs","params":{"id":"vm1","tail":2000}}'
  call '{"jsonrpc":"2.0","id":7,"method":"compute.vm.events.tail","params":{"wait_ms":30000}}'
  call '{"jsonrpc":"2.0","id":8,"method":"compute.vm.stop","params":{"id":"vm1"}}'
  call '{"jsonrpc":"2.0","id":9,"method":"compute.vm.remove","params":{"id":"vm1"}}'
  call '{"jsonrpc":"2.0","id":10,"method":"rpc.discover"}'

(--allow-unenforced-limits: where this host cannot give each VM a cgroup v2 with its limits, the
daemon says so in its log and in compute.host.info, and starts VMs anyway.)
MSG
packages/daemon/dist/my_hypervisor-daemon.mjs \
  --rpc-socket "$sock" \
  --state-dir "$run_dir/state" \
  --console-dir "$run_dir/console" \
  --cloud-hypervisor "$PWD/packages/ch-sim/dist/main.js" \
  --allow-unenforced-limits \
  "${sibling_flags[@]}" "${vmm_flags[@]}"
