/**
 * Durable per-VM records: `<state-dir>/<id>/state.json`, replaced atomically
 * (temp file, fsync, rename, then fsync of the directory), so a crash leaves
 * either the old or the new record. A VM directory is removed by renaming it
 * out of the way first, so a crash mid-removal never leaves half a VM.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { closeFd, fsyncDir, openDir, replaceFileDurably } from "./durable-file.js";
import { parseRecord, type VmRecord } from "./record.js";
import { vmPaths } from "./vm-paths.js";

const TRASH_PREFIX = ".removing-";

export interface UnreadableRecord {
  id: string;
  error: string;
}

export class StateStore {
  /** Each VM directory saved to, held open: a save then needs no mkdir, and its fsync no open. */
  private readonly dirFds = new Map<string, number>();
  /** The tail of each VM's save chain: writes of one record land in the order they were asked for. */
  private readonly writes = new Map<string, Promise<void>>();

  constructor(readonly stateDir: string) {}

  async init(): Promise<void> {
    await fs.mkdir(this.stateDir, { recursive: true, mode: 0o700 });
  }

  save(record: VmRecord): Promise<void> {
    const text = `${JSON.stringify(record, null, 2)}\n`;
    const write = (this.writes.get(record.id) ?? Promise.resolve()).then(() => this.write(record.id, text));
    this.writes.set(
      record.id,
      write.catch(() => undefined),
    );
    return write;
  }

  private async write(id: string, text: string): Promise<void> {
    const { dir, record: file } = vmPaths(this.stateDir, id);
    let dirFd = this.dirFds.get(id);
    if (dirFd === undefined) {
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      dirFd = await openDir(dir);
      this.dirFds.set(id, dirFd);
    }
    await replaceFileDurably(file, text, { dirFd });
  }

  /** Deletes the VM's directory: one atomic rename makes it gone, then the files go. */
  async remove(id: string): Promise<void> {
    const trash = path.join(this.stateDir, `${TRASH_PREFIX}${id}-${randomBytes(4).toString("hex")}`);
    // A save still in flight would otherwise land in (or re-create) the directory being removed.
    await this.writes.get(id);
    this.writes.delete(id);
    const dirFd = this.dirFds.get(id);
    this.dirFds.delete(id);
    if (dirFd !== undefined) await closeFd(dirFd);
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
