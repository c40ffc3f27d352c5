export { ErrorCode, RpcError } from "./domain/errors.js";
export type { NetPort, VolAttachment } from "./domain/sibling-contract.js";
export { SIBLING_ERRORS } from "./domain/sibling-contract.js";
export { RpcAdapter } from "./jsonrpc/adapter.js";
export { type MethodDef, method } from "./jsonrpc/method.js";
export { RpcSocketServer } from "./jsonrpc/socket-server.js";
export { VM_STATES, type VmState } from "./lifecycle/machine.js";
export { replaceFileDurably } from "./os/durable-file.js";
export { type RunningServer, runServer, type ServerOptions, VERSION } from "./server.js";
