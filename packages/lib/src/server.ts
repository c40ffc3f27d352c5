/**
 * runServer: wires the state store, orchestrator, RPC adapter and socket
 * together, and shuts down on SIGTERM/SIGINT without touching running VMs.
 */
import fs from "node:fs/promises";
import path from "node:path";
import { destination, type Logger, pino } from "pino";
import { EventBus } from "./events/event-bus.js";
import { removeStaleExecSockets } from "./exec/exec-stream.js";
import { Orchestrator } from "./orchestrator/orchestrator.js";
import { RpcAdapter } from "./rpc/adapter.js";
import { computeMethods } from "./rpc/methods.js";
import { RpcSocketServer } from "./rpc/socket-server.js";
import { Provisioner } from "./siblings/provisioner.js";
import { ReleaseQueue } from "./siblings/release-queue.js";
import { StateStore } from "./state/store.js";

export const VERSION = "0.1.0";

export interface ServerOptions {
  rpcSocket: string;
  stateDir: string;
  consoleDir: string;
  /** The VMM binary: a path, or a name looked up on PATH. */
  cloudHypervisor: string;
  logLevel: string;
  /** How often the reconcile sweep runs (default 30 s). */
  reconcileIntervalMs?: number;
  /** How much of each VM's serial output is kept on disk (default 16 MiB). */
  consoleLogBytes?: number;
  /** The network sibling's socket (--net-socket). */
  netSocket?: string;
  /** The volume sibling's socket (--vol-socket). */
  volSocket?: string;
}

export interface RunningServer {
  log: Logger;
  /** Resolves once the daemon has shut down. */
  closed: Promise<void>;
}

export async function runServer(opts: ServerOptions): Promise<RunningServer> {
  const log = pino({ level: opts.logLevel, base: { daemon: "my_hypervisor" } }, destination(2));
  const store = new StateStore(opts.stateDir);
  await store.init();
  await fs.mkdir(opts.consoleDir, { recursive: true, mode: 0o700 });
  removeStaleExecSockets(opts.consoleDir);

  const events = await EventBus.open(path.join(opts.stateDir, "events.jsonl"));
  const orchestrator = new Orchestrator({
    store,
    events,
    provisioner: new Provisioner({ net: opts.netSocket, vol: opts.volSocket }, log),
    releases: await ReleaseQueue.open(path.join(opts.stateDir, "pending-releases.json"), log.child({ component: "releases" })),
    vmmBinary: opts.cloudHypervisor,
    consoleDir: opts.consoleDir,
    consoleLogBytes: opts.consoleLogBytes,
    log,
    reconcileIntervalMs: opts.reconcileIntervalMs,
  });
  await orchestrator.load();
  const socket = new RpcSocketServer(new RpcAdapter(computeMethods(orchestrator), VERSION, log.child({ component: "rpc" })), log);
  // The handlers are in place before the socket accepts: a SIGTERM at any moment after that is a clean stop.
  const closed = new Promise<void>((resolve) => {
    const shutdown = async (signal: string) => {
      log.info({ signal }, "shutting down; running VMs are left running");
      await socket.close();
      await orchestrator.close();
      await events.close();
      log.info("daemon stopped");
      resolve();
    };
    process.once("SIGTERM", () => void shutdown("SIGTERM"));
    process.once("SIGINT", () => void shutdown("SIGINT"));
  });
  await socket.listen(opts.rpcSocket);
  orchestrator.attachAdopted();
  log.info({ socket: opts.rpcSocket, stateDir: opts.stateDir, vmm: opts.cloudHypervisor }, "daemon listening");
  return { log, closed };
}
