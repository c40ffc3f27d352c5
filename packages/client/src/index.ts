/**
 * A typed client for the daemon's compute API, for the programs that call it (the OS server's proxy, the cluster
 * manager) and for this project's own tests and benchmarks. The types come from the OpenRPC document
 * `rpc.discover` serves (api.generated.ts, written at build time by scripts/gen-client.mjs), so a call names a
 * method that exists, with its params, and gets its result; a refusal says which of the method's errors it is.
 *
 *   const client = await ComputeClient.connect("/run/my_hypervisor/rpc.sock");
 *   const vm = await client.call("compute.vm.start", { id: "web1" });   // vm: VmStatus
 */
import { JsonRpcConnection, RpcCallError, RpcConnectionError } from "@my_hypervisor/lib/jsonrpc-client";
import { type ComputeApi, ERROR_CODES, type ExecOutput, type ExecStreamSocket, METHOD_ERRORS } from "./api.generated.js";

export * from "./api.generated.js";
export { RpcConnectionError };

export type MethodName = keyof ComputeApi;
export type Params<M extends MethodName> = ComputeApi[M]["params"];
export type Result<M extends MethodName> = ComputeApi[M]["result"];
/** The names of the errors method M may answer with (ERROR_CODES gives their codes). */
export type ErrorName<M extends MethodName> = ComputeApi[M]["errors"];

const NAMES = new Map<number, string>(Object.entries(ERROR_CODES).map(([name, code]) => [code, name]));

/** The daemon refused a call: its JSON-RPC error, and the name of the method's error it is (if one of them). */
export class ComputeError<M extends MethodName = MethodName> extends Error {
  constructor(
    readonly method: M,
    readonly code: number,
    message: string,
    readonly data: unknown,
    /** Undefined for a protocol error the method does not list (say, -32601 from an older daemon). */
    readonly errorName: ErrorName<M> | undefined,
  ) {
    super(message);
    this.name = "ComputeError";
  }

  /** Narrows to one of the method's errors: `if (e.is("VmNotFound")) ...`. */
  is(name: ErrorName<M>): boolean {
    return this.errorName === name;
  }
}

export class ComputeClient {
  private constructor(
    /** The connection underneath, for what the API does not type (raw lines, the socket). */
    readonly connection: JsonRpcConnection,
  ) {}

  /** Rejects with RpcConnectionError if nothing listens at `socketPath`. */
  static async connect(socketPath: string): Promise<ComputeClient> {
    return new ComputeClient(await JsonRpcConnection.open(socketPath));
  }

  /**
   * Calls `method` and resolves to its result. Rejects with ComputeError when the daemon refuses, and with
   * RpcConnectionError when no answer comes (the connection was lost, or `timeoutMs` passed).
   */
  async call<M extends MethodName>(method: M, params: Params<M>, timeoutMs?: number): Promise<Result<M>> {
    try {
      return await this.connection.call<Result<M>>(method, params, timeoutMs);
    } catch (e) {
      if (!(e instanceof RpcCallError)) throw e;
      const name = NAMES.get(e.code) as ErrorName<M> | undefined;
      throw new ComputeError(method, e.code, e.message, e.data, name !== undefined && METHOD_ERRORS[method].includes(name) ? name : undefined);
    }
  }

  /** compute.vm.exec run to its end: its output and exit status. */
  async exec(params: Omit<Params<"compute.vm.exec">, "stream">): Promise<ExecOutput> {
    return (await this.call("compute.vm.exec", { ...params, stream: false })) as ExecOutput;
  }

  /** compute.vm.exec with `stream`: the one-shot socket to run the command on (docs/exec-protocol.md). */
  async execStream(params: Omit<Params<"compute.vm.exec">, "stream" | "stdin" | "encoding">): Promise<ExecStreamSocket> {
    return (await this.call("compute.vm.exec", { ...params, stream: true })) as ExecStreamSocket;
  }

  /** The OpenRPC document this client's types were generated from, as the daemon serves it now. */
  async discover(): Promise<OpenRpcDocument> {
    return this.connection.call<OpenRpcDocument>("rpc.discover", {});
  }

  close(): void {
    this.connection.close();
  }
}

/** What of an OpenRPC document a client reads: the API's version and its methods. */
export interface OpenRpcDocument {
  openrpc: string;
  info: { title: string; version: string; description?: string };
  methods: {
    name: string;
    summary?: string;
    params: { name: string; required?: boolean; schema: unknown }[];
    result: { name: string; schema: unknown };
    errors?: unknown[];
  }[];
}
