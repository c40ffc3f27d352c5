/**
 * Picking VMs up again when the daemon starts: the records a previous daemon left (an unreadable one kept as a
 * Failed VM, its file as found), each VMM re-adopted as it is found (running, paused, gone, halfway through a stop
 * or a snapshot), provisioning a crash cut short given back, and the re-adopted VMMs' consoles, event tails and agent
 * probes re-attached once the socket accepts. The orchestrator lends its registry, queue and transitions.
 */
import type { Logger } from "pino";
import type { VmSpec } from "../domain/vm-spec.js";
import { failpoint } from "../failpoints.js";
import type { LifecycleEvent } from "../lifecycle/machine.js";
import type { StateStore } from "../state/store.js";
import type { VmPaths } from "../state/vm-paths.js";
import { type Adoption, adoptRecord } from "./adoption.js";
import { entryFromRecord, unreadableEntry, type VmEntry } from "./vm-entry.js";
import type { VmRecords, Write } from "./vm-records.js";
import type { VmServices } from "./vm-services.js";
import { sweepSnapshots } from "./vm-snapshots.js";
import { haltVmm, type RunningVmm } from "./vmm-control.js";

/** Re-adopted VMMs whose services are re-attached per turn of the event loop, so RPC calls are answered in between. */
const ATTACH_BATCH = 16;

/** What the orchestrator lends. */
export interface LoadingContext {
  store: StateStore;
  records: VmRecords;
  /** The registry loading fills. */
  vms: Map<string, VmEntry>;
  pathsFor(id: string, recordedApiSocket?: string): VmPaths;
  openServices(id: string, paths: VmPaths): Promise<VmServices>;
  /** Marks a uid from a record as taken (VMMs under uids of their own). */
  holdUid(uid: number): void;
  /** The uid of the range that owns a VM's VMM directory, if any. */
  vmmDirUid(id: string): number | undefined;
  serialize<T>(id: string, op: (vm: VmEntry) => Promise<T>): Promise<T>;
  transition(vm: VmEntry, event: LifecycleEvent, write?: Write): Promise<void>;
  /** Checks a VMM runs under its VM's uid and in its cgroup (and says so where not). */
  checkConfinement(vm: VmEntry, what: string): Promise<void>;
  /** A snapshot the restart interrupted: dropped, and the guest left as CH has it. */
  abandonSnapshot(vm: VmEntry, adoption: Adoption & { kind: "running" }): Promise<void>;
  watchExit(vm: VmEntry, vmm: RunningVmm): void;
  vmmGone(vm: VmEntry): Promise<void>;
  release(vm: VmEntry, spec: VmSpec): Promise<number>;
  log: Logger;
}

export class VmLoading {
  /** VMMs re-adopted by load() whose console, event tail and agent probe wait for attachAdopted(). */
  private awaitingServices: [VmEntry, RunningVmm][] = [];

  constructor(private readonly ctx: LoadingContext) {}

  /** Every record into the registry, each VMM re-adopted: `list` and `status` are right once this returns. */
  async load(): Promise<void> {
    const { ctx } = this;
    const finished = await ctx.store.emptyTrash();
    if (finished.length > 0) ctx.log.info({ dirs: finished }, "finished interrupted removals");
    const { records, unreadable, notes } = await ctx.store.loadAll();
    ctx.records.logLoadNotes(notes);
    for (const bad of unreadable) {
      ctx.log.error({ vm: bad.id, err: bad.error }, "cannot read VM record; the VM is Failed and its file kept as found");
      const paths = ctx.pathsFor(bad.id);
      const vm = unreadableEntry(bad.id, bad.error, paths, await ctx.openServices(bad.id, paths));
      // Its uid, as its VMM directory says: held, so no other VM gets it while its VMM may run, and reclaimed at remove.
      vm.vmmUid = ctx.vmmDirUid(bad.id);
      if (vm.vmmUid !== undefined) ctx.holdUid(vm.vmmUid);
      ctx.vms.set(bad.id, vm);
    }
    await Promise.all(
      records.map(async ({ record, migrated }) => {
        // A running VMM's files stay where it made them, whichever way this daemon runs VMMs now.
        const paths = ctx.pathsFor(record.id, record.vmm?.api_socket);
        if (record.vmm_uid !== undefined) ctx.holdUid(record.vmm_uid);
        const vm = entryFromRecord(record, paths, await ctx.openServices(record.id, paths));
        ctx.vms.set(vm.id, vm);
        const stray = await sweepSnapshots(vm.paths, vm.snapshots);
        if (stray.length > 0) ctx.log.warn({ vm: vm.id, removed: stray }, "removed snapshot directories no record lists (cut short by a crash)");
        await this.applyAdoption(vm, await adoptRecord(record, vm.paths));
        // A restart cut provisioning short: give back whatever the siblings handed out, recorded or not.
        if (record.state === "Provisioning") await ctx.release(vm, record.spec);
        if (migrated) {
          ctx.log.info({ vm: vm.id }, "state.json migrated from version 1 to 2");
          await ctx.records.write(vm, "lazy");
        }
      }),
    );
  }

  /**
   * Re-attaches consoles, event tails and agent probes of the VMMs load() adopted. Called once the RPC socket
   * accepts, so that `list` answers with every VM re-adopted without waiting for hundreds of reconnections. Nothing
   * is lost by the wait: event tails resume from their offset. A VM whose VMM went away meanwhile (stopped, exited)
   * is skipped.
   */
  attachAdopted(): void {
    const batch = this.awaitingServices.splice(0, ATTACH_BATCH);
    for (const [vm, vmm] of batch) if (vm.vmm === vmm && this.ctx.vms.get(vm.id) === vm) vm.services.vmmUp(vmm.process.pid);
    if (this.awaitingServices.length > 0) setImmediate(() => this.attachAdopted());
  }

  private async applyAdoption(vm: VmEntry, adoption: Adoption): Promise<void> {
    const { ctx } = this;
    if (adoption.kind === "unchanged") return;
    if (adoption.kind === "gone") return ctx.transition(vm, adoption.event);
    vm.vmm = adoption.vmm;
    this.awaitingServices.push([vm, adoption.vmm]);
    ctx.log.info({ vm: vm.id, pid: adoption.vmm.process.pid }, "re-adopted VMM");
    await ctx.checkConfinement(vm, "re-adopted VMM");
    if (adoption.kind === "finish-stop") {
      // The stop the restart interrupted goes on in the background, in the VM's queue.
      void ctx
        .serialize(vm.id, () => this.finishStop(vm, adoption.vmm))
        .catch((e) => ctx.log.error({ vm: vm.id, err: (e as Error).message }, "could not finish an interrupted stop"));
      return;
    }
    ctx.watchExit(vm, adoption.vmm);
    failpoint("adopt.identified");
    if (adoption.event) await ctx.transition(vm, adoption.event);
    if (vm.snapshotInProgress || vm.lifecycle.substate === "Snapshotting") await ctx.abandonSnapshot(vm, adoption);
    // What CH says now, not what the record said: a VM paused or resumed while the daemon was down.
    if (adoption.paused !== (vm.lifecycle.substate === "Paused"))
      await ctx.transition(vm, { type: adoption.paused ? "PAUSE" : "RESUME", reason: "found so by vm.info at re-adoption" });
  }

  private async finishStop(vm: VmEntry, vmm: RunningVmm): Promise<void> {
    const outcome = await haltVmm(vmm, vm.paths, 0, this.ctx.log.child({ vm: vm.id }));
    if (outcome === undefined) return this.ctx.transition(vm, { type: "STOP_FAILED", reason: `VMM pid ${vmm.process.pid} survived SIGKILL` });
    await this.ctx.vmmGone(vm);
    await this.ctx.transition(vm, { type: "STOPPED", reason: `stop finished after a daemon restart: ${outcome}` });
  }
}
