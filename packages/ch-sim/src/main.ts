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
import { SIM_VERSION, Vmm } from "./vmm.js";
import { VmmLog } from "./vmm-log.js";

const USAGE = `Usage: cloud-hypervisor-sim --api-socket <path=…|fd=…> [--event-monitor <path=…|fd=…>] [--log-file <path>] [-v…] [--seccomp <true|false|log|errno>] [--no-shutdown]`;

function parseCli(argv: string[]) {
  try {
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
  } catch (e) {
    // clap reports usage errors on stderr and exits 2.
    process.stderr.write(`error: ${(e as Error).message}\n\n${USAGE}\n`);
    process.exit(2);
  }
}

async function main(): Promise<void> {
  const args = parseCli(process.argv.slice(2));
  if (args.help) return void process.stdout.write(`${USAGE}\n`);
  if (args.version) return void process.stdout.write(`cloud-hypervisor v${SIM_VERSION}-sim\n`);
  process.umask(0o077);

  const log = VmmLog.open(args["log-file"], args.v?.length ?? 0);
  const fail = (msg: string): never => {
    process.stderr.write(`Error: ${msg}\n`);
    log.log("ERROR", msg);
    process.exit(1);
  };
  if (args.seccomp !== undefined && !["true", "false", "log", "errno"].includes(args.seccomp)) fail(`invalid --seccomp value '${args.seccomp}'`);
  if (args["api-socket"] === undefined) fail("the API-driven test VMM needs --api-socket");
  const [kind, value] = splitOption(args["api-socket"] as string);
  const apiPath = kind === "path" || kind === "" ? value : undefined;
  if (apiPath === undefined && kind !== "fd") fail(`Error parsing --api-socket: unknown option '${kind}'`);

  let events: EventMonitor;
  try {
    events = EventMonitor.open(args["event-monitor"]);
  } catch (e) {
    return fail((e as Error).message);
  }
  events.emit("vmm", "starting");

  let server: MicroHttpServer | undefined;
  const exit = (code: number) => {
    server?.close();
    if (apiPath !== undefined && code === 0) fs.rmSync(apiPath, { force: true });
    process.exit(code);
  };
  const vmm = new Vmm({ events, log, noShutdown: args["no-shutdown"] === true, seccomp: args.seccomp ?? "true", exit });
  server = new MicroHttpServer(vmm.handle);

  if (apiPath !== undefined) {
    // CH v53 holds `<path>.lock` for this; the test VMM asks whether a live VMM already serves the socket.
    if (await isListening(apiPath)) fail(`Error starting the VMM: API socket ${apiPath} is in use (ApiSocketInUse)`);
    fs.writeFileSync(`${apiPath}.lock`, "");
    fs.rmSync(apiPath, { force: true });
  }
  try {
    await server.listen(apiPath !== undefined ? { path: apiPath } : { fd: Number(value) });
  } catch (e) {
    fail(`Error starting the HTTP server: ${(e as Error).message}`);
  }
  for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => vmm.shutdownVmm());
  log.log("INFO", `API server listening (pid ${process.pid})`);
}

main().catch((e) => {
  process.stderr.write(`Error: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
