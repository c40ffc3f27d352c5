/**
 * What PID 1 owes the system: the pseudo-filesystems, the hostname, the
 * loopback interface, reaping orphans, and powering off. The system calls
 * come from ./libc.js, loaded only when needed: a non-PID-1 run (the test
 * VMM without privileges) never touches them.
 */

import fs from "node:fs";
import { readProcStat } from "@my_hypervisor/lib/proc";
import { isOwnChild } from "./children.js";
import { say } from "./console-log.js";

const MOUNTS: { target: string; fstype: string; source: string; flags: "nosuid,nodev,noexec" | "nosuid" | "nosuid,nodev"; data?: string }[] = [
  { target: "/proc", fstype: "proc", source: "proc", flags: "nosuid,nodev,noexec" },
  { target: "/sys", fstype: "sysfs", source: "sysfs", flags: "nosuid,nodev,noexec" },
  { target: "/dev", fstype: "devtmpfs", source: "devtmpfs", flags: "nosuid", data: "mode=0755" },
  { target: "/dev/pts", fstype: "devpts", source: "devpts", flags: "nosuid", data: "mode=0620,ptmxmode=0666" },
  { target: "/run", fstype: "tmpfs", source: "tmpfs", flags: "nosuid,nodev", data: "mode=0755" },
  { target: "/tmp", fstype: "tmpfs", source: "tmpfs", flags: "nosuid,nodev", data: "mode=1777" },
];

/** Mount points already mounted, per /proc/self/mountinfo. */
function mounted(): Set<string> {
  try {
    return new Set(
      fs
        .readFileSync("/proc/self/mountinfo", "utf8")
        .split("\n")
        .map((l) => l.split(" ")[4])
        .filter((m): m is string => m !== undefined),
    );
  } catch {
    return new Set();
  }
}

/** /proc is ours only if it shows our PID namespace: a /proc from another one counts as missing. */
function procIsOurs(): boolean {
  try {
    return Number(fs.readlinkSync("/proc/self")) === process.pid;
  } catch {
    return false;
  }
}

export async function mountPseudoFilesystems(): Promise<string[]> {
  const c = await import("./libc.js");
  const done: string[] = [];
  for (const m of MOUNTS) {
    const have = m.target === "/proc" ? procIsOurs() : mounted().has(m.target);
    if (have) continue;
    fs.mkdirSync(m.target, { recursive: true });
    let flags = 0;
    if (m.flags.includes("nosuid")) flags |= c.MS_NOSUID;
    if (m.flags.includes("nodev")) flags |= c.MS_NODEV;
    if (m.flags.includes("noexec")) flags |= c.MS_NOEXEC;
    if (c.mount(m.source, m.target, m.fstype, flags, m.data ?? null) < 0) say("init", `mount ${m.target} (${m.fstype}) failed: errno ${c.errno()}`);
    else done.push(m.target);
  }
  return done;
}

export async function setHostname(name: string): Promise<void> {
  const c = await import("./libc.js");
  if (c.sethostname(name, Buffer.byteLength(name)) < 0) say("init", `sethostname failed: errno ${c.errno()}`);
}

export async function bringUpLoopback(): Promise<void> {
  const c = await import("./libc.js");
  const fd = c.socket(c.AF_INET, c.SOCK_DGRAM | c.SOCK_CLOEXEC, 0);
  if (fd < 0) return say("init", `lo: socket failed: errno ${c.errno()}`);
  try {
    const ifr = { ifr_name: "lo", ifr_flags: 0 };
    if (c.ioctlFlags(fd, c.SIOCGIFFLAGS, ifr) < 0) return say("init", `lo: SIOCGIFFLAGS failed: errno ${c.errno()}`);
    ifr.ifr_flags |= c.IFF_UP;
    if (c.ioctlFlags(fd, c.SIOCSIFFLAGS, ifr) < 0) say("init", `lo: SIOCSIFFLAGS failed: errno ${c.errno()}`);
  } finally {
    c.close(fd);
  }
}

/**
 * Reaps zombies re-parented to us. It looks them up in /proc rather than
 * calling waitpid(-1), which would steal the exit status of the processes
 * Node spawned (the workload, exec commands): those are left to Node.
 */
export async function reapOrphans(): Promise<number[]> {
  const c = await import("./libc.js");
  const reaped: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (isOwnChild(pid)) continue;
    const stat = readProcStat(pid);
    if (stat?.state !== "Z" || stat.ppid !== process.pid) continue;
    const status = [0];
    if (c.waitpid(pid, status, c.WNOHANG) === pid) reaped.push(pid);
  }
  return reaped;
}

/** Flushes and powers off. Only ever reached as PID 1: as a plain process it would power off the host. */
export async function powerOff(): Promise<never> {
  if (process.pid !== 1) {
    say("init", "not PID 1: exiting instead of powering off");
    process.exit(0);
  }
  const c = await import("./libc.js");
  c.sync();
  c.reboot(c.LINUX_REBOOT_CMD_POWER_OFF);
  // reboot() only returns on failure; PID 1 must not exit (the kernel would panic), so wait forever.
  say("init", `power off failed: errno ${c.errno()}`);
  return new Promise<never>(() => undefined);
}
