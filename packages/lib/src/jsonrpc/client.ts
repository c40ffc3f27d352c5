/**
 * A JSON-RPC 2.0 client on a Unix socket, one message per line: one
 * connection, any number of calls in flight, replies matched by id. A reply
 * with an error rejects with RpcCallError (the peer's code, message and data);
 * a call that gets no reply (the connection failed or closed, or the timeout
 * passed) rejects with RpcConnectionError. The daemon's sibling client, the
 * tests and the benchmarks all use it.
 */
import net from "node:net";
import { LineReader } from "./line-reader.js";

/** The peer answered with an error. */
export class RpcCallError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = "RpcCallError";
  }
}

/** No reply came: the connection could not be made, was lost, or the call timed out. */
export class RpcConnectionError extends Error {
  constructor(
    message: string,
    readonly timedOut = false,
  ) {
    super(message);
    this.name = "RpcConnectionError";
  }
}

interface Pending {
  resolve: (result: unknown) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
}

/** Replies can be large (an exec's output): no line limit short of what a string can hold. */
const MAX_REPLY_BYTES = 512 * 1024 * 1024;

export class JsonRpcConnection {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly lines = new LineReader(MAX_REPLY_BYTES);
  private lost: string | undefined;
  /** Lines that answer no call of this client (a batch, a reply to raw bytes). */
  onUnmatched: (message: unknown) => void = () => undefined;

  private constructor(readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => {
      for (const item of this.lines.push(chunk)) if (!item.tooLong) this.receive(item.line);
    });
    socket.on("error", (e) => this.fail(`connection lost: ${e.message}`));
    socket.on("close", () => this.fail("connection closed"));
  }

  static open(path: string): Promise<JsonRpcConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(path);
      const refused = (e: NodeJS.ErrnoException) => reject(new RpcConnectionError(`cannot reach ${path} (${e.code ?? e.message})`));
      socket.once("error", refused);
      socket.once("connect", () => {
        socket.off("error", refused);
        resolve(new JsonRpcConnection(socket));
      });
    });
  }

  call<T = unknown>(method: string, params?: unknown, timeoutMs?: number): Promise<T> {
    if (this.lost !== undefined) return Promise.reject(new RpcConnectionError(this.lost));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const entry: Pending = { resolve: resolve as (r: unknown) => void, reject };
      if (timeoutMs !== undefined)
        entry.timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new RpcConnectionError(`${method}: no answer within ${timeoutMs} ms`, true));
        }, timeoutMs);
      this.pending.set(id, entry);
      this.socket.write(`${JSON.stringify({ jsonrpc: "2.0", id, method, params })}\n`);
    });
  }

  /** Sends bytes as they are (for tests of the framing); replies come to onUnmatched. */
  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  close(): void {
    this.socket.end();
  }

  private receive(line: string): void {
    let message: { id?: unknown; result?: unknown; error?: { code: number; message: string; data?: unknown } };
    try {
      message = JSON.parse(line);
    } catch {
      this.fail(`the peer sent a line that is not JSON: ${line.slice(0, 200)}`);
      return;
    }
    const entry = !Array.isArray(message) && typeof message.id === "number" ? this.pending.get(message.id) : undefined;
    if (!entry) {
      this.onUnmatched(message);
      return;
    }
    this.pending.delete(message.id as number);
    clearTimeout(entry.timer);
    if (message.error) entry.reject(new RpcCallError(message.error.code, message.error.message, message.error.data));
    else entry.resolve(message.result);
  }

  private fail(why: string): void {
    this.lost ??= why;
    for (const entry of this.pending.values()) {
      clearTimeout(entry.timer);
      entry.reject(new RpcConnectionError(why));
    }
    this.pending.clear();
    this.socket.destroy();
  }
}
