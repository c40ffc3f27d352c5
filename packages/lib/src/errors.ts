/**
 * The daemon's application errors. Every layer throws these (or lets the
 * RPC adapter wrap what it did not expect), so a caller always gets a
 * JSON-RPC error code and a message naming the VM and what went wrong.
 */
import { getSystemErrorMap } from "node:util";
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
  /** The daemon could not write or read one of its own files (full or read-only disk, a file removed by hand). */
  StorageError: -32013,
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

/**
 * A file operation under the daemon's own directories failed: which operation,
 * which path, and the system's reason (ENOSPC, EROFS, ENOENT, ...). Thrown by
 * the layers that touch the disk, so a caller is told what failed, not "internal error".
 */
export class StorageError extends RpcError {
  readonly errno: string;

  constructor(
    readonly op: string,
    readonly path: string,
    /** The system's error, or (for a path that is not the directory it should be) the reason in words. */
    cause: NodeJS.ErrnoException | string,
  ) {
    const errno = typeof cause === "string" ? "ENOTDIR" : (cause.code ?? "EIO");
    const why = typeof cause === "string" ? cause : `${systemMessage(cause)} (${errno})`;
    super(ErrorCode.StorageError, `cannot ${op} ${path}: ${why}`, { op, path, errno });
    this.name = "StorageError";
    this.errno = errno;
  }
}

/** Runs a file operation; a system error becomes a StorageError naming the operation and path. */
export async function onDisk<T>(op: string, path: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    throw asStorageError(op, path, e);
  }
}

export function asStorageError(op: string, path: string, e: unknown): Error {
  if (e instanceof StorageError) return e;
  const errno = e as NodeJS.ErrnoException;
  return typeof errno?.code === "string" && typeof errno.errno === "number" ? new StorageError(op, path, errno) : (e as Error);
}

const systemMessage = (e: NodeJS.ErrnoException): string => (e.errno !== undefined ? getSystemErrorMap().get(e.errno)?.[1] : undefined) ?? e.message;

export const invalidParams = (message: string, data?: unknown) => new RpcError(ErrorCode.InvalidParams, message, data);
export const vmNotFound = (id: string) => new RpcError(ErrorCode.VmNotFound, `VM '${id}' not found`, { id });
export const vmExists = (id: string) => new RpcError(ErrorCode.VmExists, `VM '${id}' already exists`, { id });
export const invalidState = (id: string, state: string, action: string, hint = "") =>
  new RpcError(ErrorCode.InvalidState, `cannot ${action} VM '${id}' while it is ${state}${hint ? `; ${hint}` : ""}`, { id, state });
