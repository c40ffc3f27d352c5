/**
 * Durable per-VM records: `<state-dir>/<id>/state.json`, replaced atomically
 * (temp file, fsync, rename, then fsync of the directory), so a crash leaves
 * either the old or the new record.
 */
import fs from "node:fs/promises";
import writeFileAtomic from "write-file-atomic";
import type { VmState } from "../lifecycle/machine.js";
import type { Transition } from "../lifecycle/vm-lifecycle.js";
import type { VmSpec } from "../rpc/schemas.js";
import { vmPaths } from "./vm-paths.js";

export const RECORD_VERSION = 1;

/** state.json, version 1 (documented in docs/adr/0003-state-file.md). */
export interface VmRecord {
  version: typeof RECORD_VERSION;
  id: string;
  spec: VmSpec;
  state: VmState;
  pid: number | null;
  created_at: string;
  updated_at: string;
  transitions: Transition[];
}

export interface UnreadableRecord {
  id: string;
  error: string;
}

export class StateStore {
  constructor(readonly stateDir: string) {}

  async init(): Promise<void> {
    await fs.mkdir(this.stateDir, { recursive: true, mode: 0o700 });
  }

  async save(record: VmRecord): Promise<void> {
    const { dir, record: file } = vmPaths(this.stateDir, record.id);
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(file, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600, fsync: true });
    const handle = await fs.open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /** Deletes the VM's directory and everything left in it. */
  async remove(id: string): Promise<void> {
    await fs.rm(vmPaths(this.stateDir, id).dir, { recursive: true, force: true });
  }

  /** Every record on disk; the ones that cannot be read are reported, not dropped. */
  async loadAll(): Promise<{ records: VmRecord[]; unreadable: UnreadableRecord[] }> {
    const records: VmRecord[] = [];
    const unreadable: UnreadableRecord[] = [];
    for (const entry of await fs.readdir(this.stateDir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      try {
        records.push(parseRecord(await fs.readFile(vmPaths(this.stateDir, entry.name).record, "utf8"), entry.name));
      } catch (e) {
        unreadable.push({ id: entry.name, error: (e as Error).message });
      }
    }
    return { records, unreadable };
  }
}

function parseRecord(text: string, dirName: string): VmRecord {
  const data = JSON.parse(text) as Partial<VmRecord>;
  if (data.version !== RECORD_VERSION) throw new Error(`unsupported state.json version ${String(data.version)}`);
  if (data.id !== dirName) throw new Error(`state.json names VM '${String(data.id)}' but lives in '${dirName}'`);
  if (!data.spec || !data.state || !Array.isArray(data.transitions)) throw new Error("state.json lacks spec, state or transitions");
  return data as VmRecord;
}
