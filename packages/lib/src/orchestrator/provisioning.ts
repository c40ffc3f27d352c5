/**
 * The Provisioning state's work and its undoing: obtain a VM's networks and
 * volumes from the siblings (recording each as it comes), and give
 * everything back, queueing what cannot be given back now.
 */

import { ErrorCode, RpcError } from "../domain/errors.js";
import { emptyResources } from "../domain/resources.js";
import type { SiblingKind } from "../domain/sibling-contract.js";
import type { Provisioner } from "../siblings/provisioner.js";
import type { ReleaseQueue } from "../siblings/release-queue.js";
import { SiblingError } from "../siblings/sibling-client.js";
import type { VmEntry } from "./vm-entry.js";

/** The JSON-RPC error for a provisioning failure: -32006 naming the sibling and method. */
export function provisioningError(vm: VmEntry, e: unknown): RpcError {
  if (!(e instanceof SiblingError))
    return e instanceof RpcError ? e : new RpcError(ErrorCode.SiblingError, `provisioning VM '${vm.id}' failed: ${(e as Error).message}`, { id: vm.id });
  return new RpcError(ErrorCode.SiblingError, `provisioning VM '${vm.id}' failed: ${e.message}`, {
    id: vm.id,
    sibling: e.sibling,
    method: e.method,
    error: e.rpcError ?? null,
  });
}

/**
 * Gives back everything the VM holds at its siblings (by owner, so nothing
 * unrecorded is missed). A release that fails is queued for the reconcile
 * loop. Returns how many are left pending.
 */
export async function releaseVm(vm: VmEntry, kinds: SiblingKind[], provisioner: Provisioner, queue: ReleaseQueue): Promise<number> {
  let pending = 0;
  for (const kind of kinds) {
    try {
      await provisioner.releaseOwner(vm.id, kind);
    } catch (e) {
      pending += 1;
      await queue.add(vm.id, kind, (e as Error).message);
    }
  }
  vm.resources = emptyResources();
  return pending;
}
