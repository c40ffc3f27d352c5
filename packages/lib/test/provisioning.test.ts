/**
 * Provisioning and its undoing, against a volume sibling built from the
 * JSON-RPC toolkit on a real socket: what was obtained before a refusal is
 * given back by owner (recorded or not), and a release that fails while the
 * sibling is down is queued and done by a retry once it is back.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Type } from "@sinclair/typebox";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { emptyResources } from "../src/domain/resources.js";
import { SIBLING_ERRORS, type VolAttachment } from "../src/domain/sibling-contract.js";
import type { VmSpec } from "../src/domain/vm-spec.js";
import { RpcAdapter } from "../src/jsonrpc/adapter.js";
import { method } from "../src/jsonrpc/method.js";
import { RpcError } from "../src/jsonrpc/rpc-error.js";
import { RpcSocketServer } from "../src/jsonrpc/socket-server.js";
import { Provisioner, provisioningFailure } from "../src/provisioning/provisioner.js";
import { ReleaseQueue } from "../src/provisioning/release-queue.js";

const log = pino({ level: "silent" });
const servers: RpcSocketServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

/** A volume sibling that knows the volumes in `known` and keeps attachments in memory. */
async function fakeVold(socket: string, known: string[], attachments = new Map<string, VolAttachment>()): Promise<Map<string, VolAttachment>> {
  const any = Type.Any();
  const methods = [
    method({
      name: "vol.attach",
      summary: "",
      params: Type.Object({ owner: Type.String(), slot: Type.String(), volume: Type.String(), readonly: Type.Boolean() }, { additionalProperties: true }),
      result: any,
      errors: [SIBLING_ERRORS.NotFound],
      handler: (p) => {
        if (!known.includes(p.volume)) throw new RpcError(SIBLING_ERRORS.NotFound.code, `volume ${p.volume} does not exist`, { volume: p.volume });
        const a = { attachment: `${p.owner}/${p.slot}`, owner: p.owner, slot: p.slot, volume: p.volume, path: `/v/${p.volume}`, readonly: p.readonly };
        attachments.set(a.attachment, a);
        return a;
      },
    }),
    method({
      name: "vol.list",
      summary: "",
      params: Type.Object({ owner: Type.String() }),
      result: any,
      errors: [],
      handler: (p) => [...attachments.values()].filter((a) => a.owner === p.owner),
    }),
    method({
      name: "vol.detach",
      summary: "",
      params: Type.Object({ attachment: Type.String() }),
      result: any,
      errors: [],
      handler: (p) => ({ detached: attachments.delete(p.attachment) }),
    }),
  ];
  const server = new RpcSocketServer(new RpcAdapter(methods, "test", log, { title: "a test sibling", description: "a test sibling" }), log);
  await server.listen(socket);
  servers.push(server);
  return attachments;
}

const dir = () => fs.mkdtempSync(path.join(os.tmpdir(), "mh-prov-"));
const spec = (volumes: string[]): VmSpec => ({ id: "vm1", vcpus: 1, memory_mib: 64, boot: { kernel: "/k" }, disks: volumes.map((volume) => ({ volume })) });

describe("provisioning through a sibling", () => {
  it("a refusal midway: what was obtained is given back by owner, and the failure names the sibling and method", async () => {
    const d = dir();
    const socket = path.join(d, "vold.sock");
    const held = await fakeVold(socket, ["a"]);
    const provisioner = new Provisioner({ vol: socket }, await ReleaseQueue.open(path.join(d, "pending.json"), log), log);
    const resources = emptyResources();
    let recorded = 0;
    const failure = await provisioner
      .provision("vm1", undefined, spec(["a", "missing"]), resources, async () => {
        recorded += 1;
      })
      .catch((e) => e);
    expect(recorded).toBe(1);
    expect(Object.keys(resources.disks)).toEqual(["disk0"]);
    expect(provisioningFailure("vm1", failure)).toMatchObject({
      code: -32006,
      data: { id: "vm1", sibling: "vol", method: "vol.attach", error: { code: SIBLING_ERRORS.NotFound.code } },
    });
    expect(await provisioner.release("vm1", spec(["a", "missing"]))).toBe(0);
    expect([...held.values()]).toEqual([]);
  });

  it("a release while the sibling is down is queued, shown for its owner, and done by a retry once the sibling is back", async () => {
    const d = dir();
    const socket = path.join(d, "vold.sock");
    const held = await fakeVold(socket, ["a"]);
    const provisioner = new Provisioner({ vol: socket }, await ReleaseQueue.open(path.join(d, "pending.json"), log), log);
    await provisioner.provision("vm1", undefined, spec(["a"]), emptyResources(), async () => undefined);
    await (servers.pop() as RpcSocketServer).close();
    expect(await provisioner.release("vm1", spec(["a"]))).toBe(1);
    expect(provisioner.pendingFor("vm1")).toEqual([expect.objectContaining({ owner: "vm1", sibling: "vol", attempts: 1 })]);
    expect(JSON.parse(fs.readFileSync(path.join(d, "pending.json"), "utf8"))).toHaveLength(1);
    await fakeVold(socket, ["a"], held);
    await provisioner.retryPending();
    expect(provisioner.pendingFor("vm1")).toEqual([]);
    expect([...held.values()]).toEqual([]);
  });
});
