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
 */

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
}

/** The host's programs and libraries; on a merged-/usr system most are links, and links are copied as links. */
const SYSTEM_DIRS = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/**
 * $1 is the mount point, then r:/w:/d: entries, then `--` and the command.
 * A path that does not exist is skipped: what needs it fails as it would
 * outside the jail (a missing kernel is the VMM's error to report).
 * /proc and /sys carry no restricting flags: a user namespace inside the
 * jail (the test VMM's guest) may mount its own only if none it sees is
 * less restricted.
 */
const SCRIPT = `set -eu
root=$1; shift
fail() { echo "jail: $*" >&2; exit 125; }
mount -t tmpfs -o mode=0755,nosuid,nodev,size=4m jail "$root" || fail "cannot mount a tmpfs on $root"
for d in ${SYSTEM_DIRS.join(" ")}; do
  if [ -L "/$d" ]; then ln -s "$(readlink "/$d")" "$root/$d"
  elif [ -d "/$d" ]; then mkdir "$root/$d"; mount --bind -o ro "/$d" "$root/$d"; fi
done
mkdir "$root/usr" "$root/proc" "$root/sys" "$root/dev" "$root/tmp"
mount --bind -o ro /usr "$root/usr"
mount -t proc -o hidepid=invisible proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount -t tmpfs -o mode=1777,nosuid,nodev,size=4m tmp "$root/tmp"
show() {
  [ -e "$2" ] || return 0
  o=$1
  # A disk may be a block device: bound without nodev, or it could not be opened.
  if [ -b "$2" ] || [ -c "$2" ]; then o=\${o%,nodev}; fi
  if [ -d "$2" ]; then mkdir -p "$root$2"; else mkdir -p "$root$(dirname "$2")"; [ -e "$root$2" ] || : > "$root$2"; fi
  mount --bind -o "$o" "$2" "$root$2" || fail "cannot show $2"
}
while [ "$1" != -- ]; do
  case $1 in
    r:*) show ro,nosuid,nodev "\${1#r:}" ;;
    w:*) show rw,nosuid,nodev "\${1#w:}" ;;
    # Read-only binds stop writes to files, not to device nodes.
    d:*) show ro,nosuid "\${1#d:}" ;;
    x:*) p=\${1#x:}; mkdir -p "$root$(dirname "$p")"; : > "$root$p"; chmod 000 "$root$p" ;;
  esac
  shift
done
shift
cd "$root"
pivot_root . . || fail "pivot_root failed"
umount -l .
cd /
exec "$@"
`;

/** The command line that runs `command` inside a jail showing `view`. */
export function jailCommand(view: JailView, command: string[]): string[] {
  const entries = [
    ...view.readOnly.map((p) => `r:${p}`),
    ...view.writable.map((p) => `w:${p}`),
    ...view.devices.map((p) => `d:${p}`),
    ...view.denied.map((p) => `x:${p}`),
  ];
  return ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", SCRIPT, "jail", view.mountPoint, ...entries, "--", ...command];
}
