/**
 * Looking a path up one component at a time, following no symbolic link, and
 * keeping what was found: each directory on the way and the file itself, as
 * objects (O_PATH descriptors, stat'ed), not names. A path checked this way
 * cannot be swapped between the check and its use without the use noticing,
 * since the file's device and inode are known (the VMM's jail binds a file,
 * then checks it bound that one: os/mount-jail.ts).
 *
 * Node has no openat(2); `/proc/self/fd/N/name` looks `name` up in the
 * directory N is open on, which is the same thing.
 */
import type { Stats } from "node:fs";
import fs from "node:fs/promises";

/** Linux's O_PATH (x86_64 and arm64): a descriptor to find and stat an object, not to read it. */
const O_PATH = 0o10000000;
const { O_NOFOLLOW, O_DIRECTORY } = fs.constants;

export type PathWalk =
  /** A component is missing, or one before the last is not a directory. */
  | { kind: "missing" }
  /** `at` (a prefix of the path) is a symbolic link. */
  | { kind: "link"; at: string }
  /** The directories from / down, and the file. */
  | { kind: "found"; dirs: Stats[]; file: Stats };

/** `file` must be absolute and canonical (domain/vm-spec.ts refuses anything else at create). */
export async function walkPath(file: string): Promise<PathWalk> {
  const names = file.split("/").filter(Boolean);
  const handles: fs.FileHandle[] = [];
  try {
    handles.push(await fs.open("/", O_PATH | O_DIRECTORY));
    const dirs: Stats[] = [await (handles[0] as fs.FileHandle).stat()];
    for (const [i, name] of names.entries()) {
      const parent = handles.at(-1) as fs.FileHandle;
      const handle = await fs.open(`/proc/self/fd/${parent.fd}/${name}`, O_PATH | O_NOFOLLOW).catch((e: NodeJS.ErrnoException) => {
        if (e.code === "ENOENT" || e.code === "ENOTDIR") return undefined;
        throw e;
      });
      if (!handle) return { kind: "missing" };
      handles.push(handle);
      const stat = await handle.stat();
      if (stat.isSymbolicLink()) return { kind: "link", at: `/${names.slice(0, i + 1).join("/")}` };
      if (i === names.length - 1) return { kind: "found", dirs, file: stat };
      if (!stat.isDirectory()) return { kind: "missing" };
      dirs.push(stat);
    }
    return { kind: "missing" };
  } finally {
    await Promise.all(handles.map((h) => h.close()));
  }
}

/** The identity a file keeps however it is reached (a bind mount shows the same device and inode). */
export const identityOf = (stat: Stats): string => `${stat.dev}:${stat.ino}`;

/**
 * Whether `user` may open what `walk` found, by the mode bits of the very objects found: search on every directory,
 * read on the file, and write too with `write`. POSIX ACLs are not read, so an ACL that grants more than the mode
 * bits is not honoured (a narrowing); callers that must honour an ACL that denies ask the kernel too.
 */
export function modeAllows(walk: Extract<PathWalk, { kind: "found" }>, user: { uid: number; gid: number; groups: number[] }, write: boolean): boolean {
  const allows = (stat: Stats, bits: number) => {
    const shift = stat.uid === user.uid ? 6 : stat.gid === user.gid || user.groups.includes(stat.gid) ? 3 : 0;
    return ((stat.mode >> shift) & bits) === bits;
  };
  return walk.dirs.every((d) => allows(d, 1)) && allows(walk.file, write ? 6 : 4);
}
