/** Translates a VM spec into cloud-hypervisor's VmConfig for `vm.create`. */
import { CONFIG_PARAM, encodeConfig } from "../exec/init-config.js";
import type { VmSpec } from "../rpc/schemas.js";
import type { VmPaths } from "../state/vm-paths.js";
import type { ChVmConfig } from "./client.js";

const MiB = 1024 * 1024;
/** The guest's vsock CID. Hybrid vsock is per VM, so every VM can use the first guest CID. */
const GUEST_CID = 3;

/** The kernel command line: the caller's, plus the guest init's configuration when there is any. */
export function kernelCmdline(spec: VmSpec): string | undefined {
  const base = "kernel" in spec.boot ? spec.boot.cmdline : undefined;
  if (spec.workload === undefined && spec.hostname === undefined) return base;
  const config = encodeConfig({ workload: spec.workload, hostname: spec.hostname });
  return [base, `${CONFIG_PARAM}=${config}`].filter(Boolean).join(" ");
}

export function toChVmConfig(spec: VmSpec, paths: VmPaths): ChVmConfig {
  const payload =
    "kernel" in spec.boot ? { kernel: spec.boot.kernel, initramfs: spec.boot.initramfs, cmdline: kernelCmdline(spec) } : { firmware: spec.boot.firmware };
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
    // Exec reaches my_hypervisor-init's agent through CH's hybrid vsock on this socket.
    vsock: { cid: GUEST_CID, socket: paths.vsockSocket },
  };
}
