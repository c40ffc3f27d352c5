/**
 * The daemon's application errors. Every layer throws these (or lets the
 * RPC adapter wrap what it did not expect), so a caller always gets a
 * JSON-RPC error code and a message naming the VM and what went wrong.
 */
export const ErrorCode = {
  InvalidParams: -32602,
  VmNotFound: -32001,
  VmExists: -32002,
  InvalidState: -32003,
  VmmError: -32004,
  Timeout: -32005,
  /** A sibling daemon (network, volumes) refused or failed a provisioning call. */
  SiblingError: -32006,
  AgentUnreachable: -32007,
  /** The guest agent answered but could not run the command (e.g. not found). */
  ExecFailed: -32009,
} as const;

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

export const invalidParams = (message: string, data?: unknown) => new RpcError(ErrorCode.InvalidParams, message, data);
export const vmNotFound = (id: string) => new RpcError(ErrorCode.VmNotFound, `VM '${id}' not found`, { id });
export const vmExists = (id: string) => new RpcError(ErrorCode.VmExists, `VM '${id}' already exists`, { id });
export const invalidState = (id: string, state: string, action: string, hint = "") =>
  new RpcError(ErrorCode.InvalidState, `cannot ${action} VM '${id}' while it is ${state}${hint ? `; ${hint}` : ""}`, { id, state });
