/**
 * An HTTP/1.1 server on a Unix socket that frames requests the way
 * cloud-hypervisor's micro-http does, so a client that works against it
 * works against the real VMM: bodies are read by Content-Length only
 * (chunked encoding is never decoded), only GET/PUT/PATCH parse, framing
 * errors are answered with micro-http's own texts and keep the connection, at most
 * 10 connections are served (the 11th gets a raw 503), and requests from
 * all connections are answered one at a time by a single worker.
 */
import net from "node:net";

export const MAX_CONNECTIONS = 10;
/** micro-http's default MAX_PAYLOAD_SIZE, in force at v53.0. */
export const MAX_PAYLOAD_SIZE = 51_200;
const MAX_HEADER_BYTES = 64 * 1024;
/** micro-http's answer to the 11th connection, written as is (no reason phrase, its own server name). */
const SERVER_FULL = Buffer.from(
  'HTTP/1.1 503\r\nServer: Firecracker API\r\nConnection: close\r\nContent-Length: 40\r\n\r\n{ "error": "Too many open connections" }',
);
const PARSED_METHODS = new Set(["GET", "PUT", "PATCH"]);

export interface HttpRequest {
  method: string;
  path: string;
  body: Buffer | undefined;
}

export interface HttpResponse {
  status: number;
  /** undefined: no body (204 style, or an empty 200). */
  body?: unknown;
  /** Called once the response bytes have been handed to the socket. */
  afterSend?: () => void;
}

export type Handler = (req: HttpRequest) => Promise<HttpResponse> | HttpResponse;

const REASONS: Record<number, string> = {
  200: "OK",
  204: "No Content",
  400: "Bad Request",
  404: "Not Found",
  409: "Conflict",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

export function formatResponse(status: number, body?: unknown, server = "Cloud Hypervisor API"): Buffer {
  const head = [`HTTP/1.1 ${status} ${REASONS[status] ?? ""}`, `Server: ${server}`, "Connection: keep-alive"];
  if (status === 204) return Buffer.from(`${head.join("\r\n")}\r\n\r\n`);
  const payload = body === undefined ? Buffer.alloc(0) : Buffer.from(typeof body === "string" ? body : toJson(body));
  head.push("Content-Type: application/json", `Content-Length: ${payload.length}`);
  return Buffer.concat([Buffer.from(`${head.join("\r\n")}\r\n\r\n`), payload]);
}

/** JSON with u64s (bigints) written out in full, as serde writes them: 18446744073709551615, not 18446744073709552000. */
function toJson(value: unknown): string {
  return JSON.stringify(value, (_, v) => (typeof v === "bigint" ? `\u0000u64:${v}` : v)).replace(/"\\u0000u64:(\d+)"/g, "$1");
}

/**
 * micro-http answers its own framing errors itself: not CH's string arrays but a text that looks like JSON (the
 * newline in it is raw), under micro-http's default server name.
 */
function framingError(message: string): Buffer {
  return formatResponse(400, `{ "error": "${message}\nAll previous unanswered requests will be dropped." }`, "Firecracker API");
}

type Parsed = { kind: "request"; req: HttpRequest; used: number } | { kind: "incomplete" } | { kind: "error"; message: string };

export function parseRequest(buf: Buffer): Parsed {
  const end = buf.indexOf("\r\n\r\n");
  if (end < 0) return buf.length > MAX_HEADER_BYTES ? { kind: "error", message: "Headers too long." } : { kind: "incomplete" };
  const lines = buf.subarray(0, end).toString("latin1").split("\r\n");
  const [method, uri, version, ...extra] = (lines[0] ?? "").split(" ");
  if (!method || !uri || !version || extra.length > 0) return { kind: "error", message: "Invalid request." };
  if (!PARSED_METHODS.has(method)) return { kind: "error", message: "Invalid HTTP Method: Unsupported HTTP method." };
  if (version !== "HTTP/1.1" && version !== "HTTP/1.0") return { kind: "error", message: "Invalid HTTP Version: Unsupported HTTP version." };
  let contentLength = 0;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) return { kind: "error", message: `Invalid header. Reason: Header is incorrectly formatted. Key: ${line}` };
    if (line.slice(0, colon).trim().toLowerCase() !== "content-length") continue;
    const value = line.slice(colon + 1);
    if (!/^\d+$/.test(value.trim())) return { kind: "error", message: `Invalid header. Reason: Invalid value. Key:Content-Length; Value:${value}` };
    contentLength = Number(value);
  }
  if (contentLength > MAX_PAYLOAD_SIZE) {
    return { kind: "error", message: `Request payload with size ${contentLength} is larger than the limit of ${MAX_PAYLOAD_SIZE} allowed by server.` };
  }
  const bodyStart = end + 4;
  if (buf.length < bodyStart + contentLength) return { kind: "incomplete" };
  const body = contentLength > 0 ? Buffer.from(buf.subarray(bodyStart, bodyStart + contentLength)) : undefined;
  return { kind: "request", req: { method, path: uri, body }, used: bodyStart + contentLength };
}

export class MicroHttpServer {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  /** The single http-server thread: every request waits for the one before it. */
  private worker: Promise<void> = Promise.resolve();

  constructor(private readonly handler: Handler) {
    this.server = net.createServer((socket) => this.accept(socket));
  }

  listen(target: { path: string } | { fd: number }): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(target, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
  }

  close(): void {
    this.server.close();
    for (const s of this.sockets) s.destroy();
  }

  private accept(socket: net.Socket): void {
    if (this.sockets.size >= MAX_CONNECTIONS) {
      socket.end(SERVER_FULL);
      return;
    }
    this.sockets.add(socket);
    socket.on("close", () => this.sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    let pending = Buffer.alloc(0);
    // As micro-http, per read: the requests it completes are served, unless a framing error comes after them in the
    // same read; then they are dropped unanswered, the bytes read so far with them, and the connection stays open.
    socket.on("data", (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      const complete: HttpRequest[] = [];
      for (;;) {
        const parsed = parseRequest(pending);
        if (parsed.kind === "incomplete") break;
        if (parsed.kind === "error") {
          pending = Buffer.alloc(0);
          this.reply(socket, framingError(parsed.message));
          return;
        }
        pending = pending.subarray(parsed.used);
        complete.push(parsed.req);
      }
      for (const req of complete) this.enqueue(socket, req);
    });
  }

  /** A reply of micro-http's own, in turn with those of the requests before it. */
  private reply(socket: net.Socket, bytes: Buffer): void {
    this.worker = this.worker.then(() => {
      if (!socket.destroyed) socket.write(bytes);
    });
  }

  private enqueue(socket: net.Socket, req: HttpRequest): void {
    this.worker = this.worker.then(async () => {
      let res: HttpResponse;
      try {
        res = await this.handler(req);
      } catch (err) {
        res = { status: 500, body: ["Error from API", String((err as Error).message ?? err)] };
      }
      if (!socket.destroyed) socket.write(formatResponse(res.status, res.body), () => res.afterSend?.());
      else res.afterSend?.();
    });
  }
}
