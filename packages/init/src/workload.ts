/**
 * Runs the configured workload and restarts it per its policy: `never`,
 * `on-failure` (a non-zero exit, a signal, or a failure to start), or
 * `always`, with a backoff that grows from 1 s to 30 s and resets after a run
 * of 60 s. Its output is tagged on the console, or, with `console: true`, the
 * console is its own terminal.
 */
import type { Workload } from "@my_hypervisor/lib/init-config";
import { type Say, tagLines } from "./console-log.js";
import type { Child, ChildExit, Platform } from "./platform.js";

const MIN_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 30_000;
const HEALTHY_RUN_MS = 60_000;
export const DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

export class WorkloadSupervisor {
  private child: Child | undefined;
  private stopping = false;
  private backoff = MIN_BACKOFF_MS;
  private cancelRestart: (() => void) | undefined;
  private whenGone: (() => void) | undefined;
  runs = 0;

  constructor(
    private readonly p: Platform,
    private readonly say: Say,
    private readonly workload: Workload,
    /** The workload ended and will not be restarted. */
    private readonly onFinished: () => void,
  ) {}

  start(): void {
    if (this.stopping) return;
    const started = this.p.now();
    this.runs += 1;
    this.say("init", `starting workload (run ${this.runs}): ${this.workload.argv.join(" ")}`);
    try {
      this.child = this.p.spawn({
        argv: this.workload.argv,
        env: { PATH: DEFAULT_PATH, ...this.workload.env },
        cwd: this.workload.cwd ?? "/",
        stdio: this.workload.console ? "console" : "output",
      });
    } catch (e) {
      this.say("init", `workload failed to start: ${(e as Error).message}`);
      this.ended({ code: null, signal: null }, started);
      return;
    }
    const tag = (name: string) => {
      const split = tagLines(this.say, name);
      return (chunk: Uint8Array | null) => chunk && split(chunk);
    };
    this.child.stdout?.onData(tag("workload"));
    this.child.stderr?.onData(tag("workload:err"));
    // On reaping, not at the end of its output: a grandchild may hold the pipes open long after.
    this.child.onExit((exit) => {
      this.child = undefined;
      this.say("init", `workload exited (${exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`})`);
      this.ended(exit, started);
    });
  }

  private ended(exit: ChildExit, started: number): void {
    if (this.stopping) {
      this.whenGone?.();
      return;
    }
    const policy = this.workload.restart ?? "never";
    if (policy === "never" || (policy === "on-failure" && exit.code === 0)) {
      this.say("init", `workload finished; not restarting (policy ${policy})`);
      this.onFinished();
      return;
    }
    if (this.p.now() - started > HEALTHY_RUN_MS) this.backoff = MIN_BACKOFF_MS;
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
    this.say("init", `restarting workload in ${delay} ms (policy ${policy})`);
    this.cancelRestart = this.p.after(delay, () => this.start());
  }

  /** SIGTERM to its process group, then SIGKILL after `graceMs`; resolves once the workload is gone. */
  stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.cancelRestart?.();
    const child = this.child;
    if (!child) return Promise.resolve();
    return new Promise((resolve) => {
      const cancelKill = this.p.after(graceMs, () => this.p.kill(-child.pid, "SIGKILL"));
      this.whenGone = () => {
        cancelKill();
        // Whatever it left behind in its group goes too.
        this.p.kill(-child.pid, "SIGKILL");
        resolve();
      };
      this.p.kill(-child.pid, "SIGTERM");
    });
  }
}
