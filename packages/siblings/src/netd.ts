#!/usr/bin/env node
/**
 * my_hypervisor-netd: the reference network sibling for one host. A network
 * is a Linux bridge it manages (`mhb` + a hash of the network's name); a port
 * is a tap device on it (`mht` + a hash of owner and slot) with a
 * deterministic MAC. Asking again for the same owner and slot returns the same
 * port. Uses iproute2; needs CAP_NET_ADMIN.
 *
 * Each owner's taps are in a network namespace of the owner's own
 * (`/run/netns/mhn…`), where its VMM runs, so a VMM reaches no host port or
 * abstract socket name (ADR 0009). In there, each tap is on a bridge of its
 * own with one end of a veth pair; the other end is on the network's bridge
 * out here. The namespace goes with the owner's last port.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { bindMethods, invalidParamsError, NET_API, type NetPort, ownership, RpcError, SIBLING_ERRORS } from "@my_hypervisor/lib";
import { execa } from "execa";
import { delay, JsonState, listByOwner, parseSiblingArgs, serveSibling } from "./sibling-daemon.js";

const E = SIBLING_ERRORS;

const opts = parseSiblingArgs("my_hypervisor-netd", "the reference network sibling: taps on bridges, owned by each VM's VMM uid", []);
const state = await JsonState.open<{ ports: Record<string, NetPort> }>(`${opts.stateDir}/ports.json`, { ports: {} });

const hash = (s: string, n: number) => createHash("sha256").update(s).digest("hex").slice(0, n);
const bridgeOf = (network: string) => `mhb${hash(network, 10)}`;
const macOf = (owner: string, slot: string) => `02:${hash(`${owner}/${slot}`, 10).match(/../g)?.join(":")}`;

async function ip(...args: string[]): Promise<void> {
  const r = await execa("ip", args, { reject: false });
  if (r.exitCode !== 0) throw new RpcError(E.HostCommandFailed.code, `ip ${args.join(" ")} failed: ${r.stderr.trim()}`, { command: ["ip", ...args] });
}
const linkExists = async (name: string, ns: string[] = []) => (await execa("ip", [...ns, "link", "show", "dev", name], { reject: false })).exitCode === 0;

async function ensureBridge(bridge: string, ns: string[] = []): Promise<void> {
  if (await linkExists(bridge, ns)) return;
  await ip(...ns, "link", "add", "name", bridge, "type", "bridge");
  await ip(...ns, "link", "set", bridge, "up");
}

/** The owner's namespace: salted with this netd's state dir, so two netds on one host (tests) never share one. */
const netnsOf = (owner: string) => `mhn${hash(`${opts.stateDir}\0${owner}`, 12)}`;
const NETNS_DIR = "/run/netns";

async function ensureNetns(name: string): Promise<void> {
  if (fs.existsSync(path.join(NETNS_DIR, name))) return;
  await ip("netns", "add", name);
}

/**
 * The port's devices: in the owner's namespace `ns`, the tap (owned by `uid`, so CH opens it without CAP_NET_ADMIN)
 * and a veth end on a bridge of their own; out here, the veth's other end on the network's bridge. Made again whole
 * if any part is missing (one left from before may have another owner).
 */
async function plugPort(names: PortDevices, ns: string, bridge: string, uid: number | undefined): Promise<void> {
  const inNs = ["-n", ns];
  await unplugPort(names, ns);
  await ensureBridge(names.innerBridge, inNs);
  const user = uid === undefined ? [] : ["user", String(uid), "group", String(uid)];
  await ip(...inNs, "tuntap", "add", "dev", names.tap, "mode", "tap", ...user);
  await ip("link", "add", names.outer, "type", "veth", "peer", "name", names.inner, "netns", ns);
  await ip(...inNs, "link", "set", names.tap, "master", names.innerBridge);
  await ip(...inNs, "link", "set", names.inner, "master", names.innerBridge);
  await ip(...inNs, "link", "set", names.tap, "up");
  await ip(...inNs, "link", "set", names.inner, "up");
  await ip("link", "set", names.outer, "master", bridge);
  await ip("link", "set", names.outer, "up");
}

async function unplugPort(names: PortDevices, ns: string): Promise<void> {
  // The veth pair goes whole with either end; the rest is in the namespace, if it is still there.
  if (await linkExists(names.outer)) await ip("link", "del", "dev", names.outer);
  if (!fs.existsSync(path.join(NETNS_DIR, ns))) return;
  for (const dev of [names.tap, names.innerBridge]) if (await linkExists(dev, ["-n", ns])) await ip("-n", ns, "link", "del", "dev", dev);
}

interface PortDevices {
  tap: string;
  innerBridge: string;
  inner: string;
  outer: string;
}
const devicesOf = (port: string): PortDevices => {
  const h = hash(port, 12);
  return { tap: `mht${h}`, innerBridge: `mhi${h}`, inner: `mhp${h}`, outer: `mhv${h}` };
};

const methods = bindMethods(NET_API, {
  "net.port.create": (p) =>
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
      const devices = devicesOf(port);
      const bridge = bridgeOf(p.network);
      const ns = netnsOf(p.owner);
      await ensureBridge(bridge);
      await ensureNetns(ns);
      await plugPort(devices, ns, bridge, p.owner_uid);
      const mac = p.mac ?? macOf(p.owner, p.slot);
      const created: NetPort = {
        port,
        ...ownership(p),
        network: p.network,
        tap: devices.tap,
        mac,
        netns: path.join(NETNS_DIR, ns),
      };
      data.ports[port] = created;
      opts.log.info({ port, tap: devices.tap, bridge, netns: ns }, "port created");
      return created;
    }),
  "net.port.delete": (p) =>
    state.mutate(async (data) => {
      const existing = data.ports[p.port];
      if (!existing) return { port: p.port, deleted: false };
      await delay(opts.latencyMs);
      const ns = netnsOf(existing.owner);
      await unplugPort(devicesOf(p.port), ns);
      delete data.ports[p.port];
      // The namespace goes with the owner's last port (a VMM still in it keeps it alive until it exits).
      const lastOfOwner = !Object.values(data.ports).some((other) => other.owner === existing.owner);
      if (lastOfOwner && fs.existsSync(path.join(NETNS_DIR, ns))) await ip("netns", "del", ns);
      opts.log.info({ port: p.port, tap: existing.tap }, "port deleted");
      return { port: p.port, deleted: true };
    }),
  "net.port.list": listByOwner(() => Object.values(state.data.ports)),
});

await serveSibling("my_hypervisor-netd", "my_hypervisor network sibling", methods, opts);
