/**
 * Provisioning a VM's networks and volumes through the siblings, and giving
 * them back. Each reference gets a slot (`net0`, `disk1`, ...) so that asking
 * again for the same owner and slot returns the same resource. Releases are
 * by owner (list, then delete each), which also catches resources the
 * daemon never heard about because it died before recording them; a release
 * that fails is queued and retried by the reconcile loop, so a sibling
 * outage never blocks the daemon and never leaks a resource.
 */
import type { Logger } from "pino";
import { ErrorCode, invalidParams, RpcError } from "../domain/errors.js";
import type { PendingRelease } from "../domain/resources.js";
import { type Reference, type Resources, references } from "../domain/resources.js";
import { SIBLING_METHODS, type SiblingKind } from "../domain/sibling-contract.js";
import type { VmSpec } from "../domain/vm-spec.js";
import { failpoint } from "../failpoints.js";
import type { ReleaseQueue } from "./release-queue.js";
import { SiblingClient, SiblingError, type SiblingFailureObserver } from "./sibling-client.js";

export interface SiblingSockets {
  net?: string;
  vol?: string;
}

const FLAG: Record<SiblingKind, string> = { net: "--net-socket", vol: "--vol-socket" };

export class Provisioner {
  private readonly clients: Partial<Record<SiblingKind, SiblingClient>> = {};

  constructor(
    sockets: SiblingSockets,
    /** Releases that failed when they were due. */
    private readonly pending: ReleaseQueue,
    log: Logger,
    onSiblingFailure?: SiblingFailureObserver,
  ) {
    for (const kind of ["net", "vol"] as const) {
      const socket = sockets[kind];
      if (socket) this.clients[kind] = new SiblingClient(kind, socket, log.child({ component: `sibling-${kind}` }), onSiblingFailure);
    }
  }

  /** -32602 naming the missing flag when the spec needs a sibling this daemon was not given. */
  checkConfigured(spec: VmSpec): void {
    for (const ref of references(spec)) {
      if (!this.clients[ref.kind])
        throw invalidParams(
          ref.pointer,
          `${ref.slot} needs the ${ref.kind === "net" ? "network" : "volume"} sibling, but the daemon was started without ${FLAG[ref.kind]}`,
          { slot: ref.slot, flag: FLAG[ref.kind] },
        );
    }
  }

  /**
   * Asks for each reference in order; `record` is called after each, so nothing obtained goes unrecorded.
   * `ownerUid`: the uid the VM's VMMs run under, to whom the sibling hands the tap or volume.
   */
  async provision(owner: string, ownerUid: number | undefined, spec: VmSpec, resources: Resources, record: () => Promise<void>): Promise<void> {
    for (const ref of references(spec)) {
      const client = this.clients[ref.kind] as SiblingClient;
      const whose = { owner, ...(ownerUid !== undefined ? { owner_uid: ownerUid } : {}), slot: ref.slot };
      const keep = await create(client, ref, whose);
      failpoint("sibling.provisioned");
      keep(resources);
      await record();
    }
  }

  /** The sibling kinds a spec uses. */
  kindsOf(spec: VmSpec): SiblingKind[] {
    return [...new Set(references(spec).map((r) => r.kind))];
  }

  /**
   * Gives back everything `owner` holds at the siblings `spec` uses (by
   * owner, so nothing unrecorded is missed). A release that fails is queued.
   * Returns how many are left pending.
   */
  async release(owner: string, spec: VmSpec): Promise<number> {
    let left = 0;
    for (const kind of this.kindsOf(spec)) {
      try {
        await this.releaseOwner(owner, kind);
      } catch (e) {
        left += 1;
        await this.pending.add(owner, kind, (e as Error).message);
      }
    }
    return left;
  }

  /** Tries every queued release once more (the reconcile loop calls this). */
  retryPending(): Promise<void> {
    return this.pending.retry(this);
  }

  pendingFor(owner: string): PendingRelease[] {
    return this.pending.forOwner(owner);
  }

  /** Releases everything `owner` holds at one sibling. Throws SiblingError if it cannot. */
  async releaseOwner(owner: string, kind: SiblingKind): Promise<number> {
    const client = this.clients[kind];
    if (!client) throw invalidParams("/", `cannot release ${owner}'s ${kind} resources: the daemon was started without ${FLAG[kind]}`, { flag: FLAG[kind] });
    const released = kind === "net" ? await releasePorts(client, owner) : await releaseAttachments(client, owner);
    failpoint("sibling.released");
    return released;
  }
}

/** Asks the reference's sibling for it; what it got is kept in a VM's resources by the function returned. */
async function create(client: SiblingClient, ref: Reference, whose: { owner: string; owner_uid?: number; slot: string }): Promise<(r: Resources) => void> {
  if (ref.kind === "net") {
    const port = await client.call(SIBLING_METHODS.net.create, { ...whose, ...ref.params });
    return (r) => {
      r.nets[ref.slot] = port;
    };
  }
  const attachment = await client.call(SIBLING_METHODS.vol.create, { ...whose, ...ref.params });
  return (r) => {
    r.disks[ref.slot] = attachment;
  };
}

async function releasePorts(client: SiblingClient, owner: string): Promise<number> {
  const held = await client.call(SIBLING_METHODS.net.list, { owner });
  for (const p of held) await client.call(SIBLING_METHODS.net.delete, { port: p.port });
  return held.length;
}

async function releaseAttachments(client: SiblingClient, owner: string): Promise<number> {
  const held = await client.call(SIBLING_METHODS.vol.list, { owner });
  for (const a of held) await client.call(SIBLING_METHODS.vol.delete, { attachment: a.attachment });
  return held.length;
}

/** The JSON-RPC error for a failed provisioning of VM `id`: -32006 naming the sibling and method. */
export function provisioningFailure(id: string, e: unknown): RpcError {
  if (!(e instanceof SiblingError))
    return e instanceof RpcError ? e : new RpcError(ErrorCode.SiblingError, `provisioning VM '${id}' failed: ${(e as Error).message}`, { id });
  return new RpcError(ErrorCode.SiblingError, `provisioning VM '${id}' failed: ${e.message}`, {
    id,
    sibling: e.sibling,
    method: e.method,
    error: e.rpcError ?? null,
  });
}
