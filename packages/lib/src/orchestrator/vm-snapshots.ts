/**
 * A VM's snapshots on disk: `<state-dir>/<id>/snapshots/<name>/`, the files
 * CH writes (config.json, state.json, memory-ranges). CH writes them into its
 * own directory (`<vmm-dir>/<id>/snapshot.partial/`): nothing a VMM can write
 * is in the state dir (ADR 0009; issue 22: with the snapshots directory
 * bound writable, a VMM could fill it at will). Once CH has finished, the
 * daemon moves the files into `snapshots/.partial-<name>/`, where the VMM
 * cannot reach, checks them there (plain files, no other name: a hard link to
 * another of the uid's files would be taken over), makes them root's and
 * read-only, flushes them, and names the directory `<name>/`; the VM's
 * record lists a snapshot only after that. A restore shows the VMM that one
 * directory, read-only. Whatever the record does not list (a partial
 * directory, one a crash left before it was listed) is never trusted: the
 * daemon removes it when it loads the VM, and a name is free again.
 */
import fsSync from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { onDisk } from "../domain/errors.js";
import { fsyncDir } from "../os/durable-file.js";
import type { SnapshotInfo } from "../state/record.js";
import type { VmPaths } from "../state/vm-paths.js";
import { ownedDir } from "./vmm-users.js";

const PARTIAL = ".partial-";
/** More entries than CH writes by far: a VMM that left more is not trusted. */
const MAX_FILES = 64;

export const snapshotDir = (paths: VmPaths, name: string) => path.join(paths.snapshots, name);
/** Where CH writes a snapshot: in the VMM's own directory. One at a time (a VM's operations are queued). */
const vmmPartial = (paths: VmPaths) => path.join(paths.vmmDir, "snapshot.partial");

export class UntrustedSnapshotError extends Error {}

/** An empty directory for CH to write into, the VMM's (`uid`) alone; a leftover of an earlier try is removed first. */
export async function prepareSnapshot(paths: VmPaths, uid: number | undefined): Promise<string> {
  const partial = vmmPartial(paths);
  await onDisk("remove", partial, () => fs.rm(partial, { recursive: true, force: true }));
  await ownedDir(partial, uid);
  return partial;
}

/** CH has written the snapshot: move it where the VMM cannot reach, check it, flush it, give it its name, and say what it takes on disk. */
export async function commitSnapshot(paths: VmPaths, name: string): Promise<SnapshotInfo> {
  const from = vmmPartial(paths);
  const partial = path.join(paths.snapshots, `${PARTIAL}${name}`);
  const final = snapshotDir(paths, name);
  // The daemon's own, 0700 (a directory from before, the VM uid's, is taken over).
  await ownedDir(paths.snapshots, undefined);
  await onDisk("remove", partial, () => fs.rm(partial, { recursive: true, force: true }));
  await onDisk("create", partial, () => fs.mkdir(partial, { mode: 0o755 }));
  let size = 0;
  await onDisk("sync", partial, async () => {
    // The VMM owns the directory around `from` and could swap it for a link: it is opened once, never through a
    // link, and read and emptied through that descriptor.
    const source = await fs.open(from, fsSync.constants.O_RDONLY | fsSync.constants.O_DIRECTORY | fsSync.constants.O_NOFOLLOW);
    try {
      const opened = `/proc/self/fd/${source.fd}`;
      const names = await fs.readdir(opened);
      if (names.length > MAX_FILES) throw new UntrustedSnapshotError(`the VMM left ${names.length} entries in ${from}; at most ${MAX_FILES} are taken`);
      // Moved first (a rename never follows a link), checked after, where the VMM cannot change anything.
      for (const entry of names) await fs.rename(path.join(opened, entry), path.join(partial, entry));
    } finally {
      await source.close();
    }
    const names = await fs.readdir(partial);
    for (const entry of names) {
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
  await onDisk("remove", from, () => fs.rm(from, { recursive: true, force: true }));
  return { name, created_at: new Date().toISOString(), size_bytes: size };
}

/** Removes a snapshot's directory, finished or partial, and what CH wrote of it in the VMM's directory. */
export async function removeSnapshot(paths: VmPaths, name: string): Promise<void> {
  for (const dir of [snapshotDir(paths, name), path.join(paths.snapshots, `${PARTIAL}${name}`), vmmPartial(paths)])
    await onDisk("remove", dir, () => fs.rm(dir, { recursive: true, force: true }));
}

/**
 * Removes every snapshot directory the record does not list, and what CH was writing in the VMM's directory; returns
 * their paths. Only where no snapshot is under way (at load; in the VM's queue).
 */
export async function sweepSnapshots(paths: VmPaths, listed: SnapshotInfo[]): Promise<string[]> {
  const keep = new Set(listed.map((s) => s.name));
  const entries = await fs.readdir(paths.snapshots).catch((e: NodeJS.ErrnoException) => (e.code === "ENOENT" ? [] : Promise.reject(e)));
  const stray = entries.filter((name) => !keep.has(name)).map((name) => path.join(paths.snapshots, name));
  if (
    await fs.lstat(vmmPartial(paths)).then(
      () => true,
      () => false,
    )
  )
    stray.push(vmmPartial(paths));
  for (const dir of stray) await onDisk("remove", dir, () => fs.rm(dir, { recursive: true, force: true }));
  return stray;
}
