export { ErrorCode } from "./errors.js";
export { VM_STATES, type VmState } from "./lifecycle/machine.js";
export { type RunningServer, runServer, type ServerOptions, VERSION } from "./server.js";
