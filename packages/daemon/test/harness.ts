/**
 * Test harness: runs the real my_hypervisor-daemon binary with the test VMM
 * and talks JSON-RPC to it over its real Unix socket.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import type net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ComputeClient, ComputeError, type MethodName, type Params, type Result } from "@my_hypervisor/client";
import { RpcCallError as JsonRpcCallError, RpcConnectionError } from "@my_hypervisor/lib/jsonrpc-client";
import { isListening } from "@my_hypervisor/lib/private-socket";
import { readProcStat } from "@my_hypervisor/lib/proc";
import { execa, type ResultPromise } from "execa";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
/** The daemon as shipped: one esbuild bundle (start-up is a third of loading the modules one by one). */
export const DAEMON_BIN = path.join(ROOT, "packages/daemon/dist/my_hypervisor-daemon.mjs");
export const SIM_BIN = path.join(ROOT, "packages/ch-sim/dist/main.js");
const SIBLINGS = path.join(ROOT, "packages/siblings/dist");

export interface RpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

/** The code a call fails with when the connection went away before its reply (not a JSON-RPC code). */
export const CONNECTION_LOST = -1;

/** A call that failed: the daemon's error, or CONNECTION_LOST. */
export class RpcCallError extends Error {
  constructor(readonly error: RpcErrorObject) {
    super(`${error.code}: ${error.message}`);
  }
}

/**
 * The typed client (packages/client, generated from the OpenRPC document), with what tests need besides: errors
 * as values, raw bytes, and calls the types forbid (`untyped`, for tests of what the daemon refuses).
 */
export class RpcConnection {
  /** Every line received that no call claimed (replies to raw writes, batches). */
  readonly unclaimed: unknown[] = [];
  private readonly unclaimedWaiters: (() => void)[] = [];

  private constructor(private readonly client: ComputeClient) {
    client.connection.onUnmatched = (msg) => {
      this.unclaimed.push(msg);
      for (const w of this.unclaimedWaiters.splice(0)) w();
    };
  }

  static async open(socketPath: string): Promise<RpcConnection> {
    return new RpcConnection(await ComputeClient.connect(socketPath));
  }

  /** The socket itself, for tests of framing and half-closing. */
  get socket(): net.Socket {
    return this.client.connection.socket;
  }

  /** A call as the client types it: a method that exists, its params, its result. */
  async call<M extends MethodName>(method: M, params: Params<M>): Promise<Result<M>> {
    return this.settle(() => this.client.call(method, params));
  }

  /** compute.vm.exec run to its end, and with `stream`: the client's narrowed forms. */
  async exec(params: Parameters<ComputeClient["exec"]>[0]) {
    return this.settle(() => this.client.exec(params));
  }

  async execStream(params: Parameters<ComputeClient["execStream"]>[0]) {
    return this.settle(() => this.client.execStream(params));
  }

  async discover() {
    return this.settle(() => this.client.discover());
  }

  /** A call outside the types: a method that does not exist, params the schema refuses. */
  async untyped(method: string, params?: unknown): Promise<any> {
    return this.settle(() => this.client.connection.call(method, params));
  }

  /** Calls and returns the JSON-RPC error, failing if the call succeeds. Takes anything: refusals are its point. */
  async callError(method: string, params?: unknown): Promise<RpcErrorObject> {
    try {
      await this.untyped(method, params);
    } catch (e) {
      if (e instanceof RpcCallError) return e.error;
      throw e;
    }
    throw new Error(`${method} succeeded but an error was expected`);
  }

  private async settle<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (e) {
      if (e instanceof ComputeError || e instanceof JsonRpcCallError) throw new RpcCallError({ code: e.code, message: e.message, data: e.data });
      if (e instanceof RpcConnectionError) throw new RpcCallError({ code: CONNECTION_LOST, message: e.message });
      throw e;
    }
  }

  /** Writes raw bytes; returns the next `n` unclaimed replies. */
  async raw(data: string | Buffer, n = 1): Promise<any[]> {
    const start = this.unclaimed.length;
    this.client.connection.write(data);
    while (this.unclaimed.length < start + n) await new Promise<void>((r) => this.unclaimedWaiters.push(r));
    return this.unclaimed.slice(start, start + n);
  }

  close(): void {
    this.client.close();
  }
}

export interface Daemon {
  dir: string;
  socket: string;
  stateDir: string;
  proc: ResultPromise;
  rpc: RpcConnection;
  /** A file that passes for a kernel with the test VMM. */
  kernel: string;
  /** Where the VMMs' own files are, `<vmmDir>/<id>/`: the VMM dir when they run under uids of their own, else the state dir. */
  vmmDir: string;
  stop(): Promise<void>;
}

/** A file a VM's VMM made (api.sock, serial.sock, vsock.sock, vmm.log, events.log). */
export const vmmFile = (d: Daemon, id: string, name: string) => path.join(d.vmmDir, id, name);

/** A short temp dir: socket paths are limited to 107 bytes. */
export function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "mh-"));
}

export interface DaemonOptions {
  dir?: string;
  vmm?: string;
  args?: string[];
  /** Added to the daemon's environment (and so its VMMs'): failpoints, test VMM knobs. */
  env?: Record<string, string>;
  /** Instead of `<dir>/state` and `<dir>/console`: to put them on a small or read-only filesystem. */
  stateDir?: string;
  consoleDir?: string;
  /**
   * Refuse starts where limits cannot be enforced, as a daemon does unless told otherwise. Off by default here:
   * this machine's cgroups are v1, and a daemon under vitest shares vitest's cgroup (limits.test.ts covers both).
   */
  enforceLimits?: boolean;
  /** Keep the daemon's own default --vmm-uid-range (else each daemon gets 100 uids no other test's daemon has). */
  defaultUidRange?: boolean;
}

const uidRanges = new Map<string, string>();
/**
 * 100 uids of their own for the daemons a test starts on `dir` (a restart keeps them), from 210000 up (below: the
 * ranges tests name themselves): one block of 10000 per vitest worker, so files that run at once never overlap.
 */
function testUidRange(dir: string): string {
  let range = uidRanges.get(dir);
  if (range === undefined) {
    const first = 210_000 + (Number(process.env.VITEST_POOL_ID ?? 0) % 8) * 10_000 + (uidRanges.size % 100) * 100;
    range = `${first}-${first + 99}`;
    uidRanges.set(dir, range);
  }
  return range;
}

export async function startDaemon(opts: DaemonOptions = {}): Promise<Daemon> {
  const dir = opts.dir ?? tempDir();
  const socket = path.join(dir, "rpc.sock");
  const stateDir = opts.stateDir ?? path.join(dir, "state");
  const kernel = path.join(dir, "vmlinux");
  if (!fs.existsSync(kernel)) fs.writeFileSync(kernel, "not a real kernel: the test VMM only checks it can be read\n");
  // As root the daemon runs each VMM under a uid of its own (ADR 0009): it must reach its directory and the kernel.
  fs.chmodSync(dir, 0o711);
  const args = opts.args ?? [];
  const flag = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
  const ownUids = process.getuid?.() === 0 && flag("--vmm-uid-range") !== "off";
  // Daemons of tests that run at once must never share a uid: a remove kills whatever runs under its VM's uid.
  const uidRange = ownUids && !flag("--vmm-uid-range") && !opts.defaultUidRange ? ["--vmm-uid-range", testUidRange(stateDir)] : [];
  const vmmDir = flag("--vmm-dir") ?? path.join(dir, "vmm");
  // Run as installed: the file itself, so the node flags on its #! line apply.
  const proc = execa(
    DAEMON_BIN,
    [
      "--rpc-socket",
      socket,
      "--state-dir",
      stateDir,
      "--console-dir",
      opts.consoleDir ?? path.join(dir, "console"),
      "--cloud-hypervisor",
      opts.vmm ?? SIM_BIN,
      "--log-level",
      "debug",
      ...uidRange,
      ...(ownUids && !flag("--vmm-dir") ? ["--vmm-dir", vmmDir] : []),
      // The jailed test VMM must see the checkout: its own modules and the guest init it runs.
      ...(ownUids ? ["--vmm-jail-bind", ROOT] : []),
      ...(opts.enforceLimits ? [] : ["--allow-unenforced-limits"]),
      ...args,
    ],
    { reject: false, stdout: "ignore", stderr: { file: path.join(dir, "daemon.log"), append: true }, env: opts.env },
  );
  await waitForSocket(socket, proc);
  const rpc = await RpcConnection.open(socket);
  return {
    dir,
    socket,
    vmmDir: ownUids ? vmmDir : stateDir,
    stateDir,
    proc,
    rpc,
    kernel,
    async stop() {
      rpc.close();
      proc.kill("SIGTERM");
      await proc;
    },
  };
}

async function waitForSocket(socket: string, proc: ResultPromise): Promise<void> {
  let exited = false;
  void proc.then(() => {
    exited = true;
  });
  for (let i = 0; i < 500; i++) {
    if (exited) throw new Error(`daemon exited before listening: ${(await proc).stderr ?? ""}`);
    if (await isListening(socket)) return;
    await sleep(20);
  }
  throw new Error("daemon did not listen within 10 s");
}

/** Leaves a socket file nobody listens on, as a process that died without unlinking it does. */
export function staleSocket(file: string): void {
  const script = `require("net").createServer().listen(${JSON.stringify(file)}, () => process.kill(process.pid, "SIGKILL"))`;
  // It kills itself only once bound: its SIGKILL is the proof the socket was made (a sweep may remove it at once).
  const { signal, stderr } = spawnSync(process.execPath, ["-e", script]);
  if (signal !== "SIGKILL") throw new Error(`could not leave a stale socket at ${file}: ${stderr}`);
}

/** A VM's resource in a slot (`net0`, `disk1`), failing the test if the slot is empty. */
export function slot<T>(resources: Record<string, T>, name: string): T {
  const r = resources[name];
  if (r === undefined) throw new Error(`no resource in slot ${name}`);
  return r;
}

/** The VMM pid of a VM that has one (a status or a start's result), failing the test if it has none. */
export function pidOf(status: { id: string; pid: number | null }): number {
  if (status.pid === null) throw new Error(`VM ${status.id} has no VMM pid`);
  return status.pid;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Field 22 of /proc/<pid>/stat (start time since boot), or undefined if the process is gone or a zombie. */
export function startTimeOf(pid: number): string | undefined {
  const stat = readProcStat(pid);
  return stat && stat.state !== "Z" ? stat.startTime : undefined;
}

export const isAlive = (pid: number): boolean => startTimeOf(pid) !== undefined;

/**
 * VMM pids a test started, each with its start time, so that cleanup never
 * kills a process that merely reused the pid (pid_max can be as low as 32768,
 * and a full run starts many thousands of processes).
 */
export class VmmPids {
  private readonly started = new Map<number, string | undefined>();

  add(pid: number | null | undefined): void {
    if (pid) this.started.set(pid, startTimeOf(pid));
  }

  killAll(): void {
    for (const [pid, start] of this.started) if (start !== undefined && startTimeOf(pid) === start) process.kill(pid, "SIGKILL");
  }

  [Symbol.iterator](): IterableIterator<number> {
    return this.started.keys();
  }
}

/** Polls `check` until it returns a value other than undefined, or fails after `ms`. */
export async function eventually<T>(check: () => T | undefined | Promise<T | undefined>, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error("condition not met in time");
    await sleep(20);
  }
}

export function vmSpec(d: Daemon, id: string, cmdline = "") {
  return { id, vcpus: 1, memory_mib: 64, boot: { kernel: d.kernel, cmdline } };
}

export interface Sibling {
  socket: string;
  proc: ResultPromise;
  call<T = any>(method: string, params: Record<string, unknown>): Promise<T>;
}

/** `ip` in netd's network namespace, where its networks' bridges are. */
export const ipInNetd = (netd: Sibling, ...args: string[]) => execa("nsenter", [`--net=/proc/${netd.proc.pid}/ns/net`, "ip", ...args], { reject: false });
/** `ip` in a VM's network namespace (a port's `netns`), where netd puts its taps. */
export const ipInNetns = (netns: string | undefined, ...args: string[]) => execa("nsenter", [`--net=${netns}`, "ip", ...args], { reject: false });

/** vm.info straight from a VM's CH API socket (in its VMM directory, wherever that is). */
export function chVmInfo(d: Daemon, id: string, apiSocket = vmmFile(d, id, "api.sock")): Promise<{ config: Record<string, any>; state: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath: apiSocket, path: "/api/v1/vm.info" }, (res) => {
        let body = "";
        res.on("data", (chunk) => {
          body += chunk;
        });
        res.on("end", () => resolve(JSON.parse(body)));
      })
      .on("error", reject);
  });
}

/** A PUT straight to a VM's CH API socket, behind the daemon's back (`vm.pause`, `vm.resume`); CH's status code. */
export function chPut(d: Daemon, id: string, route: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: vmmFile(d, id, "api.sock"), path: `/api/v1/${route}`, method: "PUT", headers: { "content-length": 0 } }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    req.end();
  });
}

/** A reference sibling daemon on `<dir>/<kind>.sock`; netd in a network namespace of its own. */
export async function startSibling(kind: "netd" | "vold", dir: string, extra: string[] = []): Promise<Sibling> {
  const socket = path.join(dir, `${kind}.sock`);
  // VMMs under their own uids open the volumes vold keeps under it.
  fs.chmodSync(dir, 0o711);
  const args = [path.join(SIBLINGS, `${kind}.js`), "--socket", socket, "--state-dir", path.join(dir, `${kind}-state`), ...extra];
  // netd gets a network namespace of its own: its bridges and taps never touch the host's interfaces.
  const proc = kind === "netd" ? execa("unshare", ["--net", "node", ...args], { reject: false }) : execa("node", args, { reject: false });
  // Wait until it accepts: a killed predecessor may have left the socket file behind.
  await eventually(() =>
    RpcConnection.open(socket).then(
      (c) => {
        c.close();
        return true;
      },
      () => undefined,
    ),
  );
  return {
    socket,
    proc,
    async call(method, params) {
      const conn = await RpcConnection.open(socket);
      try {
        return await conn.untyped(method, params);
      } finally {
        conn.close();
      }
    },
  };
}

/**
 * What a test file starts and must not leave behind: daemons, siblings and VMM pids.
 * `cleanup()` (in afterAll) kills whatever is still alive.
 */
export class Fleet {
  readonly pids = new VmmPids();
  private readonly procs: ResultPromise[] = [];

  async daemon(opts: DaemonOptions = {}): Promise<Daemon> {
    const d = await startDaemon(opts);
    this.procs.push(d.proc);
    return d;
  }

  private readonly netdStates: string[] = [];

  async sibling(...args: Parameters<typeof startSibling>): Promise<Sibling> {
    const s = await startSibling(...args);
    this.procs.push(s.proc);
    if (args[0] === "netd") this.netdStates.push(path.join(args[1], "netd-state", "ports.json"));
    return s;
  }

  cleanup(): void {
    this.pids.killAll();
    for (const p of this.procs) if (p.exitCode === null) p.kill("SIGKILL");
    // The network namespaces netd made for VMs a test left behind are the host's: they outlive netd.
    for (const file of this.netdStates) {
      const ports: { netns?: string }[] = fs.existsSync(file) ? Object.values(JSON.parse(fs.readFileSync(file, "utf8")).ports ?? {}) : [];
      for (const netns of new Set(ports.map((p) => p.netns))) if (netns) spawnSync("ip", ["netns", "del", path.basename(netns)]);
    }
  }
}
