export type { NetPort, VolAttachment } from "./domain/sibling-contract.js";
export { ErrorCode, RpcError } from "./errors.js";
export { VM_STATES, type VmState } from "./lifecycle/machine.js";
export { replaceFileDurably } from "./os/durable-file.js";
export { RpcAdapter } from "./rpc/adapter.js";
export type { MethodDef } from "./rpc/methods.js";
export { RpcSocketServer } from "./rpc/socket-server.js";
export { type RunningServer, runServer, type ServerOptions, VERSION } from "./server.js";
