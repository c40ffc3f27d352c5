/**
 * What both reference siblings share: flags, a JSON-RPC server on a Unix
 * socket (the daemon's own adapter and socket server), a state file written
 * atomically, one mutation at a time, and a clean exit on SIGTERM/SIGINT.
 */
import fs from "node:fs/promises";
import path from "node:path";
import {
  createLogger,
  defaultLogFormat,
  type FlagSpec,
  flagsOrExit,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  type MethodDef,
  type Program,
  RpcAdapter,
  RpcSocketServer,
  replaceFileDurably,
  usageExit,
  VERSION,
} from "@my_hypervisor/lib";
import type { Logger } from "pino";

export interface SiblingOptions {
  socket: string;
  stateDir: string;
  /** Added to every mutating call: lets tests and demos see a slow backend. */
  latencyMs: number;
  extra: Record<string, string | undefined>;
  log: Logger;
}

/**
 * The flags every sibling has, plus its own (`extra`, each required), from the command line or the environment
 * (`<PREFIX>_<FLAG>`, e.g. MY_HYPERVISOR_NETD_SOCKET); `--help` lists them all.
 */
export function parseSiblingArgs(name: string, summary: string, extra: FlagSpec[]): SiblingOptions {
  const program: Program = {
    name,
    version: VERSION,
    summary,
    envPrefix: name.toUpperCase().replaceAll("-", "_"),
    flags: [
      { name: "socket", value: "PATH", required: true, help: "The Unix socket its JSON-RPC API listens on (the daemon's --net-socket or --vol-socket)" },
      { name: "state-dir", value: "DIR", required: true, help: "Its state file (what it handed to whom)" },
      ...extra.map((f) => ({ ...f, required: true })),
      { name: "latency-ms", value: "N", default: "0", help: "Added to every mutating call: lets tests and demos see a slow backend" },
      { name: "log-level", value: "LEVEL", default: "info", help: `One of ${LOG_LEVELS.join(", ")}` },
      { name: "log-format", value: "FORMAT", help: "json or pretty (default: pretty on a terminal, else json)" },
    ],
  };
  const values = flagsOrExit(program);
  const str = (flag: string) => values[flag] as string | undefined;
  const level = str("log-level") as string;
  if (!LOG_LEVELS.includes(level)) usageExit(program, `--log-level must be one of ${LOG_LEVELS.join(", ")}`);
  const format = (str("log-format") ?? defaultLogFormat()) as LogFormat;
  if (!LOG_FORMATS.includes(format)) usageExit(program, `--log-format must be one of ${LOG_FORMATS.join(", ")}`);
  const latencyMs = Number(str("latency-ms"));
  if (!Number.isInteger(latencyMs) || latencyMs < 0) usageExit(program, "--latency-ms must be a whole number");
  return {
    socket: path.resolve(str("socket") as string),
    stateDir: path.resolve(str("state-dir") as string),
    latencyMs,
    extra: Object.fromEntries(extra.map((f) => [f.name, str(f.name)])),
    log: createLogger(name, level, format),
  };
}

/** A JSON state file, replaced atomically, with mutations run one at a time. */
export class JsonState<T> {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly file: string,
    public data: T,
  ) {}

  static async open<T>(file: string, initial: T): Promise<JsonState<T>> {
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const text = await fs.readFile(file, "utf8").catch(() => undefined);
    return new JsonState(file, text ? (JSON.parse(text) as T) : initial);
  }

  /** Runs `fn` after every earlier mutation, then saves. */
  mutate<R>(fn: (data: T) => Promise<R>): Promise<R> {
    const run = this.queue.then(async () => {
      const result = await fn(this.data);
      await replaceFileDurably(this.file, `${JSON.stringify(this.data, null, 2)}\n`);
      return result;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }
}

export async function serveSibling(name: string, title: string, methods: MethodDef[], opts: SiblingOptions): Promise<void> {
  const info = { title, description: `JSON-RPC 2.0, one message per line, on ${name}'s Unix socket. See docs/siblings.md.` };
  const server = new RpcSocketServer(new RpcAdapter(methods, VERSION, opts.log, info), opts.log);
  await server.listen(opts.socket);
  opts.log.info({ socket: opts.socket, stateDir: opts.stateDir }, `${name} listening`);
  const stop = async () => {
    await server.close();
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop());
  process.once("SIGINT", () => void stop());
}

/** The `*.list` handler every sibling has: the records of one owner, or all of them. */
export const listByOwner =
  <T extends { owner: string }>(all: () => T[]) =>
  (p: { owner?: string }): T[] =>
    all().filter((x) => p.owner === undefined || x.owner === p.owner);

export const delay = (ms: number) => (ms > 0 ? new Promise<void>((r) => setTimeout(r, ms)) : Promise.resolve());
