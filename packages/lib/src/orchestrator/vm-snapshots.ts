/**
 * A VM's snapshots on disk: `<state-dir>/<id>/snapshots/<name>/`, the files
 * CH writes (config.json, state.json, memory-ranges). CH writes into
 * `.partial-<name>/`, which becomes `<name>/` only once CH has finished and
 * the daemon has flushed it; the VM's record lists a snapshot only after
 * that. Whatever the record does not list (a partial directory, one a crash
 * left before it was listed) is never trusted: the daemon removes it when it
 * loads the VM, and a name is free again.
 */
import fs from "node:fs/promises";
import path from "node:path";
import { onDisk } from "../domain/errors.js";
import { fsyncDir } from "../os/durable-file.js";
import type { SnapshotInfo } from "../state/record.js";
import type { VmPaths } from "../state/vm-paths.js";
import { ownedDir } from "./vmm-users.js";

const PARTIAL = ".partial-";

export const snapshotDir = (paths: VmPaths, name: string) => path.join(paths.snapshots, name);

/** An empty directory for CH to write `name` into, the VMM's (`uid`) alone; a leftover of an earlier try is removed first. */
export async function prepareSnapshot(paths: VmPaths, name: string, uid: number | undefined): Promise<string> {
  const partial = path.join(paths.snapshots, `${PARTIAL}${name}`);
  await onDisk("remove", partial, () => fs.rm(partial, { recursive: true, force: true }));
  await ownedDir(paths.snapshots, uid);
  await ownedDir(partial, uid);
  return partial;
}

/** CH has written the snapshot: flush its files, give it its name, and say what it takes on disk. */
export async function commitSnapshot(paths: VmPaths, name: string): Promise<SnapshotInfo> {
  const partial = path.join(paths.snapshots, `${PARTIAL}${name}`);
  const final = snapshotDir(paths, name);
  let size = 0;
  await onDisk("sync", partial, async () => {
    for (const entry of await fs.readdir(partial, { withFileTypes: true })) {
      // What the VMM left there is its own; nothing is followed through a link.
      if (!entry.isFile()) continue;
      const file = await fs.open(path.join(partial, entry.name), "r");
      try {
        await file.sync();
        size += (await file.stat()).blocks * 512;
      } finally {
        await file.close();
      }
    }
    await fsyncDir(partial);
  });
  await onDisk("rename", final, () => fs.rename(partial, final));
  await onDisk("sync", paths.snapshots, () => fsyncDir(paths.snapshots));
  return { name, created_at: new Date().toISOString(), size_bytes: size };
}

/** Removes a snapshot's directory, finished or partial. */
export async function removeSnapshot(paths: VmPaths, name: string): Promise<void> {
  for (const dir of [snapshotDir(paths, name), path.join(paths.snapshots, `${PARTIAL}${name}`)])
    await onDisk("remove", dir, () => fs.rm(dir, { recursive: true, force: true }));
}

/** Removes every snapshot directory the record does not list; returns their names. */
export async function sweepSnapshots(paths: VmPaths, listed: SnapshotInfo[]): Promise<string[]> {
  const keep = new Set(listed.map((s) => s.name));
  const entries = await fs.readdir(paths.snapshots).catch((e: NodeJS.ErrnoException) => (e.code === "ENOENT" ? [] : Promise.reject(e)));
  const stray = entries.filter((name) => !keep.has(name));
  for (const name of stray)
    await onDisk("remove", path.join(paths.snapshots, name), () => fs.rm(path.join(paths.snapshots, name), { recursive: true, force: true }));
  return stray;
}
