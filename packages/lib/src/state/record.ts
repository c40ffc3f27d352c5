/**
 * The state.json format. Version 2 is written; versions 1 and 2 are read
 * (docs/state-file.md). A v1 record knows the VMM's pid but not its start
 * time: adoption establishes it from the process's argv before trusting it.
 */

import type { Resources } from "../domain/resources.js";
import type { VmSpec } from "../domain/vm-spec.js";
import { VM_STATES, type VmState } from "../domain/vm-states.js";
import type { Transition } from "../lifecycle/vm-lifecycle.js";

export const RECORD_VERSION = 2;

export interface VmmRecord {
  pid: number;
  /** Field 22 of /proc/<pid>/stat; null only in a record migrated from v1. */
  start_time: string | null;
  api_socket: string;
  event_monitor: string;
}

export interface SnapshotInfo {
  name: string;
  created_at: string;
  /** What its files take on disk. */
  size_bytes: number;
}

export interface SnapshotInProgress {
  name: string;
  resume: boolean;
}

export interface VmRecord {
  version: typeof RECORD_VERSION;
  id: string;
  spec: VmSpec;
  state: VmState;
  /** A Running VM that CH holds paused, or whose snapshot was being taken; absent otherwise (ADR 0010). */
  substate?: "Paused" | "Snapshotting";
  /** The VM's snapshots, each complete on disk before it is listed here. */
  snapshots?: SnapshotInfo[];
  /** While a snapshot is taken: its name, and whether the guest was paused for it (and so runs again after). */
  snapshot_in_progress?: SnapshotInProgress;
  /** Increases by one with every transition. */
  generation: number;
  vmm: VmmRecord | null;
  /** What the siblings provided, by slot; absent in records written before issue 6 (read as none). */
  resources?: Resources;
  /** The uid and gid its VMMs run under (--vmm-uid-range); absent when VMMs run as the daemon's user. */
  vmm_uid?: number;
  created_at: string;
  updated_at: string;
  transitions: Transition[];
}

interface VmRecordV1 {
  version: 1;
  id: string;
  spec: VmSpec;
  state: VmState;
  pid: number | null;
  created_at: string;
  updated_at: string;
  transitions: Transition[];
}

/** Parses either version into a v2 record; throws with the reason if it cannot. */
export function parseRecord(text: string, dirName: string, paths: { apiSocket: string; eventMonitor: string }): { record: VmRecord; migrated: boolean } {
  const data = JSON.parse(text) as Partial<VmRecord> | Partial<VmRecordV1>;
  if (typeof data !== "object" || data === null) throw new Error("state.json is not an object");
  if (data.id !== dirName) throw new Error(`state.json names VM '${String(data.id)}' but lives in '${dirName}'`);
  if (!data.spec || typeof data.spec !== "object") throw new Error("state.json has no spec");
  if (!VM_STATES.includes(data.state as VmState)) throw new Error(`state.json has an unknown state '${String(data.state)}'`);
  if (!Array.isArray(data.transitions)) throw new Error("state.json has no transitions");
  const substate = (data as Partial<VmRecord>).substate;
  if (substate !== undefined && (!["Paused", "Snapshotting"].includes(substate) || data.state !== "Running"))
    throw new Error(`state.json has substate '${String(substate)}' in state ${String(data.state)}`);
  if (data.version === 2) return { record: data as VmRecord, migrated: false };
  if (data.version !== 1) throw new Error(`unsupported state.json version ${String(data.version)}`);
  const v1 = data as VmRecordV1;
  const record: VmRecord = {
    version: RECORD_VERSION,
    id: v1.id,
    spec: v1.spec,
    state: v1.state,
    generation: v1.transitions.at(-1)?.seq ?? 0,
    vmm: v1.pid ? { pid: v1.pid, start_time: null, api_socket: paths.apiSocket, event_monitor: paths.eventMonitor } : null,
    created_at: v1.created_at,
    updated_at: v1.updated_at,
    transitions: v1.transitions,
  };
  return { record, migrated: true };
}
