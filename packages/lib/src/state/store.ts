/**
 * Durable per-VM records: `<state-dir>/<id>/state.json`, replaced atomically
 * (temp file, fsync, rename, then fsync of the directory), so a crash leaves
 * either the old or the new record. A VM directory is removed by renaming it
 * out of the way first, so a crash mid-removal never leaves half a VM.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import writeFileAtomic from "write-file-atomic";
import { parseRecord, type VmRecord } from "./record.js";
import { vmPaths } from "./vm-paths.js";

const TRASH_PREFIX = ".removing-";

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
    await fsyncDir(dir);
  }

  /** Deletes the VM's directory: one atomic rename makes it gone, then the files go. */
  async remove(id: string): Promise<void> {
    const trash = path.join(this.stateDir, `${TRASH_PREFIX}${id}-${randomBytes(4).toString("hex")}`);
    try {
      await fs.rename(vmPaths(this.stateDir, id).dir, trash);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
      throw e;
    }
    await fsyncDir(this.stateDir);
    await fs.rm(trash, { recursive: true, force: true });
  }

  /** Finishes removals a crash interrupted. */
  async emptyTrash(): Promise<string[]> {
    const trash = (await fs.readdir(this.stateDir)).filter((n) => n.startsWith(TRASH_PREFIX));
    await Promise.all(trash.map((n) => fs.rm(path.join(this.stateDir, n), { recursive: true, force: true })));
    return trash;
  }

  /** Every record on disk, as v2; the ones that cannot be read are reported, not dropped. */
  async loadAll(): Promise<{ records: { record: VmRecord; migrated: boolean }[]; unreadable: UnreadableRecord[] }> {
    const records: { record: VmRecord; migrated: boolean }[] = [];
    const unreadable: UnreadableRecord[] = [];
    for (const entry of await fs.readdir(this.stateDir, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name.startsWith(".")) continue;
      const paths = vmPaths(this.stateDir, entry.name);
      try {
        records.push(parseRecord(await fs.readFile(paths.record, "utf8"), entry.name, paths));
      } catch (e) {
        unreadable.push({ id: entry.name, error: `${paths.record}: ${(e as Error).message}` });
      }
    }
    return { records, unreadable };
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
