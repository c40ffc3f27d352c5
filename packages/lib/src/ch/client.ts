/**
 * Typed client for one cloud-hypervisor API socket. Types come from the
 * project's OpenAPI document; requests go through undici on the Unix socket.
 * CH serves one request at a time and at most 10 connections, so the client
 * keeps a single connection and never pipelines. Bodies are always sent with
 * Content-Length (CH ignores chunked bodies). The connection is used only
 * once the kernel names the VMM's pid as the socket's listener: the socket
 * lives in a directory the VMM owns (os/process-socket.ts).
 */
import createClient from "openapi-fetch";
import { Client, type Dispatcher } from "undici";
import { connectToProcess, type ProcessSocket, WrongListenerError } from "../os/process-socket.js";
import type { components, paths } from "./api.generated.js";
import { type DeviceCounters, deviceCounters } from "./device-counters.js";

const ORIGIN = "http://localhost";

export type ChVmConfig = components["schemas"]["VmConfig"];
export type ChVmInfo = components["schemas"]["VmInfo"];
export type ChPing = components["schemas"]["VmmPingResponse"];

export const DEFAULT_CALL_TIMEOUT_MS = 10_000;

/** A failed CH call: which call, the HTTP status and CH's error chain, or why no answer came. */
export class ChApiError extends Error {
  /** CH's HTTP status, when it answered. */
  readonly status?: number;
  /** CH's error body (its error chain), when it answered. */
  readonly body?: unknown;
  /** No answer within the call's timeout. */
  readonly timedOut: boolean;
  /** The socket could not be reached (not there yet, or refused). */
  readonly unreachable: boolean;

  constructor(
    readonly call: string,
    message: string,
    how: { status?: number; body?: unknown; timedOut?: boolean; unreachable?: boolean },
  ) {
    super(message);
    this.name = "ChApiError";
    this.status = how.status;
    this.body = how.body;
    this.timedOut = how.timedOut ?? false;
    this.unreachable = how.unreachable ?? false;
  }
}

type ApiResult<T> = { data?: T; error?: unknown; response: { ok: boolean; status: number } };

/**
 * What openapi-fetch builds for each call, reduced to what undici's
 * dispatcher needs. WHATWG Request/Response and undici's fetch would cost
 * several times the CPU of the call itself (streams, cloning, URL parsing),
 * and a VM lifecycle makes half a dozen calls (docs/benchmarks.md).
 */
class ChRequest {
  readonly method: string;
  readonly headers: Headers;
  readonly body: string | undefined;
  readonly signal: AbortSignal | undefined;

  constructor(
    readonly url: string,
    init: { method: string; headers: Headers; body?: string; signal?: AbortSignal },
  ) {
    this.method = init.method;
    this.headers = init.headers;
    this.body = init.body;
    this.signal = init.signal;
  }
}

/** The parts of a Response that openapi-fetch reads. */
class ChResponse {
  constructor(
    readonly status: number,
    private readonly head: Record<string, string | string[] | undefined>,
    private readonly bodyText: string,
  ) {}
  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }
  readonly headers = { get: (name: string): string | null => String(this.head[name.toLowerCase()] ?? "") || null };
  async text(): Promise<string> {
    return this.bodyText;
  }
  async json(): Promise<unknown> {
    return JSON.parse(this.bodyText);
  }
}

export class ChClient {
  /** One connection for what changes the VM, one request at a time: what CH serves. */
  private readonly http: Client;
  /**
   * A second one for reads (vm.info, vm.counters): a read never queues behind a slow change on the first, so its
   * own timeout is all it can wait (CH serves up to 10 connections).
   */
  private readonly reads: Client;
  private readonly api;
  private readonly readApi;

  constructor(readonly socket: ProcessSocket) {
    const connection = () => new Client(ORIGIN, { pipelining: 1, connect: (_options, callback) => connectToProcess(socket, callback) });
    this.http = connection();
    this.reads = connection();
    const api = (http: Client) =>
      createClient<paths>({
        baseUrl: `${ORIGIN}/api/v1`,
        Request: ChRequest as unknown as typeof Request,
        fetch: (req) => send(http, req as unknown as ChRequest) as unknown as Promise<Response>,
      });
    this.api = api(this.http);
    this.readApi = api(this.reads);
  }

  ping(timeoutMs?: number): Promise<ChPing> {
    return this.call("vmm.ping", (signal) => this.api.GET("/vmm.ping", { signal }), timeoutMs);
  }
  info(timeoutMs?: number): Promise<ChVmInfo> {
    return this.call("vm.info", (signal) => this.readApi.GET("/vm.info", { signal }), timeoutMs);
  }
  /** Each device's counters, a latency no request has had as null (device-counters.ts). */
  async counters(timeoutMs?: number): Promise<DeviceCounters> {
    return deviceCounters(await this.call("vm.counters", (signal) => this.readApi.GET("/vm.counters", { signal }), timeoutMs));
  }
  createVm(config: ChVmConfig, timeoutMs?: number): Promise<void> {
    return this.call("vm.create", (signal) => this.api.PUT("/vm.create", { body: config, signal }), timeoutMs);
  }
  boot(timeoutMs?: number): Promise<void> {
    return this.call("vm.boot", (signal) => this.api.PUT("/vm.boot", { signal }), timeoutMs);
  }
  powerButton(timeoutMs?: number): Promise<void> {
    return this.call("vm.power-button", (signal) => this.api.PUT("/vm.power-button", { signal }), timeoutMs);
  }
  reboot(timeoutMs?: number): Promise<void> {
    return this.call("vm.reboot", (signal) => this.api.PUT("/vm.reboot", { signal }), timeoutMs);
  }
  /** Into `dir`, which must exist and be writable by the VMM; CH snapshots only a paused VM. */
  snapshot(dir: string, timeoutMs?: number): Promise<void> {
    return this.call("vm.snapshot", (signal) => this.api.PUT("/vm.snapshot", { body: { destination_url: `file://${dir}` }, signal }), timeoutMs);
  }
  /** Into a VMM that holds no VM: paused, unless `resume`. */
  restore(dir: string, resume: boolean, timeoutMs?: number): Promise<void> {
    return this.call("vm.restore", (signal) => this.api.PUT("/vm.restore", { body: { source_url: `file://${dir}`, resume }, signal }), timeoutMs);
  }
  pause(timeoutMs?: number): Promise<void> {
    return this.call("vm.pause", (signal) => this.api.PUT("/vm.pause", { signal }), timeoutMs);
  }
  resume(timeoutMs?: number): Promise<void> {
    return this.call("vm.resume", (signal) => this.api.PUT("/vm.resume", { signal }), timeoutMs);
  }
  shutdownVmm(timeoutMs?: number): Promise<void> {
    return this.call("vmm.shutdown", (signal) => this.api.PUT("/vmm.shutdown", { signal }), timeoutMs);
  }

  async close(): Promise<void> {
    await Promise.all([this.http.destroy(), this.reads.destroy()]);
  }

  private async call<T>(name: string, run: (signal: AbortSignal) => Promise<ApiResult<T>>, timeoutMs = DEFAULT_CALL_TIMEOUT_MS): Promise<T> {
    let result: ApiResult<T>;
    try {
      result = await run(AbortSignal.timeout(timeoutMs));
    } catch (e) {
      const err = e as Error & { code?: string };
      if (err.name === "TimeoutError") throw new ChApiError(name, `${name}: no answer within ${timeoutMs} ms`, { timedOut: true });
      if (err instanceof WrongListenerError) throw new ChApiError(name, `${name}: ${err.message}`, { unreachable: true });
      const cause = err.code ?? err.message;
      throw new ChApiError(name, `${name}: cannot reach the VMM API socket (${cause})`, { unreachable: true });
    }
    if (!result.response.ok) {
      const status = result.response.status;
      throw new ChApiError(name, `${name} failed with HTTP ${status}: ${describeChError(result.error)}`, { status, body: result.error });
    }
    return result.data as T;
  }
}

/** The body is a whole string, so undici sends Content-Length, never chunked. */
async function send(http: Client, req: ChRequest): Promise<ChResponse> {
  const res = await http.request({
    path: req.url.slice(ORIGIN.length),
    method: req.method as Dispatcher.HttpMethod,
    headers: Object.fromEntries(req.headers),
    body: req.body,
    signal: req.signal,
  });
  return new ChResponse(res.statusCode, res.headers, await res.body.text());
}

/**
 * CH's error chain (a JSON string array) as one line. A link may carry a Rust backtrace after a blank line (anyhow's
 * Debug form: `vm.snapshot`'s vCPU errors do): only what comes before it is CH's reason; the body keeps the rest.
 */
export function describeChError(body: unknown): string {
  if (Array.isArray(body)) return body.map((link) => String(link).split("\n\n")[0]?.replace(/\n/g, " ")).join(": ");
  if (body && typeof body === "object" && "error" in body) return String((body as { error: unknown }).error);
  return body === undefined || body === "" ? "(no body)" : String(body);
}
