/**
 * my_hypervisor-init's life as PID 1: it mounts what is missing, sets the
 * hostname, brings up lo, reaps orphans, runs the configured workload, serves
 * exec requests on vsock, and on SIGTERM/SIGINT/SIGPWR or the ACPI power
 * button stops the workload, syncs and powers off. As PID 1 it never exits:
 * a fatal error is logged to the console and the machine powered off.
 */
import { DEFAULT_EXEC_PORT } from "@my_hypervisor/lib/exec-protocol";
import { SIM_VSOCK_DIR_ENV } from "@my_hypervisor/lib/test-vmm-guest";
import { CONFIG_PARAM, type InitConfig, loadConfig } from "./config.js";
import type { Say } from "./console-log.js";
import { serveExec } from "./exec-agent.js";
import { mountPseudoFilesystems } from "./mounts.js";
import type { Platform } from "./platform.js";
import { watchPowerButton } from "./power-button.js";
import { WorkloadSupervisor } from "./workload.js";

const WORKLOAD_STOP_GRACE_MS = 10_000;
/** Between TERM and KILL for everything else in the machine. */
const OTHERS_STOP_GRACE_MS = 1000;

export class Init {
  private readonly say: Say;
  private readonly isPid1: boolean;
  private workload: WorkloadSupervisor | undefined;
  private shuttingDown = false;

  constructor(private readonly p: Platform) {
    this.say = (tag, message) => p.consoleLine(`[${tag}] ${message}`);
    this.isPid1 = p.pid === 1;
  }

  run(): void {
    const { p, say } = this;
    say("init", `my_hypervisor-init starting as pid ${p.pid}`);
    const config = this.readConfig();
    // The agent listens before anything is mounted over the paths the host can see. Without it
    // (no vsock in this kernel or VM) the guest still runs its workload; exec is then unavailable.
    try {
      say("init", `exec agent listening on ${this.listenAgent(config.exec_port)}`);
    } catch (e) {
      say("init", `exec agent unavailable: ${(e as Error).message}`);
    }
    p.onOrphansReaped((pids) => say("init", `reaped orphan${pids.length > 1 ? "s" : ""} ${pids.join(" ")}`));
    if (this.isPid1) this.setUpSystem(config);
    else say("init", "not PID 1: mounts, hostname and network are left to the host");
    p.onTerminate((signal) => this.shutdown(signal));
    const simVsock = p.getenv(SIM_VSOCK_DIR_ENV) !== undefined;
    // Under the test VMM the console is a pipe whose only writer is the VMM: its end means the VMM is gone,
    // and a guest never outlives its VMM. A workload that owns the console reads it instead.
    if (simVsock && !config.workload?.console) p.consoleInput().onData((chunk) => chunk === null && p.exit(0));
    const buttons = watchPowerButton(p, () => this.shutdown("power button"));
    say("init", buttons.length > 0 ? `watching the power button on ${buttons.join(" ")}` : "no power button device");
    if (config.workload) {
      const poweroff = config.workload.on_exit === "poweroff";
      this.workload = new WorkloadSupervisor(p, say, config.workload, () => poweroff && this.shutdown("workload finished"));
      this.workload.start();
    }
    say("init", "ready");
  }

  /** Logs the error and powers off (PID 1 must not exit: the kernel would panic). */
  fatal(e: unknown): void {
    // Once shutting down, a further error must not start another round of logging (and erroring).
    if (this.shuttingDown) return;
    this.say("init", `fatal: ${(e as Error)?.stack ?? String(e)}`);
    this.shutdown("fatal error");
  }

  private readConfig(): InitConfig {
    try {
      return loadConfig(this.p);
    } catch (e) {
      this.say("init", `ignoring a bad ${CONFIG_PARAM}: ${(e as Error).message}`);
      return { exec_port: DEFAULT_EXEC_PORT };
    }
  }

  /**
   * In a VM: AF_VSOCK on the configured port. Under the test VMM (which has no
   * vsock): a Unix socket `<dir>/<port>.sock` that the VMM bridges `CONNECT <port>` to.
   */
  private listenAgent(port: number): string {
    const serve = (conn: Parameters<typeof serveExec>[2]) => serveExec(this.p, this.say, conn);
    const simDir = this.p.getenv(SIM_VSOCK_DIR_ENV);
    if (simDir === undefined) return this.p.listen({ vsockPort: port }, serve);
    const path = `${simDir}/${port}.sock`;
    this.p.removeFile(path);
    return this.p.listen({ unixPath: path }, serve);
  }

  private setUpSystem(config: InitConfig): void {
    const { p, say } = this;
    const mounted = mountPseudoFilesystems(p, (m) => say("init", m));
    say("init", `mounted ${mounted.length > 0 ? mounted.join(" ") : "nothing (all present)"}`);
    const attempt = (what: string, fn: () => void) => {
      try {
        fn();
      } catch (e) {
        say("init", `${what} failed: ${(e as Error).message}`);
      }
    };
    if (config.hostname) attempt("sethostname", () => p.sethostname(config.hostname as string));
    attempt("lo up", () => p.interfaceUp("lo"));
  }

  private shutdown(why: string): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.say("init", `shutting down: ${why}`);
    const stopped = this.workload?.stop(WORKLOAD_STOP_GRACE_MS) ?? Promise.resolve();
    stopped.then(() => this.stopOthersAndPowerOff()).catch((e) => this.say("init", `shutdown: ${(e as Error).message}`));
  }

  private stopOthersAndPowerOff(): void {
    const { p, say } = this;
    const powerOff = () => {
      say("init", "powering off");
      if (!this.isPid1) {
        say("init", "not PID 1: exiting instead of powering off");
        p.exit(0);
      }
      // Returns only if reboot(2) failed; PID 1 then stays, doing nothing more.
      say("init", `power off failed: ${p.powerOff()}`);
    };
    if (!this.isPid1) {
      powerOff();
      return;
    }
    // Everything else in the machine: TERM, a moment, then KILL. kill(-1) spares PID 1 itself.
    p.kill(-1, "SIGTERM");
    p.after(OTHERS_STOP_GRACE_MS, () => {
      p.kill(-1, "SIGKILL");
      powerOff();
    });
  }
}
