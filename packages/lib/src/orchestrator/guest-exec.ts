/**
 * Running one command in a VM's guest: reach the exec agent through hybrid
 * vsock (retrying while it starts), run the command, and map what went wrong
 * onto the RPC's errors.
 */

import type net from "node:net";
import type { Logger } from "pino";
import { ErrorCode, RpcError } from "../domain/errors.js";
import { DEFAULT_EXEC_PORT, type ExecRequest } from "../domain/exec-protocol.js";
import { ExecAgentError, ExecConnectionLost, type ExecResult, runExec } from "../exec/exec-client.js";
import { serveExecStream } from "../exec/exec-stream.js";
import { AgentUnreachableError, connectGuestPort } from "../exec/hybrid-vsock.js";
import { type VmEntry, vsockOf } from "./vm-entry.js";

export const DEFAULT_EXEC_TIMEOUT_MS = 60_000;
/** How long an exec waits for the agent to start listening (a guest still booting). */
const AGENT_WAIT_MS = 30_000;

export async function execInGuest(vm: VmEntry, req: ExecRequest & { timeout_ms: number }, stdin: Buffer | undefined): Promise<ExecResult> {
  const conn = await connectAgent(vm, req.timeout_ms);
  try {
    return await runExec(conn, req, stdin);
  } catch (e) {
    if (!(e instanceof ExecAgentError)) throw e;
    const closed = e instanceof ExecConnectionLost;
    if (closed) vm.services.agent.markUnreachable();
    const code = closed ? ErrorCode.AgentUnreachable : ErrorCode.ExecFailed;
    throw new RpcError(code, `exec in VM '${vm.id}': ${e.message}`, { id: vm.id, argv: req.argv });
  }
}

/** The command runs once a client connects to the returned socket and speaks the exec protocol (exec/exec-stream.ts). */
export async function execStreamInGuest(vm: VmEntry, req: ExecRequest & { timeout_ms: number }, socketPath: string, log: Logger): Promise<{ path: string }> {
  await serveExecStream(socketPath, await connectAgent(vm, req.timeout_ms), req, log);
  return { path: socketPath };
}

/** The agent's port, retried while it starts; -32007 if it never answers. */
async function connectAgent(vm: VmEntry, timeoutMs: number): Promise<net.Socket> {
  try {
    const vsock = vsockOf(vm);
    if (!vsock) throw new AgentUnreachableError("no VMM runs");
    const conn = await connectGuestPort(vsock, DEFAULT_EXEC_PORT, Date.now() + Math.min(AGENT_WAIT_MS, timeoutMs));
    vm.services.agent.markReachable();
    return conn;
  } catch (e) {
    if (!(e instanceof AgentUnreachableError)) throw e;
    vm.services.agent.markUnreachable();
    throw new RpcError(ErrorCode.AgentUnreachable, `exec in VM '${vm.id}': the guest agent is unreachable: ${(e as Error).message}`, { id: vm.id });
  }
}
