/**
 * compute.host.info: what the host has (os/host-resources), which VMM binary
 * the daemon runs and whether it supports it, and what the VMs with a VMM
 * have committed of the host.
 */
import { ChApiError } from "../ch/client.js";
import type { VmmVersion } from "../ch/vmm-version.js";
import { type HostResources, readHostResources } from "../os/host-resources.js";
import type { CgroupSupport, VmCgroups } from "./vm-cgroups.js";
import type { VmEntry } from "./vm-entry.js";
import type { VmmUsers } from "./vmm-users.js";

const PING_TIMEOUT_MS = 2000;

export interface HostInfo extends HostResources {
  vmm: VmmVersion & {
    binary: string;
    /** A running VMM's own vmm.ping answer (build, version, compiled-in features); null while no VM runs. */
    ping: { build_version: string; version: string; features: string[] } | null;
  };
  /** What VMs whose VMM is up (starting, running, stopping) take of the host. */
  committed: { vms: number; vcpus: number; memory_mib: number };
  /** With --vmm-uid-range: the range, the VMM directory, and how many uids VMs hold; null while VMMs run as the daemon's user. */
  vmm_users: { first: number; last: number; dir: string; held: number } | null;
  /** Where VMs' cgroups are and which controllers they get, or why limits cannot be enforced here. */
  limits: CgroupSupport;
}

export async function hostInfo(
  vms: Iterable<VmEntry>,
  binary: string,
  version: VmmVersion,
  users: VmmUsers | undefined,
  cgroups: VmCgroups,
): Promise<HostInfo> {
  const withVmm = [...vms].filter((vm) => vm.vmm !== undefined && vm.spec !== null);
  const committed = { vms: withVmm.length, vcpus: 0, memory_mib: 0 };
  for (const vm of withVmm) {
    committed.vcpus += vm.spec?.vcpus ?? 0;
    committed.memory_mib += vm.spec?.memory_mib ?? 0;
  }
  const vmmUsers = users ? { first: users.config.first, last: users.config.last, dir: users.config.dir, held: users.inUse } : null;
  return { ...readHostResources(), vmm: { binary, ...version, ping: await pingAny(withVmm) }, committed, vmm_users: vmmUsers, limits: cgroups.support };
}

/** Asks the running VMMs in turn until one answers: the binary's features are compiled in, so any one will do. */
async function pingAny(vms: VmEntry[]): Promise<HostInfo["vmm"]["ping"]> {
  for (const vm of vms) {
    try {
      const p = await vm.vmm?.client.ping(PING_TIMEOUT_MS);
      if (p) return { build_version: p.build_version ?? "", version: p.version, features: p.features ?? [] };
    } catch (e) {
      if (!(e instanceof ChApiError)) throw e;
      // That VMM is busy or going away: try the next.
    }
  }
  return null;
}
