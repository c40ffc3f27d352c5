/** The JSON-RPC 2.0 surface: framing, envelopes, batches, notifications, discovery. */
import fs from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import path from "node:path";
import { Ajv } from "ajv";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DAEMON_BIN, type Daemon, eventually, pidOf, RpcConnection, SIM_BIN, startDaemon, vmSpec } from "./harness.js";

// The meta-schema packages are CommonJS whose typings declare types only.
const require = createRequire(import.meta.url);
const { openrpcDocument } = require("@open-rpc/meta-schema") as { openrpcDocument: Record<string, unknown> };
const { jsonSchema: jsonSchemaMeta } = require("@json-schema-tools/meta-schema") as { jsonSchema: Record<string, unknown> };

let d: Daemon;
beforeAll(async () => {
  d = await startDaemon();
});
afterAll(async () => {
  await d.stop();
});

const req = (id: unknown, method: string, params?: unknown) => JSON.stringify({ jsonrpc: "2.0", id, method, params });

describe("framing and envelopes", () => {
  it("answers invalid JSON with -32700 saying why, and keeps the connection", async () => {
    const [reply] = await d.rpc.raw('{"jsonrpc": "2.0", "id": 1, \n');
    expect(reply).toMatchObject({ id: null, error: { code: -32700 } });
    expect(reply.error.message).toMatch(/Parse error: .+/);
    expect((await d.rpc.call("compute.vm.list", {})).vms).toEqual(expect.any(Array));
  });

  it("answers non-object requests with -32600 saying what was wrong", async () => {
    for (const line of [
      "5",
      '"hello"',
      "null",
      '{"jsonrpc":"1.0","id":3,"method":"compute.vm.list"}',
      '{"jsonrpc":"2.0","id":4}',
      '{"jsonrpc":"2.0","id":5,"method":"compute.vm.list","params":7}',
    ]) {
      const [reply] = await d.rpc.raw(`${line}\n`);
      expect(reply.error.code, line).toBe(line === "null" ? -32600 : -32600);
      expect(reply.error.message, line).toMatch(/^Invalid Request: ./);
    }
  });

  it("keeps the id of an invalid request when it has a usable one", async () => {
    const [reply] = await d.rpc.raw('{"jsonrpc":"2.0","id":"abc","method":42}\n');
    expect(reply).toMatchObject({ id: "abc", error: { code: -32600, message: 'Invalid Request: "method" must be a string' } });
  });

  it("answers an unknown method with -32601 naming it", async () => {
    const [reply] = await d.rpc.raw(`${req(9, "compute.vm.teleport", {})}\n`);
    expect(reply).toMatchObject({ id: 9, error: { code: -32601, message: "Method not found: 'compute.vm.teleport'" } });
  });

  it("answers bad params with -32602, the path of each problem in data", async () => {
    const err = await d.rpc.callError("compute.vm.create", { id: "x", vcpus: 0, memory_mib: "lots", boot: {} });
    expect(err.code).toBe(-32602);
    const paths = (err.data as { errors: { path: string }[] }).errors.map((e) => e.path);
    expect(paths).toEqual(expect.arrayContaining(["/vcpus", "/memory_mib", "/boot"]));
    expect((await d.rpc.callError("compute.vm.status", ["positional"])).message).toMatch(/by-name/);
    expect((await d.rpc.callError("compute.vm.status", {})).message).toMatch(/\/id/);
  });

  it("rejects a line over 1 MiB with -32600 and goes on serving the connection", async () => {
    const huge = `{"jsonrpc":"2.0","id":1,"method":"compute.vm.list","params":{"pad":"${"x".repeat(1024 * 1024 + 10)}"}}\n`;
    const [reply] = await d.rpc.raw(huge);
    expect(reply).toMatchObject({ id: null, error: { code: -32600 } });
    expect(reply.error.message).toMatch(/exceeds 1048576 bytes/);
    expect((await d.rpc.call("compute.vm.list", {})).vms).toEqual(expect.any(Array));
  });

  it("accepts a line just under 1 MiB, split across many writes", async () => {
    const conn = await RpcConnection.open(d.socket);
    const line = `${req(77, "compute.vm.list", {})}${" ".repeat(1024 * 1024 - 100)}\n`;
    for (let i = 0; i < line.length; i += 65536) conn.socket.write(line.slice(i, i + 65536));
    const [reply] = await conn.raw("", 1);
    expect(reply).toMatchObject({ id: 77, result: { vms: expect.any(Array) } });
    conn.close();
  });
});

describe("batches and notifications", () => {
  it("answers a batch with one array holding a reply per request, none for notifications", async () => {
    const batch = [
      { jsonrpc: "2.0", id: "a", method: "compute.vm.list", params: {} },
      { jsonrpc: "2.0", method: "compute.vm.list", params: {} },
      { jsonrpc: "2.0", id: "b", method: "compute.vm.status", params: { id: "ghost" } },
      42,
    ];
    const [reply] = await d.rpc.raw(`${JSON.stringify(batch)}\n`);
    expect(reply).toHaveLength(3);
    expect(reply[0]).toMatchObject({ id: "a", result: { vms: expect.any(Array) } });
    expect(reply[1]).toMatchObject({ id: "b", error: { code: -32001 } });
    expect(reply[2]).toMatchObject({ id: null, error: { code: -32600 } });
  });

  it("answers an empty batch with -32600", async () => {
    const [reply] = await d.rpc.raw("[]\n");
    expect(reply).toMatchObject({ error: { code: -32600, message: "Invalid Request: empty batch" } });
  });

  it("sends nothing for a notification, or a batch of them, but acts on it", async () => {
    const conn = await RpcConnection.open(d.socket);
    conn.socket.write(`${JSON.stringify({ jsonrpc: "2.0", method: "compute.vm.create", params: vmSpec(d, "notified") })}\n`);
    conn.socket.write(
      `${JSON.stringify([
        { jsonrpc: "2.0", method: "compute.vm.list" },
        { jsonrpc: "2.0", method: "nope" },
      ])}\n`,
    );
    const status = await eventually(async () => {
      const [reply] = await conn.raw(`${req("after", "compute.vm.status", { id: "notified" })}\n`);
      return reply.result?.state === "Configured" ? reply.result : undefined;
    });
    expect(status.state).toBe("Configured");
    expect(conn.unclaimed.every((r) => (r as { id?: unknown }).id === "after")).toBe(true);
    conn.close();
  });
});

describe("rpc.discover", () => {
  it("is a valid OpenRPC document listing exactly the working methods", async () => {
    const doc = await d.rpc.discover();
    const ajv = new Ajv({ strict: false, validateFormats: false });
    // Both meta-schemas name https://meta.json-schema.tools/ as their $schema; their content is draft-07.
    const withoutMeta = ({ $schema: _ignored, ...rest }: Record<string, unknown>) => rest;
    const jsonSchema = withoutMeta(jsonSchemaMeta);
    // It is referred to both with and without the trailing slash.
    ajv.addSchema(jsonSchema).addSchema({ ...jsonSchema, $id: "https://meta.json-schema.tools" });
    const validate = ajv.compile(withoutMeta(openrpcDocument));
    expect(validate(doc), JSON.stringify(validate.errors)).toBe(true);
    expect(validate({ ...doc, methods: [{ name: "broken" }] })).toBe(false);
    expect(doc.methods.map((m: { name: string }) => m.name).sort()).toEqual(
      [
        "compute.vm.create",
        "compute.vm.list",
        "compute.vm.remove",
        "compute.vm.start",
        "compute.vm.status",
        "compute.vm.stop",
        "compute.vm.console.endpoint",
        "compute.vm.logs",
        "compute.vm.events.tail",
        "compute.vm.exec",
        "compute.vm.stats",
        "compute.vm.pause",
        "compute.vm.resume",
        "compute.vm.reboot",
        "compute.vm.snapshot",
        "compute.vm.snapshots",
        "compute.vm.snapshot.delete",
        "compute.vm.restore",
        "compute.host.info",
        "rpc.discover",
      ].sort(),
    );
  });

  it("describes params with the schemas that validate them", async () => {
    const doc = await d.rpc.discover();
    const create = doc.methods.find((m: { name: string }) => m.name === "compute.vm.create");
    if (!create) throw new Error("rpc.discover has no compute.vm.create");
    const id = create.params.find((p: { name: string }) => p.name === "id");
    expect(id).toMatchObject({ required: true, schema: { type: "string", pattern: "^[a-z0-9][a-z0-9_-]{0,62}$" } });
    const ajv = new Ajv({ strict: false, validateFormats: false });
    const schema = { type: "object", properties: Object.fromEntries(create.params.map((p: { name: string; schema: unknown }) => [p.name, p.schema])) };
    expect(ajv.validate(schema, vmSpec(d, "ok"))).toBe(true);
    expect(ajv.validate(schema, { ...vmSpec(d, "ok"), vcpus: 0 })).toBe(false);
  });
});

describe("the socket and the process", () => {
  it("the socket is mode 0600", () => {
    expect(fs.statSync(d.socket).mode & 0o777).toBe(0o600);
  });

  it("a second daemon on a live socket fails without taking over", async () => {
    const dirs = ["--state-dir", path.join(d.dir, "state2"), "--console-dir", path.join(d.dir, "c2")];
    const other = await execa(DAEMON_BIN, ["--rpc-socket", d.socket, ...dirs, "--cloud-hypervisor", SIM_BIN], { reject: false });
    expect(other.exitCode).toBe(1);
    expect(other.stderr).toMatch(/already listening on/);
    expect((await d.rpc.call("compute.vm.list", {})).vms).toEqual(expect.any(Array));
  });

  it("a stale socket from a dead daemon is replaced", async () => {
    const first = await startDaemon();
    first.rpc.close();
    first.proc.kill("SIGKILL");
    await first.proc;
    expect(fs.existsSync(first.socket)).toBe(true);
    const second = await startDaemon({ dir: first.dir });
    expect((await second.rpc.call("compute.vm.list", {})).vms).toEqual([]);
    await second.stop();
  });

  it("SIGTERM lets an in-flight call answer, leaves running VMs running, and exits 0", async () => {
    const own = await startDaemon();
    await own.rpc.call("compute.vm.create", vmSpec(own, "survivor"));
    const pid = pidOf(await own.rpc.call("compute.vm.start", { id: "survivor" }));
    await own.rpc.call("compute.vm.create", vmSpec(own, "slow", "sim.guest=scripted sim.boot_ms=700"));
    const inFlight = own.rpc.call("compute.vm.start", { id: "slow" });
    // In flight once the daemon shows it Starting (on another connection): only then the signal.
    const watcher = await RpcConnection.open(own.socket);
    await eventually(async () => ((await watcher.call("compute.vm.status", { id: "slow" })).state === "Starting" ? true : undefined));
    watcher.close();
    own.proc.kill("SIGTERM");
    const slow = await inFlight;
    expect(slow.state).toBe("Running");
    const result = await own.proc;
    expect(result.exitCode).toBe(0);
    for (const p of [pid, pidOf(slow)]) {
      expect(() => process.kill(p, 0)).not.toThrow();
      process.kill(p, "SIGKILL");
    }
    await expect(new Promise((resolve, reject) => net.connect(own.socket).on("connect", resolve).on("error", reject))).rejects.toThrow();
    expect(fs.readFileSync(path.join(own.dir, "daemon.log"), "utf8")).toMatch(/running VMs are left running/);
  });
});

describe("half-closed connections", () => {
  it("answers a client that shuts down its sending side right after a slow request, as socat does", async () => {
    const conn = await RpcConnection.open(d.socket);
    const closed = new Promise<void>((resolve) => conn.socket.once("end", () => resolve()));
    conn.socket.end(`${req("half", "compute.vm.create", vmSpec(d, "halfclosed"))}\n`);
    await closed;
    expect(conn.unclaimed).toEqual([expect.objectContaining({ id: "half", result: expect.objectContaining({ state: "Configured" }) })]);
  });
});

describe("shutdown with idle clients", () => {
  it("SIGTERM exits even while a client keeps its connection half-open", async () => {
    const own = await startDaemon();
    const lingering = net.connect({ path: own.socket, allowHalfOpen: true });
    lingering.on("error", () => undefined); // the daemon resets it on its way out
    await new Promise((r) => lingering.once("connect", r));
    own.proc.kill("SIGTERM");
    expect((await own.proc).exitCode).toBe(0);
    lingering.destroy();
    own.rpc.close();
  });
});
