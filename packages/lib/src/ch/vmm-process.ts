/**
 * One cloud-hypervisor process. It runs in its own session with no pipe to
 * the daemon (stdout/stderr go to a file), so the daemon can exit or be
 * killed while the VM keeps running.
 */

import { spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs/promises";
import type { VmPaths } from "../state/vm-paths.js";
import { ChApiError, type ChClient } from "./client.js";

export interface VmmExit {
  code: number | null;
  signal: string | null;
}

const API_POLL_MS = 10;

export class VmmLaunchError extends Error {}

export class VmmProcess {
  private exit: VmmExit | undefined;

  private constructor(
    readonly pid: number,
    readonly exited: Promise<VmmExit>,
    private readonly outputPath: string,
  ) {
    void exited.then((e) => {
      this.exit = e;
    });
  }

  static async spawn(binary: string, paths: VmPaths): Promise<VmmProcess> {
    // A stale API socket would stop an older CH from binding.
    await fs.rm(paths.apiSocket, { force: true });
    const output = await fs.open(paths.vmmOutput, "w", 0o600);
    const args = ["--api-socket", `path=${paths.apiSocket}`, "--event-monitor", `path=${paths.eventMonitor}`, "--log-file", paths.vmmLog, "-v"];
    try {
      // stdio is a file, not a pipe: a dead daemon must not take the VMM's output with it.
      const child = spawn(binary, args, { detached: true, stdio: ["ignore", output.fd, output.fd] });
      const exited = new Promise<VmmExit>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
      const spawned = await Promise.race([once(child, "spawn").then(() => true as const), once(child, "error").then(([e]) => e as Error)]);
      if (spawned !== true) throw new VmmLaunchError(`cannot run VMM binary '${binary}': ${spawned.message}`);
      child.unref();
      return new VmmProcess(child.pid as number, exited, paths.vmmOutput);
    } finally {
      await output.close();
    }
  }

  get hasExited(): boolean {
    return this.exit !== undefined;
  }

  /** Polls vmm.ping until the API answers; fails fast if the process exits first. */
  async waitForApi(client: ChClient, deadline: number): Promise<void> {
    for (;;) {
      if (this.exit) throw new VmmLaunchError(`VMM exited before its API answered (${await this.describeExit()})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new ChApiError("vmm.ping", "vmm.ping: the VMM API did not answer in time", undefined, undefined, true);
      try {
        await client.ping(Math.min(left, 1000));
        return;
      } catch (e) {
        if (!(e instanceof ChApiError && e.unreachable)) throw e;
      }
      await Promise.race([sleep(API_POLL_MS), this.exited]);
    }
  }

  /** True if the process ended within `ms`. */
  async waitForExit(ms: number): Promise<boolean> {
    if (this.exit) return true;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((r) => {
      timer = setTimeout(() => r(false), ms);
    });
    const done = await Promise.race([this.exited.then(() => true as const), timedOut]);
    clearTimeout(timer);
    return done;
  }

  signal(sig: NodeJS.Signals): void {
    if (this.exit) return;
    try {
      process.kill(this.pid, sig);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e;
    }
  }

  /** "code 1" or "signal SIGKILL", plus the last lines the VMM printed. */
  async describeExit(): Promise<string> {
    const e = this.exit;
    const how = !e ? "still running" : e.signal ? `killed by ${e.signal}` : `exit code ${e.code}`;
    const tail = await lastLines(this.outputPath, 5);
    return tail ? `${how}; VMM output: ${tail}` : how;
  }
}

async function lastLines(file: string, n: number): Promise<string> {
  try {
    const text = await fs.readFile(file, "utf8");
    return text.trim().split("\n").slice(-n).join(" | ").slice(-2000);
  } catch {
    return "";
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
