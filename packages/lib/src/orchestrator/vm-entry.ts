/** What the orchestrator holds for one VM while the daemon runs. */
import type { ChClient } from "../ch/client.js";
import type { VmmProcess } from "../ch/vmm-process.js";
import { VmLifecycle } from "../lifecycle/vm-lifecycle.js";
import type { VmSpec, VmStatus } from "../rpc/schemas.js";
import type { VmRecord } from "../state/store.js";
import type { VmPaths } from "../state/vm-paths.js";

export interface VmEntry {
  id: string;
  spec: VmSpec;
  paths: VmPaths;
  lifecycle: VmLifecycle;
  created_at: string;
  updated_at: string;
  /** The running VMM and its API client, while there is one. */
  vmm?: { process: VmmProcess; client: ChClient };
  /** Tail of the per-VM operation queue: operations on one VM run one at a time. */
  queue: Promise<unknown>;
}

export function newEntry(spec: VmSpec, paths: VmPaths): VmEntry {
  const now = new Date().toISOString();
  return { id: spec.id, spec, paths, lifecycle: new VmLifecycle(), created_at: now, updated_at: now, queue: Promise.resolve() };
}

export function entryFromRecord(record: VmRecord, paths: VmPaths): VmEntry {
  return {
    id: record.id,
    spec: record.spec,
    paths,
    lifecycle: new VmLifecycle(record.state, record.transitions),
    created_at: record.created_at,
    updated_at: record.updated_at,
    queue: Promise.resolve(),
  };
}

export function toRecord(vm: VmEntry): VmRecord {
  return {
    version: 1,
    id: vm.id,
    spec: vm.spec,
    state: vm.lifecycle.state,
    pid: vm.vmm?.process.pid ?? null,
    created_at: vm.created_at,
    updated_at: vm.updated_at,
    transitions: [...vm.lifecycle.transitions],
  };
}

export function toStatus(vm: VmEntry): VmStatus {
  const { version: _v, ...status } = toRecord(vm);
  return status;
}
