#!/usr/bin/env -S node --max-semi-space-size=2
/** my_hypervisor-daemon: parses flags and hands over to the library's runServer(). */
import path from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_CONSOLE_LOG_BYTES, DEFAULT_RECONCILE_INTERVAL_MS, runServer, VERSION } from "@my_hypervisor/lib";

const USAGE = `Usage: my_hypervisor-daemon --rpc-socket PATH --state-dir DIR --console-dir DIR [--cloud-hypervisor BIN] [--log-level LEVEL] [--reconcile-interval-ms N] [--console-log-max-mib N] [--net-socket PATH] [--vol-socket PATH] [--vmm-uid-range FIRST-LAST|off] [--vmm-dir DIR] [--vmm-jail-bind PATH]... [--allow-unenforced-limits]`;
const DEFAULT_VMM_DIR = "/run/my_hypervisor/vmm";
/** As root, VMMs run under uids of their own from this range unless told otherwise (ADR 0009). */
const DEFAULT_VMM_UID_RANGE = "200000-299999";
const LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];
const MiB = 1024 * 1024;

function fail(message: string): never {
  process.stderr.write(`my_hypervisor-daemon: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function parse() {
  try {
    return parseArgs({
      strict: true,
      allowPositionals: false,
      options: {
        "rpc-socket": { type: "string" },
        "state-dir": { type: "string" },
        "console-dir": { type: "string" },
        "cloud-hypervisor": { type: "string", default: "cloud-hypervisor" },
        "log-level": { type: "string", default: "info" },
        "reconcile-interval-ms": { type: "string", default: String(DEFAULT_RECONCILE_INTERVAL_MS) },
        "console-log-max-mib": { type: "string", default: String(DEFAULT_CONSOLE_LOG_BYTES / MiB) },
        "net-socket": { type: "string" },
        "vol-socket": { type: "string" },
        "vmm-uid-range": { type: "string" },
        "vmm-dir": { type: "string" },
        "vmm-jail-bind": { type: "string", multiple: true },
        "allow-unenforced-limits": { type: "boolean" },
        version: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (e) {
    return fail((e as Error).message);
  }
}

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
  const relative = jailBinds.find((p) => !path.isAbsolute(p));
  if (relative !== undefined) fail(`--vmm-jail-bind needs an absolute path, not '${relative}'`);
  const m = /^(\d+)-(\d+)$/.exec(range);
  const [first, last] = [Number(m?.[1]), Number(m?.[2])];
  if (!m || first < 1 || last < first || last > 4294967294) fail("--vmm-uid-range must be FIRST-LAST, with 1 <= FIRST <= LAST < 4294967295");
  if (process.getuid?.() !== 0) fail("--vmm-uid-range needs the daemon to run as root: only root can start a VMM under another uid");
  return { first, last, dir: path.resolve(dir ?? DEFAULT_VMM_DIR), jailBinds: jailBinds.map((p) => path.normalize(p)) };
}

const args = parse();
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
if (args.version) {
  process.stdout.write(`my_hypervisor-daemon ${VERSION}\n`);
  process.exit(0);
}
for (const flag of ["rpc-socket", "state-dir", "console-dir"] as const) if (!args[flag]) fail(`--${flag} is required`);
const level = args["log-level"] as string;
if (!LEVELS.includes(level)) fail(`--log-level must be one of ${LEVELS.join(", ")}`);
const reconcileIntervalMs = Number(args["reconcile-interval-ms"]);
if (!Number.isInteger(reconcileIntervalMs) || reconcileIntervalMs < 100) fail("--reconcile-interval-ms must be an integer of at least 100");
const consoleLogMiB = Number(args["console-log-max-mib"]);
if (!Number.isInteger(consoleLogMiB) || consoleLogMiB < 1) fail("--console-log-max-mib must be a whole number of at least 1");
const vmmUsers = parseVmmUsers(args["vmm-uid-range"], args["vmm-dir"], args["vmm-jail-bind"] ?? []);
// A VMM binary given as a relative path is resolved now, not against a later cwd.
const vmm = args["cloud-hypervisor"] as string;

try {
  const server = await runServer({
    rpcSocket: path.resolve(args["rpc-socket"] as string),
    stateDir: path.resolve(args["state-dir"] as string),
    consoleDir: path.resolve(args["console-dir"] as string),
    cloudHypervisor: vmm.includes("/") ? path.resolve(vmm) : vmm,
    logLevel: level,
    reconcileIntervalMs,
    consoleLogBytes: consoleLogMiB * MiB,
    netSocket: args["net-socket"] ? path.resolve(args["net-socket"]) : undefined,
    volSocket: args["vol-socket"] ? path.resolve(args["vol-socket"]) : undefined,
    vmmUsers,
    allowUnenforcedLimits: args["allow-unenforced-limits"] ?? false,
  });
  await server.closed;
  process.exit(0);
} catch (e) {
  process.stderr.write(`my_hypervisor-daemon: ${(e as Error).message}\n`);
  process.exit(1);
}
