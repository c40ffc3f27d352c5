/**
 * A JSON-RPC 2.0 client for a sibling daemon (network, volumes) on its Unix
 * socket, one message per line. Every call has a timeout; a call that could
 * not be delivered or answered (socket missing, refused, timed out) is
 * retried a bounded number of times with backoff; an error the sibling
 * returns is final. Each call is logged with its duration.
 */
import type { Logger } from "pino";
import type { SiblingMethod, SiblingParams, SiblingResult } from "../domain/sibling-contract.js";
import { JsonRpcConnection, RpcCallError } from "../jsonrpc/client.js";

export const CALL_TIMEOUT_MS = 5_000;
const BACKOFF_MS = [100, 400];

export class SiblingError extends Error {
  constructor(
    readonly sibling: string,
    readonly method: string,
    message: string,
    /** The sibling's own JSON-RPC error, when it answered with one. */
    readonly rpcError?: { code: number; message: string; data?: unknown },
  ) {
    super(message);
    this.name = "SiblingError";
  }

  /** The sibling did not answer (as opposed to answering with an error). */
  get unreachable(): boolean {
    return this.rpcError === undefined;
  }
}

/** Told of each failed attempt at a call (for the metrics). */
export type SiblingFailureObserver = (sibling: string, method: string, unreachable: boolean) => void;

export class SiblingClient {
  constructor(
    readonly name: string,
    private readonly socketPath: string,
    private readonly log: Logger,
    private readonly onFailure?: SiblingFailureObserver,
  ) {}

  /** A method of the sibling contract, typed by it. */
  async call<M extends SiblingMethod>(method: M, params: SiblingParams<M>): Promise<SiblingResult<M>> {
    for (let attempt = 0; ; attempt++) {
      const started = Date.now();
      try {
        const result = await this.once<SiblingResult<M>>(method, params);
        this.log.info({ sibling: this.name, method, ms: Date.now() - started, attempt }, "sibling call");
        return result;
      } catch (e) {
        const err = e as SiblingError;
        this.log.warn({ sibling: this.name, method, ms: Date.now() - started, attempt, err: err.message }, "sibling call failed");
        this.onFailure?.(this.name, method, err.unreachable);
        const backoff = BACKOFF_MS[attempt];
        if (!err.unreachable || backoff === undefined) throw err;
        await new Promise((r) => setTimeout(r, backoff));
      }
    }
  }

  private async once<T>(method: string, params: object): Promise<T> {
    const fail = (message: string, rpcError?: SiblingError["rpcError"]) =>
      new SiblingError(this.name, method, `${this.name} sibling, ${method}: ${message}`, rpcError);
    let conn: JsonRpcConnection;
    try {
      conn = await JsonRpcConnection.open(this.socketPath);
    } catch (e) {
      throw fail((e as Error).message);
    }
    try {
      return await conn.call<T>(method, params, CALL_TIMEOUT_MS);
    } catch (e) {
      if (e instanceof RpcCallError) throw fail(e.message, { code: e.code, message: e.message, data: e.data });
      throw fail((e as Error).message);
    } finally {
      conn.close();
    }
  }
}
