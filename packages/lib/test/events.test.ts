import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { type ChEvent, EventMonitorTail } from "../src/ch/event-monitor.js";
import { RpcError } from "../src/domain/errors.js";
import { EVENTS_LOST, EventBus } from "../src/events/event-bus.js";

const quiet = pino({ level: "silent" });
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "mh-ev-"));
const chEvent = (event: string, secs: number) => `${JSON.stringify({ timestamp: { secs, nanos: 5 }, source: "vm", event, properties: null }, null, 2)}\n\n`;

describe("EventMonitorTail", () => {
  it("delivers objects split across writes once complete, with the offset after each", async () => {
    const file = path.join(tmp(), "events.log");
    const got: [ChEvent, number][] = [];
    const tail = new EventMonitorTail(file, 0, (e, off) => got.push([e, off]));
    tail.start();
    const text = chEvent("booting", 0) + chEvent("booted", 1);
    const cut = chEvent("booting", 0).length + 17;
    fs.writeFileSync(file, text.slice(0, 20));
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toEqual([]);
    fs.appendFileSync(file, text.slice(20, cut));
    while (got.length === 0) await new Promise((r) => setTimeout(r, 10));
    expect(got.map(([e]) => e.event)).toEqual(["booting"]);
    fs.appendFileSync(file, text.slice(cut));
    await tail.stop();
    expect(got.map(([e]) => e.event)).toEqual(["booting", "booted"]);
    expect(got.map(([, o]) => o)).toEqual([chEvent("booting", 0).length, Buffer.byteLength(text)]);
  });

  it("resumes from an offset without repeating earlier events", async () => {
    const file = path.join(tmp(), "events.log");
    fs.writeFileSync(file, chEvent("booting", 0) + chEvent("booted", 1));
    const got: string[] = [];
    const tail = new EventMonitorTail(file, chEvent("booting", 0).length, (e) => got.push(e.event));
    tail.start();
    await tail.stop();
    expect(got).toEqual(["booted"]);
  });
});

describe("EventBus", () => {
  it("numbers events, keeps a bounded ring, and says so when since has fallen out of it", async () => {
    const bus = EventBus.open(path.join(tmp(), "events.jsonl"), quiet, 5);
    for (let i = 0; i < 8; i++) bus.publish({ id: "vm", type: "removed" });
    const { events, next } = await bus.tail({ since: 3, limit: 10, waitMs: 0 });
    expect(events.map((e) => e.seq)).toEqual([4, 5, 6, 7, 8]);
    expect(next).toBe(8);
    const lost = await bus.tail({ since: 2, limit: 10, waitMs: 0 }).catch((e) => e);
    expect(lost).toBeInstanceOf(RpcError);
    expect(lost).toMatchObject({ code: EVENTS_LOST, data: { since: 2, oldest: 4 } });
    bus.close();
  });

  it("continues numbering and history after a reopen, compacting the journal", async () => {
    const file = path.join(tmp(), "events.jsonl");
    const bus = EventBus.open(file, quiet, 3);
    for (let i = 0; i < 5; i++) bus.publish({ id: `vm${i}`, type: "removed" });
    bus.close();
    fs.appendFileSync(file, '{"seq": 6, "torn');
    const again = EventBus.open(file, quiet, 3);
    expect((await again.tail({ limit: 10, waitMs: 0 })).events.map((e) => e.seq)).toEqual([3, 4, 5]);
    expect(again.publish({ id: "x", type: "removed" }).seq).toBe(6);
    again.close();
    expect(fs.readFileSync(file, "utf8").trim().split("\n")).toHaveLength(4);
  });

  it("a waiting tail for one VM ignores other VMs' events", async () => {
    const bus = EventBus.open(path.join(tmp(), "events.jsonl"), quiet);
    const waiting = bus.tail({ id: "b", since: 0, limit: 10, waitMs: 5000 });
    bus.publish({ id: "a", type: "removed" });
    bus.publish({ id: "b", type: "removed" });
    expect((await waiting).events.map((e) => e.id)).toEqual(["b"]);
    bus.close();
  });

  it("refuses a since past the newest event, which would skip every event up to it", async () => {
    const bus = EventBus.open(path.join(tmp(), "events.jsonl"), quiet);
    bus.publish({ id: "a", type: "removed" });
    expect(await bus.tail({ since: 1, limit: 10, waitMs: 0 })).toEqual({ events: [], next: 1 });
    const err = await bus.tail({ since: 2, limit: 10, waitMs: 0 }).catch((e) => e);
    expect(err).toMatchObject({ code: -32602, data: { since: 2, newest: 1 } });
    bus.close();
  });

  it("does not rewrite an intact journal when it opens (a full disk must not stop a start)", () => {
    const file = path.join(tmp(), "events.jsonl");
    const bus = EventBus.open(file, quiet);
    bus.publish({ id: "a", type: "removed" });
    bus.close();
    const inode = fs.statSync(file).ino;
    EventBus.open(file, quiet).close();
    expect(fs.statSync(file).ino).toBe(inode);
  });

  it("a journal that cannot be written falls behind and is rewritten whole from memory once it can", async () => {
    const dir = path.join(tmp(), "gone");
    const file = path.join(dir, "events.jsonl");
    const bus = EventBus.open(file, quiet);
    for (let i = 0; i < 3; i++) bus.publish({ id: "a", type: "removed" });
    await new Promise((r) => setImmediate(r));
    expect(fs.existsSync(file)).toBe(false);
    fs.mkdirSync(dir);
    // The rewrite is tried with the next events, at most once a second.
    while (!fs.existsSync(file)) {
      bus.publish({ id: "b", type: "removed" });
      await new Promise((r) => setTimeout(r, 50));
    }
    bus.close();
    const seqs = fs
      .readFileSync(file, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l).seq);
    expect(seqs.slice(0, 4)).toEqual([1, 2, 3, 4]);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
  });
});
