/**
 * A JSON-RPC 2.0 client for a sibling daemon (network, volumes) on its Unix
 * socket, one message per line. Every call has a timeout; a call that could
 * not be delivered or answered (socket missing, refused, timed out) is
 * retried a bounded number of times with backoff; an error the sibling
 * returns is final. Each call is logged with its duration.
 */
import net from "node:net";
import type { Logger } from "pino";

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

export class SiblingClient {
  private nextId = 1;

  constructor(
    readonly name: string,
    private readonly socketPath: string,
    private readonly log: Logger,
  ) {}

  async call<T>(method: string, params: Record<string, unknown>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const started = Date.now();
      try {
        const result = await this.once<T>(method, params);
        this.log.info({ sibling: this.name, method, ms: Date.now() - started, attempt }, "sibling call");
        return result;
      } catch (e) {
        const err = e as SiblingError;
        this.log.warn({ sibling: this.name, method, ms: Date.now() - started, attempt, err: err.message }, "sibling call failed");
        const backoff = BACKOFF_MS[attempt];
        if (!err.unreachable || backoff === undefined) throw err;
        await new Promise((r) => setTimeout(r, backoff));
      }
    }
  }

  private once<T>(method: string, params: Record<string, unknown>): Promise<T> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const socket = net.connect(this.socketPath);
      let buffer = "";
      const fail = (message: string, rpcError?: SiblingError["rpcError"]) => {
        clearTimeout(timer);
        socket.destroy();
        reject(new SiblingError(this.name, method, `${this.name} sibling, ${method}: ${message}`, rpcError));
      };
      const timer = setTimeout(() => fail(`no answer within ${CALL_TIMEOUT_MS} ms`), CALL_TIMEOUT_MS);
      socket.setEncoding("utf8");
      socket.once("error", (e) => fail(`cannot reach ${this.socketPath} (${(e as NodeJS.ErrnoException).code ?? e.message})`));
      socket.once("connect", () => socket.write(`${JSON.stringify({ jsonrpc: "2.0", id, method, params })}\n`));
      socket.on("data", (chunk: string) => {
        buffer += chunk;
        const nl = buffer.indexOf("\n");
        if (nl < 0) return;
        clearTimeout(timer);
        socket.end();
        let reply: { result?: T; error?: { code: number; message: string; data?: unknown } };
        try {
          reply = JSON.parse(buffer.slice(0, nl));
        } catch {
          return fail("answered with invalid JSON");
        }
        if (reply.error) return fail(reply.error.message, reply.error);
        resolve(reply.result as T);
      });
      socket.once("close", () => fail("closed the connection without answering"));
    });
  }
}
