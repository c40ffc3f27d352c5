/**
 * What /proc says about a process: its state letter, its start time (clock
 * ticks since boot, field 22 of /proc/<pid>/stat) and its argv. A pid plus
 * its start time identifies one process for good; a reused pid has another
 * start time. A zombie (`Z`) has exited: it is dead, not alive.
 *
 * The reads are synchronous on purpose: procfs is generated in memory and
 * never waits on a disk, so the thread pool would only add cost. A sweep
 * over a few hundred processes takes a few milliseconds this way, against
 * about a hundred milliseconds asynchronously (docs/benchmarks.md).
 */
import fs from "node:fs";

export interface ProcessIdentity {
  pid: number;
  /** Field 22 of /proc/<pid>/stat, as a decimal string. */
  start_time: string;
}

export interface ProcStat {
  /** One letter: R, S, D, Z (zombie), X (dead), ... */
  state: string;
  ppid: number;
  /** User and system CPU time, in clock ticks (fields 14 and 15), and their sum. */
  userTicks: number;
  systemTicks: number;
  cpuTicks: number;
  startTime: string;
}

export function readProcStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // comm (field 2) may hold spaces and parentheses: fields resume after the last ')'.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const [state, ppid] = fields;
  const startTime = fields[19];
  const [userTicks, systemTicks] = [Number(fields[11]), Number(fields[12])];
  return state && startTime ? { state, ppid: Number(ppid), userTicks, systemTicks, cpuTicks: userTicks + systemTicks, startTime } : undefined;
}

/** The process still runs and is the one the identity names. */
export function isAlive(identity: ProcessIdentity): boolean {
  const stat = readProcStat(identity.pid);
  return stat !== undefined && stat.state !== "Z" && stat.state !== "X" && stat.startTime === identity.start_time;
}

/** The real uid a process runs under (/proc/<pid>/status), or undefined if it is gone. */
export function readUid(pid: number): number | undefined {
  try {
    const uid = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return uid === undefined ? undefined : Number(uid);
  } catch {
    return undefined;
  }
}

export function readCmdline(pid: number): string[] {
  try {
    return fs
      .readFileSync(`/proc/${pid}/cmdline`, "utf8")
      .split("\0")
      .filter((a) => a !== "");
  } catch {
    return [];
  }
}

/** Every live process whose argv contains an argument starting with `prefix`, with that argument and the whole argv. */
export function findProcessesByArg(prefix: string): { identity: ProcessIdentity; arg: string; argv: string[] }[] {
  const found: { identity: ProcessIdentity; arg: string; argv: string[] }[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const argv = readCmdline(pid);
    const arg = argv.find((a) => a.startsWith(prefix));
    if (arg === undefined) continue;
    const stat = readProcStat(pid);
    if (stat && stat.state !== "Z") found.push({ identity: { pid, start_time: stat.startTime }, arg, argv });
  }
  return found;
}

/**
 * Every live process whose real uid is in [first, last], by uid. /proc/<pid> is owned by its process's uid unless
 * the process made itself non-dumpable (then by root): a root-owned entry has its status read, so none hides so.
 */
export function processesByUid(first: number, last: number): Map<number, number[]> {
  const found = new Map<number, number[]>();
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    let uid: number | undefined;
    try {
      uid = fs.statSync(`/proc/${entry}`).uid;
    } catch {
      continue;
    }
    if (uid === 0) uid = readUid(pid);
    if (uid === undefined || uid < first || uid > last) continue;
    const state = readProcStat(pid)?.state;
    if (state === undefined || state === "Z" || state === "X") continue;
    found.set(uid, [...(found.get(uid) ?? []), pid]);
  }
  return found;
}
