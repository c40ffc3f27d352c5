/**
 * Everything that confines a VM's VMM (ADR 0009), in one place for the
 * orchestrator: its uid and jail (vmm-users.ts), its cgroup (vm-cgroups.ts).
 * Before a start, how to launch it; while it runs, the check that it is
 * still confined as it should be (re-adoption, every reconcile sweep); once
 * it is gone, its cgroup removed.
 */
import type { Logger } from "pino";
import { vmDisks } from "../ch/vm-config.js";
import type { VmmExecutable } from "../ch/vmm-binary.js";
import type { RpcError } from "../domain/errors.js";
import type { VmSpec } from "../domain/vm-spec.js";
import type { VmPaths } from "../state/vm-paths.js";
import type { VmCgroups } from "./vm-cgroups.js";
import type { VmEntry } from "./vm-entry.js";
import type { VmServices } from "./vm-services.js";
import type { VmmLaunch } from "./vmm-control.js";
import { ownedDir, type VmmUsers, wrongUid } from "./vmm-users.js";

export class VmmConfinement {
  constructor(
    private readonly vmm: { binary: string; executable: VmmExecutable | undefined },
    readonly users: VmmUsers | undefined,
    readonly cgroups: VmCgroups,
    private readonly stateDir: string,
    private readonly log: Logger,
  ) {}

  /** Why this VM cannot be started here at all (limits this host cannot enforce); checked before anything changes. */
  refusal(id: string): RpcError | undefined {
    return this.cgroups.refusal(id);
  }

  /** Before a start: the VM's uid, directory and jail ready, its cgroup made with its limits; how to spawn its VMM. */
  async launchFor(vm: VmEntry, reopen: (paths: VmPaths) => Promise<VmServices>): Promise<VmmLaunch> {
    const confined = await this.users?.readyFor(vm, this.stateDir, reopen);
    // CH writes snapshots there and reads them back: the VMM's own, and shown in its jail.
    await ownedDir(vm.paths.snapshots, vm.vmmUid);
    const cgroup = await this.cgroups.prepare(vm.id, vm.spec as VmSpec, vmDisks(vm.spec as VmSpec, vm.resources));
    return { ...this.vmm, ...confined, cgroup };
  }

  /** The running VMM's cgroup, where VMs get one. */
  cgroupOf(vm: VmEntry): string | undefined {
    return vm.vmm ? this.cgroups.dirOf(vm.id) : undefined;
  }

  /**
   * A running VMM under another uid than its VM's is said (it is left running: the guest goes on); one outside its
   * cgroup, or with a limit changed, is put back and said.
   */
  async check(vm: VmEntry, who: string): Promise<void> {
    const pid = vm.vmm?.process.pid;
    if (pid === undefined || !vm.spec) return;
    const wrong = wrongUid(vm.vmmUid, pid, this.users);
    if (wrong) this.log.error({ vm: vm.id, pid, ...wrong }, `${who} runs under another uid than its VM's`);
    try {
      const fixed = await this.cgroups.check(vm.id, pid, vm.spec, vmDisks(vm.spec, vm.resources));
      if (fixed.length > 0) this.log.warn({ vm: vm.id, pid, fixed }, `${who} was not in its cgroup as it should be; corrected`);
    } catch (e) {
      this.log.error({ vm: vm.id, pid, err: (e as Error).message }, `cannot check the cgroup of a ${who}`);
    }
  }

  /** The VMM is gone: its cgroup goes too (a leftover is reused by the next start). */
  async vmmGone(id: string): Promise<void> {
    await this.cgroups.remove(id).catch((e) => this.log.warn({ vm: id, err: (e as Error).message }, "cannot remove the VM's cgroup"));
  }
}
