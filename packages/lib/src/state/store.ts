/**
 * Durable per-VM records: `<state-dir>/<id>/state.json`, replaced atomically
 * (temp file, fsync, rename, then fsync of the directory), so a crash leaves
 * either the old or the new record. A VM directory is removed by renaming it
 * out of the way first, so a crash mid-removal never leaves half a VM.
 *
 * Nothing under the state dir is trusted blindly: a VM directory is created
 * by the daemon itself (mode 0700) and opened without following links, so a
 * symlink planted at `<state-dir>/<id>` is refused, never written through.
 * Every failure is a StorageError naming the path.
 */
import { randomBytes } from "node:crypto";
import fs, { type Dirent } from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { asStorageError, onDisk, StorageError } from "../domain/errors.js";
import { failpoint } from "../failpoints.js";
import { fsyncDir, isTempFile, replaceFileDurably } from "../os/durable-file.js";
import { parseRecord, type VmRecord } from "./record.js";
import { vmPaths } from "./vm-paths.js";

const TRASH_PREFIX = ".removing-";
const PRIVATE_DIR = 0o700;
const open = promisify(fs.open);
const close = promisify(fs.close);

export interface UnreadableRecord {
  id: string;
  error: string;
}

/** What loadAll found besides records: repairs made and entries left alone, for the log. */
export interface LoadNotes {
  /** Directories with no record, only what a create cut short leaves (nothing, or temp files): removed. */
  incomplete: string[];
  /** Temp files a crash left beside records: removed. */
  tempFiles: string[];
  /** Directories whose mode let others in: narrowed to 0700. */
  narrowed: string[];
  /** Entries that are not plain directories (symlinks, files): never followed, left as found. */
  ignored: string[];
}

export class StateStore {
  /** Each VM directory saved to, held open: a save then needs no mkdir, and its fsync no open. */
  private readonly dirFds = new Map<string, number>();
  /** The tail of each VM's save chain: writes of one record land in the order they were asked for. */
  private readonly writes = new Map<string, Promise<void>>();

  constructor(readonly stateDir: string) {}

  /** Creates the state dir, or checks the one that exists: a real directory, narrowed to 0700. Returns true if it had to narrow it. */
  async init(): Promise<boolean> {
    await onDisk("create", this.stateDir, () => fsp.mkdir(this.stateDir, { recursive: true, mode: PRIVATE_DIR }));
    return privateDir(this.stateDir);
  }

  save(record: VmRecord): Promise<void> {
    const text = `${JSON.stringify(record, null, 2)}\n`;
    const write = (this.writes.get(record.id) ?? Promise.resolve()).then(() => this.write(record.id, text));
    const tail = write.catch(() => undefined);
    this.writes.set(record.id, tail);
    void tail.then(() => this.writes.get(record.id) === tail && this.writes.delete(record.id));
    return write;
  }

  private async write(id: string, text: string): Promise<void> {
    const file = vmPaths(this.stateDir, id).record;
    try {
      await replaceFileDurably(file, text, { dirFd: await this.dirFd(id) });
    } catch (e) {
      // The directory went away under us (removed by hand): make it again, once, and write the record there.
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw asStorageError("write", file, e);
      await this.forgetDir(id);
      await onDisk("write", file, async () => replaceFileDurably(file, text, { dirFd: await this.dirFd(id) }));
    }
  }

  /** The VM's directory, created if missing, opened without following a link. */
  private async dirFd(id: string): Promise<number> {
    const cached = this.dirFds.get(id);
    if (cached !== undefined) return cached;
    const { dir } = vmPaths(this.stateDir, id);
    const created = await fsp.mkdir(dir, { mode: PRIVATE_DIR }).then(
      () => true,
      (e: NodeJS.ErrnoException) => {
        if (e.code === "EEXIST") return false;
        throw new StorageError("create", dir, e);
      },
    );
    if (created) failpoint("store.dir-created");
    const fd = await open(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW).catch((e: NodeJS.ErrnoException) => {
      throw e.code === "ELOOP" || e.code === "ENOTDIR"
        ? new StorageError("use", dir, "it is not a directory the daemon made (a symlink or a file); links under the state dir are never followed")
        : new StorageError("open", dir, e);
    });
    this.dirFds.set(id, fd);
    return fd;
  }

  private async forgetDir(id: string): Promise<void> {
    const fd = this.dirFds.get(id);
    this.dirFds.delete(id);
    if (fd !== undefined) await close(fd).catch(() => undefined);
  }

  /** True if the record file is where it should be (a check for the reconcile sweep). */
  hasRecord(id: string): boolean {
    return fs.existsSync(vmPaths(this.stateDir, id).record);
  }

  /**
   * Deletes the VM's directory: one atomic rename makes it gone, then the files
   * go. Only a directory: a link or file planted at the path is left as found.
   */
  async remove(id: string): Promise<void> {
    const trash = path.join(this.stateDir, `${TRASH_PREFIX}${id}-${randomBytes(4).toString("hex")}`);
    // A save still in flight would otherwise land in (or re-create) the directory being removed.
    await this.writes.get(id);
    await this.forgetDir(id);
    const { dir } = vmPaths(this.stateDir, id);
    const stat = await fsp.lstat(dir).catch(() => undefined);
    if (!stat?.isDirectory()) return;
    try {
      await fsp.rename(dir, trash);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
      throw new StorageError("remove", dir, e as NodeJS.ErrnoException);
    }
    failpoint("store.trashed");
    await onDisk("sync", this.stateDir, () => fsyncDir(this.stateDir));
    await fsp.rm(trash, { recursive: true, force: true });
  }

  /** Finishes removals a crash interrupted. */
  async emptyTrash(): Promise<string[]> {
    const trash = (await fsp.readdir(this.stateDir)).filter((n) => n.startsWith(TRASH_PREFIX));
    await Promise.all(trash.map((n) => fsp.rm(path.join(this.stateDir, n), { recursive: true, force: true })));
    return trash;
  }

  /**
   * Every record on disk, as v2; the ones that cannot be read are reported,
   * not dropped. On the way: temp files a crash left are removed, loose
   * directory modes narrowed, and a directory a create left without its
   * first record (the create was never acknowledged) is removed.
   */
  async loadAll(): Promise<{ records: { record: VmRecord; migrated: boolean }[]; unreadable: UnreadableRecord[]; notes: LoadNotes }> {
    const notes: LoadNotes = { incomplete: [], tempFiles: [], narrowed: [], ignored: [] };
    const entries = (await fsp.readdir(this.stateDir, { withFileTypes: true })).filter((e) => !e.name.startsWith("."));
    // All at once, not one after another: on a busy host, three round trips to the thread pool per VM, in turn, were a
    // third of a second of a 300-VM restart.
    const loaded = await Promise.all(entries.map((entry) => this.loadEntry(entry, notes)));
    return {
      records: loaded.flatMap((l) => (l && "record" in l ? [l.record] : [])),
      unreadable: loaded.flatMap((l) => (l && "unreadable" in l ? [l.unreadable] : [])),
      notes,
    };
  }

  /** One entry of the state dir: a VM's record, one that cannot be read, or nothing (noted in `notes`). */
  private async loadEntry(
    entry: Dirent,
    notes: LoadNotes,
  ): Promise<{ record: { record: VmRecord; migrated: boolean } } | { unreadable: UnreadableRecord } | undefined> {
    if (!entry.isDirectory()) {
      const file = path.join(this.stateDir, entry.name);
      if (!isStateDirFile(entry.name)) notes.ignored.push(file);
      else if (entry.name.endsWith(".tmp")) {
        await fsp.rm(file, { force: true });
        notes.tempFiles.push(file);
      }
      return undefined;
    }
    const paths = vmPaths(this.stateDir, entry.name);
    if (await privateDir(paths.dir)) notes.narrowed.push(paths.dir);
    const names = await fsp.readdir(paths.dir);
    for (const name of names.filter((n) => isTempFile(n, "state.json"))) {
      await fsp.rm(path.join(paths.dir, name), { force: true });
      notes.tempFiles.push(path.join(paths.dir, name));
    }
    if (!names.includes("state.json") && names.every((n) => isTempFile(n, "state.json"))) {
      await this.remove(entry.name);
      notes.incomplete.push(paths.dir);
      return undefined;
    }
    try {
      return { record: parseRecord(await fsp.readFile(paths.record, "utf8"), entry.name, paths) };
    } catch (e) {
      return { unreadable: { id: entry.name, error: `${paths.record}: ${(e as Error).message}` } };
    }
  }
}

/** The daemon's own files at the top of the state dir (events journal, pending releases, lock) and their temp files. */
const isStateDirFile = (name: string): boolean => /^(events\.jsonl|pending-releases\.json|daemon\.pid)(\.\d+-\d+\.tmp)?$/.test(name);

/**
 * Checks that `dir` is a real directory (not a link) and narrows its mode to
 * 0700 if others could enter or list it. Returns true if it narrowed it.
 */
export async function privateDir(dir: string): Promise<boolean> {
  const stat = await onDisk("inspect", dir, () => fsp.lstat(dir));
  if (!stat.isDirectory()) throw new StorageError("use", dir, "it is not a directory (a symlink or a file); links are never followed");
  if ((stat.mode & 0o077) === 0) return false;
  await onDisk("narrow the mode of", dir, () => fsp.chmod(dir, PRIVATE_DIR));
  return true;
}
