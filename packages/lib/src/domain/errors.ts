/**
 * The error catalog: every error the compute API answers with, each code
 * written once, with its name, what it means and the shape of its `data`.
 * Methods list the entries they may raise; rpc.discover and a test of
 * docs/rpc.md are driven by this table. The factories below build the
 * errors every layer throws, so a caller always gets a code and a message
 * naming the VM and what went wrong.
 */
import { getSystemErrorMap } from "node:util";
import { type ErrorDef, invalidParamsError, RpcError } from "../jsonrpc/rpc-error.js";

export { RpcError };

export const ERRORS = {
  InvalidParams: {
    code: -32602,
    name: "InvalidParams",
    message: "Invalid params: a schema violation, a path that does not exist, an id too long for the state directory; the message says which field and why",
    data: "{errors: [{path, message}]}: a JSON pointer into the params and what is wrong there; some add the values involved (e.g. {since, newest}, {slot, flag}, {file})",
  },
  VmNotFound: { code: -32001, name: "VmNotFound", message: "VM not found", data: "{id}" },
  VmExists: { code: -32002, name: "VmExists", message: "VM already exists", data: "{id}" },
  InvalidState: { code: -32003, name: "InvalidState", message: "Operation not allowed in the VM's current state; nothing was changed", data: "{id, state}" },
  VmmError: {
    code: -32004,
    name: "VmmError",
    message: "VMM error: CH refused a call, the VMM could not be started or died while starting, or the VMM binary is older than the daemon supports",
    data: "{id, call?, status?, body?}: the CH call, its HTTP status and CH's error chain; {id, vmm_version, minimum} for a binary too old",
  },
  Timeout: { code: -32005, name: "Timeout", message: "Timeout", data: "{id, call?, status?, body?}" },
  SiblingError: {
    code: -32006,
    name: "SiblingError",
    message: "A sibling daemon (network, volumes) refused or failed a provisioning call; the VM is Failed and what was obtained was released",
    data: "{id, sibling, method, error}",
  },
  AgentUnreachable: { code: -32007, name: "AgentUnreachable", message: "The guest's exec agent cannot be reached; the message says why", data: "{id}" },
  EventsLost: {
    code: -32008,
    name: "EventsLost",
    message: "Events after `since` have fallen out of the ring; resynchronise from status or list",
    data: "{since, oldest}",
  },
  ExecFailed: {
    code: -32009,
    name: "ExecFailed",
    message: "The guest agent answered but could not start the command (not found, bad cwd, ...)",
    data: "{id, argv}",
  },
  NoVmmUid: {
    code: -32014,
    name: "NoVmmUid",
    message: "Every uid of --vmm-uid-range is held by a VM: remove one, or give the daemon a wider range; nothing was changed",
    data: "{id, uid_range}",
  },
  LimitsNotEnforceable: {
    code: -32015,
    name: "LimitsNotEnforceable",
    message:
      "This host cannot hold the VM to its CPU, memory and pid limits (no cgroup v2, or a controller missing); compute.host.info says why. Nothing was changed. --allow-unenforced-limits starts VMs anyway",
    data: "{id, missing}",
  },
  SnapshotNotFound: {
    code: -32016,
    name: "SnapshotNotFound",
    message: "The VM has no snapshot of that name (compute.vm.snapshots lists them)",
    data: "{id, name}",
  },
  StorageError: {
    code: -32013,
    name: "StorageError",
    message: "The daemon could not write or read one of its own files (full or read-only disk, a file removed by hand); nothing refused took effect",
    data: "{op, path, errno}",
  },
} as const satisfies Record<string, ErrorDef>;

type Catalog = typeof ERRORS;

/** Each entry's code, by name. */
export const ErrorCode = Object.fromEntries(Object.entries(ERRORS).map(([name, e]) => [name, e.code])) as { [K in keyof Catalog]: Catalog[K]["code"] };

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

/** -32602 for one problem at `path` (a JSON pointer into the params), with the values involved in `extra`. */
export const invalidParams = (path: string, message: string, extra: Record<string, unknown> = {}) => invalidParamsError(message, [{ path, message }], extra);
export const vmNotFound = (id: string) => new RpcError(ErrorCode.VmNotFound, `VM '${id}' not found`, { id });
export const snapshotNotFound = (id: string, name: string) => new RpcError(ErrorCode.SnapshotNotFound, `VM '${id}' has no snapshot '${name}'`, { id, name });
export const vmExists = (id: string) => new RpcError(ErrorCode.VmExists, `VM '${id}' already exists`, { id });
export const invalidState = (id: string, state: string, action: string, hint = "") =>
  new RpcError(ErrorCode.InvalidState, `cannot ${action} VM '${id}' while it is ${state}${hint ? `; ${hint}` : ""}`, { id, state });
