/** cloud-hypervisor-sim reproduces what the real VMM does (ADR 0003 says what and where it approximates). */
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa, type ResultPromise } from "execa";
import { afterEach, describe, expect, it } from "vitest";

const SIM = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../dist/main.js");

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** One HTTP exchange on an open socket, framed by Content-Length as micro-http does. */
function exchange(socket: net.Socket, request: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    let data = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      const end = data.indexOf("\r\n\r\n");
      if (end < 0) return;
      const [statusLine, ...lines] = data.subarray(0, end).toString().split("\r\n");
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
      const length = Number(headers["content-length"] ?? 0);
      if (data.length < end + 4 + length) return;
      socket.off("data", onData);
      resolve({ status: Number(statusLine?.split(" ")[1]), headers, body: data.subarray(end + 4, end + 4 + length).toString() });
    };
    socket.on("data", onData);
    socket.once("error", reject);
    if (request) socket.write(request);
  });
}

const connect = (p: string) =>
  new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(p);
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });

/**
 * The socket file appears at bind(), a moment before listen(): a connect in
 * between is refused. So the condition waited for is a connection, not a file.
 */
async function connectOnceListening(api: string, proc: ResultPromise): Promise<net.Socket> {
  let exited = false;
  void proc.then(() => {
    exited = true;
  });
  for (;;) {
    if (exited) throw new Error(`the test VMM exited before listening: ${(await proc).stderr}`);
    const conn = await connect(api).catch(() => undefined);
    if (conn) return conn;
    await new Promise((r) => setTimeout(r, 10));
  }
}

function http(method: string, route: string, body?: string, extraHeaders = ""): string {
  const len = body === undefined ? "" : `Content-Length: ${Buffer.byteLength(body)}\r\n`;
  return `${method} /api/v1/${route} HTTP/1.1\r\nHost: localhost\r\n${len}${extraHeaders}\r\n${body ?? ""}`;
}

interface Sim {
  dir: string;
  api: string;
  events: string;
  proc: ResultPromise;
  kernel: string;
  call(method: string, route: string, body?: unknown): Promise<RawResponse>;
}

const running: ResultPromise[] = [];
afterEach(() => {
  for (const p of running.splice(0)) p.kill("SIGKILL");
});

async function startSim(extra: string[] = []): Promise<Sim> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chsim-"));
  const api = path.join(dir, "api.sock");
  const events = path.join(dir, "events");
  const kernel = path.join(dir, "vmlinux");
  fs.writeFileSync(kernel, "k");
  const proc = execa("node", [SIM, "--api-socket", `path=${api}`, "--event-monitor", `path=${events}`, "--log-file", path.join(dir, "log"), "-v", ...extra], {
    reject: false,
  });
  running.push(proc);
  const conn = await connectOnceListening(api, proc);
  const call = (method: string, route: string, body?: unknown) => exchange(conn, http(method, route, body === undefined ? undefined : JSON.stringify(body)));
  return { dir, api, events, proc, kernel, call };
}

const config = (sim: Sim, cmdline = "") => ({ payload: { kernel: sim.kernel, cmdline }, cpus: { boot_vcpus: 1, max_vcpus: 1 }, memory: { size: 64 << 20 } });

function readEvents(file: string): { source: string; event: string; timestamp: { secs: number; nanos: number }; properties: unknown }[] {
  return fs
    .readFileSync(file, "utf8")
    .split("\n\n")
    .filter((chunk) => chunk.trim() !== "")
    .map((chunk) => JSON.parse(chunk));
}

describe("command line", () => {
  it("rejects unknown flags with exit 2, like clap", async () => {
    const r = await execa("node", [SIM, "--api-socket", "path=/tmp/x.sock", "--frobnicate"], { reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/frobnicate/);
  });

  it("rejects a bare --event-monitor value", async () => {
    const r = await execa("node", [SIM, "--api-socket", "path=/tmp/y.sock", "--event-monitor", "/tmp/ev"], { reject: false });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("0: Error parsing --event-monitor\n  1: unknown option: /tmp/ev");
  });

  it("prints its version with -V", async () => {
    expect((await execa("node", [SIM, "-V"])).stdout).toMatch(/^cloud-hypervisor v53\.0/);
  });

  it("serves an already-listening socket passed with fd=", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chsim-"));
    const sockPath = path.join(dir, "api.sock");
    // The way libvirt launches CH: bind and listen first, then exec with the fd inherited.
    const launcher = [
      "import os, socket, sys",
      "s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8); os.set_inheritable(s.fileno(), True)",
      "os.execvp('node', ['node', sys.argv[2], '--api-socket', 'fd=%d' % s.fileno()])",
    ].join("\n");
    const proc = execa("python3", ["-c", launcher, sockPath, SIM], { reject: false });
    running.push(proc);
    const res = await exchange(await connectOnceListening(sockPath, proc), http("GET", "vmm.ping"));
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).pid).toBe(proc.pid);
  });

  it("refuses an API socket another VMM is serving, and replaces a stale one", async () => {
    const sim = await startSim();
    const second = await execa("node", [SIM, "--api-socket", `path=${sim.api}`], { reject: false });
    expect(second.exitCode).toBe(1);
    expect(second.stderr).toMatch(/is already in use by another running instance/);
    sim.proc.kill("SIGKILL");
    await sim.proc;
    expect(fs.existsSync(sim.api)).toBe(true);
    const third = execa("node", [SIM, "--api-socket", `path=${sim.api}`], { reject: false });
    running.push(third);
    expect((await exchange(await connectOnceListening(sim.api, third), http("GET", "vmm.ping"))).status).toBe(200);
  });
});

describe("HTTP framing as micro-http does it", () => {
  it("answers with CH's headers, 204 without Content-Type or Content-Length", async () => {
    const sim = await startSim();
    const ping = await sim.call("GET", "vmm.ping");
    expect(ping.headers).toMatchObject({ server: "Cloud Hypervisor API", connection: "keep-alive", "content-type": "application/json" });
    expect(JSON.parse(ping.body)).toMatchObject({ version: expect.any(String), pid: sim.proc.pid });
    const created = await sim.call("PUT", "vm.create", config(sim));
    expect(created.status).toBe(204);
    expect(created.headers["content-length"]).toBeUndefined();
    expect(created.headers["content-type"]).toBeUndefined();
  });

  it("reads bodies by Content-Length only: a chunked body is not decoded", async () => {
    const sim = await startSim();
    const conn = await connect(sim.api);
    const body = JSON.stringify(config(sim));
    const chunked = `PUT /api/v1/vm.create HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    const res = await exchange(conn, chunked);
    expect(res.status).toBe(400);
    expect((await sim.call("GET", "vm.info")).status).toBe(404);
  });

  it('gives 404 ["Not Found"] for an unknown path, 400 for a body on an action or GET on an action', async () => {
    const sim = await startSim();
    expect(await sim.call("GET", "vm.teleport")).toMatchObject({ status: 404, body: '["Not Found"]' });
    await sim.call("PUT", "vm.create", config(sim));
    expect(await sim.call("PUT", "vm.boot", {})).toMatchObject({ status: 400, body: '["Bad Request"]' });
    expect(await sim.call("GET", "vm.boot")).toMatchObject({ status: 400, body: '["Bad Request"]' });
    expect((await sim.call("GET", "vm.info")).body).toContain('"Created"');
  });

  it("answers an unparseable method with micro-http's own error object", async () => {
    const sim = await startSim();
    const res = await exchange(await connect(sim.api), http("POST", "vm.boot"));
    expect(res.status).toBe(400);
    expect(res.headers.server).toBe("Firecracker API");
    // Not JSON: micro-http writes the newline raw into its string.
    expect(res.body).toBe('{ "error": "Invalid HTTP Method: Unsupported HTTP method.\nAll previous unanswered requests will be dropped." }');
  });

  it("refuses the 11th connection with a 503", async () => {
    const sim = await startSim();
    const conns = await Promise.all(Array.from({ length: 9 }, () => connect(sim.api)));
    const eleventh = await connect(sim.api);
    const res = await exchange(eleventh, "");
    expect(res.status).toBe(503);
    expect(JSON.parse(res.body)).toEqual({ error: "Too many open connections" });
    for (const c of conns) c.destroy();
  });

  it("answers one request at a time: a slow vm.boot delays a ping on another connection", async () => {
    const sim = await startSim();
    await sim.call("PUT", "vm.create", config(sim, "sim.boot_ms=400"));
    const order: string[] = [];
    const boot = sim.call("PUT", "vm.boot").then(() => order.push("boot"));
    await new Promise((r) => setTimeout(r, 50));
    const other = await connect(sim.api);
    const ping = exchange(other, http("GET", "vmm.ping")).then(() => order.push("ping"));
    await Promise.all([boot, ping]);
    expect(order).toEqual(["boot", "ping"]);
  });
});

describe("VM state and errors as in v53.0", () => {
  it("returns CH's error chains and status codes in the wrong states", async () => {
    const sim = await startSim();
    expect(await sim.call("PUT", "vm.boot")).toMatchObject({ status: 404, body: '["Error from API","The VM could not boot","VM config is missing"]' });
    expect((await sim.call("GET", "vm.info")).status).toBe(404);
    expect((await sim.call("PUT", "vm.power-button")).status).toBe(500);
    expect(JSON.parse((await sim.call("PUT", "vm.create", { cpus: { boot_vcpus: 1 } })).body)).toEqual([
      "Failed to deserialize JSON",
      "missing field `max_vcpus` at line 1 column 24",
    ]);
    await sim.call("PUT", "vm.create", config(sim));
    expect(JSON.parse((await sim.call("PUT", "vm.create", config(sim))).body)).toEqual([
      "Error from API",
      "The VM could not be created",
      "VM is already created",
    ]);
    expect((await sim.call("PUT", "vm.boot")).status).toBe(204);
    expect((await sim.call("PUT", "vm.boot")).status).toBe(500);
  });

  it("pauses and resumes as v53 does, snapshots only a paused VM, and restores only into a VMM without one", async () => {
    const sim = await startSim();
    expect(JSON.parse((await sim.call("PUT", "vm.pause")).body)).toEqual(["Error from API", "The VM could not be paused", "VM is not running"]);
    await sim.call("PUT", "vm.create", config(sim, "sim.guest=scripted"));
    await sim.call("PUT", "vm.boot");
    const dir = path.join(sim.dir, "snap");
    fs.mkdirSync(dir);
    const running = JSON.parse((await sim.call("PUT", "vm.snapshot", { destination_url: `file://${dir}` })).body);
    expect(running).toContain("Trying to snapshot while VM is running");
    expect((await sim.call("PUT", "vm.pause")).status).toBe(204);
    expect(JSON.parse((await sim.call("PUT", "vm.pause")).body).at(-1)).toBe("Invalid transition: InvalidStateTransition(Paused, Paused)");
    expect((await sim.call("PUT", "vm.snapshot", { destination_url: `file://${dir}` })).status).toBe(204);
    expect(fs.readdirSync(dir).sort()).toEqual(["config.json", "memory-ranges", "state.json"]);
    expect(fs.statSync(path.join(dir, "memory-ranges")).size).toBe(64 << 20);
    expect(JSON.parse((await sim.call("PUT", "vm.restore", { source_url: `file://${dir}` })).body)).toEqual([
      "Error from API",
      "The VM could not be restored",
      "VM is already created",
    ]);
    expect((await sim.call("PUT", "vm.resume")).status).toBe(204);
    expect(JSON.parse((await sim.call("PUT", "vm.resume")).body).at(-1)).toBe("Invalid transition: InvalidStateTransition(Running, Running)");
    expect(readEvents(sim.events).map((e) => e.event)).toEqual(
      expect.arrayContaining(["pausing", "paused", "snapshotting", "snapshotted", "resuming", "resumed"]),
    );

    const fresh = await startSim();
    expect((await fresh.call("PUT", "vm.restore", { source_url: `file://${dir}` })).status).toBe(204);
    expect(JSON.parse((await fresh.call("GET", "vm.info")).body)).toMatchObject({ state: "Paused", config: { memory: { size: 64 << 20 } } });
    expect(readEvents(fresh.events).map((e) => e.event)).toEqual(expect.arrayContaining(["restoring", "restored"]));
    expect((await fresh.call("PUT", "vm.resume")).status).toBe(204);
  });

  it("vm.shutdown leaves the VM Created, and it boots again", async () => {
    const sim = await startSim();
    await sim.call("PUT", "vm.create", config(sim));
    await sim.call("PUT", "vm.boot");
    expect(JSON.parse((await sim.call("GET", "vm.info")).body).state).toBe("Running");
    expect((await sim.call("PUT", "vm.shutdown")).status).toBe(204);
    expect(JSON.parse((await sim.call("GET", "vm.info")).body).state).toBe("Created");
    expect((await sim.call("PUT", "vm.boot")).status).toBe(204);
    expect((await sim.call("PUT", "vm.delete")).status).toBe(204);
    expect((await sim.call("GET", "vm.info")).status).toBe(404);
  });

  it("writes events as pretty JSON separated by blank lines", async () => {
    const sim = await startSim();
    await sim.call("PUT", "vm.create", config(sim));
    await sim.call("PUT", "vm.boot");
    await sim.call("PUT", "vm.shutdown");
    const raw = fs.readFileSync(sim.events, "utf8");
    expect(raw).toContain('{\n  "timestamp": {\n    "secs": 0,');
    const events = readEvents(sim.events);
    expect(events.map((e) => `${e.source}/${e.event}`)).toEqual(["vmm/starting", "vm/booting", "vm/booted", "vm/shutdown"]);
    expect(events[1]).toMatchObject({ timestamp: { secs: expect.any(Number), nanos: expect.any(Number) }, properties: null });
  });
});

describe("process exit", () => {
  it("vmm.shutdown answers 200 with an empty body, then exits 0 and removes its socket", async () => {
    const sim = await startSim();
    await sim.call("PUT", "vm.create", config(sim));
    await sim.call("PUT", "vm.boot");
    const res = await sim.call("PUT", "vmm.shutdown");
    expect(res).toMatchObject({ status: 200, body: "", headers: { "content-length": "0" } });
    expect((await sim.proc).exitCode).toBe(0);
    expect(fs.existsSync(sim.api)).toBe(false);
    expect(
      readEvents(sim.events)
        .map((e) => `${e.source}/${e.event}`)
        .slice(-3),
    ).toEqual(["vm/shutdown", "vm/deleted", "vmm/shutdown"]);
  });

  it("exits 0 when the guest powers off after the power button", async () => {
    const sim = await startSim();
    await sim.call("PUT", "vm.create", config(sim));
    await sim.call("PUT", "vm.boot");
    expect((await sim.call("PUT", "vm.power-button")).status).toBe(204);
    expect((await sim.proc).exitCode).toBe(0);
    expect(
      readEvents(sim.events)
        .map((e) => e.event)
        .slice(-3),
    ).toEqual(["shutdown", "deleted", "shutdown"]);
  });

  it("with --no-shutdown a guest power-off keeps the process and the config", async () => {
    const sim = await startSim(["--no-shutdown"]);
    await sim.call("PUT", "vm.create", config(sim, "sim.guest=scripted sim.poweroff_after_ms=50"));
    await sim.call("PUT", "vm.boot");
    // The guest powers off 50 ms after booting; the VM is then Created again and the process stays.
    const state = async () => JSON.parse((await sim.call("GET", "vm.info")).body).state;
    while ((await state()) === "Running") await new Promise((r) => setTimeout(r, 10));
    expect(await state()).toBe("Created");
    expect(sim.proc.exitCode).toBeNull();
  });

  it("exits 0 on SIGTERM", async () => {
    const sim = await startSim();
    sim.proc.kill("SIGTERM");
    expect((await sim.proc).exitCode).toBe(0);
  });
});
