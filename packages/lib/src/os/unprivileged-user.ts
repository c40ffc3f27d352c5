/**
 * Running something as another, unprivileged user: setpriv(1) switches to
 * the uid, gid and groups before it execs, and with `dropAll` empties the
 * inheritable, ambient and bounding capability sets and sets no_new_privs,
 * so nothing the program runs can gain a privilege back. Leaving uid 0
 * clears the effective and permitted sets. Why setpriv: Node's spawn can set
 * a uid and gid, but it drops every supplementary group and can set neither
 * no_new_privs nor the bounding set; setpriv does it all in one exec, so the
 * pid spawned is the program's.
 */
import { execFile } from "node:child_process";

export interface UnprivilegedUser {
  uid: number;
  gid: number;
  /** Supplementary groups (for a VMM: `kvm`, for /dev/kvm, and nothing else). */
  groups: number[];
}

/** setpriv's arguments, up to the `--` before the program. */
export function setprivArgs(user: UnprivilegedUser): string[] {
  const groups = user.groups.length > 0 ? [`--groups=${user.groups.join(",")}`] : ["--clear-groups"];
  return [`--reuid=${user.uid}`, `--regid=${user.gid}`, ...groups, "--no-new-privs", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all"];
}

/**
 * Whether `user` can open `file` for reading (and writing, with `write`) on
 * this host: the kernel answers (test(1) under that uid), so directory
 * permissions above the file, ACLs and read-only mounts all count.
 */
export function canOpenAs(user: UnprivilegedUser, file: string, write: boolean): Promise<boolean> {
  const test = write ? ["-r", file, "-a", "-w", file] : ["-r", file];
  return new Promise((resolve) => execFile("setpriv", [...setprivArgs(user), "--", "test", ...test], (err) => resolve(!err)));
}
