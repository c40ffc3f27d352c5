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

/** One file to check: opened for reading, and writing too with `write`. */
export interface FileAccess {
  path: string;
  write: boolean;
}

/** Prints y or n per argument (`r:PATH` or `w:PATH`), in order: one process for all of a VM's files. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: ${f#?:} is the shell's, not a template's
const ACCESS_SCRIPT = 'for f; do p=${f#?:}; case $f in w:*) test -r "$p" -a -w "$p";; *) test -r "$p";; esac && echo y || echo n; done';

/**
 * Whether `user` can open each file, in the order given: the kernel answers (test(1) under that uid, all files in
 * one shell), so directory permissions above a file, ACLs and read-only mounts all count. Nothing can be opened if
 * the check itself cannot run.
 */
export function canOpenAs(user: UnprivilegedUser, files: FileAccess[]): Promise<boolean[]> {
  if (files.length === 0) return Promise.resolve([]);
  const args = files.map((f) => `${f.write ? "w" : "r"}:${f.path}`);
  return new Promise((resolve) =>
    execFile("setpriv", [...setprivArgs(user), "--", "sh", "-c", ACCESS_SCRIPT, "sh", ...args], (err, stdout) => {
      const answers = err ? [] : stdout.split("\n");
      resolve(files.map((_, i) => answers[i] === "y"));
    }),
  );
}
