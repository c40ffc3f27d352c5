/** Translates a VM spec into cloud-hypervisor's VmConfig for `vm.create`. */
import type { VmSpec } from "../rpc/schemas.js";
import type { VmPaths } from "../state/vm-paths.js";
import type { ChVmConfig } from "./client.js";

const MiB = 1024 * 1024;

export function toChVmConfig(spec: VmSpec, paths: VmPaths): ChVmConfig {
  const payload =
    "kernel" in spec.boot ? { kernel: spec.boot.kernel, initramfs: spec.boot.initramfs, cmdline: spec.boot.cmdline } : { firmware: spec.boot.firmware };
  return {
    payload,
    cpus: { boot_vcpus: spec.vcpus, max_vcpus: spec.vcpus },
    memory: { size: spec.memory_mib * MiB },
    disks: spec.disks?.map((d) => ({ path: d.path, readonly: d.readonly ?? false })),
    net: spec.nets?.map((n) => ({ tap: n.tap, mac: n.mac })),
    rng: { src: "/dev/urandom" },
    // The daemon is the serial socket's only client and serves viewers itself (console/).
    serial: { mode: "Socket", socket: paths.serialSocket },
    // CH defaults the virtio console to Tty (its stdout): keep guests off the VMM's stdout.
    console: { mode: "Off" },
  };
}
