/**
 * What both reference siblings share: flags, a JSON-RPC server on a Unix
 * socket (the daemon's own adapter and socket server), a state file written
 * atomically, one mutation at a time, and a clean exit on SIGTERM/SIGINT.
 */
import fs from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { type MethodDef, method, OwnerSchema, RpcAdapter, RpcSocketServer, replaceFileDurably } from "@my_hypervisor/lib";
import { type Static, type TObject, Type } from "@sinclair/typebox";
import { destination, type Logger, pino } from "pino";

export interface SiblingOptions {
  socket: string;
  stateDir: string;
  /** Added to every mutating call: lets tests and demos see a slow backend. */
  latencyMs: number;
  extra: Record<string, string | undefined>;
  log: Logger;
}

export function parseSiblingArgs(name: string, extraFlags: string[]): SiblingOptions {
  const usage = `Usage: ${name} --socket PATH --state-dir DIR ${extraFlags.map((f) => `--${f} VALUE`).join(" ")} [--latency-ms N] [--log-level LEVEL]`;
  let values: Record<string, string | undefined>;
  try {
    values = parseArgs({
      strict: true,
      options: Object.fromEntries(["socket", "state-dir", "latency-ms", "log-level", ...extraFlags].map((f) => [f, { type: "string" as const }])),
    }).values as Record<string, string | undefined>;
  } catch (e) {
    process.stderr.write(`${name}: ${(e as Error).message}\n${usage}\n`);
    process.exit(2);
  }
  for (const required of ["socket", "state-dir", ...extraFlags]) {
    if (!values[required]) {
      process.stderr.write(`${name}: --${required} is required\n${usage}\n`);
      process.exit(2);
    }
  }
  const extra = Object.fromEntries(extraFlags.map((f) => [f, values[f]]));
  return {
    socket: path.resolve(values.socket as string),
    stateDir: path.resolve(values["state-dir"] as string),
    latencyMs: Number(values["latency-ms"] ?? 0),
    extra,
    log: pino({ level: values["log-level"] ?? "info", base: { daemon: name } }, destination(2)),
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
  const server = new RpcSocketServer(new RpcAdapter(methods, "0.1.0", opts.log, title), opts.log);
  await server.listen(opts.socket);
  opts.log.info({ socket: opts.socket, stateDir: opts.stateDir }, `${name} listening`);
  const stop = async () => {
    await server.close();
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop());
  process.once("SIGINT", () => void stop());
}

/** `name`: the records of one owner, or all of them; the same method for every sibling. */
export function listByOwner<T extends TObject>(name: string, summary: string, item: T, all: () => Static<T>[]): MethodDef {
  return method({
    name,
    summary,
    params: Type.Object({ owner: Type.Optional(OwnerSchema) }, { additionalProperties: false }),
    result: Type.Array(item),
    errors: [],
    handler: (p) => all().filter((x) => p.owner === undefined || (x as { owner: string }).owner === p.owner),
  });
}

export const delay = (ms: number) => (ms > 0 ? new Promise<void>((r) => setTimeout(r, ms)) : Promise.resolve());
