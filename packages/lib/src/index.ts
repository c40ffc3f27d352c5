export { runServer, VERSION, type ServerOptions, type RunningServer } from "./server.js";
export { ErrorCode } from "./errors.js";
export { VM_STATES, type VmState } from "./lifecycle/machine.js";
