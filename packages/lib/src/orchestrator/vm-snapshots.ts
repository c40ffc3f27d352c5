/**
 * A VM's snapshots on disk: `<state-dir>/<id>/snapshots/<name>/`, the files
 * CH writes (config.json, state.json, memory-ranges). CH writes them into the
 * VM's staging directory (`<state-dir>.staging/<id>/`, its uid's, shown
 * writable in its jail): nothing a VMM can write is in the state dir (ADR 0009;
 * issue 22: with the snapshots directory bound writable, a VMM could fill it at
 * will). Once CH has finished, the daemon moves the files into
 * `snapshots/.partial-<name>/`, where the VMM cannot reach, checks them there
 * (plain files, no other name: a hard link to another of the uid's files would
 * be taken over), makes them root's and read-only, flushes them, and names the
 * directory `<name>/`; the VM's record lists a snapshot only after that. A
 * restore shows the VMM that one directory, read-only. Whatever the record
 * does not list (a partial directory, one a crash left before it was listed)
 * is never trusted: the daemon removes it when it loads the VM, and a name is
 * free again.
 */
import { execFile } from "node:child_process";
import fsSync from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { onDisk } from "../domain/errors.js";
import { fsyncDir } from "../os/durable-file.js";
import type { SnapshotInfo } from "../state/record.js";
import type { VmPaths } from "../state/vm-paths.js";
import { ownedDir } from "./vmm-users.js";

const PARTIAL = ".partial-";
/** More entries than CH writes by far: a VMM that left more is not trusted. */
const MAX_FILES = 64;
const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW } = fsSync.constants;

export const snapshotDir = (paths: VmPaths, name: string) => path.join(paths.snapshots, name);

export class UntrustedSnapshotError extends Error {}

/**
 * The VM's staging directory, its VMM's (`uid`) alone, made before each start (the jail shows it, so it must exist
 * then, and is never replaced while the VMM runs: only emptied).
 */
export async function ensureStaging(paths: VmPaths, uid: number | undefined): Promise<void> {
  const base = path.dirname(paths.staging);
  await onDisk("create", base, () => fs.mkdir(base, { recursive: true, mode: 0o711 }));
  await onDisk("chmod", base, () => fs.chmod(base, 0o711));
  await ownedDir(paths.staging, uid);
}

/** The staging directory, emptied of an earlier try, for CH to write into. */
export async function prepareSnapshot(paths: VmPaths, uid: number | undefined): Promise<string> {
  await ensureStaging(paths, uid);
  await emptyStaging(paths);
  return paths.staging;
}

/** CH has written the snapshot: move it where the VMM cannot reach, check it, flush it, give it its name, and say what it takes on disk. */
export async function commitSnapshot(paths: VmPaths, name: string): Promise<SnapshotInfo> {
  const partial = path.join(paths.snapshots, `${PARTIAL}${name}`);
  const final = snapshotDir(paths, name);
  // The daemon's own, 0700 (a directory from before, the VM uid's, is taken over).
  await ownedDir(paths.snapshots, undefined);
  await onDisk("remove", partial, () => fs.rm(partial, { recursive: true, force: true }));
  await onDisk("create", partial, () => fs.mkdir(partial, { mode: 0o755 }));
  let size = 0;
  await onDisk("sync", partial, async () => {
    await inStaging(paths, async (staged, names) => {
      if (names.length > MAX_FILES)
        throw new UntrustedSnapshotError(`the VMM left ${names.length} entries in ${paths.staging}; at most ${MAX_FILES} are taken`);
      // Moved first (neither a rename nor cp --no-dereference follows a link), checked after, where the VMM cannot change anything.
      for (const entry of names) await moveOrCopy(path.join(staged, entry), path.join(partial, entry));
    });
    for (const entry of await fs.readdir(partial)) {
      const file = path.join(partial, entry);
      const stat = await fs.lstat(file);
      if (!stat.isFile() || stat.nlink !== 1)
        throw new UntrustedSnapshotError(`${entry} in the VMM's snapshot is not a plain file of its own (a link, a directory, or a file with other names)`);
      const handle = await fs.open(file, "r");
      try {
        await handle.chown(process.getuid?.() ?? 0, process.getgid?.() ?? 0);
        await handle.chmod(0o644);
        await handle.sync();
        size += (await handle.stat()).blocks * 512;
      } finally {
        await handle.close();
      }
    }
    await fsyncDir(partial);
  });
  await onDisk("rename", final, () => fs.rename(partial, final));
  await onDisk("sync", paths.snapshots, () => fsyncDir(paths.snapshots));
  return { name, created_at: new Date().toISOString(), size_bytes: size };
}

/**
 * Runs `work` on the staging directory as it was opened, once, never through a link (`staged` names it through the
 * descriptor), with its entries. Nothing when there is no staging directory.
 */
async function inStaging(paths: VmPaths, work: (staged: string, names: string[]) => Promise<void>): Promise<void> {
  const dir = await fs.open(paths.staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") return undefined;
    throw e;
  });
  if (!dir) return;
  try {
    const staged = `/proc/self/fd/${dir.fd}`;
    await work(staged, await fs.readdir(staged));
  } finally {
    await dir.close();
  }
}

/** Empties the staging directory (never replaced: a running VMM's jail shows that very directory). */
async function emptyStaging(paths: VmPaths): Promise<string[]> {
  let names: string[] = [];
  await onDisk("remove", paths.staging, () =>
    inStaging(paths, async (staged, entries) => {
      names = entries;
      for (const entry of entries) await fs.rm(path.join(staged, entry), { recursive: true, force: true });
    }),
  );
  return names.map((n) => path.join(paths.staging, n));
}

/** A rename, or where the staging directory is on another file system, a copy that keeps holes (guest memory is sparse). */
async function moveOrCopy(from: string, to: string): Promise<void> {
  try {
    await fs.rename(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EXDEV") throw e;
    await promisify(execFile)("cp", ["--sparse=always", "--no-dereference", "--no-preserve=all", "--", from, to]);
  }
}

/** The VM is removed: its staging directory goes too. */
export async function removeStaging(paths: VmPaths): Promise<void> {
  await onDisk("remove", paths.staging, () => fs.rm(paths.staging, { recursive: true, force: true }));
}

/** Removes a snapshot's directory, finished or partial, and what CH wrote of it in the staging directory. */
export async function removeSnapshot(paths: VmPaths, name: string): Promise<void> {
  for (const dir of [snapshotDir(paths, name), path.join(paths.snapshots, `${PARTIAL}${name}`)])
    await onDisk("remove", dir, () => fs.rm(dir, { recursive: true, force: true }));
  await emptyStaging(paths);
}

/**
 * Removes every snapshot directory the record does not list, and what CH was writing in the staging directory;
 * returns their paths. Only where no snapshot is under way (at load; in the VM's queue).
 */
export async function sweepSnapshots(paths: VmPaths, listed: SnapshotInfo[]): Promise<string[]> {
  const keep = new Set(listed.map((s) => s.name));
  const entries = await fs.readdir(paths.snapshots).catch((e: NodeJS.ErrnoException) => (e.code === "ENOENT" ? [] : Promise.reject(e)));
  const stray = entries.filter((name) => !keep.has(name)).map((name) => path.join(paths.snapshots, name));
  for (const dir of stray) await onDisk("remove", dir, () => fs.rm(dir, { recursive: true, force: true }));
  return [...stray, ...(await emptyStaging(paths))];
}
