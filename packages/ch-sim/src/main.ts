#!/usr/bin/env node
import fs from "node:fs";
import { parseArgs } from "node:util";
/**
 * cloud-hypervisor-sim: a test VMM with cloud-hypervisor's command line and
 * REST API (v53.0 behaviour). Instead of a kernel it boots the real
 * my_hypervisor-init as the guest (as PID 1 in namespaces of its own when run
 * as root), or a scripted guest. It lets the daemon, and anyone building on
 * it, run without KVM; the daemon's code path is the same as with the real
 * binary.
 */
import { isListening } from "@my_hypervisor/lib/private-socket";
import { EventMonitor, splitOption } from "./event-monitor.js";
import { MicroHttpServer } from "./micro-http.js";
import { rustIoError } from "./rust-error.js";
import { SIM_VERSION, Vmm } from "./vmm.js";
import { VmmLog } from "./vmm-log.js";

const HELP = `Launch a cloud-hypervisor VMM.

Usage: cloud-hypervisor [OPTIONS]

Options:
      --api-socket <api-socket>
          HTTP API socket (UNIX domain socket): path=<path> or fd=<fd>.
      --event-monitor <event-monitor>
          Path to report events on: path=<path> or fd=<fd>
      --log-file <log-file>
          Log file. Standard error is used if not specified
      --seccomp <seccomp>
          Disable seccomp filtering (true|false|log|errno) [default: true] [possible values: true, false, log, errno]
  -v...
          Sets the level of debugging output
      --no-shutdown
          Keep the VMM running when the guest powers off
  -h, --help
          Print help
  -V, --version
          Print version

This is cloud-hypervisor-sim, the test VMM: these are the options it takes of cloud-hypervisor's.
`;
const SECCOMP_VALUES = ["true", "false", "log", "errno"];

/** clap's usage errors: on stderr, exit 2. */
function usageError(message: string, usage: boolean): never {
  process.stderr.write(`error: ${message}\n\n${usage ? "Usage: cloud-hypervisor [OPTIONS]\n\n" : ""}For more information, try '--help'.\n`);
  process.exit(2);
}

/** How CH reports a fatal error: its chain of errors on stderr, exit 1. */
function fatal(...chain: string[]): never {
  process.stderr.write(`Error: Cloud Hypervisor exited with the following chain of errors:\n${chain.map((link, i) => `  ${i}: ${link}\n`).join("")}`);
  process.exit(1);
}

function parseCli(argv: string[]) {
  let values: ReturnType<typeof parse>;
  try {
    values = parse(argv);
  } catch (e) {
    const option = /'(-[^' ]+)/.exec((e as Error).message)?.[1] ?? "";
    if ((e as NodeJS.ErrnoException).code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") usageError(`unexpected argument '${option}' found`, true);
    const name = option.replace(/^-+/, "");
    usageError(`a value is required for '${option} <${name}>' but none was supplied`, false);
  }
  if (values.seccomp !== undefined && !SECCOMP_VALUES.includes(values.seccomp)) {
    usageError(`invalid value '${values.seccomp}' for '--seccomp <seccomp>'\n  [possible values: ${SECCOMP_VALUES.join(", ")}]`, false);
  }
  return values;
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      "api-socket": { type: "string" },
      "event-monitor": { type: "string" },
      "log-file": { type: "string" },
      seccomp: { type: "string" },
      "no-shutdown": { type: "boolean" },
      v: { type: "boolean", short: "v", multiple: true },
      version: { type: "boolean", short: "V" },
      help: { type: "boolean", short: "h" },
    },
  }).values;
}

async function main(): Promise<void> {
  const args = parseCli(process.argv.slice(2));
  if (args.help) return void process.stdout.write(HELP);
  // The suffix says which VMM this is (ADR 0003); the rest is CH's.
  if (args.version) return void process.stdout.write(`cloud-hypervisor v${SIM_VERSION}-sim\nMigration Protocol Versions: 0\n`);
  process.umask(0o077);

  let log: VmmLog;
  try {
    log = VmmLog.open(args["log-file"], args.v?.length ?? 0);
  } catch (e) {
    return fatal("Error creating log file", rustIoError(e));
  }
  const fail = (...chain: string[]): never => {
    log.log("ERROR", `Fatal error: ${chain.join(": ")}`);
    return fatal(...chain);
  };
  let events: EventMonitor;
  try {
    events = EventMonitor.open(args["event-monitor"]);
  } catch (e) {
    return fail("Error parsing --event-monitor", (e as Error).message);
  }
  // Without --api-socket CH runs with no API at all; the test VMM exists to be driven through one.
  if (args["api-socket"] === undefined) return fail("Error parsing --api-socket", "cloud-hypervisor-sim needs an API socket");
  const [kind, value] = splitOption(args["api-socket"]);
  const apiPath = kind === "path" || kind === "" ? value : undefined;
  if (apiPath === undefined && kind !== "fd") return fail("Error parsing --api-socket", `unknown option: ${kind}`);
  if (kind === "fd" && !/^\d+$/.test(value)) return fail("Error parsing --api-socket", "invalid digit found in string");
  events.emit("vmm", "starting");

  let server: MicroHttpServer | undefined;
  // A clean exit removes the API socket; a failed one leaves it, as CH's does (Node's close would remove it).
  const exit = (code: number) => {
    if (code === 0) {
      server?.close();
      if (apiPath !== undefined) fs.rmSync(apiPath, { force: true });
    }
    process.exit(code);
  };
  const vmm = new Vmm({ events, log, noShutdown: args["no-shutdown"] === true, seccomp: args.seccomp ?? "true", exit });
  server = new MicroHttpServer(vmm.handle);
  // Before listening: a client may connect, and signal, as soon as the socket listens.
  for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => vmm.shutdownVmm());

  if (apiPath !== undefined) {
    // CH v53 holds `<path>.lock` for this; the test VMM asks whether a live VMM already serves the socket.
    if (await isListening(apiPath)) fail("Failed to start the VMM thread", `API socket "${apiPath}" is already in use by another running instance`);
    try {
      fs.writeFileSync(`${apiPath}.lock`, "");
    } catch (e) {
      fail("Failed to start the VMM thread", "Error creation API server's socket", rustIoError(e));
    }
    fs.rmSync(apiPath, { force: true });
  }
  try {
    await server.listen(apiPath !== undefined ? { path: apiPath } : { fd: Number(value) });
  } catch (e) {
    fail("Failed to start the VMM thread", "Error creation API server's socket", rustIoError(e));
  }
  log.log("INFO", `API server listening (pid ${process.pid})`);
}

main().catch((e) => {
  process.stderr.write(`Error: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
