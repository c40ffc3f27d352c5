/**
 * Provisioning a VM's networks and volumes through the siblings, and giving
 * them back. Each reference gets a slot (`net0`, `disk1`, ...) so that asking
 * again for the same owner and slot returns the same resource. Releases are
 * by owner (list, then delete each), which also catches resources the
 * daemon never heard about because it died before recording them.
 */
import type { Logger } from "pino";
import { invalidParams } from "../domain/errors.js";
import { type Resources, references } from "../domain/resources.js";
import { type NetPort, resourceId, SIBLING_METHODS, type SiblingKind, type VolAttachment } from "../domain/sibling-contract.js";
import type { VmSpec } from "../domain/vm-spec.js";
import { failpoint } from "../failpoints.js";
import { SiblingClient } from "./sibling-client.js";

export interface SiblingSockets {
  net?: string;
  vol?: string;
}

const FLAG: Record<SiblingKind, string> = { net: "--net-socket", vol: "--vol-socket" };

export class Provisioner {
  private readonly clients: Partial<Record<SiblingKind, SiblingClient>> = {};

  constructor(sockets: SiblingSockets, log: Logger) {
    for (const kind of ["net", "vol"] as const) {
      const socket = sockets[kind];
      if (socket) this.clients[kind] = new SiblingClient(kind, socket, log.child({ component: `sibling-${kind}` }));
    }
  }

  /** -32602 naming the missing flag when the spec needs a sibling this daemon was not given. */
  checkConfigured(spec: VmSpec): void {
    for (const ref of references(spec)) {
      if (!this.clients[ref.kind])
        throw invalidParams(
          `${ref.slot} needs the ${ref.kind === "net" ? "network" : "volume"} sibling, but the daemon was started without ${FLAG[ref.kind]}`,
          { slot: ref.slot, flag: FLAG[ref.kind] },
        );
    }
  }

  /** Asks for each reference in order; `record` is called after each, so nothing obtained goes unrecorded. */
  async provision(owner: string, spec: VmSpec, resources: Resources, record: () => Promise<void>): Promise<void> {
    for (const ref of references(spec)) {
      const client = this.clients[ref.kind] as SiblingClient;
      const got = await client.call<NetPort | VolAttachment>(SIBLING_METHODS[ref.kind].create, { owner, slot: ref.slot, ...ref.params });
      failpoint("sibling.provisioned");
      if (ref.kind === "net") resources.nets[ref.slot] = got as NetPort;
      else resources.disks[ref.slot] = got as VolAttachment;
      await record();
    }
  }

  /** The sibling kinds a spec uses. */
  kindsOf(spec: VmSpec): SiblingKind[] {
    return [...new Set(references(spec).map((r) => r.kind))];
  }

  /** Releases everything `owner` holds at one sibling. Throws SiblingError if it cannot. */
  async releaseOwner(owner: string, kind: SiblingKind): Promise<number> {
    const client = this.clients[kind];
    if (!client) throw invalidParams(`cannot release ${owner}'s ${kind} resources: the daemon was started without ${FLAG[kind]}`);
    const held = await client.call<(NetPort | VolAttachment)[]>(SIBLING_METHODS[kind].list, { owner });
    for (const r of held) {
      const key = kind === "net" ? "port" : "attachment";
      await client.call(SIBLING_METHODS[kind].delete, { [key]: resourceId(kind, r) });
    }
    failpoint("sibling.released");
    return held.length;
  }
}
