/**
 * my_hypervisor-init: the guest's PID 1. It mounts what is missing, sets the
 * hostname, brings up lo, reaps orphans, runs the configured workload, serves
 * exec requests on vsock, and on SIGTERM/SIGINT/SIGPWR or the ACPI power
 * button stops the workload, syncs and powers off. As PID 1 it never exits:
 * a fatal error is logged to the console and the machine powered off.
 */
import "./threadpool.js";
import { VERSION } from "@my_hypervisor/lib/version";
import { listenAgent, SIM_VSOCK_DIR_ENV } from "./agent-listener.js";
import { CONFIG_PARAM, type InitConfig, loadConfig } from "./config.js";
import { say } from "./console-log.js";
import { serveExec } from "./exec-agent.js";
import { bringUpLoopback, mountPseudoFilesystems, powerOff, reapOrphans, setHostname } from "./pid1.js";
import { watchPowerButton } from "./power-button.js";
import { WorkloadSupervisor } from "./workload.js";

const USAGE = `Usage: my_hypervisor-init                   the guest's PID 1, started by the kernel
       my_hypervisor-init --under-test-vmm  the guest of cloud-hypervisor-sim (not PID 1: no mounts, hostname or reaping)
       my_hypervisor-init --help | --version`;
const WORKLOAD_STOP_GRACE_MS = 10_000;
const REAP_SWEEP_MS = 1000;
const isPid1 = process.pid === 1;
let workload: WorkloadSupervisor | undefined;
let shuttingDown = false;

async function shutdown(why: string): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  say("init", `shutting down: ${why}`);
  await workload?.stop(WORKLOAD_STOP_GRACE_MS);
  if (isPid1) {
    // Everything else in the machine: TERM, a moment, then KILL. kill(-1) spares PID 1 itself.
    signalAll("SIGTERM");
    await new Promise((r) => setTimeout(r, 1000));
    signalAll("SIGKILL");
  }
  say("init", "powering off");
  await powerOff();
}

function signalAll(signal: NodeJS.Signals): void {
  try {
    process.kill(-1, signal);
  } catch {
    // nothing left to signal
  }
}

function fatal(e: unknown): void {
  // Once shutting down, a further error must not start another round of logging (and erroring).
  if (shuttingDown) return;
  say("init", `fatal: ${(e as Error)?.stack ?? String(e)}`);
  void shutdown("fatal error");
}

function readConfig(): InitConfig {
  try {
    return loadConfig();
  } catch (e) {
    say("init", `ignoring a bad ${CONFIG_PARAM}: ${(e as Error).message}`);
    return { exec_port: 1024 };
  }
}

/**
 * Under the test VMM, stdin is a pipe whose only writer is the VMM: EOF means the VMM is gone, and a
 * guest never outlives its VMM. (pdeathsig covers this too; this also holds if a signal was missed.)
 * A real console never reaches EOF.
 */
function exitWithTheTestVmm(): void {
  const gone = () => process.exit(0);
  process.stdin.on("data", () => undefined);
  process.stdin.once("end", gone);
  process.stdin.once("error", gone);
  // The console is the VMM's end of a socket: a write error (EPIPE) means the VMM is gone too.
  process.stdout.once("error", gone);
  process.stderr.once("error", gone);
}

async function main(): Promise<void> {
  // A console that cannot be written to must not become a fatal error that is logged to it, again and again.
  process.stdout.on("error", () => undefined);
  process.stderr.on("error", () => undefined);
  process.on("uncaughtException", fatal);
  process.on("unhandledRejection", fatal);
  say("init", `my_hypervisor-init starting as pid ${process.pid}`);
  const config = readConfig();
  // The agent listens before anything is mounted over the paths the host can see. Without it
  // (no vsock in this kernel or VM) the guest still runs its workload; exec is then unavailable.
  await listenAgent(config.exec_port, serveExec).then(
    (where) => say("init", `exec agent listening on ${where}`),
    (e) => say("init", `exec agent unavailable: ${(e as Error).message}`),
  );
  if (isPid1) {
    const mounted = await mountPseudoFilesystems();
    say("init", `mounted ${mounted.length > 0 ? mounted.join(" ") : "nothing (all present)"}`);
    if (config.hostname) await setHostname(config.hostname);
    await bringUpLoopback();
    const reap = () => void reapOrphans().then((pids) => pids.length > 0 && say("init", `reaped orphan${pids.length > 1 ? "s" : ""} ${pids.join(" ")}`));
    process.on("SIGCHLD", reap);
    setInterval(reap, REAP_SWEEP_MS);
  } else {
    say("init", "not PID 1: mounts, hostname, network and reaping are left to the host");
  }
  for (const sig of ["SIGTERM", "SIGINT", "SIGPWR"] as const) process.on(sig, () => void shutdown(sig));
  if (process.env[SIM_VSOCK_DIR_ENV]) exitWithTheTestVmm();
  const buttons = watchPowerButton(() => void shutdown("power button"));
  say("init", buttons.length > 0 ? `watching the power button on ${buttons.join(" ")}` : "no power button device");
  if (config.workload) {
    const onExit = config.workload.on_exit ?? "stay";
    workload = new WorkloadSupervisor(config.workload, () => onExit === "poweroff" && void shutdown("workload finished"));
    workload.start();
  }
  say("init", "ready");
}

/**
 * As PID 1 the arguments are whatever the kernel passes on from its command
 * line, and are ignored. Anywhere else the init is a root exec agent with no
 * authentication: it runs only when told it is the test VMM's guest.
 */
function checkInvocation(): void {
  if (isPid1) return;
  const args = process.argv.slice(2);
  const exit = (code: number, text: string) => {
    (code === 0 ? process.stdout : process.stderr).write(`${text}\n`);
    process.exit(code);
  };
  if (args.includes("--help") || args.includes("-h")) exit(0, USAGE);
  if (args.includes("--version")) exit(0, `my_hypervisor-init ${VERSION}`);
  const unknown = args.filter((a) => a !== "--under-test-vmm");
  if (unknown.length > 0) exit(2, `my_hypervisor-init: unknown argument '${unknown[0]}'\n${USAGE}`);
  if (args.length === 0)
    exit(2, `my_hypervisor-init: refusing to run: this is a guest's PID 1 (it serves exec as root, without authentication), not a host program\n${USAGE}`);
}

checkInvocation();
main().catch(fatal);
