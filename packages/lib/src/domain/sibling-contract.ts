/**
 * The sibling contract (docs/siblings.md): what the daemon asks the network
 * and volume daemons, and what they answer, as one table of method contracts
 * (as COMPUTE_API is for the compute API). The reference siblings bind their
 * handlers to it, the daemon's client calls by it: both typed from it.
 */
import { type Static, Type } from "@sinclair/typebox";
import { contract } from "../jsonrpc/method.js";
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

const E = SIBLING_ERRORS;
const strict = { additionalProperties: false } as const;
const Slot = Type.String({ pattern: "^[a-z0-9]{1,16}$" });
const Name = Type.String({ pattern: "^[a-z0-9][a-z0-9_.-]{0,62}$" });
/** Whose a create is for: the owner, its VMM's uid, the slot. */
const Owner = { owner: OwnerSchema, owner_uid: Type.Optional(OwnerUidSchema), slot: Slot };
const ByOwner = Type.Object({ owner: Type.Optional(OwnerSchema) }, strict);

/** The network sibling's methods. */
export const NET_API = {
  "net.port.create": contract({
    summary: "A tap device for (owner, slot) on the network's bridge; the same one if asked again",
    params: Type.Object({ ...Owner, network: Name, mac: Type.Optional(Type.String({ pattern: "^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$" })) }, strict),
    result: NetPortSchema,
    errors: [E.InvalidParams, E.HostCommandFailed],
  }),
  "net.port.delete": contract({
    summary: "Deletes a port and its tap device; deleting one that is gone succeeds",
    params: Type.Object({ port: Type.String() }, strict),
    result: Type.Object({ port: Type.String(), deleted: Type.Boolean() }),
    errors: [E.HostCommandFailed],
  }),
  "net.port.list": contract({ summary: "The ports of one owner, or all", params: ByOwner, result: Type.Array(NetPortSchema), errors: [] }),
};

/** The volume sibling's methods. */
export const VOL_API = {
  "vol.attach": contract({
    summary: "Attaches a volume to (owner, slot), creating it if asked; the same attachment if asked again",
    params: Type.Object(
      {
        ...Owner,
        volume: Name,
        readonly: Type.Boolean(),
        size_mib: Type.Optional(Type.Integer({ minimum: 1 })),
        base: Type.Optional(Type.String({ pattern: "^/" })),
      },
      strict,
    ),
    result: VolAttachmentSchema,
    errors: [E.InvalidParams, E.NotFound, E.InUse],
  }),
  "vol.detach": contract({
    summary: "Ends an attachment; the volume's file stays. Detaching one that is gone succeeds",
    params: Type.Object({ attachment: Type.String() }, strict),
    result: Type.Object({ attachment: Type.String(), detached: Type.Boolean() }),
    errors: [],
  }),
  "vol.list": contract({ summary: "The attachments of one owner, or all", params: ByOwner, result: Type.Array(VolAttachmentSchema), errors: [] }),
};

export const SIBLING_API = { ...NET_API, ...VOL_API };
export type SiblingApi = typeof SIBLING_API;
export type SiblingMethod = keyof SiblingApi;
export type SiblingParams<M extends SiblingMethod> = Static<SiblingApi[M]["params"]>;
export type SiblingResult<M extends SiblingMethod> = Static<SiblingApi[M]["result"]>;

/** What the daemon asks of each kind of sibling. */
export const SIBLING_METHODS = {
  net: { create: "net.port.create", delete: "net.port.delete", list: "net.port.list" },
  vol: { create: "vol.attach", delete: "vol.detach", list: "vol.list" },
} as const satisfies Record<SiblingKind, Record<"create" | "delete" | "list", SiblingMethod>>;
