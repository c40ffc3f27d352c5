/** JSON-RPC errors: the standard codes, the error thrown by handlers, and how an error is described. */

export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;
export const METHOD_NOT_FOUND = -32601;
export const INVALID_PARAMS = -32602;
export const INTERNAL_ERROR = -32603;

/** An error a handler throws to answer with `code`, `message` and `data`. Anything else becomes -32603. */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = "RpcError";
  }
}

/** Where in the params something is wrong (a JSON pointer, "/" for the params as a whole), and what. */
export interface ParamProblem {
  path: string;
  message: string;
}

/** -32602 in its one shape: `data` is `{errors: [{path, message}], ...extra}`. */
export function invalidParamsError(message: string, errors: ParamProblem[], extra: Record<string, unknown> = {}): RpcError {
  return new RpcError(INVALID_PARAMS, message, { errors, ...extra });
}

/** An error a method may answer with, as its catalog states it and rpc.discover describes it. */
export interface ErrorDef {
  code: number;
  /** A short name (VmNotFound). */
  name: string;
  /** What it means, for the OpenRPC document and the docs. */
  message: string;
  /** The shape of its `data`, in words (`{id, state}`), or undefined when it has none. */
  data?: string;
}
