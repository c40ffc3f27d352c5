/** Serial console proxy, serial logs and the event stream, end to end. */
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type Daemon, eventually, Fleet, pidOf, vmmFile, vmSpec } from "./harness.js";

const fleet = new Fleet();
const pids = fleet.pids;
afterAll(() => fleet.cleanup());
const daemon = (dir?: string) => fleet.daemon({ dir });

/** A console client that collects everything it receives. */
class Viewer {
  private chunks: Buffer[] = [];
  received = 0;
  closed = false;
  private constructor(readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.received += chunk.length;
    });
    socket.on("close", () => {
      this.closed = true;
    });
    socket.on("error", () => undefined);
  }
  static attach(path: string): Promise<Viewer> {
    return new Promise((resolve, reject) => {
      const s = net.connect(path);
      s.once("connect", () => resolve(new Viewer(s)));
      s.once("error", reject);
    });
  }
  get data(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }
  text(): string {
    return this.data.toString("utf8");
  }
  waitFor(pattern: string | RegExp, ms = 5000): Promise<true> {
    return eventually(() => (typeof pattern === "string" ? this.text().includes(pattern) : pattern.test(this.text())) || undefined, ms);
  }
}

async function createAndStart(d: Daemon, id: string, cmdline: string): Promise<number> {
  await d.rpc.call("compute.vm.create", vmSpec(d, id, cmdline));
  const pid = pidOf(await d.rpc.call("compute.vm.start", { id }));
  pids.add(pid);
  return pid;
}

/** A raw HTTP request to the VM's CH API socket, as an operator with ch-remote would. */
function chApi(d: Daemon, id: string, method: string, route: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(vmmFile(d, id, "api.sock"));
    let reply = "";
    s.on("data", (c) => {
      reply += c;
      if (reply.includes("\r\n\r\n")) {
        s.destroy();
        resolve(reply.split("\r\n")[0] as string);
      }
    });
    s.on("error", reject);
    s.write(`${method} /api/v1/${route} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  });
}

describe("the console proxy", () => {
  it("serves three viewers the same output, and input from any of them reaches the guest", async () => {
    const d = await daemon();
    await d.rpc.call("compute.vm.create", vmSpec(d, "tri", "sim.guest=scripted sim.serial_interval_ms=100"));
    const { path: endpoint } = await d.rpc.call("compute.vm.console.endpoint", { id: "tri" });
    expect(fs.statSync(endpoint).mode & 0o777).toBe(0o600);
    expect(path.dirname(endpoint)).toBe(path.join(d.dir, "console"));
    const viewers = await Promise.all([Viewer.attach(endpoint), Viewer.attach(endpoint), Viewer.attach(endpoint)]);
    const pid = pidOf(await d.rpc.call("compute.vm.start", { id: "tri" }));
    pids.add(pid);
    for (const v of viewers) await v.waitFor("tick 3");
    for (const v of viewers) expect(v.text()).toMatch(/^cloud-hypervisor-sim: booting/);

    viewers[1]?.socket.write("hello from viewer two\n");
    for (const v of viewers) await v.waitFor("hello from viewer two");

    // Detach one, re-attach: the newcomer first gets the backlog, then live output.
    viewers[0]?.socket.destroy();
    const again = await Viewer.attach(endpoint);
    await again.waitFor("hello from viewer two");
    expect(again.text()).toMatch(/^cloud-hypervisor-sim: booting/);
    const ticks = (again.text().match(/tick \d+/g) ?? []).length;
    await eventually(() => ((again.text().match(/tick \d+/g) ?? []).length > ticks + 1 ? true : undefined));
    await d.stop();
  });

  it("a viewer that stops reading is dropped without stalling the guest or the others", async () => {
    const d = await daemon();
    const flood = 12 * 1024 * 1024;
    await d.rpc.call("compute.vm.create", vmSpec(d, "flood", `sim.guest=scripted sim.serial_interval_ms=0 sim.serial_flood_bytes=${flood}`));
    const { path: endpoint } = await d.rpc.call("compute.vm.console.endpoint", { id: "flood" });
    const stalled = await Viewer.attach(endpoint);
    stalled.socket.pause();
    const reader = await Viewer.attach(endpoint);
    const pid = pidOf(await d.rpc.call("compute.vm.start", { id: "flood" }));
    pids.add(pid);
    await eventually(() => (reader.received >= flood ? true : undefined), 20_000);
    expect(reader.text()).toContain(`flood ${String(flood / 64 - 1).padStart(10, "0")}`);
    await eventually(() => (/console client too slow; dropped/.test(fs.readFileSync(path.join(d.dir, "daemon.log"), "utf8")) ? true : undefined));
    // Reading again, the stalled viewer finds its connection closed, short of the full output.
    stalled.socket.resume();
    await eventually(() => (stalled.closed ? true : undefined));
    expect(stalled.received).toBeLessThan(flood);

    // What the console showed is what the log holds, byte for byte.
    const { data, offset, next, encoding } = await d.rpc.call("compute.vm.logs", { id: "flood", offset: 0, limit: 4 * 1024 * 1024, encoding: "base64" });
    expect({ offset, encoding }).toEqual({ offset: 0, encoding: "base64" });
    expect(Buffer.from(data, "base64").equals(reader.data.subarray(0, next))).toBe(true);
    const tail = await d.rpc.call("compute.vm.logs", { id: "flood", tail: 1000 });
    expect(tail.next - tail.offset).toBe(1000);
    expect(reader.data.subarray(tail.offset, tail.next).toString("utf8")).toBe(tail.data);
    await d.stop();
  });

  it("reconnects to the serial socket after a guest reboot", async () => {
    const d = await daemon();
    await createAndStart(d, "reboot", "sim.guest=scripted sim.serial_interval_ms=0");
    const first = (await d.rpc.call("compute.vm.logs", { id: "reboot", offset: 0 })).data;
    expect(first.match(/booting/g)).toHaveLength(1);
    expect(await chApi(d, "reboot", "PUT", "vm.reboot")).toMatch(/204/);
    await eventually(async () => ((await d.rpc.call("compute.vm.logs", { id: "reboot", offset: 0 })).data.match(/booting/g)?.length === 2 ? true : undefined));
    await d.stop();
  });
});

describe("logs", () => {
  it("work for stopped VMs, reject bad ranges, and report the VM missing", async () => {
    const d = await daemon();
    await createAndStart(d, "stoppedlog", "sim.guest=scripted sim.serial_interval_ms=0");
    await eventually(async () => ((await d.rpc.call("compute.vm.logs", { id: "stoppedlog", tail: 100 })).data.includes("booting") ? true : undefined));
    await d.rpc.call("compute.vm.stop", { id: "stoppedlog" });
    const after = await d.rpc.call("compute.vm.logs", { id: "stoppedlog" });
    expect(after).toMatchObject({ offset: 0, encoding: "utf8" });
    expect(after.data).toMatch(/^cloud-hypervisor-sim: booting/);
    const past = await d.rpc.call("compute.vm.logs", { id: "stoppedlog", offset: after.next });
    expect(past).toEqual({ data: "", encoding: "utf8", offset: after.next, next: after.next });
    expect((await d.rpc.callError("compute.vm.logs", { id: "stoppedlog", offset: 0, tail: 5 })).code).toBe(-32602);
    expect((await d.rpc.callError("compute.vm.logs", { id: "nosuch" })).code).toBe(-32001);
    await d.stop();
  });
});

describe("events", () => {
  it("tail returns transitions and the VMM's own events in seq order, per VM or for all", async () => {
    const d = await daemon();
    await createAndStart(d, "ev1", "sim.guest=scripted sim.serial_interval_ms=0");
    await d.rpc.call("compute.vm.create", vmSpec(d, "ev2"));
    const all = await eventually(async () => {
      const r = await d.rpc.call("compute.vm.events.tail", {});
      return r.events.some((e: { type: string; data?: { event?: string } }) => e.type === "vmm" && e.data?.event === "booted") ? r : undefined;
    });
    const seqs = all.events.map((e: { seq: number }) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a: number, b: number) => a - b));
    expect(all.events).toContainEqual(expect.objectContaining({ id: "ev1", type: "transition", from: "Starting", to: "Running" }));
    expect(all.events).toContainEqual(expect.objectContaining({ id: "ev1", type: "vmm", data: expect.objectContaining({ source: "vm", event: "booted" }) }));
    expect(all.next).toBe(seqs.at(-1));
    const one = await d.rpc.call("compute.vm.events.tail", { id: "ev2" });
    expect(one.events.map((e: { id: string }) => e.id)).toEqual(["ev2", "ev2"]);
    const page = await d.rpc.call("compute.vm.events.tail", { since: 0, limit: 2 });
    expect(page.events.map((e: { seq: number }) => e.seq)).toEqual([1, 2]);
    expect(page.next).toBe(2);
    await d.stop();
  });

  it("a long poll returns as soon as an event happens", async () => {
    const d = await daemon();
    await createAndStart(d, "poll", "sim.guest=scripted sim.serial_interval_ms=0 sim.poweroff_ms=300");
    const { next } = await eventually(async () => {
      const r = await d.rpc.call("compute.vm.events.tail", { id: "poll" });
      return r.events.some((e: { data?: { event?: string } }) => e.data?.event === "booted") ? r : undefined;
    });
    let stopDone = false;
    const waiting = d.rpc.call("compute.vm.events.tail", { id: "poll", since: next, wait_ms: 30_000 });
    const stop = d.rpc.call("compute.vm.stop", { id: "poll" }).then(() => {
      stopDone = true;
    });
    const woke = await waiting;
    // The guest takes 300 ms to power off after the button: the poll answered on the first event, before that.
    expect(stopDone).toBe(false);
    expect(woke.events[0]).toMatchObject({ id: "poll", type: "transition", from: "Running", to: "Stopping" });
    await stop;
    const { next: newest } = await d.rpc.call("compute.vm.events.tail", { limit: 1000 });
    const quiet = await d.rpc.call("compute.vm.events.tail", { id: "poll", since: newest, wait_ms: 50 });
    expect(quiet).toEqual({ events: [], next: newest });
    // A cursor past the newest event would skip everything up to it: refused.
    expect(await d.rpc.callError("compute.vm.events.tail", { since: newest + 1000 })).toMatchObject({
      code: -32602,
      data: { since: newest + 1000, newest },
    });
    await d.stop();
  });
});

describe("after a daemon SIGKILL and restart", () => {
  it("logs and events continue, and a since from before the restart still works", async () => {
    const first = await daemon();
    await createAndStart(first, "survive", "sim.guest=scripted sim.serial_interval_ms=100");
    await eventually(async () => ((await first.rpc.call("compute.vm.logs", { id: "survive" })).data.includes("tick 2") ? true : undefined));
    const before = await first.rpc.call("compute.vm.events.tail", {});
    const logBefore = await first.rpc.call("compute.vm.logs", { id: "survive" });
    first.rpc.close();
    first.proc.kill("SIGKILL");
    await first.proc;
    await new Promise((r) => setTimeout(r, 300));

    const second = await daemon(first.dir);
    const replay = await second.rpc.call("compute.vm.events.tail", { since: 0 });
    expect(replay.events.slice(0, before.events.length)).toEqual(before.events);
    await second.rpc.call("compute.vm.stop", { id: "survive" });
    const after = await second.rpc.call("compute.vm.events.tail", { since: before.next });
    expect(after.events[0]?.seq).toBe(before.next + 1);
    expect(after.events).toContainEqual(expect.objectContaining({ type: "transition", from: "Running", to: "Stopping" }));
    // No VMM event from before the restart is delivered twice.
    const booted = (await second.rpc.call("compute.vm.events.tail", { since: 0, id: "survive", limit: 1000 })).events.filter(
      (e: { data?: { event?: string } }) => e.data?.event === "booted",
    );
    expect(booted).toHaveLength(1);

    // The log kept what the guest printed while no daemon listened (CH buffers it for the next client).
    const log = await second.rpc.call("compute.vm.logs", { id: "survive", offset: 0, limit: 1_000_000 });
    expect(log.data.startsWith(logBefore.data)).toBe(true);
    const ticks = [...log.data.matchAll(/tick (\d+)/g)].map((m) => Number(m[1]));
    expect(ticks).toEqual(ticks.map((_, i) => i + 1));
    expect(ticks.length).toBeGreaterThan([...logBefore.data.matchAll(/tick/g)].length);
    await second.stop();
  });
});
