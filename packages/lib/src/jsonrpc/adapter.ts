/**
 * The JSON-RPC 2.0 adapter: checks each message's envelope and params and
 * says exactly what is wrong, dispatches through json-rpc-2.0, and turns
 * thrown errors into JSON-RPC errors. It takes a line and gives back the
 * reply's text; it knows nothing about sockets.
 *
 * A numeric id is echoed exactly as it was sent, even past 2^53 where a
 * JavaScript number would change it: such a line is parsed again with
 * lossless-json, whose numbers keep their text (the rare path; JSON.parse
 * stays the fast one).
 */

import type { TSchema } from "@sinclair/typebox";
import { type TypeCheck, TypeCompiler } from "@sinclair/typebox/compiler";
import type { ValueError } from "@sinclair/typebox/errors";
import {
  createJSONRPCErrorResponse,
  JSONRPCErrorException,
  type JSONRPCErrorResponse,
  type JSONRPCID,
  type JSONRPCRequest,
  type JSONRPCResponse,
  JSONRPCServer,
} from "json-rpc-2.0";
import { isLosslessNumber, parse as losslessParse, stringify as losslessStringify } from "lossless-json";
import type { Logger } from "pino";
import type { PeerCredentials } from "../os/peer-credentials.js";
import type { MethodDef } from "./method.js";
import { type ApiInfo, openRpcDocument } from "./openrpc.js";
import { INTERNAL_ERROR, INVALID_REQUEST, invalidParamsError, METHOD_NOT_FOUND, PARSE_ERROR, RpcError } from "./rpc-error.js";

type Reply = JSONRPCResponse | JSONRPCResponse[] | null;
type Caller = PeerCredentials | undefined;
const noParams = (p: unknown): boolean => p === undefined || (Array.isArray(p) ? p.length === 0 : Object.keys(p as object).length === 0);
/** A batch's replies are built whole before they are sent: the batch size bounds that memory. */
export const MAX_BATCH = 256;
/** What a call to a method that does not exist is counted as, whatever name it gave. */
export const UNKNOWN_METHOD = "unknown";

export class RpcAdapter {
  // Errors are logged by toErrorResponse, not by the library's console listener.
  // A call's server params are its caller, as the socket's peer credentials say (absent on no socket).
  private readonly server = new JSONRPCServer<Caller>({ errorListener: () => undefined });

  constructor(
    methods: MethodDef[],
    version: string,
    private readonly log: Logger,
    /** What the OpenRPC document says of the API: this daemon's, or a sibling's. */
    info: ApiInfo,
    /** Told of every call answered: its method, its outcome (0, or the error code) and how long it took. */
    private readonly onCall?: (method: string, code: number, seconds: number) => void,
  ) {
    for (const m of methods) this.register(m);
    const discovery = openRpcDocument(methods, version, info);
    this.server.addMethod("rpc.discover", (params) => {
      if (!noParams(params)) throw invalidParamsError("Invalid params for rpc.discover: it takes no params", [{ path: "/", message: "takes no params" }]);
      return discovery;
    });
    this.server.handleMethodNotFound = async (req) =>
      req.id === undefined ? null : createJSONRPCErrorResponse(req.id, METHOD_NOT_FOUND, `Method not found: '${req.method}'`);
    this.server.mapErrorToJSONRPCErrorResponse = (id, error) => this.toErrorResponse(id, error);
  }

  /**
   * Handles one line: a request, a notification or a batch, from `caller` (named in audit lines).
   * Returns the reply's text, or null: nothing to send.
   */
  async handleLine(line: string, caller?: PeerCredentials): Promise<string | null> {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch (e) {
      return JSON.stringify(createJSONRPCErrorResponse(null, PARSE_ERROR, `Parse error: ${(e as Error).message}`));
    }
    const reply = await this.handle(message, caller);
    if (reply === null) return null;
    return inexactIds(message) ? withExactIds(line, reply) : JSON.stringify(reply);
  }

  private async handle(message: unknown, caller: Caller): Promise<Reply> {
    if (!Array.isArray(message)) return this.handleOne(message, caller);
    if (message.length === 0) return createJSONRPCErrorResponse(null, INVALID_REQUEST, "Invalid Request: empty batch");
    if (message.length > MAX_BATCH)
      return createJSONRPCErrorResponse(
        null,
        INVALID_REQUEST,
        `Invalid Request: a batch of ${message.length} requests; at most ${MAX_BATCH} are taken at once`,
      );
    const replies = (await Promise.all(message.map((m) => this.handleOne(m, caller)))).filter((r): r is JSONRPCResponse => r !== null);
    return replies.length > 0 ? replies : null;
  }

  private async handleOne(message: unknown, caller: Caller): Promise<JSONRPCResponse | null> {
    const problem = envelopeProblem(message);
    if (problem) {
      const id = (message as { id?: unknown } | null)?.id;
      return createJSONRPCErrorResponse(isId(id) ? id : null, INVALID_REQUEST, `Invalid Request: ${problem}`);
    }
    if (!this.onCall) return this.server.receive(message as JSONRPCRequest, caller);
    const started = process.hrtime.bigint();
    const { method } = message as JSONRPCRequest;
    const reply = await this.server.receive(message as JSONRPCRequest, caller);
    // A name the client made up is not a label: each would be a series of its own, and the scrape would grow without bound.
    this.onCall(this.server.hasMethod(method) ? method : UNKNOWN_METHOD, reply?.error?.code ?? 0, Number(process.hrtime.bigint() - started) / 1e9);
    return reply;
  }

  private register(m: MethodDef): void {
    const check = TypeCompiler.Compile(m.params);
    const audit = m.audit;
    if (!audit) {
      this.server.addMethod(m.name, (params) => m.handler(validParams(m.name, check, params ?? {})));
      return;
    }
    this.server.addMethod(m.name, async (params, caller) => {
      const valid = validParams(m.name, check, params ?? {});
      const line = { audit: m.name, caller_pid: caller?.pid, caller_uid: caller?.uid, ...audit(valid) };
      // Said before anything is done: a call the daemon's death cuts short is in the log all the same.
      this.log.info({ ...line, outcome: "received" }, "audit");
      try {
        const result = await m.handler(valid);
        this.log.info({ ...line, outcome: "done" }, "audit");
        return result;
      } catch (e) {
        const code = e instanceof RpcError || e instanceof JSONRPCErrorException ? e.code : INTERNAL_ERROR;
        this.log.info({ ...line, outcome: "refused", code }, "audit");
        throw e;
      }
    });
  }

  private toErrorResponse(id: JSONRPCID, error: unknown): JSONRPCErrorResponse {
    if (error instanceof RpcError || error instanceof JSONRPCErrorException) return createJSONRPCErrorResponse(id, error.code, error.message, error.data);
    this.log.error({ err: error }, "unexpected error in RPC method");
    return createJSONRPCErrorResponse(id, INTERNAL_ERROR, `Internal error: ${(error as Error)?.message ?? String(error)}`);
  }
}

function validParams<T>(method: string, check: TypeCheck<TSchema>, params: unknown): T {
  if (typeof params !== "object" || params === null || Array.isArray(params)) {
    throw invalidParamsError(`Invalid params for ${method}: params must be an object (by-name)`, [{ path: "/", message: "must be an object (by-name)" }]);
  }
  if (check.Check(params)) return params as T;
  const errors = [...check.Errors(params)].flatMap(explain).slice(0, 10);
  const first = errors[0];
  throw invalidParamsError(`Invalid params for ${method}: ${first?.path}: ${first?.message}`, errors);
}

/**
 * One error as the caller should read it. For a value that matches no variant of a union, the errors of
 * the variant clearly meant (strictly the fewest errors) say more than "matches none of them".
 */
function explain(e: ValueError): { path: string; message: string }[] {
  const variants = e.errors.map((it) => [...it]).filter((errs) => errs.length > 0);
  if (variants.length > 0) {
    const sizes = variants.map((errs) => errs.length).sort((x, y) => x - y);
    const closest = variants.find((errs) => errs.length === sizes[0]) ?? [];
    // Only when one variant is clearly meant: a tie means the union's own message says more.
    if (sizes[0] !== sizes[1]) return closest.flatMap(explain);
  }
  return [{ path: e.path || "/", message: (e.schema as { errorMessage?: string }).errorMessage ?? e.message }];
}

/** True if a numeric id in the message lost digits to JSON.parse (beyond 2^53, or not an integer). */
function inexactIds(message: unknown): boolean {
  const items = Array.isArray(message) ? message : [message];
  return items.some((m) => typeof m?.id === "number" && !Number.isSafeInteger(m.id));
}

/**
 * The reply's text with every numeric id as the request wrote it. Replies
 * come in the order of the requests that get one, so the requests' ids are
 * matched to them in order (a notification, having no id, gets no reply).
 */
function withExactIds(line: string, reply: JSONRPCResponse | JSONRPCResponse[]): string {
  const parsed = losslessParse(line) as unknown;
  const ids = (Array.isArray(parsed) ? parsed : [parsed]).map((m) => (m as { id?: unknown })?.id).filter((id) => id !== undefined);
  const replies = Array.isArray(reply) ? reply : [reply];
  const exact = replies.map((r, i) => (isLosslessNumber(ids[i]) && r.id !== null ? { ...r, id: ids[i] } : r));
  return losslessStringify(Array.isArray(reply) ? exact : exact[0]) as string;
}

const isId = (id: unknown): id is JSONRPCID => id === null || typeof id === "string" || typeof id === "number";

function envelopeProblem(m: unknown): string | undefined {
  if (typeof m !== "object" || m === null || Array.isArray(m)) return "a request must be a JSON object";
  const r = m as Record<string, unknown>;
  if (r.jsonrpc !== "2.0") return '"jsonrpc" must be "2.0"';
  if (typeof r.method !== "string") return '"method" must be a string';
  if ("id" in r && !isId(r.id)) return '"id" must be a string, a number or null';
  if ("params" in r && (typeof r.params !== "object" || r.params === null)) return '"params" must be an object or an array';
  return undefined;
}
