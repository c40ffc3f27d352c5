/**
 * The daemon's metrics in the OpenMetrics/Prometheus text format, made by
 * prom-client (the ecosystem's library; no hand-written exposition), served
 * at GET /metrics over HTTP on a Unix socket of its own (--metrics-socket,
 * mode 0600) and, if asked, on a loopback TCP port (--metrics-port). Counted
 * as they happen: RPC calls by method and outcome with their latency, VM
 * transitions by event, start and stop durations, VMM deaths, failed sibling
 * calls. Read at each scrape: VMs by state, and each running VM's CPU, memory
 * and I/O (the same figures as compute.vm.stats), plus the daemon process's own.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { VmEvent } from "./events/event-bus.js";
import type { Orchestrator } from "./orchestrator/orchestrator.js";
import { loopbackPeerUid } from "./os/loopback-peer.js";
import { listenPrivate, replaceStaleSocket } from "./os/private-socket.js";

const PREFIX = "my_hypervisor_";

/** Which transition starts a timed step, and which end it. */
const TIMED: Record<string, { step: "start" | "stop"; begins: string[]; ends: string[] }> = {
  start: { step: "start", begins: ["START", "RESTORE"], ends: ["STARTED", "START_FAILED"] },
  stop: { step: "stop", begins: ["STOP"], ends: ["STOPPED", "STOP_FAILED"] },
};

export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly rpcCalls = new Counter({
    name: `${PREFIX}rpc_calls_total`,
    help: "RPC calls answered, by method (unknown: a name no method has) and code (0: success)",
    labelNames: ["method", "code"],
    registers: [this.registry],
  });
  private readonly rpcSeconds = new Histogram({
    name: `${PREFIX}rpc_call_duration_seconds`,
    help: "How long RPC calls took to answer, by method (unknown: a name no method has)",
    labelNames: ["method"],
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [this.registry],
  });
  private readonly transitions = new Counter({
    name: `${PREFIX}vm_transitions_total`,
    help: "VM lifecycle transitions, by event and the state they led to",
    labelNames: ["event", "to"],
    registers: [this.registry],
  });
  private readonly stepSeconds = new Histogram({
    name: `${PREFIX}vm_step_duration_seconds`,
    help: "How long VM starts (restores included) and stops took, by step and outcome",
    labelNames: ["step", "outcome"],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  private readonly vmmDeaths = new Counter({
    name: `${PREFIX}vmm_deaths_total`,
    help: "VMMs that ended without being asked to (a crash, a kill from outside, a failed re-adoption)",
    registers: [this.registry],
  });
  private readonly siblingErrors = new Counter({
    name: `${PREFIX}sibling_errors_total`,
    help: "Sibling calls that failed, by sibling, method and kind (unreachable: no answer; error: the sibling refused)",
    labelNames: ["sibling", "method", "kind"],
    registers: [this.registry],
  });
  /** When each VM's timed step began (by id). */
  private readonly begun = new Map<string, number>();

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
  }

  /** The gauges read from the orchestrator at each scrape. */
  watch(orchestrator: Orchestrator): void {
    // Read when scraped: what is true now, not what was counted.
    this.gauge("vms", "VMs, by state", ["state"], (g) => {
      for (const vm of orchestrator.list().vms) g.inc({ state: vm.state });
    });
    this.gauge("vm_cpu_seconds", "CPU time a running VM's VMM used (its cgroup's, or its process's)", ["id"], (g) => {
      for (const u of orchestrator.hostUsage()) g.set({ id: u.id }, u.cpu.usage_us / 1e6);
    });
    this.gauge("vm_memory_bytes", "Memory charged to a running VM's VMM", ["id"], (g) => {
      for (const u of orchestrator.hostUsage()) g.set({ id: u.id }, u.memory.current_bytes);
    });
    this.gauge("vm_io_bytes", "Bytes a running VM's VMM read and wrote", ["id", "direction"], (g) => {
      for (const u of orchestrator.hostUsage()) {
        g.set({ id: u.id, direction: "read" }, u.io.read_bytes);
        g.set({ id: u.id, direction: "write" }, u.io.write_bytes);
      }
    });
  }

  /** A gauge whose values are read afresh at each scrape. */
  private gauge(name: string, help: string, labelNames: string[], fill: (g: Gauge) => void): void {
    new Gauge({
      name: `${PREFIX}${name}`,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        this.reset();
        fill(this);
      },
    });
  }

  /** For the RPC adapter: one answered call. */
  call = (method: string, code: number, seconds: number): void => {
    this.rpcCalls.inc({ method, code: String(code) });
    this.rpcSeconds.observe({ method }, seconds);
  };

  /** For the siblings' clients: one failed attempt at a call. */
  siblingError = (sibling: string, method: string, unreachable: boolean): void => {
    this.siblingErrors.inc({ sibling, method, kind: unreachable ? "unreachable" : "error" });
  };

  /** For the event bus: transitions counted, starts and stops timed from their first transition to their last. */
  event = (e: VmEvent): void => {
    if (e.type !== "transition") return;
    const event = String(e.data?.event ?? "");
    this.transitions.inc({ event, to: String(e.to) });
    if (event === "VMM_EXITED") this.vmmDeaths.inc();
    for (const t of Object.values(TIMED)) {
      if (t.begins.includes(event)) this.begun.set(`${t.step}:${e.id}`, Date.now());
      const began = this.begun.get(`${t.step}:${e.id}`);
      if (t.ends.includes(event) && began !== undefined) {
        this.begun.delete(`${t.step}:${e.id}`);
        this.stepSeconds.observe({ step: t.step, outcome: event.endsWith("FAILED") ? "failed" : "done" }, (Date.now() - began) / 1000);
      }
    }
  };

  /** GET /metrics on a Unix socket only root (the daemon's user) can reach. */
  async serve(socketPath: string): Promise<http.Server> {
    const server = this.httpServer();
    await replaceStaleSocket(socketPath);
    await listenPrivate(server, socketPath);
    return server;
  }

  /**
   * GET /metrics on 127.0.0.1:`port` (0: any free port), for a scraper that speaks only TCP. Resolves to the port.
   * Loopback is shared by every process of the host's network namespace, VMMs included: a connection from a uid
   * `refused` names (a VMM's: every tenant's series are here), or whose uid cannot be told, is closed unanswered.
   */
  async serveLoopback(port: number, refused: (uid: number) => boolean): Promise<{ server: http.Server; port: number }> {
    const server = this.httpServer();
    server.on("connection", (socket) => {
      const uid = loopbackPeerUid(socket);
      if (uid === undefined || refused(uid)) socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: "127.0.0.1", port }, () => resolve());
    });
    return { server, port: (server.address() as AddressInfo).port };
  }

  private httpServer(): http.Server {
    return http.createServer(async (req, res) => {
      if (req.method !== "GET" || req.url !== "/metrics") {
        res.writeHead(404).end("only GET /metrics here\n");
        return;
      }
      res.writeHead(200, { "Content-Type": this.registry.contentType }).end(await this.registry.metrics());
    });
  }
}
