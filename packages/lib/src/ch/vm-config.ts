/** Translates a VM spec into cloud-hypervisor's VmConfig for `vm.create`. */
import { CONFIG_PARAM, encodeConfig } from "../domain/guest-config.js";
import { type Resources, slotOf } from "../domain/resources.js";
import type { RateLimit, VmSpec } from "../domain/vm-spec.js";
import type { VmPaths } from "../state/vm-paths.js";
import type { ChVmConfig } from "./client.js";

type ChRateLimiter = NonNullable<NonNullable<ChVmConfig["disks"]>[number]["rate_limiter_config"]>;

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

/** `resources` resolves the spec's references: taps and MACs from the network sibling, paths from the volume sibling. */
export function toChVmConfig(spec: VmSpec, paths: VmPaths, resources: Resources): ChVmConfig {
  const payload =
    "kernel" in spec.boot ? { kernel: spec.boot.kernel, initramfs: spec.boot.initramfs, cmdline: kernelCmdline(spec) } : { firmware: spec.boot.firmware };
  return {
    payload,
    cpus: { boot_vcpus: spec.vcpus, max_vcpus: spec.vcpus, affinity: affinity(spec) },
    memory: { size: spec.memory_mib * MiB },
    disks: spec.disks && vmDisks(spec, resources).map((d) => ({ path: d.path, readonly: d.readonly, rate_limiter_config: rateLimiter(d.rate_limit) })),
    net: spec.nets?.map((n, i) => {
      const { tap, mac } = "tap" in n ? n : resolved(resources.nets, slotOf("net", i));
      return { tap, mac, rate_limiter_config: rateLimiter(n.rate_limit) };
    }),
    rng: { src: "/dev/urandom" },
    // The daemon is the serial socket's only client and serves viewers itself (console/).
    serial: { mode: "Socket", socket: paths.serialSocket },
    // CH defaults the virtio console to Tty (its stdout): keep guests off the VMM's stdout.
    console: { mode: "Off" },
    // Exec reaches my_hypervisor-init's agent through CH's hybrid vsock on this socket.
    vsock: { cid: GUEST_CID, socket: paths.vsockSocket },
    // CH confines itself to the paths in this config (kernel, disks, sockets, ...): nothing else on the host.
    landlock_enable: true,
  };
}

/** The VM's disks as files: a path given, or the one the volume sibling handed over. */
export function vmDisks(spec: VmSpec, resources: Resources): { path: string; readonly: boolean; rate_limit?: RateLimit }[] {
  return (spec.disks ?? []).map((d, i) => ({
    path: "path" in d ? d.path : resolved(resources.disks, slotOf("vol", i)).path,
    readonly: d.readonly ?? false,
    ...(d.rate_limit ? { rate_limit: d.rate_limit } : {}),
  }));
}

/** Every vCPU may run on the same host CPUs. */
function affinity(spec: VmSpec): { vcpu: number; host_cpus: number[] }[] | undefined {
  const cpus = spec.cpu_affinity;
  return cpus && Array.from({ length: spec.vcpus }, (_, vcpu) => ({ vcpu, host_cpus: [...cpus] }));
}

/** A per-second rate as CH's token bucket: one second's worth, refilled every 1000 ms. */
function rateLimiter(limit: RateLimit | undefined): ChRateLimiter | undefined {
  if (!limit) return undefined;
  const bucket = (perSecond: number | undefined) => (perSecond === undefined ? undefined : { size: perSecond, refill_time: 1000 });
  return { bandwidth: bucket(limit.bytes_per_s), ops: bucket(limit.ops_per_s) };
}

function resolved<T>(by: Record<string, T>, slot: string): T {
  const r = by[slot];
  if (!r) throw new Error(`${slot} has not been provisioned`);
  return r;
}
