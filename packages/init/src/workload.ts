/**
 * Runs the configured workload and restarts it per its policy: `never`,
 * `on-failure` (a non-zero exit or a signal), or `always`, with a backoff
 * that grows from 1 s to 30 s and resets after a run of 60 s.
 */

import type { Workload } from "@my_hypervisor/lib/init-config";
import { spawnTracked } from "./children.js";
import { say, tagLines } from "./console-log.js";

const MIN_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 30_000;
const HEALTHY_RUN_MS = 60_000;

export class WorkloadSupervisor {
  private child: ReturnType<typeof spawnTracked> | undefined;
  private stopping = false;
  private backoff = MIN_BACKOFF_MS;
  private timer: NodeJS.Timeout | undefined;
  runs = 0;

  constructor(
    private readonly workload: Workload,
    /** The workload ended and will not be restarted. */
    private readonly onFinished: () => void = () => undefined,
  ) {}

  start(): void {
    if (this.stopping) return;
    const [command, ...args] = this.workload.argv as [string, ...string[]];
    const started = Date.now();
    this.runs += 1;
    say("init", `starting workload (run ${this.runs}): ${this.workload.argv.join(" ")}`);
    const child = spawnTracked(command, args, {
      cwd: this.workload.cwd ?? "/",
      env: { PATH: "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", ...this.workload.env },
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group: stopping it reaches everything it started.
      detached: true,
    });
    this.child = child;
    child.stdout?.on("data", tagLines("workload"));
    child.stderr?.on("data", tagLines("workload:err"));
    child.once("error", (e) => say("init", `workload failed to start: ${e.message}`));
    // "exit", not "close": a grandchild may hold the output pipes open long after.
    child.once("exit", (code, signal) => {
      this.child = undefined;
      say("init", `workload exited (${signal ? `signal ${signal}` : `code ${code}`})`);
      if (this.stopping) return;
      const failed = code !== 0;
      const policy = this.workload.restart ?? "never";
      if (policy === "never" || (policy === "on-failure" && !failed)) {
        say("init", `workload finished; not restarting (policy ${policy})`);
        return this.onFinished();
      }
      if (Date.now() - started > HEALTHY_RUN_MS) this.backoff = MIN_BACKOFF_MS;
      const delay = this.backoff;
      this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
      say("init", `restarting workload in ${delay} ms (policy ${policy})`);
      this.timer = setTimeout(() => this.start(), delay);
    });
  }

  /** SIGTERM to its process group, then SIGKILL after `graceMs`; resolves once the workload is gone. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    const child = this.child;
    if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
    const pid = child.pid;
    const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    signalGroup(pid, "SIGTERM");
    const timer = setTimeout(() => signalGroup(pid, "SIGKILL"), graceMs);
    await gone;
    clearTimeout(timer);
    // Whatever it left behind in its group goes too.
    signalGroup(pid, "SIGKILL");
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is already empty
  }
}
