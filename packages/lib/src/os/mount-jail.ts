/**
 * A mount namespace that shows a process only what it is given. Run as root:
 * util-linux `unshare --mount` makes the namespace, a short sh script builds
 * a new root on a tmpfs (the system's programs and libraries read-only, a
 * private /proc that shows only the process's own uid, a fresh /sys, the
 * given devices and paths bound at the same absolute paths, so nothing that
 * names them needs rewriting; what it could not open outside stays so
 * inside), pivots into it and detaches the host's tree,
 * then execs the command. Every step is an exec, never a fork: the pid the
 * caller spawns is the pid of the command in the end.
 *
 * Why a script and not Node: the mounts must happen inside the new namespace,
 * in the process that then becomes the command; Node can neither unshare nor
 * pivot_root. unshare(1), mount(8) and pivot_root(8) are on every Debian.
 *
 * What to make and mount is worked out here, so the script runs few programs
 * (each costs a fork and an exec on the VM's start path): one mkdir for every
 * directory, one `mount --all` over an fstab of every mount, the rest shell
 * builtins.
 */
import fs from "node:fs";
import path from "node:path";

export interface JailView {
  /** An empty directory, root's, on which the namespace mounts its new root. */
  mountPoint: string;
  /** Files and directories shown read-only. */
  readOnly: string[];
  /** Files and directories shown writable (the process's own directory, its writable disks). */
  writable: string[];
  /** Device nodes under /dev. */
  devices: string[];
  /** Paths the process may not open: shown as empty files it has no permission on, so opening one fails as it would outside. */
  denied: string[];
  /** Shown paths that must show exactly these objects (`dev:ino`, os/path-walk.ts): the start fails if one was swapped. */
  pinned: Map<string, string>;
  /** The network namespace it runs in. */
  network: JailNetwork;
}

/**
 * `own`: a new one, with no interface but a loopback that is down. `join`: an existing one, by its file
 * (/run/netns/NAME). Either way the process reaches no TCP or UDP port of the host and no abstract Unix socket name
 * (those belong to a network namespace), only the sockets its files show it. `host`: the host's.
 */
export type JailNetwork = { kind: "own" } | { kind: "join"; netns: string } | { kind: "host" };

/** The host's programs and libraries; on a merged-/usr system most are links, and links are made as links. */
const SYSTEM_DIRS = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/**
 * $1 is the mount point, then newline-separated lists under it: directories to make, empty files to make (bind
 * targets), files to make unopenable (denied), links to make (their targets: a link's name is its target's last
 * component), the fstab, the pinned targets and the `dev:ino` each must show; then `--` and the command. Lists split
 * on newlines only, globbing off.
 */
const SCRIPT = `set -euf
root=$1 dirs=$2 files=$3 denied=$4 links=$5 fstab=$6 pinned=$7 pins=$8; shift 9
fail() { echo "jail: $*" >&2; exit 125; }
mount -t tmpfs -o mode=0755,nosuid,nodev,size=8m jail "$root" || fail "cannot mount a tmpfs on $root"
cd "$root"
mkdir -m 1777 tmp
IFS='
'
[ -z "$links" ] || ln -s -- $links . || fail "cannot link the system's directories"
mkdir -p -- $dirs || fail "cannot make the jail's directories"
for f in $files $denied; do : > "$f"; done
[ -z "$denied" ] || chmod 000 -- $denied
(umask 077 && printf '%s' "$fstab" > .fstab)
mount --all --fstab .fstab || fail "cannot mount what the jail shows (see above)"
rm -f .fstab
[ -z "$pinned" ] || [ "$(stat -L -c %d:%i -- $pinned)" = "$pins" ] || fail "a file of the VM was replaced while its jail was built"
pivot_root . . || fail "pivot_root failed"
umount -l .
cd /
exec "$@"
`;

/** fstab's escapes for a path: a space, tab, newline or backslash as octal. */
const fstabPath = (p: string) => p.replace(/[\\ \t\n]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`);

/** A newline-separated list for the script, which splits on newlines only. */
function lines(paths: string[]): string {
  const bad = paths.find((p) => p.includes("\n"));
  if (bad !== undefined) throw new Error(`cannot show ${JSON.stringify(bad)} in a VMM's jail: its path has a newline`);
  return paths.join("\n");
}

const depth = (p: string) => p.split("/").length;

/**
 * Where `p` is shown under the jail's root. Only a canonical absolute path is taken (no `.`, `..` or empty segment),
 * so nothing the jail makes, empties or chmods can land outside its root.
 */
function underRoot(root: string, p: string): string {
  const target = path.join(root, p);
  if (!p.startsWith("/") || path.posix.normalize(p) !== p || !target.startsWith(`${root}/`))
    throw new Error(`cannot show ${JSON.stringify(p)} in a VMM's jail: not a canonical absolute path`);
  return target;
}

/** The command line that runs `command` inside a jail showing `view`. */
export function jailCommand(view: JailView, command: string[]): string[] {
  const root = view.mountPoint;
  const under = (p: string) => underRoot(root, p);
  // /tmp is a directory of the root's tmpfs, not a tmpfs of its own: what is shown under /tmp is made in it first.
  const dirs = new Set(["/usr", "/proc", "/sys", "/dev"].map(under));
  const files = new Set<string>();
  const links: string[] = [];
  // /proc and /sys carry no restricting flags: a user namespace inside the jail (the test VMM's guest) may mount its
  // own only if none it sees is less restricted.
  const fstab = [
    `/usr ${fstabPath(under("/usr"))} none bind,ro 0 0`,
    `proc ${fstabPath(under("/proc"))} proc hidepid=invisible 0 0`,
    `sysfs ${fstabPath(under("/sys"))} sysfs defaults 0 0`,
  ];
  for (const d of SYSTEM_DIRS) {
    const host = `/${d}`;
    const target = fs.lstatSync(host, { throwIfNoEntry: false })?.isSymbolicLink() ? fs.readlinkSync(host) : undefined;
    if (target !== undefined && path.basename(target) === d) links.push(target);
    // A link one `ln` cannot make under its own name is shown as what it leads to, bound at its path.
    else if (fs.statSync(host, { throwIfNoEntry: false })?.isDirectory()) {
      dirs.add(under(host));
      fstab.push(`${host} ${fstabPath(under(host))} none bind,ro 0 0`);
    }
  }
  // A path that does not exist is skipped: what needs it fails as it would outside (a missing kernel is the VMM's
  // error to report). Outer paths are mounted before the paths inside them.
  const shown = [
    ...view.readOnly.map((p) => ({ p, options: "ro,nosuid,nodev" })),
    ...view.writable.map((p) => ({ p, options: "rw,nosuid,nodev" })),
    // Read-only binds stop writes to files, not to device nodes.
    ...view.devices.map((p) => ({ p, options: "ro,nosuid" })),
  ].sort((a, b) => depth(a.p) - depth(b.p));
  for (const { p, options } of shown) {
    const stat = fs.statSync(p, { throwIfNoEntry: false });
    if (!stat) continue;
    // A disk may be a block device: bound without nodev, or it could not be opened.
    const device = stat.isBlockDevice() || stat.isCharacterDevice();
    if (stat.isDirectory()) dirs.add(under(p));
    else {
      dirs.add(path.dirname(under(p)));
      files.add(under(p));
    }
    fstab.push(`${fstabPath(p)} ${fstabPath(under(p))} none bind,${device ? options.replace(",nodev", "") : options} 0 0`);
  }
  const denied = view.denied.map(under);
  for (const d of denied) dirs.add(path.dirname(d));
  const pinned = [...view.pinned.keys()].filter((p) => files.has(under(p)) || dirs.has(under(p)));
  const { network } = view;
  return [
    // nsenter execs unshare, which execs the script: still one pid from the first exec to the command.
    ...(network.kind === "join" ? ["nsenter", `--net=${network.netns}`, "--"] : []),
    "unshare",
    "--mount",
    ...(network.kind === "own" ? ["--net"] : []),
    "--propagation",
    "private",
    "--",
    "/bin/sh",
    "-c",
    SCRIPT,
    "jail",
    root,
    lines([...dirs]),
    lines([...files]),
    lines(denied),
    lines(links),
    `${fstab.join("\n")}\n`,
    lines(pinned.map(under)),
    pinned.map((p) => view.pinned.get(p)).join("\n"),
    "--",
    ...command,
  ];
}
