/**
 * One daemon per state dir. The lock is a listening Unix socket in Linux's
 * abstract namespace, named after the state dir's real path: the kernel
 * gives a name to one socket at a time and frees it when its process dies,
 * however it dies, so there is no stale lock to clean up and no window in
 * which two daemons both think they hold it. (Node has no flock(2); a pid
 * file alone cannot be taken atomically once a holder has died.)
 *
 * Abstract names belong to a network namespace, so `daemon.pid` backs the
 * lock up across namespaces: a live process with the recorded pid and start
 * time is a holder too. The pid file also names the holder in the refusal.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { readProcStat } from "./proc.js";

export class StateDirLockedError extends Error {}

export interface StateDirLock {
  unlock(): void;
}

export async function lockStateDir(stateDir: string): Promise<StateDirLock> {
  const real = fs.realpathSync(stateDir);
  const pidFile = path.join(real, "daemon.pid");
  const holder = livePidFileHolder(pidFile);
  if (holder !== undefined) throw locked(real, holder);
  const server = net.createServer((c) => c.destroy());
  const name = `\0my_hypervisor/state-dir/${createHash("sha256").update(real).digest("hex").slice(0, 32)}`;
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) => reject(e.code === "EADDRINUSE" ? locked(real, readPidFile(pidFile)?.pid) : e));
    server.listen(name, () => resolve());
  });
  server.unref();
  const self = readProcStat(process.pid);
  try {
    fs.writeFileSync(pidFile, `${process.pid} ${self?.startTime ?? ""}\n`, { mode: 0o600 });
  } catch {
    // A full disk: the lock holds all the same; a refused daemon then cannot name this pid.
  }
  return {
    unlock() {
      server.close();
      if (readPidFile(pidFile)?.pid === process.pid) fs.rmSync(pidFile, { force: true });
    },
  };
}

function locked(stateDir: string, pid: number | undefined): StateDirLockedError {
  return new StateDirLockedError(
    `state dir ${stateDir} is in use by another my_hypervisor-daemon (pid ${pid ?? "unknown"}); only one daemon may manage a state dir`,
  );
}

function readPidFile(file: string): { pid: number; startTime: string } | undefined {
  try {
    const [pid = "", startTime = ""] = fs.readFileSync(file, "utf8").trim().split(" ");
    return /^\d+$/.test(pid) ? { pid: Number(pid), startTime } : undefined;
  } catch {
    return undefined;
  }
}

/** The pid in the file, if that process still runs (same start time) and is not this one. */
function livePidFileHolder(file: string): number | undefined {
  const recorded = readPidFile(file);
  if (!recorded || recorded.pid === process.pid) return undefined;
  const stat = readProcStat(recorded.pid);
  return stat && stat.state !== "Z" && stat.startTime === recorded.startTime ? recorded.pid : undefined;
}
