/** Turns whatever stopped a start into the JSON-RPC error the caller gets, with CH's own words. */
import fs from "node:fs/promises";
import { ChApiError, describeChError } from "../ch/client.js";
import { VmmLaunchError } from "../ch/vmm-process.js";
import { ErrorCode, RpcError } from "../errors.js";

export async function startError(id: string, e: unknown): Promise<RpcError> {
  const kvm = await fs.access("/dev/kvm").then(
    () => true,
    () => false,
  );
  const kvmHint = kvm ? "" : " (note: /dev/kvm does not exist on this host)";
  if (e instanceof ChApiError) {
    const code = e.timedOut ? ErrorCode.Timeout : ErrorCode.VmmError;
    const data = { id, call: e.call, status: e.status ?? null, body: e.body ?? null };
    const detail = e.body !== undefined ? describeChError(e.body) : e.message;
    return new RpcError(code, `start of VM '${id}' failed at ${e.call}: ${detail}${kvmHint}`, data);
  }
  if (e instanceof VmmLaunchError) return new RpcError(ErrorCode.VmmError, `start of VM '${id}' failed: ${e.message}${kvmHint}`, { id });
  return new RpcError(ErrorCode.VmmError, `start of VM '${id}' failed: ${(e as Error).message}`, { id });
}
