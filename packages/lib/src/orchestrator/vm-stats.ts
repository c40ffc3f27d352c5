/**
 * Reads a running VM's usage: its cgroup's counters where it has one (the
 * VMM and all it started), else the VMM process's own from /proc.
 */
import fs from "node:fs";
import type { VmStats } from "../domain/vm-stats.js";
import { readIoStat, readKeyed, readSetting } from "../os/cgroup2.js";
import { readProcStat } from "../os/proc.js";

/** /proc reports CPU times in USER_HZ ticks, 100 per second on every Linux ABI this daemon runs on. */
const US_PER_TICK = 10_000;

export type HostUsage = Omit<VmStats, "devices" | "memory_actual_size">;

export function readVmStats(id: string, pid: number, cgroup: string | undefined): HostUsage {
  return cgroup ? fromCgroup(id, pid, cgroup) : fromProcess(id, pid);
}

function fromCgroup(id: string, pid: number, dir: string): HostUsage {
  const cpu = readKeyed(dir, "cpu.stat");
  const events = readKeyed(dir, "memory.events");
  const num = (file: string) => {
    const v = readSetting(dir, file);
    return v === undefined || v === "max" ? null : Number(v);
  };
  const io = readIoStat(dir).reduce(
    (sum, d) => ({
      read_bytes: sum.read_bytes + (d.counters.rbytes ?? 0),
      write_bytes: sum.write_bytes + (d.counters.wbytes ?? 0),
      read_ops: sum.read_ops + (d.counters.rios ?? 0),
      write_ops: sum.write_ops + (d.counters.wios ?? 0),
    }),
    { read_bytes: 0, write_bytes: 0, read_ops: 0, write_ops: 0 },
  );
  return {
    id,
    pid,
    source: "cgroup",
    cgroup: dir,
    cpu: {
      usage_us: cpu.usage_usec ?? 0,
      user_us: cpu.user_usec ?? 0,
      system_us: cpu.system_usec ?? 0,
      throttled_us: cpu.throttled_usec ?? null,
      nr_throttled: cpu.nr_throttled ?? null,
    },
    memory: { current_bytes: num("memory.current") ?? 0, peak_bytes: num("memory.peak"), max_events: events.max ?? null, oom_kills: events.oom_kill ?? null },
    pids: { current: num("pids.current") ?? 0 },
    io,
  };
}

function fromProcess(id: string, pid: number): HostUsage {
  const stat = readProcStat(pid);
  const [user, system] = [(stat?.userTicks ?? 0) * US_PER_TICK, (stat?.systemTicks ?? 0) * US_PER_TICK];
  const status = read(`/proc/${pid}/status`);
  const field = (text: string, key: string) => Number(new RegExp(`^${key}:\\s*(\\d+)`, "m").exec(text)?.[1] ?? 0);
  const io = read(`/proc/${pid}/io`);
  return {
    id,
    pid,
    source: "process",
    cgroup: null,
    cpu: { usage_us: user + system, user_us: user, system_us: system, throttled_us: null, nr_throttled: null },
    memory: { current_bytes: field(status, "VmRSS") * 1024, peak_bytes: null, max_events: null, oom_kills: null },
    pids: { current: field(status, "Threads") },
    io: { read_bytes: field(io, "read_bytes"), write_bytes: field(io, "write_bytes"), read_ops: null, write_ops: null },
  };
}

function read(file: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return "";
  }
}
