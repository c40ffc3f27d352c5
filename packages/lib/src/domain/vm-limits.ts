/**
 * The host limits a VM is held to (ADR 0009), derived from its spec and
 * written once here: the cgroup v2 settings the daemon writes, and what
 * `status` shows. The cluster manager sized the VM; these keep one VM's
 * VMM from taking more than that size plus what CH itself needs.
 */
import { type Static, Type } from "@sinclair/typebox";
import type { VmSpec } from "./vm-spec.js";

const MiB = 1024 * 1024;
/** cgroup v2's default CPU period. */
const CPU_PERIOD_US = 100_000;
/**
 * One CPU beyond the vCPUs: CH's device threads (virtio queues, the API and
 * event loops) run beside the vCPUs, and a quota of exactly vCPUs × period
 * starves them under load.
 */
const CPU_HEADROOM = 1;
/**
 * Memory beyond the guest's RAM: CH's own heap, virtio rings and the page
 * cache its disk I/O is charged for (a limit of exactly the guest RAM gets
 * CH OOM-killed, cloud-hypervisor #4536). Measured: a test-VMM VM's host
 * footprint beside its guest is 54 MiB (bench section 6); Firecracker's own
 * overhead is at most 5 MiB, peers report about 25 MB. 64 MiB plus 1/32 of
 * the RAM (for page tables and dirty-page tracking) covers all of these.
 */
const MEMORY_OVERHEAD_BYTES = 64 * MiB;
const memoryOverhead = (ramBytes: number) => MEMORY_OVERHEAD_BYTES + Math.ceil(ramBytes / 32);
/** Tasks (threads and processes): a VMM has vCPUs plus a few dozen threads; this stops a fork bomb, never a VMM. */
const PIDS_BASE = 128;

export const VmLimitsSchema = Type.Object(
  {
    cpu_quota_us: Type.Integer({ description: "cpu.max: CPU time per period, the vCPUs plus one CPU for CH's device threads" }),
    cpu_period_us: Type.Integer(),
    cpu_weight: Type.Integer({ description: "cpu.weight: 100 per vCPU (at most 10000), the VM's share when CPUs are contended" }),
    memory_max_bytes: Type.Integer({ description: "memory.max: the guest's RAM plus CH's overhead; the kernel OOM-kills within the VM's cgroup past it" }),
    memory_high_bytes: Type.Integer({ description: "memory.high: where the kernel starts reclaiming (page cache first), below memory.max" }),
    pids_max: Type.Integer({ description: "pids.max: tasks the VMM (and, under the test VMM, its guest) may have" }),
    cgroup: Type.Union([Type.String(), Type.Null()], {
      description: "The VMM's cgroup while it runs in one; null when no VMM runs, or when this host cannot enforce limits and the daemon was told to go on",
    }),
  },
  { title: "VmLimits", description: "What the host holds the VM to (ADR 0009)" },
);
export type VmLimits = Static<typeof VmLimitsSchema>;

export function vmLimits(spec: VmSpec): Omit<VmLimits, "cgroup"> {
  const ram = spec.memory_mib * MiB;
  const max = ram + memoryOverhead(ram);
  return {
    cpu_quota_us: (spec.vcpus + CPU_HEADROOM) * CPU_PERIOD_US,
    cpu_period_us: CPU_PERIOD_US,
    cpu_weight: Math.min(100 * spec.vcpus, 10_000),
    memory_max_bytes: max,
    memory_high_bytes: max - Math.floor(MEMORY_OVERHEAD_BYTES / 4),
    pids_max: PIDS_BASE + spec.vcpus,
  };
}

/** A per-second rate on a disk, as a VM spec gives it. */
export interface IoRate {
  bytes_per_s?: number;
  ops_per_s?: number;
}

/**
 * io.max for one whole block device: the sum of the rates of the VM's disks on it, in both directions; a kind no
 * disk there limits is "max". One line of the file.
 */
export function ioMaxLine(device: string, rates: IoRate[]): string {
  const sum = (key: keyof IoRate) => (rates.every((r) => r[key] !== undefined) ? String(rates.reduce((n, r) => n + (r[key] ?? 0), 0)) : "max");
  const [bps, iops] = [sum("bytes_per_s"), sum("ops_per_s")];
  return `${device} rbps=${bps} wbps=${bps} riops=${iops} wiops=${iops}`;
}

/** The cgroup v2 interface files and what each gets. */
export function cgroupSettings(limits: Omit<VmLimits, "cgroup">): [file: string, value: string][] {
  return [
    ["cpu.max", `${limits.cpu_quota_us} ${limits.cpu_period_us}`],
    ["cpu.weight", String(limits.cpu_weight)],
    ["memory.max", String(limits.memory_max_bytes)],
    ["memory.high", String(limits.memory_high_bytes)],
    ["pids.max", String(limits.pids_max)],
  ];
}
