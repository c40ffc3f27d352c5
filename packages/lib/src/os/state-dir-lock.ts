/**
 * One daemon per state dir: an exclusive flock(2) on the state dir itself,
 * the daemon's and 0700, so no other uid can open it, let alone take the lock
 * first (an abstract socket name, the lock before this one, any local uid
 * could bind and so keep the daemon from starting). The kernel drops the lock
 * when its holder dies, however it dies, so there is no stale lock and no
 * window in which two daemons both hold it; it is the directory's, so it holds
 * across namespaces; and it needs no file, so it is taken on a read-only disk
 * too. The descriptor is close-on-exec, as Node opens every file: no VMM
 * inherits it. `daemon.pid` in the dir names the holder in the refusal.
 */
import fs from "node:fs";
import path from "node:path";
import { libc } from "./libc.js";
import { readProcStat } from "./proc.js";

export class StateDirLockedError extends Error {}

export interface StateDirLock {
  unlock(): void;
}

export async function lockStateDir(stateDir: string): Promise<StateDirLock> {
  const real = fs.realpathSync(stateDir);
  const pidFile = path.join(real, "daemon.pid");
  const fd = fs.openSync(real, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    if (!libc().tryLockExclusive(fd)) throw locked(real, readPidFile(pidFile));
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  const self = readProcStat(process.pid);
  try {
    fs.writeFileSync(pidFile, `${process.pid} ${self?.startTime ?? ""}\n`, { mode: 0o600 });
  } catch {
    // A full disk: the lock holds all the same; a refused daemon then cannot name this pid.
  }
  return {
    unlock() {
      if (readPidFile(pidFile) === process.pid) fs.rmSync(pidFile, { force: true });
      fs.closeSync(fd);
    },
  };
}

function locked(stateDir: string, pid: number | undefined): StateDirLockedError {
  return new StateDirLockedError(
    `state dir ${stateDir} is in use by another my_hypervisor-daemon (pid ${pid ?? "unknown"}); only one daemon may manage a state dir`,
  );
}

function readPidFile(file: string): number | undefined {
  try {
    const [pid = ""] = fs.readFileSync(file, "utf8").trim().split(" ");
    return /^\d+$/.test(pid) ? Number(pid) : undefined;
  } catch {
    return undefined;
  }
}
