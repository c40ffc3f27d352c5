/**
 * runServer: wires the state store, orchestrator, RPC adapter and socket
 * together. Before anything is read it takes the state dir's lock and
 * checks the daemon's directories. SIGTERM/SIGINT shut down without touching
 * running VMs; SIGHUP runs a reconcile sweep at once.
 */
import fs from "node:fs/promises";
import type http from "node:http";
import path from "node:path";
import type { Logger } from "pino";
import { COMPUTE_API_INFO, computeMethods } from "./api/methods.js";
import { resolveVmmExecutable } from "./ch/vmm-binary.js";
import { probeVmmVersion } from "./ch/vmm-version.js";
import { onDisk } from "./domain/errors.js";
import { EventBus } from "./events/event-bus.js";
import { RpcAdapter } from "./jsonrpc/adapter.js";
import { RpcSocketServer } from "./jsonrpc/socket-server.js";
import { createLogger, type LogFormat } from "./log.js";
import { DaemonMetrics } from "./metrics.js";
import { Orchestrator } from "./orchestrator/orchestrator.js";
import { VmCgroups } from "./orchestrator/vm-cgroups.js";
import { VmmConfinement } from "./orchestrator/vmm-confinement.js";
import { VmmUsers } from "./orchestrator/vmm-users.js";
import { groupIds } from "./os/groups.js";
import { removeLeftoverSockets } from "./os/private-socket.js";
import { lockStateDir } from "./os/state-dir-lock.js";
import { activatedSocket, SystemdNotifier } from "./os/systemd.js";
import { Provisioner } from "./provisioning/provisioner.js";
import { ReleaseQueue } from "./provisioning/release-queue.js";
import { privateDir, StateStore } from "./state/store.js";
import { VERSION } from "./version.js";

export { VERSION } from "./version.js";

export interface ServerOptions {
  rpcSocket: string;
  stateDir: string;
  consoleDir: string;
  /** The VMM binary: a path, or a name looked up on PATH. */
  cloudHypervisor: string;
  logLevel: string;
  /** JSON lines, or pino-pretty's for a person at a terminal (default json). */
  logFormat?: LogFormat;
  /** How often the reconcile sweep runs (default 30 s). */
  reconcileIntervalMs?: number;
  /** How much of each VM's serial output is kept on disk (default 16 MiB). */
  consoleLogBytes?: number;
  /** The network sibling's socket (--net-socket). */
  netSocket?: string;
  /** The volume sibling's socket (--vol-socket). */
  volSocket?: string;
  /** --vmm-uid-range, --vmm-dir and --vmm-jail-bind: VMMs under uids of their own, jailed; absent, VMMs run as the daemon's user. */
  vmmUsers?: { first: number; last: number; dir: string; jailBinds: string[] };
  /** --allow-unenforced-limits: start VMs even where the host cannot hold them to their limits. */
  allowUnenforcedLimits?: boolean;
  /** --metrics-socket: GET /metrics (OpenMetrics text) over HTTP on this Unix socket. */
  metricsSocket?: string;
  /** --metrics-port: the same on 127.0.0.1 (0: any free port; the port is logged). */
  metricsPort?: number;
}

export interface RunningServer {
  log: Logger;
  /** Resolves once the daemon has shut down. */
  closed: Promise<void>;
}

export async function runServer(opts: ServerOptions): Promise<RunningServer> {
  const log = createLogger("my_hypervisor", opts.logLevel, opts.logFormat ?? "json");
  // Taken first: no child started later may inherit LISTEN_FDS.
  const activated = activatedSocket();
  const notifier = SystemdNotifier.fromEnv(log);
  void notifier?.notify({ STATUS: "loading VM records and re-adopting VMMs" });
  const store = new StateStore(opts.stateDir);
  if (await store.init()) log.warn({ dir: opts.stateDir }, "state dir was open to other users; narrowed to 0700");
  // Before anything in the state dir is read: a second daemon on it stops here.
  const lock = await lockStateDir(opts.stateDir);
  await onDisk("create", opts.consoleDir, () => fs.mkdir(opts.consoleDir, { recursive: true, mode: 0o700 }));
  if (await privateDir(opts.consoleDir)) log.warn({ dir: opts.consoleDir }, "console dir was open to other users; narrowed to 0700");
  const leftovers = removeLeftoverSockets(opts.consoleDir);
  if (leftovers.length > 0) log.info({ sockets: leftovers }, "removed console and exec sockets a previous daemon left");

  const vmmUsers = opts.vmmUsers && new VmmUsers({ ...opts.vmmUsers, groups: groupIds(["kvm"]) });
  await vmmUsers?.init();
  if (!vmmUsers)
    log.warn("VMMs run as the daemon's user (--vmm-uid-range off, or the daemon is not root): a guest that escapes its VMM has that user's rights");
  const vmmExecutable = resolveVmmExecutable(opts.cloudHypervisor);
  if (!vmmExecutable) log.warn({ vmm: opts.cloudHypervisor }, "VMM binary not found; starts will fail, and the reconcile cannot recognise VMMs");
  // In the background: re-adopting running VMs does not wait for it; a start and host.info do.
  const vmmVersion = probeVmmVersion(opts.cloudHypervisor).then((v) => {
    if (v.supported === false)
      log.error(
        { vmm: opts.cloudHypervisor, reported: v.reported, minimum: v.minimum },
        "VMM binary is older than this daemon supports; starts will be refused",
      );
    else if (v.supported === null) log.warn({ vmm: opts.cloudHypervisor, err: v.error }, "VMM binary's version is unknown");
    else log.info({ vmm: opts.cloudHypervisor, version: v.version }, "VMM binary");
    return v;
  });
  const cgroups = await VmCgroups.open(opts.allowUnenforcedLimits ?? false, log.child({ component: "cgroups" }));
  const events = EventBus.open(path.join(opts.stateDir, "events.jsonl"), log.child({ component: "events" }));
  const metrics = opts.metricsSocket || opts.metricsPort !== undefined ? new DaemonMetrics() : undefined;
  const orchestrator = new Orchestrator({
    store,
    events,
    provisioner: new Provisioner(
      { net: opts.netSocket, vol: opts.volSocket },
      await ReleaseQueue.open(path.join(opts.stateDir, "pending-releases.json"), log.child({ component: "releases" })),
      log,
      metrics?.siblingError,
    ),
    vmmBinary: opts.cloudHypervisor,
    vmmExecutable,
    consoleDir: opts.consoleDir,
    consoleLogBytes: opts.consoleLogBytes,
    log,
    reconcileIntervalMs: opts.reconcileIntervalMs,
    vmmVersion,
    confinement: new VmmConfinement(
      { binary: opts.cloudHypervisor, executable: vmmExecutable },
      vmmUsers,
      cgroups,
      opts.stateDir,
      log.child({ component: "orchestrator" }),
    ),
  });
  // Before load: the re-adoptions' transitions are counted too.
  metrics?.watch(orchestrator);
  if (metrics) events.observe(metrics.event);
  await orchestrator.load();
  // Before the API socket: whoever sees that can scrape.
  const metricsServers = metrics ? await serveMetrics(metrics, opts, log) : [];
  const socket = new RpcSocketServer(
    new RpcAdapter(computeMethods(orchestrator), VERSION, log.child({ component: "rpc" }), COMPUTE_API_INFO, metrics?.call),
    log,
  );
  // The handlers are in place before the socket accepts: a signal at any moment after that is handled.
  const closed = new Promise<void>((resolve) => {
    const shutdown = async (signal: string) => {
      log.info({ signal }, "shutting down; running VMs are left running");
      notifier?.stop();
      await notifier?.notify({ STOPPING: "1", STATUS: "stopping; running VMs are left running" });
      // Long polls answer now rather than hold the shutdown for up to a minute.
      events.stopWaiting();
      await socket.close();
      for (const m of metricsServers) m.close();
      await orchestrator.close();
      events.close();
      lock.unlock();
      log.info("daemon stopped");
      resolve();
    };
    process.once("SIGTERM", () => void shutdown("SIGTERM"));
    process.once("SIGINT", () => void shutdown("SIGINT"));
    process.on("SIGHUP", () => {
      log.info({ signal: "SIGHUP" }, "SIGHUP: running a reconcile sweep now");
      void orchestrator.reconcileNow();
    });
  });
  // Socket-activated, the socket unit holds the socket across restarts: calls made meanwhile wait instead of failing.
  await socket.listen(activated !== undefined ? { fd: activated } : opts.rpcSocket);
  orchestrator.attachAdopted();
  log.info({ socket: opts.rpcSocket, activated: activated !== undefined, stateDir: opts.stateDir, vmm: opts.cloudHypervisor }, "daemon listening");
  const vms = orchestrator.list().vms;
  await notifier?.notify({ READY: "1", STATUS: `serving; ${vms.length} VMs, ${vms.filter((v) => v.pid !== null).length} with a VMM` });
  notifier?.startWatchdog();
  return { log, closed };
}

/** The metrics endpoints asked for: the Unix socket, the loopback port, or both. */
async function serveMetrics(metrics: DaemonMetrics, opts: ServerOptions, log: Logger): Promise<http.Server[]> {
  const servers: http.Server[] = [];
  if (opts.metricsSocket) servers.push(await metrics.serve(opts.metricsSocket));
  if (opts.metricsPort !== undefined) {
    const range = opts.vmmUsers;
    const { server, port } = await metrics.serveLoopback(opts.metricsPort, (uid) => range !== undefined && uid >= range.first && uid <= range.last);
    log.info({ address: `127.0.0.1:${port}`, refused_uids: range ? `${range.first}-${range.last}` : null }, "metrics listening on loopback");
    servers.push(server);
  }
  return servers;
}
