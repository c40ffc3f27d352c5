/** Turns whatever stopped a start (or another call to CH) into the JSON-RPC error the caller gets, with CH's own words. */
import fs from "node:fs";
import { ChApiError, describeChError } from "../ch/client.js";
import { VmmLaunchError } from "../ch/vmm-process.js";
import type { VmmVersion } from "../ch/vmm-version.js";
import { ErrorCode, RpcError } from "../domain/errors.js";

/** The calls at which CH opens /dev/kvm: a missing /dev/kvm can explain only their failure, or a VMM that exited. */
const KVM_CALLS = new Set(["vm.create", "vm.boot"]);

export function startError(id: string, e: unknown): RpcError {
  if (e instanceof ChApiError) return chCallError(id, "start", e, !e.timedOut && KVM_CALLS.has(e.call) ? kvmHint() : "");
  if (e instanceof VmmLaunchError) return new RpcError(ErrorCode.VmmError, `start of VM '${id}' failed: ${e.message}${kvmHint()}`, { id });
  // Already classified (a record that could not be written, ...): it names what failed.
  if (e instanceof RpcError) return e;
  return new RpcError(ErrorCode.VmmError, `start of VM '${id}' failed: ${(e as Error).message}`, { id });
}

/** A CH call that failed, as -32004 (-32005 if it timed out) with CH's own words and the call's context. */
export function chCallError(id: string, action: string, e: ChApiError, hint = ""): RpcError {
  const code = e.timedOut ? ErrorCode.Timeout : ErrorCode.VmmError;
  const detail = e.body !== undefined ? describeChError(e.body) : e.message;
  return new RpcError(code, `${action} of VM '${id}' failed at ${e.call}: ${detail}${hint}`, {
    id,
    call: e.call,
    status: e.status ?? null,
    body: e.body ?? null,
  });
}

/** A start refused before anything changes: the VMM binary is known to be older than the daemon supports. */
export function unsupportedVmm(id: string, binary: string, v: VmmVersion): RpcError | undefined {
  if (v.supported !== false) return undefined;
  return new RpcError(
    ErrorCode.VmmError,
    `start of VM '${id}' refused: the VMM binary ${binary} is ${v.reported}; this daemon needs cloud-hypervisor v${v.minimum} or newer`,
    { id, vmm_version: v.version, minimum: v.minimum },
  );
}

function kvmHint(): string {
  return fs.existsSync("/dev/kvm") ? "" : " (note: /dev/kvm does not exist on this host)";
}
