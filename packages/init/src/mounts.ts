/**
 * The pseudo-filesystems PID 1 mounts, each only if it is missing. A /proc
 * that shows another PID namespace counts as missing (the test VMM's guests
 * start with the host's).
 */
import type { Platform } from "./platform.js";

const MS_NOSUID = 0x2;
const MS_NODEV = 0x4;
const MS_NOEXEC = 0x8;

const MOUNTS: { target: string; fstype: string; flags: number; data?: string }[] = [
  { target: "/proc", fstype: "proc", flags: MS_NOSUID | MS_NODEV | MS_NOEXEC },
  { target: "/sys", fstype: "sysfs", flags: MS_NOSUID | MS_NODEV | MS_NOEXEC },
  { target: "/dev", fstype: "devtmpfs", flags: MS_NOSUID, data: "mode=0755" },
  { target: "/dev/pts", fstype: "devpts", flags: MS_NOSUID, data: "mode=0620,ptmxmode=0666" },
  { target: "/run", fstype: "tmpfs", flags: MS_NOSUID | MS_NODEV, data: "mode=0755" },
  { target: "/tmp", fstype: "tmpfs", flags: MS_NOSUID | MS_NODEV, data: "mode=1777" },
];

/** Mounts what is missing; returns what it mounted, and logs what failed. */
export function mountPseudoFilesystems(p: Platform, say: (message: string) => void): string[] {
  const done: string[] = [];
  for (const m of MOUNTS) {
    const have = m.target === "/proc" ? p.procSelf() === p.pid : p.mountPoints().has(m.target);
    if (have) continue;
    try {
      p.mkdirs(m.target);
      p.mount(m.fstype, m.target, m.fstype, m.flags, m.data);
      done.push(m.target);
    } catch (e) {
      say(`mount ${m.target} (${m.fstype}) failed: ${(e as Error).message}`);
    }
  }
  return done;
}
