/**
 * The cgroup v2 filesystem: where it is mounted, which cgroup a process is
 * in, which controllers a cgroup offers, and its interface files. Plain file
 * operations: a cgroup is a directory, a limit a file written once, a move a
 * pid written to `cgroup.procs` (which moves every thread of the process).
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";

/** Where cgroup2 is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on a hybrid host); undefined if it is not. */
export function cgroup2Mount(): string | undefined {
  for (const line of readText("/proc/self/mountinfo").split("\n")) {
    const [mountFields = "", fsFields = ""] = line.split(" - ");
    if (fsFields.split(" ")[0] === "cgroup2") return unescapeMountPath(mountFields.split(" ")[4] ?? "");
  }
  return undefined;
}

/** The cgroup v2 path (from the hierarchy's root, "/" for the root) that `pid` is in. */
export function cgroupOf(pid: number | "self"): string | undefined {
  const line = readText(`/proc/${pid}/cgroup`)
    .split("\n")
    .find((l) => l.startsWith("0::"));
  return line?.slice(3);
}

/** The controllers a cgroup can enable for its children (its `cgroup.controllers`). */
export function controllersOf(dir: string): string[] {
  return readText(path.join(dir, "cgroup.controllers")).trim().split(/\s+/).filter(Boolean);
}

/** Lets the cgroup's children use `controllers` (a cgroup with processes of its own cannot, but the root can). */
export async function enableControllers(dir: string, controllers: string[]): Promise<void> {
  const enabled = new Set(readText(path.join(dir, "cgroup.subtree_control")).trim().split(/\s+/));
  const wanted = controllers.filter((c) => !enabled.has(c));
  if (wanted.length > 0) await fsp.writeFile(path.join(dir, "cgroup.subtree_control"), wanted.map((c) => `+${c}`).join(" "));
}

export async function makeCgroup(dir: string): Promise<void> {
  await fsp.mkdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== "EEXIST") throw e;
  });
}

/** Moves a process, with all its threads, into the cgroup. */
export async function moveInto(dir: string, pid: number): Promise<void> {
  await fsp.writeFile(path.join(dir, "cgroup.procs"), String(pid));
}

export function processesIn(dir: string): number[] {
  return readText(path.join(dir, "cgroup.procs")).split("\n").filter(Boolean).map(Number);
}

export async function writeSetting(dir: string, file: string, value: string): Promise<void> {
  await fsp.writeFile(path.join(dir, file), value);
}

/** An interface file's content, trimmed; undefined where the file does not exist (its controller is not enabled). */
export function readSetting(dir: string, file: string): string | undefined {
  try {
    return fs.readFileSync(path.join(dir, file), "utf8").trim();
  } catch {
    return undefined;
  }
}

/** A flat-keyed file (`cpu.stat`, `memory.events`): "key value" per line. */
export function readKeyed(dir: string, file: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of (readSetting(dir, file) ?? "").split("\n")) {
    const [key, value] = line.split(" ");
    if (key && value !== undefined) out[key] = Number(value);
  }
  return out;
}

/** `io.stat`: a line per device, "MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. ...". */
export function readIoStat(dir: string): { device: string; counters: Record<string, number> }[] {
  return (readSetting(dir, "io.stat") ?? "")
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [device = "", ...pairs] = line.split(" ");
      return { device, counters: Object.fromEntries(pairs.map((p) => p.split("=")).map(([k, v]) => [k as string, Number(v)])) };
    });
}

/** Removes an empty cgroup (the kernel refuses one that still has processes, EBUSY); one already gone is fine. */
export async function removeCgroup(dir: string): Promise<void> {
  await fsp.rmdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== "ENOENT") throw e;
  });
}

/**
 * The command line that runs `command` in cgroup `dir` from its first
 * instruction: sh writes its own pid into `cgroup.procs`, then execs (the pid
 * stays the same), so nothing the command does happens outside the cgroup.
 */
export function inCgroup(dir: string, command: string[]): string[] {
  return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', dir, ...command];
}

/**
 * The whole block device ("MAJ:MIN") that holds `file`: the device itself for a block device, else the one its
 * filesystem is on, a partition's disk for a partition (io.max takes whole disks only). Undefined where there is
 * none (tmpfs, overlay: no block device, major 0).
 */
export function wholeDiskOf(file: string): string | undefined {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    return undefined;
  }
  const dev = stat.isBlockDevice() ? stat.rdev : stat.dev;
  // glibc's dev_t: the major in bits 8-19 and 32-43, the minor in bits 0-7 and 20-31.
  const major = Number((BigInt(dev) >> 8n) & 0xfffn) | Number((BigInt(dev) >> 32n) & ~0xfffn);
  const minor = Number(BigInt(dev) & 0xffn) | Number((BigInt(dev) >> 12n) & ~0xffn);
  const sys = `/sys/dev/block/${major}:${minor}`;
  if (major === 0 || !fs.existsSync(sys)) return undefined;
  return fs.existsSync(`${sys}/partition`) ? readText(`${sys}/../dev`).trim() || undefined : `${major}:${minor}`;
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
const unescapeMountPath = (p: string) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
