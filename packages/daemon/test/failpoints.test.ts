/**
 * Crash at every failpoint, at every time a VM's life reaches it (issue 11).
 * For each failpoint F and n = 1, 2, ...: a daemon armed with F@n runs one
 * VM's whole life (create with a sibling volume, start, stop, start, remove
 * with force) until it crashes at F's n-th instant; a clean daemon then
 * starts on the same state dir and the invariants must hold. The loop ends
 * at the first n the life survives, so every instant is covered, and a
 * failpoint the life never reaches fails the test. Deterministic: the crash
 * is the daemon's own SIGKILL at that instant, not a random one.
 */
import fs from "node:fs";
import path from "node:path";
import { FAILPOINTS, FAILPOINTS_ENV } from "@my_hypervisor/lib/failpoints";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONNECTION_LOST, type Daemon, type DaemonOptions, Fleet, RpcCallError, type Sibling, startDaemon, tempDir, vmSpec } from "./harness.js";
import { type Acknowledged, checkInvariants, killVmmsUnder } from "./invariants.js";

const fleet = new Fleet();
let vol: Sibling;
let run = 0;

beforeAll(async () => {
  const dir = tempDir();
  vol = await fleet.sibling("vold", dir, ["--dir", path.join(dir, "volumes")]);
});
afterAll(() => fleet.cleanup());

const options = (dir: string, env: Record<string, string> = {}): DaemonOptions => ({
  dir,
  env,
  args: ["--vol-socket", vol.socket, "--reconcile-interval-ms", "200"],
});

/** One VM's whole life; `acked` follows what the daemon answered. Returns normally, or throws CONNECTION_LOST when it crashed. */
async function life(d: Daemon, id: string, acked: Acknowledged): Promise<void> {
  await d.rpc.call("compute.vm.create", { ...vmSpec(d, id), disks: [{ volume: `${id}-vol`, size_mib: 1 }] });
  acked.created.add(id);
  fleet.pids.add((await d.rpc.call("compute.vm.start", { id })).pid);
  await d.rpc.call("compute.vm.snapshot", { id, name: "snap" });
  await d.rpc.call("compute.vm.stop", { id, force: true });
  fleet.pids.add((await d.rpc.call("compute.vm.restore", { id, name: "snap" })).pid);
  await d.rpc.call("compute.vm.stop", { id, force: true });
  fleet.pids.add((await d.rpc.call("compute.vm.start", { id })).pid);
  // Once a removal is asked for, the VM may be gone before the answer comes.
  acked.created.delete(id);
  await d.rpc.call("compute.vm.remove", { id, force: true });
  acked.removed.add(id);
}

/** Whether the daemon died by its own SIGKILL at `failpoint`, as its log says. */
async function crashedAt(d: Daemon, failpoint: string): Promise<boolean> {
  const { signal } = await d.proc;
  const log = fs.readFileSync(path.join(d.dir, "daemon.log"), "utf8");
  return signal === "SIGKILL" && log.includes(`"failpoint":"${failpoint}"`);
}

/** A clean daemon on the crashed one's state dir: the invariants, then everything removed. */
async function recoverAndCheck(dir: string, acked: Acknowledged): Promise<void> {
  const d = await fleet.daemon(options(dir));
  await checkInvariants(d, acked, vol);
  for (const { id } of (await d.rpc.call("compute.vm.list", {})).vms) await d.rpc.call("compute.vm.remove", { id, force: true });
  await d.stop();
}

/** Runs the life with `failpoint@n` armed; true if it crashed there. */
async function crashOnce(failpoint: string, n: number): Promise<boolean> {
  const dir = tempDir();
  const id = `fp${++run}`;
  const acked: Acknowledged = { created: new Set(), removed: new Set() };
  const d = await fleet.daemon(options(dir, { [FAILPOINTS_ENV]: `${failpoint}@${n}` }));
  try {
    await life(d, id, acked);
  } catch (e) {
    if (!(e instanceof RpcCallError && e.error.code === CONNECTION_LOST)) throw e;
    expect(await crashedAt(d, failpoint), `the daemon died at ${failpoint}@${n}`).toBe(true);
    await recoverAndCheck(dir, acked);
    return true;
  } finally {
    // A failed check stops before the clean-up, and a start whose reply the crash took was never tracked.
    killVmmsUnder(dir);
  }
  await d.stop();
  return false;
}

describe("a crash at a failpoint loses nothing", () => {
  for (const failpoint of FAILPOINTS.filter((f) => f !== "adopt.identified")) {
    it(`at every instant of ${failpoint}`, async () => {
      let crashes = 0;
      while (await crashOnce(failpoint, crashes + 1)) crashes += 1;
      expect(crashes, `a VM's life reaches ${failpoint}`).toBeGreaterThan(0);
    }, 180_000);
  }

  it("at adopt.identified: a restart cut short while re-adopting a running VMM", async () => {
    const dir = tempDir();
    const acked: Acknowledged = { created: new Set(["adopted"]), removed: new Set() };
    const first = await fleet.daemon(options(dir));
    await first.rpc.call("compute.vm.create", vmSpec(first, "adopted"));
    fleet.pids.add((await first.rpc.call("compute.vm.start", { id: "adopted" })).pid);
    first.rpc.close();
    first.proc.kill("SIGKILL");
    await first.proc;
    // It dies while loading, before it ever listens.
    await expect(startDaemon(options(dir, { [FAILPOINTS_ENV]: "adopt.identified" }))).rejects.toThrow(/exited before listening/);
    expect(fs.readFileSync(path.join(dir, "daemon.log"), "utf8")).toContain('"failpoint":"adopt.identified"');
    await recoverAndCheck(dir, acked);
  });
});
