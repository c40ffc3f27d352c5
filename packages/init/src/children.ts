/**
 * The processes the init spawned itself (workload, exec commands). Node
 * reaps these and reports their exit status; the zombie reaper must leave
 * them alone and reap only orphans that were re-parented to PID 1.
 */
import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";

const own = new Set<number>();

export function spawnTracked(command: string, args: string[], options: SpawnOptions): ChildProcess {
  const child = spawn(command, args, options);
  if (child.pid !== undefined) {
    own.add(child.pid);
    const pid = child.pid;
    child.once("exit", () => own.delete(pid));
  }
  return child;
}

export function isOwnChild(pid: number): boolean {
  return own.has(pid);
}
