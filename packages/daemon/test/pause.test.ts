/**
 * Pause, resume and reboot (issue 15): CH holds the guest, the VM stays Running with
 * substate Paused, exec is refused at once, a restart re-adopts the VM as CH
 * has it, and a paused VM still stops. The test VMM stops the guest's
 * processes for real (SIGSTOP), so "the guest does not run" is read from
 * /proc, never guessed from a quiet console.
 */
import fs from "node:fs";
import path from "node:path";
import { DEFAULT_EXEC_PORT, decodeJson, encodeFrame, FrameReader, FrameType } from "@my_hypervisor/lib/exec-protocol";
import { connectGuestPort } from "@my_hypervisor/lib/hybrid-vsock";
import { afterAll, describe, expect, it } from "vitest";
import { chPut, chVmInfo, type Daemon, eventually, Fleet, pidOf, vmmFile, vmSpec } from "./harness.js";

const fleet = new Fleet();
afterAll(() => fleet.cleanup());

/** A guest that prints a numbered line ten times a second. */
const TICKER: [string, ...string[]] = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"];

const log = async (d: Daemon, id: string) => (await d.rpc.call("compute.vm.logs", { id, tail: 65536 })).data as string;
const lastTick = async (d: Daemon, id: string) => Math.max(0, ...[...(await log(d, id)).matchAll(/tick (\d+)/g)].map((m) => Number(m[1])));

/** The state letter of each process the VMM started (its guest): T is stopped. */
function guestStates(vmmPid: number): string[] {
  const parent = new Map<number, number>();
  const state = new Map<number, string>();
  for (const name of fs.readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, "utf8");
      const [s, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      parent.set(Number(name), Number(ppid));
      state.set(Number(name), s as string);
    } catch {
      // gone meanwhile
    }
  }
  const isGuest = (pid: number): boolean => {
    for (let p = parent.get(pid); p !== undefined && p > 1; p = parent.get(p)) if (p === vmmPid) return true;
    return false;
  };
  return [...state].filter(([pid]) => isGuest(pid)).map(([, s]) => s);
}

describe("pause, resume and reboot", () => {
  it("holds the guest, refuses exec at once, and lets it go on where it stopped", async () => {
    const d = await fleet.daemon();
    await d.rpc.call("compute.vm.create", { ...vmSpec(d, "ticker"), workload: { argv: TICKER } });
    const pid = pidOf(await d.rpc.call("compute.vm.start", { id: "ticker" }));
    fleet.pids.add(pid);
    await eventually(async () => ((await lastTick(d, "ticker")) >= 3 ? true : undefined), 20_000);

    const paused = await d.rpc.call("compute.vm.pause", { id: "ticker" });
    expect(paused).toMatchObject({ state: "Running", substate: "Paused", pid });
    expect(paused.transitions.at(-1)).toMatchObject({ from: "Running", to: "Running", event: "PAUSE", substate: "Paused" });
    // Every process of the guest is stopped.
    const states = guestStates(pid);
    expect(states.length).toBeGreaterThan(0);
    expect(states.every((s) => s === "T")).toBe(true);

    const exec = await d.rpc.callError("compute.vm.exec", { id: "ticker", argv: ["true"] });
    expect(exec).toMatchObject({ code: -32003, data: { id: "ticker", state: "Running" } });
    expect(exec.message).toMatch(/paused/);
    const again = await d.rpc.callError("compute.vm.pause", { id: "ticker" });
    expect(again).toMatchObject({ code: -32003 });
    expect(again.message).toMatch(/it is paused/);

    const before = await lastTick(d, "ticker");
    const resumed = await d.rpc.call("compute.vm.resume", { id: "ticker" });
    expect(resumed).toMatchObject({ state: "Running", substate: "Active" });
    // The guest learns the host's time (its clock is right here: left alone) and gets fresh randomness.
    const sync = await eventually(async () => (await d.rpc.call("compute.vm.status", { id: "ticker" })).guest_sync);
    expect(sync).toMatchObject({ after: "resume", clock_set: false, reseeded: true });
    expect(Math.abs(sync.skew_ms ?? Number.NaN)).toBeLessThan(1000);
    await eventually(async () => ((await lastTick(d, "ticker")) > before + 2 ? true : undefined), 20_000);
    expect((await d.rpc.exec({ id: "ticker", argv: ["true"] })).exit_code).toBe(0);
    expect((await d.rpc.callError("compute.vm.resume", { id: "ticker" })).message).toMatch(/it is not paused/);
    expect((await d.rpc.callError("compute.vm.pause", { id: "nosuch" })).code).toBe(-32001);
  });

  it("a guest clock off by more than a second is set, or the guest says why it cannot", async () => {
    const d = await fleet.daemon();
    await d.rpc.call("compute.vm.create", { ...vmSpec(d, "clock"), workload: { argv: TICKER } });
    const started = await d.rpc.call("compute.vm.start", { id: "clock" });
    fleet.pids.add(started.pid);
    // Only where the guest cannot set the host's clock: under a uid of its own (a user namespace) or unprivileged.
    expect(started.vmm_uid !== undefined || process.getuid?.() !== 0).toBe(true);
    const conn = await connectGuestPort({ path: vmmFile(d, "clock", "vsock.sock"), pid: pidOf(started) }, DEFAULT_EXEC_PORT, Date.now() + 20_000);
    const reply = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const reader = new FrameReader();
      conn.on("data", (chunk: Buffer) => {
        for (const f of reader.push(chunk)) if (f.type === FrameType.Synced) resolve(decodeJson(f.payload));
      });
      conn.once("close", () => reject(new Error("closed without an answer")));
      conn.write(encodeFrame(FrameType.Sync, { unix_ms: Date.now() + 3_600_000, seed: Buffer.from("fresh").toString("base64url") }));
      conn.resume();
    });
    conn.destroy();
    expect(reply).toMatchObject({ clock_set: false, clock_error: expect.stringMatching(/clock_settime: Operation not permitted/), reseeded: true });
    expect(reply.skew_ms as number).toBeGreaterThan(3_500_000);
    await eventually(async () => ((await log(d, "clock")).includes("cannot be set: clock_settime: Operation not permitted") ? true : undefined));
  });

  it("reboots the guest through CH: the console follows the new serial device, exec works again", async () => {
    const d = await fleet.daemon();
    await d.rpc.call("compute.vm.create", { ...vmSpec(d, "again"), workload: { argv: TICKER } });
    fleet.pids.add((await d.rpc.call("compute.vm.start", { id: "again" })).pid);
    await eventually(async () => ((await lastTick(d, "again")) >= 2 ? true : undefined), 20_000);
    await d.rpc.call("compute.vm.pause", { id: "again" });
    expect((await d.rpc.callError("compute.vm.reboot", { id: "again" })).message).toMatch(/it is paused/);
    await d.rpc.call("compute.vm.resume", { id: "again" });

    const rebooted = await d.rpc.call("compute.vm.reboot", { id: "again" });
    expect(rebooted).toMatchObject({ state: "Running", substate: "Active" });
    expect(rebooted.transitions.at(-1)).toMatchObject({ from: "Running", to: "Running", event: "REBOOT" });
    // A second boot of the init on the same console log, and its workload counting from 1 again.
    await eventually(async () => ((await log(d, "again")).match(/my_hypervisor-init starting/g)?.length === 2 ? true : undefined), 20_000);
    await eventually(
      async () => (/my_hypervisor-init starting[\s\S]*my_hypervisor-init starting[\s\S]*tick 1\b/.test(await log(d, "again")) ? true : undefined),
      20_000,
    );
    expect((await d.rpc.exec({ id: "again", argv: ["true"] })).exit_code).toBe(0);
  });

  it("re-adopts a VM as CH has it after a restart, and stops a paused VM", async () => {
    const d = await fleet.daemon();
    await d.rpc.call("compute.vm.create", { ...vmSpec(d, "held"), workload: { argv: TICKER } });
    const pid = pidOf(await d.rpc.call("compute.vm.start", { id: "held" }));
    fleet.pids.add(pid);
    await d.rpc.call("compute.vm.pause", { id: "held" });
    expect(JSON.parse(fs.readFileSync(`${d.stateDir}/held/state.json`, "utf8"))).toMatchObject({ state: "Running", substate: "Paused" });
    await d.stop();

    const d2 = await fleet.daemon({ dir: d.dir });
    expect(await d2.rpc.call("compute.vm.status", { id: "held" })).toMatchObject({ state: "Running", substate: "Paused", pid });
    await d2.rpc.call("compute.vm.resume", { id: "held" });
    await d2.stop();

    // Paused behind the daemon's back while it was down: the next daemon believes CH, not the record.
    expect(await chPut(d, "held", "vm.pause")).toBe(204);
    const d3 = await fleet.daemon({ dir: d.dir });
    const found = await d3.rpc.call("compute.vm.status", { id: "held" });
    expect(found).toMatchObject({ state: "Running", substate: "Paused" });
    expect(found.transitions.at(-1)).toMatchObject({ event: "PAUSE", reason: "found so by vm.info at re-adoption" });

    const stopped = await d3.rpc.call("compute.vm.stop", { id: "held" });
    expect(stopped).toMatchObject({ state: "Stopped", substate: null, pid: null });
    // The power button cannot reach a paused guest: the stop went straight to vmm.shutdown.
    expect(stopped.transitions.at(-1)?.reason).toMatch(/vmm.shutdown/);

    // remove {force} of a paused VM stops it the same way, and leaves nothing running.
    const again = await d3.rpc.call("compute.vm.start", { id: "held" });
    fleet.pids.add(again.pid);
    await d3.rpc.call("compute.vm.pause", { id: "held" });
    expect(await d3.rpc.call("compute.vm.remove", { id: "held", force: true })).toMatchObject({ removed: true });
    expect(fs.existsSync(`/proc/${again.pid}`)).toBe(false);
  });

  it("takes what CH says of the guest after a pause made behind its back, at the next reconcile sweep", async () => {
    const d = await fleet.daemon();
    await d.rpc.call("compute.vm.create", vmSpec(d, "behind"));
    fleet.pids.add((await d.rpc.call("compute.vm.start", { id: "behind" })).pid);
    expect(await chPut(d, "behind", "vm.pause")).toBe(204);
    process.kill(d.proc.pid as number, "SIGHUP");
    const paused = await eventually(async () => {
      const s = await d.rpc.call("compute.vm.status", { id: "behind" });
      return s.substate === "Paused" ? s : undefined;
    });
    expect(paused.transitions.at(-1)).toMatchObject({ event: "PAUSE", reason: "found Paused by vm.info" });
    expect(await chPut(d, "behind", "vm.resume")).toBe(204);
    process.kill(d.proc.pid as number, "SIGHUP");
    await eventually(async () => ((await d.rpc.call("compute.vm.status", { id: "behind" })).substate === "Active" ? true : undefined));
  });

  it("after a pause CH answers too late, says the guest's state is unknown until vm.info says, then takes it; stats meanwhile does not wait", async () => {
    const d = await fleet.daemon();
    await d.rpc.call("compute.vm.create", vmSpec(d, "stalled"));
    const pid = pidOf(await d.rpc.call("compute.vm.start", { id: "stalled" }));
    fleet.pids.add(pid);
    // The VMM stands still past the call's 10 s; the request waits in its socket and is carried out once it goes on.
    process.kill(pid, "SIGSTOP");
    try {
      const log = path.join(d.dir, "daemon.log");
      let pauseAnswered = false;
      const pausing = d.rpc.callError("compute.vm.pause", { id: "stalled" }).finally(() => {
        pauseAnswered = true;
      });
      await eventually(() => (fs.readFileSync(log, "utf8").includes('"audit":"compute.vm.pause"') ? true : undefined));
      // A read does not queue behind the call in flight: it gives up on CH's figures after its own bound (2 s).
      const stats = await d.rpc.call("compute.vm.stats", { id: "stalled" });
      expect(stats).toMatchObject({ devices: null, memory_actual_size: null });
      expect(pauseAnswered).toBe(false);
      expect((await pausing).code).toBe(-32005);
      const unknown = await d.rpc.call("compute.vm.status", { id: "stalled" });
      expect(unknown).toMatchObject({ substate: "Active", vmm_state_unknown: { after: "vm.pause" } });
    } finally {
      process.kill(pid, "SIGCONT");
    }
    await eventually(async () => ((await chVmInfo(d, "stalled")).state === "Paused" ? true : undefined));
    process.kill(d.proc.pid as number, "SIGHUP");
    // A check that ran before CH went on may have found it running still: the sweep's, after, finds it paused.
    await eventually(async () => {
      const s = await d.rpc.call("compute.vm.status", { id: "stalled" });
      return s.substate === "Paused" && s.vmm_state_unknown === undefined ? true : undefined;
    }, 10_000);
  }, 30_000);
});
