import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { BACKLOG_BYTES, SerialLog } from "../src/console/serial-log.js";
import { waitForPath } from "../src/os/wait-for-path.js";
import { RECORD_VERSION, type VmRecord } from "../src/state/record.js";
import { StateStore } from "../src/state/store.js";

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "mh-st-"));

function record(id: string, generation: number): VmRecord {
  const now = new Date().toISOString();
  return {
    version: RECORD_VERSION,
    id,
    spec: { id, vcpus: 1, memory_mib: 64, boot: { kernel: "/k" } },
    state: "Configured",
    generation,
    vmm: null,
    resources: { nets: {}, disks: {} },
    created_at: now,
    updated_at: now,
    transitions: [],
  } as VmRecord;
}

describe("StateStore", () => {
  it("saves of one record land in the order asked, and leave no temp files", async () => {
    const store = new StateStore(tmp());
    await store.init();
    await Promise.all(Array.from({ length: 20 }, (_, g) => store.save(record("a", g))));
    const dir = path.join(store.stateDir, "a");
    expect(JSON.parse(fs.readFileSync(path.join(dir, "state.json"), "utf8")).generation).toBe(19);
    expect(fs.readdirSync(dir)).toEqual(["state.json"]);
  });

  it("a remove waits for a save in flight instead of letting it re-create the directory", async () => {
    const store = new StateStore(tmp());
    await store.init();
    await store.save(record("b", 1));
    const late = store.save(record("b", 2));
    await store.remove("b");
    await late;
    expect(fs.readdirSync(store.stateDir)).toEqual([]);
  });
});

describe("SerialLog", () => {
  it("a new viewer's backlog is the last 64 KiB, read back across rotated segments", async () => {
    const dir = tmp();
    // 64 KiB segments (the smallest), 128 KiB kept: the backlog spans two segments and older ones are gone.
    const log = await SerialLog.open(dir, 128 * 1024);
    const line = (n: number) => Buffer.from(`${String(n).padStart(7, "0")}\n`);
    for (let n = 0; n < 40_000; n++) log.append(line(n));
    const backlog = log.recent();
    expect(backlog.length).toBe(BACKLOG_BYTES);
    const lines = BACKLOG_BYTES / 8;
    expect(backlog).toEqual(Buffer.concat(Array.from({ length: lines }, (_, i) => line(40_000 - lines + i))));
    expect(fs.readdirSync(dir).length).toBeLessThanOrEqual(3);
    log.close();
    // Reopened (a daemon restart): the same backlog, from the files alone.
    expect((await SerialLog.open(dir, 128 * 1024)).recent()).toEqual(backlog);
  });

  it("a read across segments returns what was there when asked, though output rotates them away before it ends", async () => {
    const log = await SerialLog.open(tmp(), 128 * 1024);
    const line = (n: number) => Buffer.from(`${String(n).padStart(7, "0")}\n`);
    let n = 0;
    while (log.end < 128 * 1024) log.append(line(n++));
    const reading = log.read(0, 128 * 1024);
    // A flood of output while the read is under way: every segment it spans is rotated away.
    for (let i = 0; i < 40_000; i++) log.append(line(n++));
    const slice = await reading;
    expect(slice.offset).toBe(0);
    expect(slice.data).toEqual(Buffer.concat(Array.from({ length: (128 * 1024) / 8 }, (_, i) => line(i))));
    log.close();
  });
});

describe("waitForPath", () => {
  it("sees a file that already exists, one that appears later, and gives up when cancelled or out of time", async () => {
    const dir = tmp();
    const never = new Promise<void>(() => undefined);
    fs.writeFileSync(path.join(dir, "there"), "");
    expect(await waitForPath(path.join(dir, "there"), 1000, never)).toBe(true);

    const later = waitForPath(path.join(dir, "later"), 5000, never);
    setTimeout(() => fs.writeFileSync(path.join(dir, "later"), ""), 50);
    expect(await later).toBe(true);

    expect(await waitForPath(path.join(dir, "missing"), 100, never)).toBe(false);
    expect(await waitForPath(path.join(dir, "missing"), 5000, Promise.resolve())).toBe(false);
  });
});
