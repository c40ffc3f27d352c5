/**
 * The orchestrator: owns the VM registry, serializes operations per VM, asks
 * the lifecycle machine before acting, drives the VMM, and persists every
 * transition. `status` and `list` read memory only and never wait.
 */
import path from "node:path";
import type { Logger } from "pino";
import { readEvents } from "../ch/event-monitor.js";
import type { VmmExecutable } from "../ch/vmm-binary.js";
import type { VmmExit } from "../ch/vmm-process.js";
import type { VmmVersion } from "../ch/vmm-version.js";
import type { LogSlice } from "../console/serial-log.js";
import { ErrorCode, invalidState, RpcError, snapshotNotFound, vmExists, vmNotFound } from "../domain/errors.js";
import { emptyResources } from "../domain/resources.js";
import type { VmSpec } from "../domain/vm-spec.js";
import type { VmList, VmStatus } from "../domain/vm-status.js";
import type { EventBus, VmEvent } from "../events/event-bus.js";
import { failpoint } from "../failpoints.js";
import type { LifecycleEvent } from "../lifecycle/machine.js";
import type { Transition } from "../lifecycle/vm-lifecycle.js";
import { type Provisioner, provisioningFailure } from "../provisioning/provisioner.js";
import type { StateStore } from "../state/store.js";
import type { VmPaths } from "../state/vm-paths.js";
import { vmmDeathEvent } from "./adoption.js";
import { type HostInfo, hostInfo } from "./host-info.js";
import { IdQueue } from "./id-queue.js";
import { ReconcileLoop, reconcile } from "./reconcile.js";
import { RunningVmOps } from "./running-vm-ops.js";
import { checkFilesExist, checkHostCpus, checkSocketPaths } from "./spec-checks.js";
import { startError, unsupportedVmm } from "./start-error.js";
import { newEntry, requireEvent, toStatus, type VmEntry } from "./vm-entry.js";
import { VmLoading } from "./vm-loading.js";
import { VmRecords, type Write } from "./vm-records.js";
import { VmServices } from "./vm-services.js";
import { removeStaging, snapshotDir } from "./vm-snapshots.js";
import { type HostUsage, readVmStats } from "./vm-stats.js";
import type { VmmConfinement } from "./vmm-confinement.js";
import { bootVmm, cleanUpAfterVmm, haltVmm, type RestoreFrom, type RunningVmm } from "./vmm-control.js";
import { pathsFor, vmmRoots } from "./vmm-users.js";

export const DEFAULT_START_TIMEOUT_MS = 30_000;
export const DEFAULT_STOP_GRACE_MS = 10_000;
export const DEFAULT_RECONCILE_INTERVAL_MS = 30_000;

export const DEFAULT_CONSOLE_LOG_BYTES = 16 * 1024 * 1024;

export interface OrchestratorOptions {
  store: StateStore;
  events: EventBus;
  /** The network and volume siblings. */
  provisioner: Provisioner;
  vmmBinary: string;
  /** How the reconcile sweep recognises this daemon's VMMs (the binary as the kernel ran it). */
  vmmExecutable: VmmExecutable | undefined;
  /** Where each VM's console socket is served: `<consoleDir>/<id>.sock`. */
  consoleDir: string;
  /** The newest this many bytes of each VM's serial output are kept. */
  consoleLogBytes?: number;
  log: Logger;
  reconcileIntervalMs?: number;
  /** What `-V` says of the VMM binary, probed at start-up: a start is refused if it is known to be too old. */
  vmmVersion: Promise<VmmVersion>;
  /** Each VM's VMM's uid, jail and cgroup. */
  confinement: VmmConfinement;
}

export class Orchestrator {
  /** VMs whose first record is on disk: nothing is visible before it is durable. */
  private readonly vms = new Map<string, VmEntry>();
  private readonly ops = new IdQueue();
  private readonly records: VmRecords;
  private readonly log: Logger;
  private readonly sweeps: ReconcileLoop;
  /** Picking VMs up again at start-up. */
  private readonly loading: VmLoading;

  /** Pause, resume, reboot, snapshots and exec: what is done to a running VM's guest. */
  readonly running: RunningVmOps;

  constructor(private readonly opts: OrchestratorOptions) {
    this.log = opts.log.child({ component: "orchestrator" });
    this.records = new VmRecords(opts.store, this.log);
    this.running = new RunningVmOps({
      serialize: (id, op) => this.serialize(id, op),
      get: (id) => this.get(id),
      transition: (vm, event, write) => this.transition(vm, event, write),
      writeRecord: (vm, write) => this.records.write(vm, write),
      statusOf: (vm) => this.statusOf(vm),
      log: this.log,
      consoleDir: opts.consoleDir,
      cgroupOf: (vm) => opts.confinement.cgroupOf(vm),
    });
    const busy = (id: string) => this.ops.busy(id);
    this.sweeps = new ReconcileLoop({
      fixDrift: () => reconcile(this.vmmRoots(), this.vms, opts.vmmExecutable, busy, this.log),
      checkConfinement: () => Promise.all([...this.vms.values()].filter((vm) => !busy(vm.id)).map((vm) => opts.confinement.check(vm, "running VMM"))),
      checkSubstates: () => this.running.checkSubstates(this.vms.values(), busy),
      catchUpRecords: () => this.records.catchUp(this.vms.values(), busy),
      retryReleases: () => opts.provisioner.retryPending(),
      log: this.log,
    });
    this.loading = new VmLoading({
      store: opts.store,
      records: this.records,
      vms: this.vms,
      pathsFor: (id, recordedApiSocket) => this.pathsFor(id, recordedApiSocket),
      openServices: (id, paths) => this.openServices(id, paths),
      holdUid: (uid) => this.users?.hold(uid),
      vmmDirUid: (id) => this.users?.dirOwner(id),
      serialize: (id, op) => this.serialize(id, op),
      transition: (vm, event, write) => this.transition(vm, event, write),
      checkConfinement: (vm, what) => opts.confinement.check(vm, what),
      abandonSnapshot: (vm, adoption) => this.running.abandonSnapshot(vm, adoption),
      watchExit: (vm, vmm) => this.watchExit(vm, vmm),
      vmmGone: (vm) => this.vmmGone(vm),
      release: (vm, spec) => this.release(vm, spec),
      log: this.log,
    });
  }

  /** Records loaded and VMMs re-adopted (`list` is right once the socket accepts), orphans swept, sweeps scheduled. */
  async load(): Promise<void> {
    await this.loading.load();
    // Every re-adopted VMM's uid, cgroup and vm.info were just checked: this first sweep need not check them again.
    await this.sweeps.run({ afterAdoption: true });
    this.sweeps.every(this.opts.reconcileIntervalMs ?? DEFAULT_RECONCILE_INTERVAL_MS);
    this.log.info({ vms: this.vms.size, running: [...this.vms.values()].filter((v) => v.vmm).length }, "VM records loaded and VMMs re-adopted");
  }

  /** Called once the RPC socket accepts: see VmLoading.attachAdopted. */
  attachAdopted(): void {
    this.loading.attachAdopted();
  }

  list(): VmList {
    return { vms: [...this.vms.values()].map((vm) => ({ id: vm.id, state: vm.lifecycle.state, pid: vm.vmm?.process.pid ?? null })) };
  }

  /** The host's resources, the VMM binary, and what the VMs with a VMM have committed. */
  async hostInfo(): Promise<HostInfo> {
    return hostInfo(this.vms.values(), this.opts.vmmBinary, await this.opts.vmmVersion, this.users, this.opts.confinement.cgroups);
  }

  status(id: string): VmStatus {
    return this.statusOf(this.get(id));
  }

  /** What each VM with a running VMM uses of the host now (its cgroup, or /proc): for the metrics. */
  hostUsage(): HostUsage[] {
    return [...this.vms.values()].flatMap((vm) => (vm.vmm ? [readVmStats(vm.id, vm.vmm.process.pid, this.opts.confinement.cgroupOf(vm))] : []));
  }

  private statusOf(vm: VmEntry): VmStatus {
    return toStatus(vm, this.opts.provisioner.pendingFor(vm.id), this.opts.confinement.cgroupOf(vm));
  }

  /** In the id's queue from the first moment: an operation on this id sent while the create runs waits for it. */
  create(spec: VmSpec): Promise<VmStatus> {
    return this.ops.run(spec.id, () => this.createNow(spec));
  }

  private async createNow(spec: VmSpec): Promise<VmStatus> {
    const paths = this.pathsFor(spec.id);
    checkSocketPaths(spec.id, [paths.apiSocket, paths.serialSocket, paths.vsockSocket, this.consoleSocket(spec.id)]);
    await checkFilesExist(spec);
    await checkHostCpus(spec);
    this.opts.provisioner.checkConfigured(spec);
    if (this.vms.has(spec.id)) throw vmExists(spec.id);
    const vmmUid = this.users?.take(spec.id);
    const services = await this.openServices(spec.id, paths).catch((e) => {
      this.users?.free(vmmUid);
      throw e;
    });
    const vm = newEntry(spec, paths, services);
    if (vmmUid !== undefined) vm.vmmUid = vmmUid;
    // Nothing to ask a sibling for: Provisioning and Provisioned are written as one record.
    const mustRecordProvisioning = this.opts.provisioner.kindsOf(spec).length > 0;
    try {
      await this.transition(vm, { type: "PROVISION" }, mustRecordProvisioning ? "required" : "later");
      if (!mustRecordProvisioning) await this.transition(vm, { type: "PROVISIONED" }, "required");
    } catch (e) {
      // Not acknowledged and never visible: nothing of it may stay.
      this.users?.free(vm.vmmUid);
      await vm.services.close();
      await this.opts.store
        .remove(vm.id)
        .catch((err) => this.log.error({ vm: vm.id, err: (err as Error).message }, "cannot remove a failed create's directory"));
      throw e;
    }
    this.vms.set(vm.id, vm);
    this.publishTransitions(vm);
    if (!mustRecordProvisioning) return this.statusOf(vm);
    try {
      await this.opts.provisioner.provision(vm.id, vm.vmmUid, spec, vm.resources, () => this.records.write(vm, "required"));
    } catch (e) {
      // Roll back what was obtained; the VM stays, Failed with the sibling's error, until removed.
      const error = provisioningFailure(vm.id, e);
      await this.release(vm, spec);
      await this.transition(vm, { type: "PROVISION_FAILED", reason: error.message });
      throw error;
    }
    await this.transition(vm, { type: "PROVISIONED" });
    return this.statusOf(vm);
  }

  start(id: string, timeoutMs = DEFAULT_START_TIMEOUT_MS): Promise<VmStatus> {
    return this.serialize(id, (vm) => this.startNow(vm, timeoutMs));
  }

  /** A start from one of the VM's snapshots, into a fresh VMM; the VM holds the resources it already has. */
  restore(id: string, name: string, opts: { resume?: boolean; timeoutMs?: number } = {}): Promise<VmStatus> {
    return this.serialize(id, (vm) => {
      if (!vm.snapshots.some((s) => s.name === name)) throw snapshotNotFound(vm.id, name);
      return this.startNow(vm, opts.timeoutMs ?? DEFAULT_START_TIMEOUT_MS, { name, dir: snapshotDir(vm.paths, name), resume: opts.resume ?? true });
    });
  }

  private async startNow(vm: VmEntry, timeoutMs: number, from?: RestoreFrom & { name: string }): Promise<VmStatus> {
    requireEvent(vm, from ? "RESTORE" : "START", from ? "restore" : "start");
    const refused = unsupportedVmm(vm.id, this.opts.vmmBinary, await this.opts.vmmVersion) ?? this.opts.confinement.refusal(vm.id);
    if (refused) throw refused;
    // Written with the VMM's pid in the `spawned` hook: until a VMM exists, a crash loses nothing.
    await this.transition(vm, from ? { type: "RESTORE", reason: `from snapshot '${from.name}'` } : { type: "START" }, "later");
    try {
      const launch = await this.opts.confinement.launchFor(vm, (paths) => this.openServices(vm.id, paths));
      const hooks = { spawned: (vmm: RunningVmm) => this.adoptSpawned(vm, vmm), created: (vmm: RunningVmm) => vm.services.vmmUp(vmm.process.pid) };
      vm.vmm = await bootVmm(launch, vm.spec as VmSpec, vm.paths, vm.resources, Date.now() + timeoutMs, hooks, from);
    } catch (e) {
      await this.vmmGone(vm);
      const error = startError(vm.id, e);
      await this.transition(vm, { type: "START_FAILED", reason: error.message });
      throw error;
    }
    this.watchExit(vm, vm.vmm);
    await this.transition(vm, { type: "STARTED", ...(from ? { reason: `restored from snapshot '${from.name}'` } : {}) });
    if (from && !from.resume) await this.transition(vm, { type: "PAUSE", reason: "restored paused" });
    else if (from) this.running.syncGuestClock(vm, "restore");
    return this.statusOf(vm);
  }

  stop(id: string, opts: { timeoutMs?: number; force?: boolean } = {}): Promise<VmStatus> {
    return this.serialize(id, async (vm) => {
      await this.stopNow(vm, opts.force ? 0 : (opts.timeoutMs ?? DEFAULT_STOP_GRACE_MS));
      return this.statusOf(vm);
    });
  }

  remove(id: string, force = false): Promise<{ id: string; removed: true; pending_releases?: number }> {
    return this.serialize(id, async (vm) => {
      if (!vm.lifecycle.can("REMOVE")) {
        if (!(force && vm.lifecycle.can("STOP"))) throw invalidState(vm.id, vm.lifecycle.state, "remove", "stop it first, or pass force: true");
        await this.stopNow(vm, 0);
      }
      // The VMM is gone: now its networks and volumes can go back.
      const pending = vm.spec ? await this.release(vm, vm.spec) : 0;
      await this.opts.store.remove(vm.id);
      await removeStaging(vm.paths);
      await this.users?.removeDir(vm.id);
      // The uid is free from the reply on: nothing of this VM may still run under it.
      await this.users?.reclaim(vm.vmmUid, this.log.child({ vm: vm.id }));
      await vm.services.close();
      this.vms.delete(vm.id);
      this.opts.events.publish({ id: vm.id, type: "removed" });
      this.log.info({ vm: vm.id, pending_releases: pending }, "VM removed");
      return pending > 0 ? { id: vm.id, removed: true as const, pending_releases: pending } : { id: vm.id, removed: true as const };
    });
  }

  /** Daemon shutdown: stop sweeping, close API clients, leave every VMM running. */
  async close(): Promise<void> {
    await this.sweeps.stop();
    await Promise.all([...this.vms.values()].map((vm) => Promise.all([vm.vmm?.client.close(), vm.services.close()])));
  }

  async consoleEndpoint(id: string): Promise<{ path: string }> {
    return { path: await this.get(id).services.console.endpoint() };
  }

  /** The serial log by byte range, or its last `tail` bytes. */
  logs(id: string, q: { offset?: number; limit: number; tail?: number }): Promise<LogSlice> {
    const { console } = this.get(id).services;
    return q.tail !== undefined ? console.tail(q.tail) : console.read(q.offset ?? 0, q.limit);
  }

  /** Events of every VM, or of one (which may be gone: its history stays). */
  eventsTail(q: { id?: string; since?: number; limit: number; waitMs: number }): Promise<{ events: VmEvent[]; next: number }> {
    return this.opts.events.tail(q);
  }

  /** A reconcile sweep now, after any under way (SIGHUP). */
  reconcileNow(): Promise<unknown> {
    return this.sweeps.run();
  }

  private async stopNow(vm: VmEntry, graceMs: number): Promise<void> {
    requireEvent(vm, "STOP", "stop");
    // A paused guest cannot answer the power button: straight to vmm.shutdown.
    const grace = vm.lifecycle.substate === "Paused" ? 0 : graceMs;
    await this.transition(vm, { type: "STOP" });
    const vmm = vm.vmm;
    const outcome = vmm ? await haltVmm(vmm, vm.paths, grace, this.log.child({ vm: vm.id })) : "no VMM was running";
    if (outcome === undefined) {
      const reason = `VMM pid ${vmm?.process.pid} survived SIGKILL`;
      await this.transition(vm, { type: "STOP_FAILED", reason });
      throw new RpcError(ErrorCode.Timeout, `stop of VM '${vm.id}' timed out: ${reason}`, { id: vm.id });
    }
    failpoint("vmm.gone");
    await this.vmmGone(vm);
    await this.transition(vm, { type: "STOPPED", reason: outcome });
  }

  /** Records the pid as soon as the process exists, so no restart can lose track of it; if it cannot, the VMM is not booted. */
  private async adoptSpawned(vm: VmEntry, vmm: RunningVmm): Promise<void> {
    vm.vmm = vmm;
    await this.records.write(vm, "required");
  }

  /** A VMM that ends while the VM is Running: the guest powered off (exit 0) or the VMM died. */
  private watchExit(vm: VmEntry, vmm: RunningVmm): void {
    void vmm.process.exited.then(async (exit: VmmExit) => {
      if (vm.vmm !== vmm || vm.lifecycle.state !== "Running") return;
      await cleanUpAfterVmm(vmm, vm.paths);
      await this.vmmGone(vm);
      const how = await vmm.process.describeExit();
      let event: LifecycleEvent;
      if (exit.code === null && exit.signal === null)
        event = vmmDeathEvent(await readEvents(vm.paths.eventMonitor), `VMM pid ${vmm.process.pid} exited (${how})`);
      else if (exit.code === 0) event = { type: "GUEST_POWERED_OFF", reason: `VMM exited 0 (${how})` };
      else event = { type: "VMM_EXITED", reason: `VMM exited unexpectedly (${how})` };
      await this.transition(vm, event).catch((e) => this.log.error({ vm: vm.id, err: (e as Error).message }, "cannot record VMM exit"));
    });
  }

  /** The VMM is confirmed gone: detach the console, read its last events, remove its cgroup. */
  private async vmmGone(vm: VmEntry): Promise<void> {
    vm.vmm = undefined;
    await vm.services.vmmDown();
    await this.opts.confinement.vmmGone(vm.id);
  }

  /** Gives back everything the VM holds at the siblings its spec uses; returns how many releases are left pending. */
  private async release(vm: VmEntry, spec: VmSpec): Promise<number> {
    const left = await this.opts.provisioner.release(vm.id, spec);
    vm.resources = emptyResources();
    return left;
  }

  private get users() {
    return this.opts.confinement.users;
  }

  private vmmRoots(): string[] {
    return vmmRoots(this.opts.store.stateDir, this.users);
  }

  private pathsFor(id: string, recordedApiSocket?: string): VmPaths {
    return pathsFor(this.opts.store.stateDir, this.users, id, recordedApiSocket);
  }

  private openServices(id: string, paths: VmPaths): Promise<VmServices> {
    const log = this.log.child({ vm: id });
    return VmServices.open(id, paths, this.consoleSocket(id), this.opts.consoleLogBytes ?? DEFAULT_CONSOLE_LOG_BYTES, this.opts.events, log);
  }

  private consoleSocket(id: string): string {
    return path.join(this.opts.consoleDir, `${id}.sock`);
  }

  private get(id: string): VmEntry {
    const vm = this.vms.get(id);
    if (!vm) throw vmNotFound(id);
    return vm;
  }

  /** Runs `op` in the id's queue, on the VM as it is then (an earlier operation may have removed it). */
  private serialize<T>(id: string, op: (vm: VmEntry) => Promise<T>): Promise<T> {
    if (!this.vms.has(id) && !this.ops.busy(id)) return Promise.reject(vmNotFound(id));
    return this.ops.run(id, () => op(this.get(id)));
  }

  /** Applies `event` and writes the record as `write` says; the transition is announced once the VM is visible. */
  private async transition(vm: VmEntry, event: LifecycleEvent, write: Write = "lazy"): Promise<void> {
    const t = vm.lifecycle.apply(event);
    vm.generation += 1;
    vm.updated_at = t.at;
    if (write !== "later") await this.records.write(vm, write);
    if (this.vms.get(vm.id) === vm) this.announce(vm, t);
  }

  /** A new VM's transitions, announced once its record is durable and it is visible. */
  private publishTransitions(vm: VmEntry): void {
    for (const t of vm.lifecycle.transitions) this.announce(vm, t);
  }

  private announce(vm: VmEntry, t: Transition): void {
    const level = t.to === "Failed" ? "warn" : "info";
    this.log[level]({ vm: vm.id, from: t.from, to: t.to, event: t.event, reason: t.reason }, "VM transition");
    this.opts.events.publish({ id: vm.id, type: "transition", from: t.from, to: t.to, reason: t.reason, data: { event: t.event, seq: t.seq } });
  }
}
