/**
 * The reconcile sweep compares what the records say with what runs, and fixes
 * drift: a VMM process that no record owns (a start cut short by a crash, a
 * VM whose VMM was replaced), and API socket files left by VMMs that died.
 * A process counts as a VMM only if it runs the configured VMM binary
 * (ch/vmm-binary.ts): a wrapper that merely names the socket is never killed.
 * It runs at start-up, after adoption, and then periodically (ReconcileLoop),
 * with the steps the orchestrator adds: VMMs' uids and cgroups checked,
 * each running guest's substate held against vm.info, records written again,
 * releases retried.
 */
import fs from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { isVmmProcess, type VmmExecutable } from "../ch/vmm-binary.js";
import { findProcessesByArg, isAlive } from "../os/proc.js";
import type { VmEntry } from "./vm-entry.js";

export interface Drift {
  orphansKilled: number[];
  staleSockets: string[];
}

/** States in which an operation may be spawning or stopping a VMM: the sweep leaves those VMs alone. */
const BUSY = new Set(["Starting", "Stopping"]);

/**
 * `vmmRoots`: where VMMs' API sockets live, as `<root>/<id>/api.sock` (the
 * state dir, and the VMM dir when VMMs run under uids of their own).
 * `busy(id)`: an operation on the id runs or waits (a create may be about to
 * make the VM, a start to spawn its VMM): the sweep leaves that id alone.
 */
export async function reconcile(
  vmmRoots: string[],
  vms: ReadonlyMap<string, VmEntry>,
  vmm: VmmExecutable | undefined,
  busy: (id: string) => boolean,
  log: Logger,
): Promise<Drift> {
  const drift: Drift = { orphansKilled: [], staleSockets: [] };
  for (const root of vmmRoots) killOrphans(root, vms, vmm, busy, log, drift);
  for (const vm of vms.values()) {
    if (vm.vmm || BUSY.has(vm.lifecycle.state) || busy(vm.id)) continue;
    const removed = await fs.rm(vm.paths.apiSocket).then(
      () => true,
      () => false,
    );
    if (removed) {
      drift.staleSockets.push(vm.paths.apiSocket);
      log.info({ vm: vm.id, socket: path.basename(vm.paths.apiSocket) }, "removed a stale API socket");
    }
  }
  return drift;
}

/** Kills each process running the VMM binary for an API socket under `root` that no record owns. */
function killOrphans(
  root: string,
  vms: ReadonlyMap<string, VmEntry>,
  vmm: VmmExecutable | undefined,
  busy: (id: string) => boolean,
  log: Logger,
  drift: Drift,
): void {
  const apiArg = new RegExp(`^path=${escapeRegExp(root)}/([^/]+)/api\\.sock$`);
  for (const { identity, arg, argv } of findProcessesByArg(`path=${root}/`)) {
    const id = apiArg.exec(arg)?.[1];
    if (id === undefined || busy(id)) continue;
    if (!vmm || !isVmmProcess(identity.pid, vmm, argv)) {
      log.debug({ vm: id, pid: identity.pid, argv }, "a process names a VM's API socket but does not run the VMM binary; left alone");
      continue;
    }
    const vm = vms.get(id);
    if (vm?.unreadable) {
      log.warn({ vm: id, pid: identity.pid }, "a VMM runs for a VM whose record cannot be read; left running");
      continue;
    }
    if (vm && (BUSY.has(vm.lifecycle.state) || vm.vmm?.process.pid === identity.pid)) continue;
    // Re-check right before the signal: the pid must still be the process we found.
    if (!isAlive(identity)) continue;
    process.kill(identity.pid, "SIGKILL");
    drift.orphansKilled.push(identity.pid);
    log.warn({ vm: id, pid: identity.pid, state: vm?.lifecycle.state ?? "no record" }, "killed a VMM no record owns");
  }
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** A sweep's steps, in order, as the orchestrator lends them. */
export interface SweepSteps {
  fixDrift(): Promise<unknown>;
  checkConfinement(): Promise<unknown>;
  /** Each running VM's substate against what vm.info says. */
  checkSubstates(): Promise<unknown>;
  catchUpRecords(): Promise<unknown>;
  retryReleases(): Promise<unknown>;
  log: Logger;
}

/** Sweeps one at a time, each after the last: at start-up, every interval, on SIGHUP. A failing sweep is logged, never fatal. */
export class ReconcileLoop {
  private timer: NodeJS.Timeout | undefined;
  private last: Promise<unknown> = Promise.resolve();

  constructor(private readonly steps: SweepSteps) {}

  /** `afterAdoption`: every VMM's uid, cgroup and vm.info were just checked, and are not checked again. */
  run(opts: { afterAdoption: boolean } = { afterAdoption: false }): Promise<unknown> {
    const s = this.steps;
    this.last = this.last
      .then(() => s.fixDrift())
      .then(() => (opts.afterAdoption ? undefined : s.checkConfinement()))
      .then(() => (opts.afterAdoption ? undefined : s.checkSubstates()))
      .then(() => s.catchUpRecords())
      .then(() => s.retryReleases())
      .catch((e) => s.log.error({ err: (e as Error).message }, "reconcile sweep failed"));
    return this.last;
  }

  every(ms: number): void {
    this.timer = setInterval(() => void this.run(), ms).unref();
  }

  /** No more sweeps; resolves once the one under way ends. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.last;
  }
}
