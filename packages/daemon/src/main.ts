#!/usr/bin/env -S node --max-semi-space-size=2
/** my_hypervisor-daemon: parses flags and hands over to the library's runServer(). */
import path from "node:path";
import {
  DEFAULT_CONSOLE_LOG_BYTES,
  DEFAULT_RECONCILE_INTERVAL_MS,
  defaultLogFormat,
  flagsOrExit,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  type Program,
  resolveVmmExecutable,
  runServer,
  usageExit,
  VERSION,
} from "@my_hypervisor/lib";

const DEFAULT_VMM_DIR = "/run/my_hypervisor/vmm";
/** As root, VMMs run under uids of their own from this range unless told otherwise (ADR 0009). */
const DEFAULT_VMM_UID_RANGE = "200000-299999";
const MiB = 1024 * 1024;

const PROGRAM: Program = {
  name: "my_hypervisor-daemon",
  version: VERSION,
  summary: "runs one cloud-hypervisor per VM and serves compute.* as JSON-RPC 2.0 on a Unix socket",
  envPrefix: "MY_HYPERVISOR",
  flags: [
    { name: "rpc-socket", value: "PATH", required: true, help: "The Unix socket the JSON-RPC API listens on (mode 0600)" },
    { name: "state-dir", value: "DIR", required: true, help: "Each VM's record, console log and snapshots; one daemon per state dir" },
    { name: "console-dir", value: "DIR", required: true, help: "Each VM's console socket, and the one-shot sockets of streamed execs" },
    { name: "cloud-hypervisor", value: "BIN", default: "cloud-hypervisor", help: "The VMM binary, a path or a name on PATH; must exist at start-up" },
    { name: "log-level", value: "LEVEL", default: "info", help: `One of ${LOG_LEVELS.join(", ")}` },
    {
      name: "log-format",
      value: "FORMAT",
      help: "json (ISO times, level names: for journald and log shippers) or pretty (default: pretty on a terminal, else json)",
    },
    { name: "reconcile-interval-ms", value: "N", default: String(DEFAULT_RECONCILE_INTERVAL_MS), help: "How often the reconcile sweep runs (at least 100)" },
    { name: "console-log-max-mib", value: "N", default: String(DEFAULT_CONSOLE_LOG_BYTES / MiB), help: "How much of each VM's serial output is kept on disk" },
    { name: "net-socket", value: "PATH", help: "The network sibling's socket; without it, a VM that names a network is refused" },
    { name: "vol-socket", value: "PATH", help: "The volume sibling's socket; without it, a VM that names a volume is refused" },
    {
      name: "vmm-uid-range",
      value: "FIRST-LAST|off",
      help: `Each VM's VMM runs jailed under a uid of its own from this range (default as root: ${DEFAULT_VMM_UID_RANGE}; off: as the daemon's user)`,
    },
    { name: "vmm-dir", value: "DIR", help: `Where each VMM's own directory is made, with --vmm-uid-range (default: ${DEFAULT_VMM_DIR})` },
    { name: "vmm-jail-bind", value: "PATH", multiple: true, help: "A path every jailed VMM sees too, read-only" },
    { name: "metrics-socket", value: "PATH", help: "Serve GET /metrics (OpenMetrics/Prometheus text) over HTTP on this Unix socket (mode 0600)" },
    { name: "metrics-port", value: "PORT", help: "Serve the same on 127.0.0.1:PORT too, for a scraper that speaks only TCP (0: any free port, logged)" },
    { name: "allow-unenforced-limits", help: "Start VMs even where this host cannot hold them to their CPU, memory and pid limits (no cgroup v2)" },
  ],
};

const fail = (message: string): never => usageExit(PROGRAM, message);

/**
 * --vmm-uid-range FIRST-LAST: each VM's VMMs run under a uid of their own from it, jailed, in `--vmm-dir`, and
 * see the paths of --vmm-jail-bind too. The default as root; `off` (and the default for a daemon that is not
 * root) runs them as the daemon's user.
 */
function parseVmmUsers(given: string | undefined, dir: string | undefined, jailBinds: string[]) {
  const range = given ?? (process.getuid?.() === 0 ? DEFAULT_VMM_UID_RANGE : "off");
  if (range === "off") {
    if (dir !== undefined) fail("--vmm-dir is only used when VMMs run under uids of their own (--vmm-uid-range is off)");
    if (jailBinds.length > 0) fail("--vmm-jail-bind is only used when VMMs run jailed under uids of their own (--vmm-uid-range is off)");
    return undefined;
  }
  const relative = jailBinds.find((p) => !path.isAbsolute(p) || p.includes("\n"));
  if (relative !== undefined) fail(`--vmm-jail-bind needs an absolute path without a newline, not ${JSON.stringify(relative)}`);
  const m = /^(\d+)-(\d+)$/.exec(range);
  const [first, last] = [Number(m?.[1]), Number(m?.[2])];
  if (!m || first < 1 || last < first || last > 4294967294) fail("--vmm-uid-range must be FIRST-LAST, with 1 <= FIRST <= LAST < 4294967295");
  if (process.getuid?.() !== 0) fail("--vmm-uid-range needs the daemon to run as root: only root can start a VMM under another uid");
  return { first, last, dir: path.resolve(dir ?? DEFAULT_VMM_DIR), jailBinds: jailBinds.map((p) => path.normalize(p)) };
}

const args = flagsOrExit(PROGRAM);
const str = (name: string) => args[name] as string | undefined;
const level = str("log-level") as string;
if (!LOG_LEVELS.includes(level)) fail(`--log-level must be one of ${LOG_LEVELS.join(", ")}`);
const logFormat = (str("log-format") ?? defaultLogFormat()) as LogFormat;
if (!LOG_FORMATS.includes(logFormat)) fail(`--log-format must be one of ${LOG_FORMATS.join(", ")}`);
const reconcileIntervalMs = Number(str("reconcile-interval-ms"));
if (!Number.isInteger(reconcileIntervalMs) || reconcileIntervalMs < 100) fail("--reconcile-interval-ms must be an integer of at least 100");
const consoleLogMiB = Number(str("console-log-max-mib"));
if (!Number.isInteger(consoleLogMiB) || consoleLogMiB < 1) fail("--console-log-max-mib must be a whole number of at least 1");
const metricsPortText = str("metrics-port");
if (metricsPortText !== undefined && !(/^\d{1,5}$/.test(metricsPortText) && Number(metricsPortText) <= 65535))
  fail(`--metrics-port must be a port number, 0 to 65535 (0: any free port), not '${metricsPortText}'`);
const metricsPort = metricsPortText === undefined ? undefined : Number(metricsPortText);
const vmmUsers = parseVmmUsers(str("vmm-uid-range"), str("vmm-dir"), (args["vmm-jail-bind"] as string[] | undefined) ?? []);
// A VMM binary given as a relative path is resolved now, not against a later cwd; one that cannot be found stops here.
const vmm = str("cloud-hypervisor") as string;
if (!resolveVmmExecutable(vmm)) fail(`--cloud-hypervisor '${vmm}' is not an executable file${vmm.includes("/") ? "" : " on PATH"}`);

try {
  const server = await runServer({
    rpcSocket: path.resolve(str("rpc-socket") as string),
    stateDir: path.resolve(str("state-dir") as string),
    consoleDir: path.resolve(str("console-dir") as string),
    cloudHypervisor: vmm.includes("/") ? path.resolve(vmm) : vmm,
    logLevel: level,
    logFormat,
    reconcileIntervalMs,
    consoleLogBytes: consoleLogMiB * MiB,
    netSocket: str("net-socket") ? path.resolve(str("net-socket") as string) : undefined,
    volSocket: str("vol-socket") ? path.resolve(str("vol-socket") as string) : undefined,
    vmmUsers,
    allowUnenforcedLimits: args["allow-unenforced-limits"] === true,
    metricsSocket: str("metrics-socket") ? path.resolve(str("metrics-socket") as string) : undefined,
    metricsPort,
  });
  await server.closed;
  process.exit(0);
} catch (e) {
  process.stderr.write(`my_hypervisor-daemon: ${(e as Error).message}\n`);
  process.exit(1);
}
