/**
 * What can be done to a running VM's guest, beside starting and stopping it:
 * commands through its exec agent, and through its VMM (issue 15) pause,
 * resume and reboot, and snapshots (taken of a paused guest, kept under the
 * VM's state dir, listed only once complete and recorded). The orchestrator hands over its queue and its transitions;
 * each operation asks the lifecycle machine first (requireEvent): the machine alone decides what may happen.
 */
import type { Logger } from "pino";
import { ChApiError, type ChClient } from "../ch/client.js";
import { ErrorCode, invalidParams, invalidState, RpcError, snapshotNotFound } from "../domain/errors.js";
import type { ExecRequest } from "../domain/exec-protocol.js";
import type { VmStats } from "../domain/vm-stats.js";
import type { VmStatus } from "../domain/vm-status.js";
import type { ExecResult } from "../exec/exec-client.js";
import { execStreamSocket } from "../exec/exec-stream.js";
import { syncGuest } from "../exec/guest-sync.js";
import { failpoint } from "../failpoints.js";
import type { LifecycleEvent } from "../lifecycle/machine.js";
import type { SnapshotInfo } from "../state/record.js";
import type { Adoption } from "./adoption.js";
import { DEFAULT_EXEC_TIMEOUT_MS, execInGuest, execStreamInGuest } from "./guest-exec.js";
import { chCallError } from "./start-error.js";
import { requireEvent, type VmEntry, vsockOf } from "./vm-entry.js";
import type { Write } from "./vm-records.js";
import { commitSnapshot, prepareSnapshot, removeSnapshot, sweepSnapshots, UntrustedSnapshotError } from "./vm-snapshots.js";
import { readVmStats } from "./vm-stats.js";
import type { RunningVmm } from "./vmm-control.js";

/** CH writes the guest's whole memory: a large VM on a slow disk takes minutes. */
export const DEFAULT_SNAPSHOT_TIMEOUT_MS = 300_000;

/** What the orchestrator lends: its per-VM queue, transitions and records. */
export interface VmOpsContext {
  serialize<T>(id: string, op: (vm: VmEntry) => Promise<T>): Promise<T>;
  get(id: string): VmEntry;
  transition(vm: VmEntry, event: LifecycleEvent, write?: Write): Promise<void>;
  writeRecord(vm: VmEntry, write: "required" | "lazy"): Promise<void>;
  statusOf(vm: VmEntry): VmStatus;
  log: Logger;
  /** Where streamed exec sockets go, beside the console sockets. */
  consoleDir: string;
  /** The running VMM's cgroup, where VMs get one. */
  cgroupOf(vm: VmEntry): string | undefined;
}

/** How long a sync may wait for the agent: a restored guest's init starts over. */
const SYNC_WAIT_MS = 30_000;

/** How long vm.info may take when the daemon checks what CH says of the guest. */
const SUBSTATE_CHECK_MS = 2_000;

/** How long stats waits for CH's own counters: a busy VMM gives null ones rather than hold the call. */
const COUNTERS_TIMEOUT_MS = 2_000;

export class RunningVmOps {
  constructor(private readonly ctx: VmOpsContext) {}

  /**
   * CH's snapshot of the VM as `name` (issue 15): a running guest is paused for it and resumed after. Listed only
   * once complete on disk and recorded; on any failure nothing of it is kept and the guest runs again as it did.
   */
  snapshot(id: string, name: string, timeoutMs = DEFAULT_SNAPSHOT_TIMEOUT_MS): Promise<SnapshotInfo & { id: string }> {
    return this.ctx.serialize(id, async (vm) => {
      if (vm.snapshots.some((s) => s.name === name)) throw invalidParams("/name", `VM '${vm.id}' already has a snapshot '${name}'`, { id: vm.id, name });
      const wasActive = vm.lifecycle.substate === "Active";
      requireEvent(vm, wasActive ? "PAUSE" : "SNAPSHOT", "snapshot");
      const client = (vm.vmm as RunningVmm).client;
      const dir = await prepareSnapshot(vm.paths, vm.vmmUid);
      let info: SnapshotInfo;
      try {
        // Durable before the guest is touched: a restart that finds it knows the snapshot was cut short, and whether
        // the guest it paused must run again (issue 22: paused first, a crash in between left the guest paused).
        vm.snapshotInProgress = { name, resume: wasActive };
        await this.ctx.writeRecord(vm, "required");
        if (wasActive) {
          await client.pause();
          failpoint("snapshot.paused");
          await this.ctx.transition(vm, { type: "PAUSE", reason: `to take snapshot '${name}'` });
        }
        await this.ctx.transition(vm, { type: "SNAPSHOT", reason: name }, "required");
        await client.snapshot(dir, timeoutMs);
        failpoint("snapshot.taken");
        info = await commitSnapshot(vm.paths, name);
        vm.snapshots = [...vm.snapshots, info];
        // Still in progress while the guest it paused waits to run again: a crash before that resumes it at the restart.
        if (!wasActive) vm.snapshotInProgress = undefined;
        await this.ctx.transition(vm, { type: "SNAPSHOTTED", reason: `snapshot '${name}' taken` }, "required");
      } catch (e) {
        this.noAnswer(vm, e);
        vm.snapshots = vm.snapshots.filter((s) => s.name !== name);
        await removeSnapshot(vm.paths, name).catch((err) =>
          this.ctx.log.error({ vm: vm.id, name, err: (err as Error).message }, "cannot remove a failed snapshot"),
        );
        const error =
          e instanceof ChApiError
            ? chCallError(vm.id, "snapshot", e)
            : e instanceof UntrustedSnapshotError
              ? new RpcError(ErrorCode.VmmError, `snapshot of VM '${vm.id}' refused: ${e.message}; nothing of it was kept`, { id: vm.id })
              : (e as Error);
        const pausedByIt = wasActive && vm.lifecycle.substate !== "Active";
        if (!pausedByIt) vm.snapshotInProgress = undefined;
        if (vm.lifecycle.substate === "Snapshotting") await this.ctx.transition(vm, { type: "SNAPSHOT_FAILED", reason: error.message });
        else await this.ctx.writeRecord(vm, "lazy");
        if (pausedByIt) await this.resumeAfterSnapshot(vm, name);
        throw error;
      }
      if (wasActive) await this.resumeAfterSnapshot(vm, name);
      return { id: vm.id, ...info };
    });
  }

  /** A snapshot a restart cut short: nothing of it is kept (load swept its files), and a guest it paused runs again. */
  async abandonSnapshot(vm: VmEntry, adoption: Adoption & { kind: "running" }): Promise<void> {
    const cut = vm.snapshotInProgress;
    const resume = cut?.resume === true && adoption.paused;
    // Kept, when the guest must run again, until it does: a crash before that still knows it at the next restart.
    if (!resume) vm.snapshotInProgress = undefined;
    const reason = "the daemon restarted while the snapshot was taken; nothing of it was kept";
    // Cut short outside the snapshot itself (around the pause, before the resume), the VM is not Snapshotting.
    if (vm.lifecycle.substate === "Snapshotting") await this.ctx.transition(vm, { type: "SNAPSHOT_FAILED", reason });
    else await this.ctx.writeRecord(vm, "lazy");
    if (cut && resume) {
      await this.resumeAfterSnapshot(vm, cut.name);
      adoption.paused = vm.lifecycle.substate === "Paused";
    }
  }

  /**
   * The guest a snapshot paused runs again, and the snapshot is no longer in progress (recorded with the transition);
   * if CH refuses, the VM stays paused and says so.
   */
  private async resumeAfterSnapshot(vm: VmEntry, name: string): Promise<void> {
    try {
      await vm.vmm?.client.resume();
      vm.snapshotInProgress = undefined;
      await this.ctx.transition(vm, { type: "RESUME", reason: `snapshot '${name}' done` });
      this.syncGuestClock(vm, "resume");
    } catch (e) {
      this.ctx.log.error({ vm: vm.id, name, err: (e as Error).message }, "cannot resume the guest after its snapshot; it stays paused");
      vm.snapshotInProgress = undefined;
      await this.ctx.writeRecord(vm, "lazy");
    }
  }

  snapshots(id: string): { id: string; snapshots: SnapshotInfo[] } {
    const vm = this.ctx.get(id);
    return { id: vm.id, snapshots: vm.snapshots };
  }

  /** Unlisted first (durably), then its files: a crash in between leaves files the next load removes. */
  deleteSnapshot(id: string, name: string): Promise<{ id: string; name: string; deleted: true }> {
    return this.ctx.serialize(id, async (vm) => {
      if (!vm.snapshots.some((s) => s.name === name)) throw snapshotNotFound(vm.id, name);
      const before = vm.snapshots;
      vm.snapshots = before.filter((s) => s.name !== name);
      try {
        await this.ctx.writeRecord(vm, "required");
      } catch (e) {
        vm.snapshots = before;
        throw e;
      }
      await removeSnapshot(vm.paths, name);
      return { id: vm.id, name, deleted: true as const };
    });
  }

  /** CH holds the guest (vm.pause) or lets it run again (vm.resume); consoles and exec sessions stay attached. */
  pause(id: string): Promise<VmStatus> {
    return this.guestAction(id, "PAUSE", "pause", (c) => c.pause());
  }

  resume(id: string): Promise<VmStatus> {
    return this.guestAction(id, "RESUME", "resume", (c) => c.resume());
  }

  /** A guest reboot through CH: the console reconnects to the new serial device, the agent is probed again. */
  reboot(id: string): Promise<VmStatus> {
    return this.guestAction(id, "REBOOT", "reboot", async (c, vm) => {
      await c.reboot();
      vm.services.guestRebooted();
    });
  }

  /** One call to the running VMM that the machine allows in the VM's state, then its transition. */
  private guestAction(id: string, event: "PAUSE" | "RESUME" | "REBOOT", action: string, act: (c: ChClient, vm: VmEntry) => Promise<void>): Promise<VmStatus> {
    return this.ctx.serialize(id, async (vm) => {
      requireEvent(vm, event, action);
      try {
        await act((vm.vmm as RunningVmm).client, vm);
      } catch (e) {
        this.noAnswer(vm, e);
        throw e instanceof ChApiError ? chCallError(vm.id, action, e) : e;
      }
      await this.ctx.transition(vm, { type: event });
      if (event === "RESUME") this.syncGuestClock(vm, "resume");
      return this.ctx.statusOf(vm);
    });
  }

  /**
   * A call that timed out may still be carried out by CH: until vm.info says, whether the guest runs is unknown
   * (status shows it). Asked as soon as the VM's queue frees, and again by every reconcile sweep.
   */
  private noAnswer(vm: VmEntry, e: unknown): void {
    if (!(e instanceof ChApiError && e.timedOut)) return;
    vm.vmmStateUnknown = { after: e.call, since: new Date().toISOString() };
    this.ctx.log.warn({ vm: vm.id, call: e.call }, "the VMM did not answer in time; the guest's state is unknown until vm.info says");
    void this.ctx.serialize(vm.id, (v) => this.checkSubstate(v)).catch(() => undefined);
  }

  /** The reconcile sweep's step: every running VM that no operation holds, checked in its queue. */
  checkSubstates(vms: Iterable<VmEntry>, busy: (id: string) => boolean): Promise<unknown> {
    return Promise.all([...vms].filter((vm) => vm.vmm && !busy(vm.id)).map((vm) => this.ctx.serialize(vm.id, (v) => this.checkSubstate(v))));
  }

  /**
   * What CH says the guest is (vm.info) made the VM's substate: a pause or resume that CH carried out after its call
   * timed out, or one made behind the daemon's back. Also removes snapshot directories no snapshot in progress
   * explains (one CH went on writing after its call timed out). Run in the VM's queue, so no operation is under way.
   */
  private async checkSubstate(vm: VmEntry): Promise<void> {
    const vmm = vm.vmm;
    const substate = vm.lifecycle.substate;
    if (!vmm || vm.lifecycle.state !== "Running" || substate === "Snapshotting") return;
    const stray = await sweepSnapshots(vm.paths, vm.snapshots);
    if (stray.length > 0) this.ctx.log.warn({ vm: vm.id, removed: stray }, "removed snapshot directories no snapshot in progress explains");
    let state: string;
    try {
      state = (await vmm.client.info(SUBSTATE_CHECK_MS)).state;
    } catch (e) {
      return this.ctx.log.warn({ vm: vm.id, err: (e as Error).message }, "cannot learn the guest's state from vm.info");
    }
    vm.vmmStateUnknown = undefined;
    const found = state === "Paused" ? "Paused" : state === "Running" ? "Active" : undefined;
    if (found === undefined || found === substate) return;
    this.ctx.log.warn({ vm: vm.id, recorded: substate, vmm: state }, "the guest's state differs from what the daemon had; taken from vm.info");
    await this.ctx.transition(vm, { type: found === "Paused" ? "PAUSE" : "RESUME", reason: `found ${state} by vm.info` });
  }

  /** A command in the guest. Not queued: execs run alongside each other and alongside operations. */
  exec(id: string, req: ExecRequest, stdin?: Buffer): Promise<ExecResult> {
    const vm = this.ctx.get(id);
    requireEvent(vm, "EXEC", "exec in");
    return execInGuest(vm, { ...req, timeout_ms: req.timeout_ms ?? DEFAULT_EXEC_TIMEOUT_MS }, stdin);
  }

  /** The same, streamed: a one-shot socket (beside the console sockets) on which the caller speaks the exec protocol. */
  execStream(id: string, req: ExecRequest): Promise<{ path: string }> {
    const vm = this.ctx.get(id);
    requireEvent(vm, "EXEC", "exec in");
    const socket = execStreamSocket(this.ctx.consoleDir);
    return execStreamInGuest(vm, { ...req, timeout_ms: req.timeout_ms ?? DEFAULT_EXEC_TIMEOUT_MS }, socket, this.ctx.log.child({ vm: id }));
  }

  /**
   * The running VMM's usage of the host (its cgroup, or /proc), and CH's own view: each device's counters
   * (vm.counters) and the guest memory it holds (vm.info); those two are null if CH does not answer in time.
   */
  async stats(id: string): Promise<VmStats> {
    const vm = this.ctx.get(id);
    const vmm = vm.vmm;
    if (!vmm) throw invalidState(vm.id, vm.lifecycle.state, "read the usage of", "only a VM with a running VMM has any");
    const usage = readVmStats(vm.id, vmm.process.pid, this.ctx.cgroupOf(vm));
    const [devices, info] = await Promise.all([
      vmm.client.counters(COUNTERS_TIMEOUT_MS).catch(() => null),
      vmm.client.info(COUNTERS_TIMEOUT_MS).catch(() => null),
    ]);
    return { ...usage, devices, memory_actual_size: info?.memory_actual_size ?? null };
  }

  /**
   * A guest that stood still (paused, restored) learns the host's time and gets fresh randomness, in the
   * background: the caller does not wait for the agent. What came of it is in `status.guest_sync`.
   */
  syncGuestClock(vm: VmEntry, after: "resume" | "restore"): void {
    const at = new Date().toISOString();
    const vsock = vsockOf(vm);
    if (!vsock) return;
    void syncGuest(vsock, Date.now() + SYNC_WAIT_MS).then(
      (synced) => {
        vm.guestSync = { at, after, ...synced };
        const level = synced.clock_error || synced.seed_error ? "warn" : "info";
        this.ctx.log[level]({ vm: vm.id, after, ...synced }, "guest clock and RNG synced");
      },
      (e) => {
        vm.guestSync = { at, after, error: (e as Error).message };
        this.ctx.log.warn({ vm: vm.id, after, err: (e as Error).message }, "cannot sync the guest's clock and RNG");
      },
    );
  }
}
