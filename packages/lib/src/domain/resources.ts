/**
 * What a VM holds from the siblings, by slot. A slot names the place of a
 * reference in the spec (`net0` is the first NIC, `disk1` the second disk):
 * asking a sibling again for the same owner and slot returns the same
 * resource, and the CH config looks resources up by the same names.
 */
import { type Static, Type } from "@sinclair/typebox";
import { NetPortSchema, type SiblingKind, SiblingKindSchema, type SiblingMethod, type SiblingParams, VolAttachmentSchema } from "./sibling-contract.js";
import type { VmSpec } from "./vm-spec.js";

export const ResourcesSchema = Type.Object(
  { nets: Type.Record(Type.String(), NetPortSchema), disks: Type.Record(Type.String(), VolAttachmentSchema) },
  { description: "What the siblings provided, by slot (net0, disk1, ...): taps, MACs, volume paths" },
);
export type Resources = Static<typeof ResourcesSchema>;

/** A release at a sibling that failed when it was due, retried by the reconcile loop. */
export const PendingReleaseSchema = Type.Object({
  owner: Type.String(),
  sibling: SiblingKindSchema,
  since: Type.String({ format: "date-time" }),
  attempts: Type.Integer(),
  last_error: Type.String(),
});
export type PendingRelease = Static<typeof PendingReleaseSchema>;

export const emptyResources = (): Resources => ({ nets: {}, disks: {} });

/** The slot of the spec's `index`-th NIC or disk. */
export const slotOf = (kind: SiblingKind, index: number): string => `${kind === "net" ? "net" : "disk"}${index}`;

/** A create's params besides whose it is (the owner, its VMM's uid, the slot): what the spec says of the resource. */
type WhatOf<M extends SiblingMethod> = Omit<SiblingParams<M>, "owner" | "owner_uid" | "slot">;

export type Reference = {
  slot: string;
  /** Where the reference is in the spec, as a JSON pointer (/nets/0). */
  pointer: string;
} & ({ kind: "net"; params: WhatOf<"net.port.create"> } | { kind: "vol"; params: WhatOf<"vol.attach"> });

/** The sibling-provided references of a spec, with their slots. */
export function references(spec: VmSpec): Reference[] {
  const refs: Reference[] = [];
  spec.nets?.forEach((n, i) => {
    if ("network" in n) refs.push({ kind: "net", slot: slotOf("net", i), pointer: `/nets/${i}`, params: { network: n.network, mac: n.mac } });
  });
  spec.disks?.forEach((d, i) => {
    if ("volume" in d)
      refs.push({
        kind: "vol",
        slot: slotOf("vol", i),
        pointer: `/disks/${i}`,
        params: { volume: d.volume, readonly: d.readonly ?? false, size_mib: d.size_mib, base: d.base },
      });
  });
  return refs;
}

/** Every sibling reference of the spec has its resource. */
export function isProvisioned(spec: VmSpec, resources: Resources): boolean {
  return references(spec).every((r) => (r.kind === "net" ? resources.nets : resources.disks)[r.slot] !== undefined);
}
