/** What the orchestrator holds for one VM while the daemon runs. */

import { invalidState } from "../domain/errors.js";
import { emptyResources, isProvisioned, type Resources } from "../domain/resources.js";
import { vmLimits } from "../domain/vm-limits.js";
import type { VmSpec } from "../domain/vm-spec.js";
import type { GuestSyncStatus, VmStatus } from "../domain/vm-status.js";
import type { LifecycleEventType } from "../lifecycle/machine.js";
import { VmLifecycle } from "../lifecycle/vm-lifecycle.js";
import type { ProcessSocket } from "../os/process-socket.js";
import type { PendingRelease } from "../provisioning/release-queue.js";
import { RECORD_VERSION, type SnapshotInfo, type SnapshotInProgress, type VmRecord } from "../state/record.js";
import type { VmPaths } from "../state/vm-paths.js";
import type { VmServices } from "./vm-services.js";
import type { RunningVmm } from "./vmm-control.js";

export interface VmEntry {
  id: string;
  /** null only for a record that could not be read. */
  spec: VmSpec | null;
  paths: VmPaths;
  lifecycle: VmLifecycle;
  generation: number;
  created_at: string;
  updated_at: string;
  /** What the siblings provided, by slot. */
  resources: Resources;
  /** The running VMM and its API client, while there is one. */
  vmm?: RunningVmm;
  /** Console and event monitor: up for the VM's whole life in this daemon. */
  services: VmServices;
  /** The uid (and gid) its VMMs run under, with --vmm-uid-range; held from create to remove. */
  vmmUid?: number;
  /** Its snapshots, oldest first; each is complete on disk before it is here. */
  snapshots: SnapshotInfo[];
  /** The last sync of the guest's clock and RNG after it stood still (a resume, a restore). */
  guestSync?: GuestSyncStatus;
  /** While a snapshot is taken (recorded, so a restart that cuts it short can run the guest again if it paused it). */
  snapshotInProgress?: SnapshotInProgress;
  /** After a call to the VMM timed out: CH may carry it out later, so the substate is unknown until vm.info says. */
  vmmStateUnknown?: { after: string; since: string };
  /** Set when state.json could not be read: the file is kept as found, never overwritten. */
  unreadable?: string;
  /**
   * Set while the newest state could not be written (full or read-only disk):
   * why, and since when. The reconcile sweep writes it again until it lands.
   */
  unsaved?: { error: string; since: string };
}

/** The VMM's vsock socket and the pid that must serve it; undefined while no VMM runs. */
export function vsockOf(vm: VmEntry): ProcessSocket | undefined {
  const pid = vm.vmm?.process.pid;
  return pid === undefined ? undefined : { path: vm.paths.vsockSocket, pid };
}

export function newEntry(spec: VmSpec, paths: VmPaths, services: VmServices): VmEntry {
  const now = new Date().toISOString();
  return {
    id: spec.id,
    spec,
    paths,
    services,
    resources: emptyResources(),
    lifecycle: new VmLifecycle(),
    snapshots: [],
    generation: 0,
    created_at: now,
    updated_at: now,
  };
}

export function entryFromRecord(record: VmRecord, paths: VmPaths, services: VmServices): VmEntry {
  return {
    services,
    id: record.id,
    spec: record.spec,
    paths,
    resources: record.resources ?? emptyResources(),
    lifecycle: new VmLifecycle(record.state, record.transitions, {
      startable: isProvisioned(record.spec, record.resources ?? emptyResources()),
      ...(record.substate ? { substate: record.substate } : {}),
    }),
    generation: record.generation,
    snapshots: record.snapshots ?? [],
    ...(record.snapshot_in_progress ? { snapshotInProgress: record.snapshot_in_progress } : {}),
    created_at: record.created_at,
    updated_at: record.updated_at,
    ...(record.vmm_uid !== undefined ? { vmmUid: record.vmm_uid } : {}),
  };
}

/** A VM whose record cannot be read: Failed with the reason, removable, never startable. */
export function unreadableEntry(id: string, error: string, paths: VmPaths, services: VmServices): VmEntry {
  const now = new Date().toISOString();
  const vm: VmEntry = {
    id,
    services,
    spec: null,
    paths,
    resources: emptyResources(),
    lifecycle: new VmLifecycle("Pending", [], { startable: false }),
    snapshots: [],
    generation: 0,
    created_at: now,
    updated_at: now,
    unreadable: error,
  };
  vm.lifecycle.apply({ type: "LOAD_FAILED", reason: `state.json cannot be read: ${error}` });
  return vm;
}

export function toRecord(vm: VmEntry & { spec: VmSpec }): VmRecord {
  const p = vm.vmm?.process;
  return {
    version: RECORD_VERSION,
    id: vm.id,
    spec: vm.spec,
    state: vm.lifecycle.state,
    ...(vm.lifecycle.substate && vm.lifecycle.substate !== "Active" ? { substate: vm.lifecycle.substate } : {}),
    ...(vm.snapshots.length > 0 ? { snapshots: vm.snapshots } : {}),
    ...(vm.snapshotInProgress ? { snapshot_in_progress: vm.snapshotInProgress } : {}),
    generation: vm.generation,
    vmm: p ? { pid: p.pid, start_time: p.identity.start_time, api_socket: vm.paths.apiSocket, event_monitor: vm.paths.eventMonitor } : null,
    resources: vm.resources,
    ...(vm.vmmUid !== undefined ? { vmm_uid: vm.vmmUid } : {}),
    created_at: vm.created_at,
    updated_at: vm.updated_at,
    transitions: [...vm.lifecycle.transitions],
  };
}

/** `cgroup`: the VMM's, while it runs in one. */
export function toStatus(vm: VmEntry, pendingReleases: PendingRelease[], cgroup: string | undefined): VmStatus {
  return {
    id: vm.id,
    state: vm.lifecycle.state,
    substate: vm.lifecycle.substate ?? null,
    pid: vm.vmm?.process.pid ?? null,
    spec: vm.spec,
    created_at: vm.created_at,
    updated_at: vm.updated_at,
    // The lifecycle replaces its history on each transition, never changes it in place: no copy needed.
    transitions: vm.lifecycle.transitions as VmStatus["transitions"],
    resources: vm.resources,
    pending_releases: pendingReleases,
    agent: vm.services.agent.current,
    console: { lost_bytes: vm.services.console.lostBytes },
    ...(vm.vmmUid !== undefined ? { vmm_uid: vm.vmmUid } : {}),
    limits: vm.spec ? { ...vmLimits(vm.spec), cgroup: cgroup ?? null } : null,
    ...(vm.guestSync ? { guest_sync: vm.guestSync } : {}),
    ...(vm.vmmStateUnknown ? { vmm_state_unknown: vm.vmmStateUnknown } : {}),
    ...(vm.unsaved ? { unsaved: vm.unsaved } : {}),
  };
}

/** -32003 unless the lifecycle machine lets `event` happen to the VM now, saying why not where a substate explains it. */
export function requireEvent(vm: VmEntry, event: LifecycleEventType, action: string): void {
  if (vm.lifecycle.can(event)) return;
  const hint = {
    Paused: "it is paused (compute.vm.resume lets it run)",
    Active: event === "RESUME" ? "it is not paused" : "",
    Snapshotting: "its snapshot is being taken",
  };
  throw invalidState(vm.id, vm.lifecycle.state, action, hint[vm.lifecycle.substate ?? "Active"]);
}
