#!/usr/bin/env node
/**
 * my_hypervisor-netd: the reference network sibling for one host. A network
 * is a Linux bridge it manages (`mhb` + a hash of the network's name); a port
 * is a tap device on it (`mht` + a hash of owner and slot) with a
 * deterministic MAC. Asking again for the same owner and slot returns the same
 * port. Uses iproute2; needs CAP_NET_ADMIN.
 */
import { createHash } from "node:crypto";
import {
  invalidParamsError,
  type MethodDef,
  type NetPort,
  NetPortSchema,
  OwnerSchema,
  OwnerUidSchema,
  ownership,
  RpcError,
  SIBLING_ERRORS,
} from "@my_hypervisor/lib";

const E = SIBLING_ERRORS;

import { Type } from "@sinclair/typebox";
import { execa } from "execa";
import { delay, JsonState, listByOwner, parseSiblingArgs, serveSibling } from "./sibling-daemon.js";

const opts = parseSiblingArgs("my_hypervisor-netd", "the reference network sibling: taps on bridges, owned by each VM's VMM uid", []);
const state = await JsonState.open<{ ports: Record<string, NetPort> }>(`${opts.stateDir}/ports.json`, { ports: {} });

const hash = (s: string, n: number) => createHash("sha256").update(s).digest("hex").slice(0, n);
const bridgeOf = (network: string) => `mhb${hash(network, 10)}`;
const macOf = (owner: string, slot: string) => `02:${hash(`${owner}/${slot}`, 10).match(/../g)?.join(":")}`;

async function ip(...args: string[]): Promise<void> {
  const r = await execa("ip", args, { reject: false });
  if (r.exitCode !== 0) throw new RpcError(E.HostCommandFailed.code, `ip ${args.join(" ")} failed: ${r.stderr.trim()}`, { command: ["ip", ...args] });
}
const linkExists = async (name: string) => (await execa("ip", ["link", "show", "dev", name], { reject: false })).exitCode === 0;

async function ensureBridge(bridge: string): Promise<void> {
  if (await linkExists(bridge)) return;
  await ip("link", "add", "name", bridge, "type", "bridge");
  await ip("link", "set", bridge, "up");
}

const Owner = OwnerSchema;
const Slot = Type.String({ pattern: "^[a-z0-9]{1,16}$" });
const methods = [
  {
    name: "net.port.create",
    summary: "A tap device for (owner, slot) on the network's bridge; the same one if asked again",
    params: Type.Object(
      {
        owner: Owner,
        owner_uid: Type.Optional(OwnerUidSchema),
        slot: Slot,
        network: Type.String({ pattern: "^[a-z0-9][a-z0-9_.-]{0,62}$" }),
        mac: Type.Optional(Type.String({ pattern: "^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$" })),
      },
      { additionalProperties: false },
    ),
    result: Type.Object({}, { additionalProperties: true }),
    errors: [E.InvalidParams, E.HostCommandFailed],
    handler: (p: { owner: string; owner_uid?: number; slot: string; network: string; mac?: string }) =>
      state.mutate(async (data) => {
        const port = `${p.owner}/${p.slot}`;
        const existing = data.ports[port];
        if (existing) {
          if (existing.network !== p.network)
            throw invalidParamsError(`slot ${port} already has a port on network ${existing.network}`, [
              { path: "/network", message: `the slot's port is on ${existing.network}` },
            ]);
          return existing;
        }
        opts.log.info({ port, network: p.network }, "creating port");
        await delay(opts.latencyMs);
        const tap = `mht${hash(port, 12)}`;
        const bridge = bridgeOf(p.network);
        await ensureBridge(bridge);
        // Owned by the VMM's uid, a tap needs no CAP_NET_ADMIN to open; one left from before may have another owner.
        const user = p.owner_uid === undefined ? [] : ["user", String(p.owner_uid), "group", String(p.owner_uid)];
        if (user.length > 0 && (await linkExists(tap))) await ip("link", "del", "dev", tap);
        if (!(await linkExists(tap))) await ip("tuntap", "add", "dev", tap, "mode", "tap", ...user);
        await ip("link", "set", tap, "master", bridge);
        await ip("link", "set", tap, "up");
        const mac = p.mac ?? macOf(p.owner, p.slot);
        const created: NetPort = {
          port,
          ...ownership(p),
          network: p.network,
          tap,
          mac,
        };
        data.ports[port] = created;
        opts.log.info({ port, tap, bridge }, "port created");
        return created;
      }),
  },
  {
    name: "net.port.delete",
    summary: "Deletes a port and its tap device; deleting one that is gone succeeds",
    params: Type.Object({ port: Type.String() }, { additionalProperties: false }),
    result: Type.Object({ port: Type.String(), deleted: Type.Boolean() }),
    errors: [E.HostCommandFailed],
    handler: (p: { port: string }) =>
      state.mutate(async (data) => {
        const existing = data.ports[p.port];
        if (!existing) return { port: p.port, deleted: false };
        await delay(opts.latencyMs);
        if (await linkExists(existing.tap)) await ip("link", "del", "dev", existing.tap);
        delete data.ports[p.port];
        opts.log.info({ port: p.port, tap: existing.tap }, "port deleted");
        return { port: p.port, deleted: true };
      }),
  },
  listByOwner("net.port.list", "The ports of one owner, or all", NetPortSchema, () => Object.values(state.data.ports)),
] as unknown as MethodDef[];

await serveSibling("my_hypervisor-netd", "my_hypervisor network sibling", methods, opts);
