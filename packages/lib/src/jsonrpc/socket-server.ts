/**
 * The RPC socket: newline-delimited JSON-RPC on a Unix socket, mode 0600.
 * A stale socket left by a dead daemon is replaced; a live one is an error.
 * Requests on one connection are handled concurrently; each reply is one line.
 *
 * What one connection may hold is bounded, whatever its client does: the
 * daemon stops reading a connection while more than OUTPUT_PAUSE_BYTES of
 * its replies are unsent or MAX_IN_FLIGHT of its calls are unanswered, and
 * resumes once the client reads; a connection whose unsent replies pass
 * OUTPUT_LIMIT_BYTES (large replies to calls already in flight) is closed, with a log line. A client
 * that never reads its replies thus costs about a megabyte, and stalls only
 * itself.
 */
import net from "node:net";
import type { Logger } from "pino";
import { loadPeerCredentials, type PeerCredentials, peerCredentials } from "../os/peer-credentials.js";
import { listenPrivate, replaceStaleSocket } from "../os/private-socket.js";
import type { RpcAdapter } from "./adapter.js";
import { LineReader } from "./line-reader.js";

export const MAX_LINE_BYTES = 1024 * 1024;
export const OUTPUT_PAUSE_BYTES = 1024 * 1024;
/** Above the largest single reply (an exec's 16 MiB of stdout and of stderr, base64 in JSON: about 45 MB). */
export const OUTPUT_LIMIT_BYTES = 64 * 1024 * 1024;
export const MAX_IN_FLIGHT = 64;

type Item = { line: string; tooLong: false } | { tooLong: true };

export class RpcSocketServer {
  private readonly server: net.Server;
  private readonly connections = new Set<net.Socket>();
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly adapter: RpcAdapter,
    private readonly log: Logger,
  ) {
    // Half-open: a client such as `socat` shuts down its sending side after the request and
    // still expects the reply, so our side ends only once its calls have answered.
    this.server = net.createServer({ allowHalfOpen: true }, (socket) => this.serve(socket));
  }

  /** At `path` (0600, a stale socket replaced), or on a listening socket the service manager passed (`fd`). */
  async listen(where: string | { fd: number }): Promise<void> {
    loadPeerCredentials();
    if (typeof where !== "string") {
      await new Promise<void>((resolve, reject) => {
        this.server.once("error", reject);
        this.server.listen({ fd: where.fd }, () => resolve());
      });
      return;
    }
    await replaceStaleSocket(where);
    await listenPrivate(this.server, where);
  }

  /** Stops accepting, lets in-flight calls finish and answer, then closes connections. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    await Promise.allSettled([...this.inFlight]);
    // Destroy once our last bytes are flushed: a half-open client must not hold shutdown up.
    for (const socket of this.connections) socket.end(() => socket.destroy());
    await closed;
  }

  private serve(socket: net.Socket): void {
    this.connections.add(socket);
    // Taken once: the kernel fixed them when the peer connected.
    const caller = peerCredentials(socket);
    socket.on("error", (e) => this.log.debug({ err: e.message }, "RPC connection error"));
    const lines = new LineReader(MAX_LINE_BYTES);
    /** Lines read but not yet dispatched: at most one read's worth while the connection is paused. */
    const waiting: Item[] = [];
    const pending = new Set<Promise<void>>();
    let peerEnded = false;
    let calls = 0;
    socket.on("close", (hadError) => {
      this.connections.delete(socket);
      // What a client saw as a reset connection can be told from this line: who ended it, and what was left.
      this.log.debug(
        { caller_pid: caller?.pid, calls, peer_ended: peerEnded, had_error: hadError, undispatched: waiting.length, unanswered: pending.size },
        "RPC connection closed",
      );
    });
    const pump = () => {
      if (socket.destroyed) {
        waiting.length = 0;
        return;
      }
      while (waiting.length > 0 && pending.size < MAX_IN_FLIGHT && socket.writableLength <= OUTPUT_PAUSE_BYTES) {
        const item = waiting.shift() as Item;
        if (item.tooLong) this.reply(socket, TOO_LONG_REPLY);
        else if (item.line.trim() !== "") {
          calls += 1;
          this.track(socket, item.line, caller, pending, pump);
        }
      }
      if (waiting.length > 0 || pending.size >= MAX_IN_FLIGHT || socket.writableLength > OUTPUT_PAUSE_BYTES) socket.pause();
      else socket.resume();
      if (peerEnded && waiting.length === 0 && pending.size === 0) socket.end();
    };
    socket.on("data", (chunk) => {
      for (const item of lines.push(chunk)) waiting.push(item);
      pump();
    });
    socket.on("drain", pump);
    socket.on("end", () => {
      peerEnded = true;
      pump();
    });
  }

  private track(socket: net.Socket, line: string, caller: PeerCredentials | undefined, pending: Set<Promise<void>>, done: () => void): void {
    const settle = () => {
      this.inFlight.delete(work);
      pending.delete(work);
      done();
    };
    // One promise per call on this path, which every call takes.
    const work: Promise<void> = this.adapter
      .handleLine(line, caller)
      .then((reply) => this.reply(socket, reply))
      .then(settle, (e) => {
        this.log.error({ err: e }, "RPC line handling failed");
        settle();
      });
    this.inFlight.add(work);
    pending.add(work);
  }

  private reply(socket: net.Socket, reply: string | null): void {
    if (reply === null || !socket.writable) return;
    socket.write(`${reply}\n`);
    if (socket.writableLength > OUTPUT_LIMIT_BYTES) {
      this.log.warn({ unsent_bytes: socket.writableLength, limit: OUTPUT_LIMIT_BYTES }, "RPC client does not read its replies; connection closed");
      socket.destroy();
    }
  }
}

const TOO_LONG_REPLY = JSON.stringify({
  jsonrpc: "2.0",
  id: null,
  error: { code: -32600, message: `Invalid Request: message exceeds ${MAX_LINE_BYTES} bytes without a newline; it was discarded` },
});
