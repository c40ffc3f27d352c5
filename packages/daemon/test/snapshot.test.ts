/**
 * Snapshot and restore (issue 15): a snapshot pauses a running guest and
 * resumes it, is listed only once complete, and a Stopped VM is restored
 * from it into a fresh VMM, running or paused. What a crash cut short is
 * never trusted: the next daemon removes it.
 */
import fs from "node:fs";
import path from "node:path";
import { FAILPOINTS_ENV } from "@my_hypervisor/lib/failpoints";
import { afterAll, describe, expect, it } from "vitest";
import { type Daemon, eventually, Fleet, pidOf, vmSpec } from "./harness.js";

const fleet = new Fleet();
afterAll(() => fleet.cleanup());

const TICKER: [string, ...string[]] = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"];
const log = async (d: Daemon, id: string) => (await d.rpc.call("compute.vm.logs", { id, tail: 65536 })).data as string;
const events = (status: any): string[] => status.transitions.map((t: { event: string }) => t.event);

async function ticking(d: Daemon, id: string): Promise<number> {
  await d.rpc.call("compute.vm.create", { ...vmSpec(d, id), workload: { argv: TICKER } });
  const pid = pidOf(await d.rpc.call("compute.vm.start", { id }));
  fleet.pids.add(pid);
  await eventually(async () => (/tick 2\b/.test(await log(d, id)) ? true : undefined), 20_000);
  return pid;
}

describe("snapshot and restore", () => {
  it("takes a snapshot of a running guest and resumes it, and restores a stopped VM from it, running or paused", async () => {
    const d = await fleet.daemon();
    await ticking(d, "saved");
    const taken = await d.rpc.call("compute.vm.snapshot", { id: "saved", name: "first" });
    expect(taken).toMatchObject({ id: "saved", name: "first", created_at: expect.any(String) });
    expect(taken.size_bytes).toBeGreaterThan(0);
    const dir = path.join(d.stateDir, "saved", "snapshots", "first");
    expect(fs.readdirSync(dir).sort()).toEqual(["config.json", "memory-ranges", "state.json"]);
    const after = await d.rpc.call("compute.vm.status", { id: "saved" });
    expect(after).toMatchObject({ state: "Running", substate: "Active" });
    expect(events(after).slice(-4)).toEqual(["PAUSE", "SNAPSHOT", "SNAPSHOTTED", "RESUME"]);
    expect(after.transitions.at(-3)).toMatchObject({ substate: "Snapshotting", reason: "first" });

    // A paused VM stays paused; a name is taken once.
    await d.rpc.call("compute.vm.pause", { id: "saved" });
    await d.rpc.call("compute.vm.snapshot", { id: "saved", name: "second" });
    expect(await d.rpc.call("compute.vm.status", { id: "saved" })).toMatchObject({ substate: "Paused" });
    const taken2 = await d.rpc.callError("compute.vm.snapshot", { id: "saved", name: "first" });
    expect(taken2).toMatchObject({ code: -32602 });
    expect(taken2.message).toMatch(/already has a snapshot 'first'/);
    expect((await d.rpc.callError("compute.vm.snapshot", { id: "saved", name: "../x" })).code).toBe(-32602);
    expect((await d.rpc.call("compute.vm.snapshots", { id: "saved" })).snapshots.map((s: { name: string }) => s.name)).toEqual(["first", "second"]);
    expect((await d.rpc.callError("compute.vm.restore", { id: "saved", name: "first" })).code).toBe(-32003);

    await d.rpc.call("compute.vm.stop", { id: "saved" });
    const restored = await d.rpc.call("compute.vm.restore", { id: "saved", name: "first" });
    fleet.pids.add(restored.pid);
    expect(restored).toMatchObject({ state: "Running", substate: "Active" });
    expect(restored.transitions.at(-2)).toMatchObject({ from: "Stopped", to: "Starting", event: "RESTORE", reason: "from snapshot 'first'" });
    expect(restored.transitions.at(-1)).toMatchObject({ event: "STARTED", reason: "restored from snapshot 'first'" });
    await eventually(async () => ((await log(d, "saved")).includes("restored from a snapshot") ? true : undefined));
    // The restored guest is told the host's time and gets fresh randomness.
    const sync = await eventually(async () => {
      const s = (await d.rpc.call("compute.vm.status", { id: "saved" })).guest_sync;
      return s?.after === "restore" ? s : undefined;
    }, 30_000);
    expect(sync).toMatchObject({ clock_set: false, reseeded: true });
    expect((await d.rpc.exec({ id: "saved", argv: ["true"] })).exit_code).toBe(0);

    await d.rpc.call("compute.vm.stop", { id: "saved", force: true });
    const held = await d.rpc.call("compute.vm.restore", { id: "saved", name: "second", resume: false });
    fleet.pids.add(held.pid);
    expect(held).toMatchObject({ state: "Running", substate: "Paused" });
    await d.rpc.call("compute.vm.resume", { id: "saved" });
    expect((await d.rpc.callError("compute.vm.restore", { id: "saved", name: "nosuch" })).code).toBe(-32016);

    expect(await d.rpc.call("compute.vm.snapshot.delete", { id: "saved", name: "second" })).toEqual({ id: "saved", name: "second", deleted: true });
    expect(fs.existsSync(path.join(d.stateDir, "saved", "snapshots", "second"))).toBe(false);
    expect((await d.rpc.callError("compute.vm.snapshot.delete", { id: "saved", name: "second" })).code).toBe(-32016);
    expect((await d.rpc.call("compute.vm.snapshots", { id: "saved" })).snapshots.map((s: { name: string }) => s.name)).toEqual(["first"]);
  });

  it("a daemon killed mid-snapshot: the next one keeps nothing of it and runs the guest it had paused", async () => {
    const d = await fleet.daemon({ env: { [FAILPOINTS_ENV]: "snapshot.taken" } });
    const pid = await ticking(d, "cut");
    await expect(d.rpc.call("compute.vm.snapshot", { id: "cut", name: "lost" })).rejects.toThrow();
    await d.proc;
    const d2 = await fleet.daemon({ dir: d.dir });
    const status = await d2.rpc.call("compute.vm.status", { id: "cut" });
    expect(status).toMatchObject({ state: "Running", substate: "Active", pid });
    expect(events(status).slice(-3)).toEqual(["SNAPSHOT", "SNAPSHOT_FAILED", "RESUME"]);
    expect((await d2.rpc.call("compute.vm.snapshots", { id: "cut" })).snapshots).toEqual([]);
    expect(fs.readdirSync(path.join(d.stateDir, "cut", "snapshots"))).toEqual([]);
    expect((await d2.rpc.exec({ id: "cut", argv: ["true"] })).exit_code).toBe(0);
  });

  it("a VMM killed mid-snapshot: the VM is Failed, nothing of the snapshot is kept, and the VM restarts", async () => {
    // The test VMM takes a minute to write a snapshot: long enough to be cut short.
    const d = await fleet.daemon({ env: { CH_SIM_SNAPSHOT_DELAY_MS: "60000" } });
    const pid = await ticking(d, "killed");
    const snapshot = d.rpc.callError("compute.vm.snapshot", { id: "killed", name: "never" });
    await eventually(async () => ((await d.rpc.call("compute.vm.status", { id: "killed" })).substate === "Snapshotting" ? true : undefined));
    process.kill(pid, "SIGKILL");
    const err = await snapshot;
    expect(err).toMatchObject({ code: -32004, data: { call: "vm.snapshot" } });
    const status = await eventually(async () => {
      const s = await d.rpc.call("compute.vm.status", { id: "killed" });
      return s.state === "Failed" ? s : undefined;
    });
    expect(status.transitions.at(-1)).toMatchObject({ from: "Running", to: "Failed", event: "VMM_EXITED" });
    expect((await d.rpc.call("compute.vm.snapshots", { id: "killed" })).snapshots).toEqual([]);
    expect(fs.readdirSync(path.join(d.stateDir, "killed", "snapshots"))).toEqual([]);
    fleet.pids.add((await d.rpc.call("compute.vm.start", { id: "killed" })).pid);
  });

  it("keeps what a record lists across a restart and removes what it does not", async () => {
    const d = await fleet.daemon();
    await ticking(d, "kept");
    await d.rpc.call("compute.vm.snapshot", { id: "kept", name: "good" });
    await d.stop();
    // What a crash mid-snapshot leaves: a partial directory, and a finished one never listed.
    const snapshots = path.join(d.stateDir, "kept", "snapshots");
    fs.mkdirSync(path.join(snapshots, ".partial-cut"));
    fs.cpSync(path.join(snapshots, "good"), path.join(snapshots, "unlisted"), { recursive: true });

    const d2 = await fleet.daemon({ dir: d.dir });
    expect((await d2.rpc.call("compute.vm.snapshots", { id: "kept" })).snapshots.map((s: { name: string }) => s.name)).toEqual(["good"]);
    expect(fs.readdirSync(snapshots)).toEqual(["good"]);
    expect(fs.readFileSync(path.join(d.dir, "daemon.log"), "utf8")).toMatch(/removed snapshot directories no record lists/);
    // The name a crash left half-written is free again.
    await d2.rpc.call("compute.vm.snapshot", { id: "kept", name: "unlisted" });
  });
});
