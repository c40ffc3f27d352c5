/**
 * Typed client for one cloud-hypervisor API socket. Types come from the
 * project's OpenAPI document; requests go through undici on the Unix socket.
 * CH serves one request at a time and at most 10 connections, so the client
 * keeps a single connection and never pipelines. Bodies are always sent with
 * Content-Length (CH ignores chunked bodies).
 */
import createClient from "openapi-fetch";
import { Agent, fetch as undiciFetch } from "undici";
import type { components, paths } from "./api.generated.js";

export type ChVmConfig = components["schemas"]["VmConfig"];
export type ChVmInfo = components["schemas"]["VmInfo"];
export type ChPing = components["schemas"]["VmmPingResponse"];

export const DEFAULT_CALL_TIMEOUT_MS = 10_000;

/** A failed CH call: which call, the HTTP status and CH's error chain, or why no answer came. */
export class ChApiError extends Error {
  constructor(
    readonly call: string,
    message: string,
    readonly status?: number,
    readonly body?: unknown,
    readonly timedOut = false,
    readonly unreachable = false,
  ) {
    super(message);
    this.name = "ChApiError";
  }
}

type ApiResult<T> = { data?: T; error?: unknown; response: Response };

export class ChClient {
  private readonly agent: Agent;
  private readonly api;

  constructor(readonly socketPath: string) {
    this.agent = new Agent({ connect: { socketPath }, connections: 1, pipelining: 1 });
    this.api = createClient<paths>({ baseUrl: "http://localhost/api/v1", fetch: (req) => this.send(req) });
  }

  ping(timeoutMs?: number): Promise<ChPing> {
    return this.call("vmm.ping", (signal) => this.api.GET("/vmm.ping", { signal }), timeoutMs);
  }
  info(timeoutMs?: number): Promise<ChVmInfo> {
    return this.call("vm.info", (signal) => this.api.GET("/vm.info", { signal }), timeoutMs);
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
  shutdownVmm(timeoutMs?: number): Promise<void> {
    return this.call("vmm.shutdown", (signal) => this.api.PUT("/vmm.shutdown", { signal }), timeoutMs);
  }

  async close(): Promise<void> {
    await this.agent.destroy();
  }

  /** Buffers the body so undici sends Content-Length, never chunked. */
  private async send(req: Request): Promise<Response> {
    const body = req.body ? Buffer.from(await req.arrayBuffer()) : undefined;
    const res = await undiciFetch(req.url, { method: req.method, headers: [...req.headers], body, dispatcher: this.agent, signal: req.signal });
    return res as unknown as Response;
  }

  private async call<T>(name: string, run: (signal: AbortSignal) => Promise<ApiResult<T>>, timeoutMs = DEFAULT_CALL_TIMEOUT_MS): Promise<T> {
    let result: ApiResult<T>;
    try {
      result = await run(AbortSignal.timeout(timeoutMs));
    } catch (e) {
      const err = e as Error & { cause?: { code?: string; message?: string } };
      if (err.name === "TimeoutError") throw new ChApiError(name, `${name}: no answer within ${timeoutMs} ms`, undefined, undefined, true);
      const cause = err.cause?.code ?? err.cause?.message ?? err.message;
      throw new ChApiError(name, `${name}: cannot reach the VMM API socket (${cause})`, undefined, undefined, false, true);
    }
    if (!result.response.ok) {
      const status = result.response.status;
      throw new ChApiError(name, `${name} failed with HTTP ${status}: ${describeChError(result.error)}`, status, result.error);
    }
    return result.data as T;
  }
}

/** CH's error chain (a JSON string array) as one line. */
export function describeChError(body: unknown): string {
  if (Array.isArray(body)) return body.join(": ");
  if (body && typeof body === "object" && "error" in body) return String((body as { error: unknown }).error);
  return body === undefined || body === "" ? "(no body)" : String(body);
}
