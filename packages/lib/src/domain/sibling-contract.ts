/**
 * The sibling contract (docs/siblings.md): what the daemon asks the network
 * and volume daemons, and what they answer. Both the daemon and the
 * reference siblings use these types.
 */
export interface NetPort {
  port: string;
  owner: string;
  slot: string;
  network: string;
  tap: string;
  mac: string;
}

export interface VolAttachment {
  attachment: string;
  owner: string;
  slot: string;
  volume: string;
  path: string;
  readonly: boolean;
}

export type SiblingKind = "net" | "vol";

export const SIBLING_METHODS = {
  net: { create: "net.port.create", delete: "net.port.delete", list: "net.port.list" },
  vol: { create: "vol.attach", delete: "vol.detach", list: "vol.list" },
} as const;

/** How a resource is named when it is released. */
export const resourceId = (kind: SiblingKind, r: NetPort | VolAttachment): string => (kind === "net" ? (r as NetPort).port : (r as VolAttachment).attachment);
