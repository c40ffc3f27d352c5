/**
 * A VMM under test (the test VMM or the real cloud-hypervisor) driven by raw HTTP on its API socket: each exchange on
 * a connection of its own, recorded as what a client sees (status, the headers CH sets, the body), with the run's
 * own paths and pid replaced by names so two VMMs' transcripts can be compared, with the event monitor's stream.
 */
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { execa, type ResultPromise } from "execa";

export interface Exchange {
  request: string;
  status: number | undefined;
  headers: Record<string, string>;
  body: unknown;
  /** The VMM closed the connection after this answer. */
  closed: boolean;
}

export interface VmmEvent {
  source: string;
  event: string;
  properties: unknown;
}

export interface Outcome {
  transcript: Exchange[];
  events: VmmEvent[];
  exit: { code: number | undefined; signal: string | undefined };
  /** Files left in the run's directory (sockets and the rest), by name. */
  files: string[];
}

/** The headers worth comparing: the rest (Date and the like) CH does not send. */
const HEADERS = ["server", "connection", "content-type", "content-length"];

function parseReply(data: Buffer, closed: boolean): Omit<Exchange, "request"> | undefined {
  const end = data.indexOf("\r\n\r\n");
  if (end < 0) return closed ? { status: undefined, headers: {}, body: data.toString("latin1"), closed } : undefined;
  const [statusLine, ...lines] = data.subarray(0, end).toString("latin1").split("\r\n");
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const name = line.slice(0, line.indexOf(":")).toLowerCase();
    if (HEADERS.includes(name)) headers[name] = line.slice(line.indexOf(":") + 1).trim();
  }
  const length = Number(headers["content-length"] ?? 0);
  if (data.length < end + 4 + length && !closed) return undefined;
  const text = data.subarray(end + 4, end + 4 + length).toString("utf8");
  let body: unknown = text;
  try {
    body = text === "" ? undefined : JSON.parse(text);
  } catch {
    // Not JSON: compared as text.
  }
  return { status: Number(statusLine?.split(" ")[1]), headers, body, closed };
}

/**
 * Writes `request` on a new connection and reads one reply. Whether the VMM then closed the connection is asked, not
 * timed: a second request follows on the same connection (unless `last`), and either it is answered or the
 * connection ends.
 */
function exchange(socket: string, request: string | Buffer, last: boolean): Promise<Omit<Exchange, "request">> {
  return new Promise((resolve, reject) => {
    const conn = net.connect(socket);
    let data = Buffer.alloc(0);
    let reply: Omit<Exchange, "request"> | undefined;
    const settle = (closed: boolean) => {
      if (reply === undefined) return;
      conn.destroy();
      resolve({ ...reply, closed });
    };
    const onData = (ended: boolean) => {
      if (reply === undefined) {
        const first = parseReply(data, ended);
        if (first === undefined) return;
        reply = first;
        const rest = data.length - replyLength(data);
        data = data.subarray(data.length - rest);
        if (ended) return settle(true);
        if (last) return settle(false);
        conn.write(httpRequest("GET", "vmm.ping"));
      }
      if (ended) return settle(true);
      if (parseReply(data, false) !== undefined) settle(false);
    };
    conn.on("data", (chunk) => {
      data = Buffer.concat([data, chunk]);
      onData(false);
    });
    conn.on("end", () => onData(true));
    conn.on("close", () => onData(true));
    let connected = false;
    // Once connected, an error is the VMM closing on us (a write after its close is EPIPE): the end of what it said.
    conn.on("error", (e) => (connected ? onData(true) : reject(e)));
    conn.on("connect", () => {
      connected = true;
      if (request.length > 0) conn.write(request);
    });
  });
}

/** The bytes of the first complete reply in `data`. */
function replyLength(data: Buffer): number {
  const end = data.indexOf("\r\n\r\n");
  if (end < 0) return data.length;
  const length = /content-length:\s*(\d+)/i.exec(data.subarray(0, end).toString("latin1"))?.[1];
  return Math.min(data.length, end + 4 + Number(length ?? 0));
}

export function httpRequest(method: string, route: string, body?: string, headers: string[] = []): string {
  const length = body === undefined ? [] : [`Content-Length: ${Buffer.byteLength(body)}`];
  return [`${method} /api/v1/${route} HTTP/1.1`, "Host: localhost", ...length, ...headers, "", body ?? ""].join("\r\n");
}

/** Binds and listens on argv[1], then execs argv[2] with `--api-socket fd=<n>` and the rest of argv. */
const LAUNCHER = [
  "import os, socket, sys",
  "s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8); os.set_inheritable(s.fileno(), True)",
  "os.execv(sys.argv[2], [sys.argv[2], '--api-socket', 'fd=%d' % s.fileno()] + sys.argv[3:])",
].join("\n");

export class VmmProbe {
  readonly transcript: Exchange[] = [];
  /** How many events `settled` waits for. */
  expectEvents: number | undefined;
  private readonly names: [string, string][];

  private constructor(
    readonly dir: string,
    readonly api: string,
    readonly proc: ResultPromise,
    readonly kernel: string,
  ) {
    this.names = [
      [dir, "<dir>"],
      [kernel, "<kernel>"],
    ];
  }

  /**
   * Starts `binary` with its API socket and event monitor in a directory of its own. With `inheritedSocket` the socket
   * is bound and listening before the VMM starts, which gets it as `--api-socket fd=3`, as libvirt launches CH.
   */
  static async start(binary: string, kernel: string, args: string[] = [], opts: { inheritedSocket?: boolean } = {}): Promise<VmmProbe> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mh-conf-"));
    const api = path.join(dir, "api.sock");
    const vmmArgs = ["--event-monitor", `path=${path.join(dir, "events")}`, ...args];
    const proc = opts.inheritedSocket
      ? execa("python3", ["-c", LAUNCHER, api, binary, ...vmmArgs], { reject: false, cwd: dir })
      : execa(binary, ["--api-socket", `path=${api}`, ...vmmArgs], { reject: false, cwd: dir });
    const probe = new VmmProbe(dir, api, proc, kernel);
    await probe.listening();
    return probe;
  }

  /** A connection accepted, not a file: the socket file appears at bind(), a moment before listen(). */
  private async listening(): Promise<void> {
    let exited = false;
    void this.proc.then(() => {
      exited = true;
    });
    for (;;) {
      if (exited) throw new Error(`the VMM exited before listening: ${(await this.proc).stderr}`);
      const ok = await new Promise<boolean>((resolve) => {
        const c = net.connect(this.api, () => {
          c.destroy();
          resolve(true);
        });
        c.on("error", () => resolve(false));
      });
      if (ok) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** A request as a client library sends it; `body` is JSON-encoded unless it is a string. */
  call(method: string, route: string, body?: unknown): Promise<Exchange> {
    const text = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
    return this.send(httpRequest(method, route, text), `${method} ${route}${text === undefined ? "" : ` ${this.named(text)}`}`);
  }

  /** `n` connections opened and kept idle, until `release`. */
  async hold(n: number): Promise<{ release(): Promise<void> }> {
    const conns = await Promise.all(
      Array.from(
        { length: n },
        () =>
          new Promise<net.Socket>((resolve, reject) => {
            const c = net.connect(this.api, () => resolve(c));
            c.on("error", reject);
          }),
      ),
    );
    return {
      /** Closes them, and returns once the VMM has seen them go: a new connection is served again. */
      release: async () => {
        for (const c of conns) c.destroy();
        while ((await exchange(this.api, httpRequest("GET", "vmm.ping"), true)).status !== 200) await new Promise((r) => setTimeout(r, 10));
      },
    };
  }

  /** A request after which the VMM exits: whether it then closes the connection races its exit, and is not asked. */
  callEnding(method: string, route: string, body: unknown): Promise<Exchange> {
    const text = JSON.stringify(body);
    return this.send(httpRequest(method, route, text), `${method} ${route} ${this.named(text)}`, true);
  }

  /** Bytes as written. */
  raw(request: string | Buffer, label: string): Promise<Exchange> {
    return this.send(request, label);
  }

  private async send(request: string | Buffer, label: string, last = false): Promise<Exchange> {
    const reply = await exchange(this.api, request, last);
    const named = { request: label, ...reply, body: this.namedValue(reply.body) };
    this.transcript.push(named);
    return named;
  }

  /**
   * `vmm.shutdown`, then the outcome. CH writes events from a thread of its own and exits without draining it, so the
   * last events before an exit may never be written; the stream compared is the one before the exit (`settled`).
   */
  async finish(): Promise<Outcome> {
    const events = await this.settled();
    await this.send(httpRequest("PUT", "vmm.shutdown"), "PUT vmm.shutdown", true);
    return this.outcome(events);
  }

  /**
   * The events written so far, once there are `expectEvents` of them (another VMM's count for the same requests): a
   * VMM that writes them from a thread may not have yet. Waiting is bounded only so that a VMM that never writes them
   * fails the comparison rather than hangs the test.
   */
  async settled(): Promise<VmmEvent[]> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const events = this.events();
      if (events.length >= (this.expectEvents ?? 0) || Date.now() > deadline) return events;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** The outcome once the VMM has exited: `events` as settled before the exit. */
  async outcome(events: VmmEvent[]): Promise<Outcome> {
    const result = await this.proc;
    const files = fs.readdirSync(this.dir).sort();
    return { transcript: this.transcript, events, exit: { code: result.exitCode, signal: result.signal }, files };
  }

  private events(): VmmEvent[] {
    const text = fs.existsSync(path.join(this.dir, "events")) ? fs.readFileSync(path.join(this.dir, "events"), "utf8") : "";
    // A chunk not yet followed by its blank line may be half written.
    const chunks = text.split("\n\n");
    return chunks.slice(0, -1).map((chunk) => {
      const { source, event, properties } = JSON.parse(chunk);
      return { source, event, properties };
    });
  }

  kill(): void {
    this.proc.kill("SIGKILL");
  }

  /** A file in the run's directory. */
  file(name: string): string {
    return path.join(this.dir, name);
  }

  get pid(): number {
    return this.proc.pid as number;
  }

  private named(text: string): string {
    let out = text;
    for (const [from, to] of this.names) out = out.split(from).join(to);
    return out.split(`"pid":${this.pid}`).join('"pid":"<pid>"');
  }

  private namedValue(value: unknown): unknown {
    if (value === undefined) return undefined;
    if (typeof value === "string") return this.named(value);
    return JSON.parse(this.named(JSON.stringify(value)));
  }
}
