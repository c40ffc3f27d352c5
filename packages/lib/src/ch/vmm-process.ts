/**
 * One cloud-hypervisor process, identified by pid and start time. A spawned
 * VMM runs in its own session with no pipe to the daemon (stdout/stderr go to
 * a file), so the daemon can exit or be killed while the VM keeps running. An
 * adopted VMM (found again after a daemon restart) is not the daemon's child:
 * its exit is detected by polling /proc, and its exit status is unknown.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs/promises";
import { inCgroup } from "../os/cgroup2.js";
import { type JailView, jailCommand } from "../os/mount-jail.js";
import { isAlive, type ProcessIdentity, readProcStat } from "../os/proc.js";
import { setprivArgs, type UnprivilegedUser } from "../os/unprivileged-user.js";
import { waitForPath } from "../os/wait-for-path.js";
import { unlinkSockets, type VmPaths } from "../state/vm-paths.js";
import { ChApiError, type ChClient } from "./client.js";

export interface VmmExit {
  /** null with signal null: the exit status is unknown (an adopted VMM). */
  code: number | null;
  signal: string | null;
}

const API_POLL_MS = 10;
/** Adopted VMMs are checked this often: an exit is noticed well within 1 s. */
export const EXIT_POLL_MS = 250;

export class VmmLaunchError extends Error {}

/** Polls /proc for the VMMs that are not the daemon's children. */
class ExitPoller {
  private readonly watched = new Set<VmmProcess>();
  private timer: NodeJS.Timeout | undefined;

  watch(p: VmmProcess): void {
    this.watched.add(p);
    this.timer ??= setInterval(() => this.poll(), EXIT_POLL_MS).unref();
  }

  unwatch(p: VmmProcess): void {
    this.watched.delete(p);
    if (this.watched.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private poll(): void {
    for (const p of this.watched) if (!isAlive(p.identity)) p.markExited({ code: null, signal: null });
  }
}

const poller = new ExitPoller();

export class VmmProcess {
  private exit: VmmExit | undefined;
  private resolveExit!: (e: VmmExit) => void;
  readonly exited: Promise<VmmExit>;

  private constructor(
    readonly identity: ProcessIdentity,
    private readonly outputPath: string,
    private readonly apiSocket: string,
  ) {
    this.exited = new Promise((resolve) => {
      this.resolveExit = resolve;
    });
  }

  get pid(): number {
    return this.identity.pid;
  }

  /**
   * With `user`, the VMM runs under that uid with no privileges; with `jail` too, in a mount namespace that shows
   * only `jail`; with `cgroup`, in that cgroup from its first instruction.
   */
  static async spawn(
    binary: string,
    paths: VmPaths,
    opts: { seccomp: "enforce" | "log"; user?: UnprivilegedUser; jail?: JailView; cgroup?: string },
  ): Promise<VmmProcess> {
    // A stale API socket would stop an older CH from binding.
    unlinkSockets([paths.apiSocket]);
    const output = await fs.open(paths.vmmOutput, "w", 0o600);
    const args = ["--api-socket", `path=${paths.apiSocket}`, "--event-monitor", `path=${paths.eventMonitor}`, "--log-file", paths.vmmLog, "-v"];
    // Said even where it is CH's default: the filter is this daemon's decision, not the binary's.
    args.push("--seccomp", opts.seccomp === "log" ? "log" : "true");
    try {
      // stdio is a file, not a pipe: a dead daemon must not take the VMM's output with it.
      const line = opts.user ? ["setpriv", ...setprivArgs(opts.user), "--", binary, ...args] : [binary, ...args];
      const jailed = opts.jail ? jailCommand(opts.jail, line) : line;
      const [command, ...argv] = opts.cgroup ? inCgroup(opts.cgroup, jailed) : jailed;
      const child = spawn(command as string, argv, { detached: true, stdio: ["ignore", output.fd, output.fd] });
      const exit = new Promise<VmmExit>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
      const spawned = await Promise.race([once(child, "spawn").then(() => true as const), once(child, "error").then(([e]) => e as Error)]);
      if (spawned !== true) throw new VmmLaunchError(`cannot run ${command === binary ? "" : `${command} for `}VMM binary '${binary}': ${spawned.message}`);
      child.unref();
      const pid = child.pid as number;
      const stat = readProcStat(pid);
      const vmm = new VmmProcess({ pid, start_time: stat?.startTime ?? "" }, paths.vmmOutput, paths.apiSocket);
      void exit.then((e) => vmm.markExited(e));
      return vmm;
    } finally {
      await output.close();
    }
  }

  /** Takes over a VMM a previous daemon started; the caller has checked its identity. */
  static adopt(identity: ProcessIdentity, paths: VmPaths): VmmProcess {
    const vmm = new VmmProcess(identity, paths.vmmOutput, paths.apiSocket);
    poller.watch(vmm);
    return vmm;
  }

  get hasExited(): boolean {
    return this.exit !== undefined;
  }

  markExited(exit: VmmExit): void {
    if (this.exit) return;
    this.exit = exit;
    poller.unwatch(this);
    this.resolveExit(exit);
  }

  /**
   * Waits for the API socket to appear (CH binds it a few ms after exec; the
   * wait costs nothing until then), then pings until the API answers. Fails
   * fast if the process exits first.
   */
  async waitForApi(client: ChClient, deadline: number): Promise<void> {
    for (;;) {
      if (this.exit) throw new VmmLaunchError(`VMM exited before its API answered (${await this.describeExit()})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new ChApiError("vmm.ping", "vmm.ping: the VMM API did not answer in time", { timedOut: true });
      if (await waitForPath(this.apiSocket, left, this.exited)) {
        try {
          // The whole start's deadline, not a short one: a loaded host answers late, not never.
          await client.ping(left);
          return;
        } catch (e) {
          if (!(e instanceof ChApiError && (e.unreachable || e.timedOut))) throw e;
        }
        // Bound but not yet listening.
        await Promise.race([sleep(API_POLL_MS), this.exited]);
      }
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

  /** Signals the VMM only while pid and start time still name it: a reused pid is never hit. */
  async signal(sig: NodeJS.Signals): Promise<void> {
    if (this.exit) return;
    if (!isAlive(this.identity)) {
      this.markExited({ code: null, signal: null });
      return;
    }
    try {
      process.kill(this.pid, sig);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e;
    }
  }

  /** "exit code 1" or "killed by SIGKILL", plus the last lines the VMM printed. */
  async describeExit(): Promise<string> {
    const e = this.exit;
    const how = describeStatus(e);
    const tail = await lastLines(this.outputPath, 5);
    return tail ? `${how}; VMM output: ${tail}` : how;
  }
}

function describeStatus(e: VmmExit | undefined): string {
  if (!e) return "still running";
  // The kernel kills a thread that breaks its seccomp filter with SIGSYS: CH's own verdict, not a crash.
  if (e.signal === "SIGSYS")
    return `killed by SIGSYS: a seccomp violation (the VMM made a system call its filter forbids; seccomp: "log" lets it through and logs it)`;
  if (e.signal) return `killed by ${e.signal}`;
  return e.code !== null ? `exit code ${e.code}` : "exit status unknown";
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
