/**
 * The sibling contract (docs/siblings.md): what the daemon asks the network
 * and volume daemons, and what they answer. Both the daemon and the
 * reference siblings use these types.
 */
import { type Static, Type } from "@sinclair/typebox";
import type { ErrorDef } from "../jsonrpc/rpc-error.js";
import { VM_ID_PATTERN } from "./vm-spec.js";

/** Whom a resource belongs to: a VM id. */
export const OwnerSchema = Type.String({ pattern: VM_ID_PATTERN, description: "The VM the resource belongs to" });
/** The uid (and gid) the owner's VMM runs under: the sibling makes what it hands over usable by it, and by no other. */
export const OwnerUidSchema = Type.Integer({ minimum: 1, maximum: 4294967294, description: "The uid and gid of the owner's VMM" });

/** Whose a resource is, as every resource says it: the owner, its VMM's uid if any, and the slot. */
const Owned = { owner: Type.String(), owner_uid: Type.Optional(Type.Integer()), slot: Type.String() };

/** The ownership fields of a create's params, as the resource made for them repeats them. */
export function ownership(p: { owner: string; owner_uid?: number; slot: string }): { owner: string; owner_uid?: number; slot: string } {
  return { owner: p.owner, ...(p.owner_uid !== undefined ? { owner_uid: p.owner_uid } : {}), slot: p.slot };
}

/** A port on a network: the tap made for it and the guest's MAC. */
export const NetPortSchema = Type.Object({
  port: Type.String(),
  ...Owned,
  network: Type.String(),
  tap: Type.String(),
  mac: Type.String(),
  netns: Type.Optional(
    Type.String({
      pattern: "^/",
      description:
        "The network namespace the tap is in, as a file to join (/run/netns/NAME): the owner's VMM runs in it. Absent: the host's, where the VMM then runs too",
    }),
  ),
});
export type NetPort = Static<typeof NetPortSchema>;

/** A volume attached to an owner's slot: the path CH opens. */
export const VolAttachmentSchema = Type.Object({
  attachment: Type.String(),
  ...Owned,
  volume: Type.String(),
  path: Type.String(),
  readonly: Type.Boolean(),
});
export type VolAttachment = Static<typeof VolAttachmentSchema>;

export const SiblingKindSchema = Type.Union([Type.Literal("net"), Type.Literal("vol")]);
export type SiblingKind = Static<typeof SiblingKindSchema>;

export const SIBLING_METHODS = {
  net: { create: "net.port.create", delete: "net.port.delete", list: "net.port.list" },
  vol: { create: "vol.attach", delete: "vol.detach", list: "vol.list" },
} as const;

/** How a resource is named when it is released. */
export const resourceId = (kind: SiblingKind, r: NetPort | VolAttachment): string => (kind === "net" ? (r as NetPort).port : (r as VolAttachment).attachment);

/** The errors a sibling answers with (docs/siblings.md); the daemon passes them on inside -32006. */
export const SIBLING_ERRORS = {
  InvalidParams: { code: -32602, name: "InvalidParams", message: "Invalid params; the message says which field and why", data: "{errors: [{path, message}]}" },
  NotFound: {
    code: -32010,
    name: "NotFound",
    message: "The thing asked for does not exist (a volume without size_mib or base, an unreadable base image)",
    data: "{volume} or {base}",
  },
  InUse: {
    code: -32011,
    name: "InUse",
    message: "In use (a volume attached read-write elsewhere, or asked read-write while attached elsewhere)",
    data: "{volume}",
  },
  HostCommandFailed: { code: -32012, name: "HostCommandFailed", message: "A host command (ip) failed; the message has its stderr", data: "{command}" },
} as const satisfies Record<string, ErrorDef>;
