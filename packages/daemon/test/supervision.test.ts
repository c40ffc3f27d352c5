/**
 * Supervision across daemon restarts and VMM deaths: real daemon, real test
 * VMMs, real SIGKILLs.
 */
import fs from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { type Daemon, eventually, Fleet, isAlive, pidOf, SIM_BIN, staleSocket, vmmFile, vmSpec } from "./harness.js";

const fleet = new Fleet();
const pids = fleet.pids;
afterAll(() => fleet.cleanup());
const daemon = (dir?: string, extra: string[] = []) => fleet.daemon({ dir, args: ["--reconcile-interval-ms", "200", ...extra] });
/** As the daemons of version 1 records ran VMMs: as themselves, with every file in the state dir. */
const OLD_LAYOUT = ["--vmm-uid-range", "off"];

async function crash(d: Daemon): Promise<void> {
  d.rpc.close();
  d.proc.kill("SIGKILL");
  await d.proc;
}

async function startVm(d: Daemon, id: string, cmdline = ""): Promise<number> {
  await d.rpc.call("compute.vm.create", vmSpec(d, id, cmdline));
  const pid = pidOf(await d.rpc.call("compute.vm.start", { id }));
  pids.add(pid);
  return pid;
}

const recordPath = (d: Daemon, id: string) => path.join(d.stateDir, id, "state.json");
const readRecord = (d: Daemon, id: string) => JSON.parse(fs.readFileSync(recordPath(d, id), "utf8"));
const writeRecord = (d: Daemon, id: string, record: unknown) => fs.writeFileSync(recordPath(d, id), JSON.stringify(record));

/** Live VMM processes serving this VM's API socket. */
async function vmmsFor(d: Daemon, id: string): Promise<number[]> {
  const { stdout } = await execa("pgrep", ["-f", `path=${vmmFile(d, id, "api.sock")}`], { reject: false });
  return stdout
    .split("\n")
    .filter(Boolean)
    .map(Number)
    .filter((p) => isAlive(p));
}

const waitForState = (d: Daemon, id: string, state: string) =>
  eventually(async () => {
    const s = await d.rpc.call("compute.vm.status", { id });
    return s.state === state ? s : undefined;
  });

describe("re-adoption after a daemon SIGKILL", () => {
  it("finds every running VM Running with the same pid, and can stop it", async () => {
    const first = await daemon();
    const before = new Map<string, number>();
    for (const id of ["a1", "a2", "a3"]) before.set(id, await startVm(first, id));
    await first.rpc.call("compute.vm.create", vmSpec(first, "idle"));
    await crash(first);
    for (const pid of before.values()) expect(isAlive(pid)).toBe(true);

    const second = await daemon(first.dir);
    const { vms } = await second.rpc.call("compute.vm.list", {});
    expect(vms).toEqual(expect.arrayContaining([...before].map(([id, pid]) => ({ id, state: "Running", pid }))));
    expect(vms).toContainEqual({ id: "idle", state: "Configured", pid: null });

    const status = await second.rpc.call("compute.vm.status", { id: "a1" });
    expect(status.transitions.at(-1)).toMatchObject({ to: "Running", seq: 4 });
    expect(readRecord(second, "a1")).toMatchObject({ version: 2, vmm: { pid: before.get("a1"), start_time: expect.stringMatching(/^\d+$/) } });

    const stopped = await second.rpc.call("compute.vm.stop", { id: "a1" });
    expect(stopped).toMatchObject({ state: "Stopped", pid: null });
    expect(isAlive(before.get("a1") as number)).toBe(false);
    await second.stop();
  });

  it("notices an adopted VMM's death and records it in the transitions", async () => {
    const first = await daemon();
    const pid = await startVm(first, "victim");
    const poweroff = await startVm(first, "selfoff", "sim.guest=scripted sim.poweroff_after_ms=1500");
    await crash(first);
    const second = await daemon(first.dir);
    expect((await second.rpc.call("compute.vm.status", { id: "victim" })).pid).toBe(pid);

    process.kill(pid, "SIGKILL");
    const failed = await waitForState(second, "victim", "Failed");
    expect(failed.transitions.at(-1)).toMatchObject({ from: "Running", to: "Failed", event: "VMM_EXITED" });
    expect(failed.transitions.at(-1)?.reason).toContain(String(pid));
    expect(fs.existsSync(vmmFile(second, "victim", "api.sock"))).toBe(false);

    const off = await waitForState(second, "selfoff", "Stopped");
    expect(off.transitions.at(-1)).toMatchObject({ from: "Running", event: "GUEST_POWERED_OFF" });
    expect(isAlive(poweroff)).toBe(false);
    await second.stop();
  });

  it("a VMM that died while the daemon was down is Failed, one whose guest powered off is Stopped", async () => {
    const first = await daemon();
    const killed = await startVm(first, "diedwhiledown");
    const poweredOff = await startVm(first, "offwhiledown", "sim.guest=scripted sim.poweroff_after_ms=300");
    await crash(first);
    process.kill(killed, "SIGKILL");
    await eventually(() => (isAlive(killed) || isAlive(poweredOff) ? undefined : true));
    const second = await daemon(first.dir);
    const died = await second.rpc.call("compute.vm.status", { id: "diedwhiledown" });
    expect(died).toMatchObject({ state: "Failed", pid: null });
    expect(died.transitions.at(-1)).toMatchObject({ event: "VMM_EXITED", reason: expect.stringContaining("while the daemon was down") });
    const off = await second.rpc.call("compute.vm.status", { id: "offwhiledown" });
    expect(off.state).toBe("Stopped");
    expect(off.transitions.at(-1)?.reason).toMatch(/guest powered off/);
    expect(await second.rpc.call("compute.vm.start", { id: "diedwhiledown" })).toMatchObject({ state: "Running" });
    await second.rpc.call("compute.vm.remove", { id: "diedwhiledown", force: true });
    await second.stop();
  });
});

describe("a daemon killed in the middle of an operation", () => {
  it("mid-start: after restart the VM is there once, and at most one VMM serves it", async () => {
    const first = await daemon();
    await first.rpc.call("compute.vm.create", vmSpec(first, "midstart", "sim.guest=scripted sim.boot_ms=1500"));
    void first.rpc.call("compute.vm.start", { id: "midstart" }).catch(() => undefined);
    await waitForState(first, "midstart", "Starting");
    await eventually(() => (readRecord(first, "midstart").vmm ? true : undefined));
    await crash(first);

    const second = await daemon(first.dir);
    const status = await second.rpc.call("compute.vm.status", { id: "midstart" });
    expect(["Running", "Failed"]).toContain(status.state);
    const { vms } = await second.rpc.call("compute.vm.list", {});
    expect(vms.filter((v: { id: string }) => v.id === "midstart")).toHaveLength(1);
    const live = await vmmsFor(second, "midstart");
    expect(live).toEqual(status.state === "Running" ? [status.pid] : []);
    for (const p of live) pids.add(p);
    await second.stop();
  });

  it("mid-stop: the stop is finished after the restart and no VMM is left", async () => {
    const first = await daemon();
    const pid = await startVm(first, "midstop", "sim.guest=scripted sim.power_button=ignore");
    void first.rpc.call("compute.vm.stop", { id: "midstop", timeout_ms: 60_000 }).catch(() => undefined);
    // Crash once Stopping is durable; before that, a restart rightly finds the VM Running.
    await eventually(() => (readRecord(first, "midstop").state === "Stopping" ? true : undefined));
    await crash(first);
    expect(isAlive(pid)).toBe(true);

    const second = await daemon(first.dir);
    const stopped = await waitForState(second, "midstop", "Stopped");
    expect(stopped.transitions.at(-1)?.reason).toMatch(/after a daemon restart/);
    expect(isAlive(pid)).toBe(false);
    expect(await vmmsFor(second, "midstop")).toEqual([]);
    await second.stop();
  });

  it("mid-remove: a removal cut short after its rename is finished at start-up", async () => {
    const first = await daemon();
    await first.rpc.call("compute.vm.create", vmSpec(first, "keep"));
    await crash(first);
    const trash = path.join(first.stateDir, ".removing-gone-0123abcd");
    fs.mkdirSync(trash);
    fs.writeFileSync(path.join(trash, "state.json"), "{}");
    const second = await daemon(first.dir);
    expect(fs.existsSync(trash)).toBe(false);
    expect((await second.rpc.call("compute.vm.list", {})).vms).toEqual([{ id: "keep", state: "Configured", pid: null }]);
    await second.stop();
  });

  it("an orphan VMM that no record owns is killed and its socket removed", async () => {
    const first = await daemon();
    const pid = await startVm(first, "orphaned");
    await crash(first);
    // As if the daemon died between spawning the VMM and recording its pid.
    writeRecord(first, "orphaned", { ...readRecord(first, "orphaned"), state: "Starting", vmm: null });
    const second = await daemon(first.dir);
    const status = await second.rpc.call("compute.vm.status", { id: "orphaned" });
    expect(status.state).toBe("Failed");
    await eventually(() => (isAlive(pid) ? undefined : true));
    expect(fs.existsSync(vmmFile(second, "orphaned", "api.sock"))).toBe(false);
    await second.stop();
  });
});

describe("state.json", () => {
  it("a v1 record is read, its VMM adopted by argv, and the file rewritten as v2", async () => {
    const first = await daemon(undefined, OLD_LAYOUT);
    const pid = await startVm(first, "legacy");
    await first.rpc.call("compute.vm.create", vmSpec(first, "legacyidle"));
    await crash(first);
    for (const id of ["legacy", "legacyidle"]) {
      const { vmm, generation: _g, ...rest } = readRecord(first, id);
      writeRecord(first, id, { ...rest, version: 1, pid: vmm?.pid ?? null });
    }
    const second = await daemon(first.dir, OLD_LAYOUT);
    expect(await second.rpc.call("compute.vm.status", { id: "legacy" })).toMatchObject({ state: "Running", pid });
    const record = readRecord(second, "legacy");
    expect(record).toMatchObject({ version: 2, state: "Running", vmm: { pid, start_time: expect.stringMatching(/^\d+$/) } });
    expect(record.pid).toBeUndefined();
    expect(readRecord(second, "legacyidle")).toMatchObject({ version: 2, state: "Configured", vmm: null });
    await second.rpc.call("compute.vm.stop", { id: "legacy" });
    await second.stop();
  });

  it("a truncated or garbage record is a Failed VM with the reason; the daemon starts and the file is kept", async () => {
    const first = await daemon();
    await first.rpc.call("compute.vm.create", vmSpec(first, "torn"));
    await first.rpc.call("compute.vm.create", vmSpec(first, "garbage"));
    await first.rpc.call("compute.vm.create", vmSpec(first, "fine"));
    await crash(first);
    const torn = fs.readFileSync(recordPath(first, "torn"), "utf8").slice(0, 40);
    fs.writeFileSync(recordPath(first, "torn"), torn);
    fs.writeFileSync(recordPath(first, "garbage"), "\u0000\u0001 not json");

    const second = await daemon(first.dir);
    const status = await second.rpc.call("compute.vm.status", { id: "torn" });
    expect(status).toMatchObject({ state: "Failed", spec: null, pid: null });
    expect(status.transitions.at(-1)).toMatchObject({ event: "LOAD_FAILED", reason: expect.stringContaining("state.json") });
    expect(fs.readFileSync(recordPath(second, "torn"), "utf8")).toBe(torn);
    expect((await second.rpc.call("compute.vm.status", { id: "garbage" })).state).toBe("Failed");
    expect((await second.rpc.call("compute.vm.status", { id: "fine" })).state).toBe("Configured");
    expect(await second.rpc.callError("compute.vm.start", { id: "torn" })).toMatchObject({ code: -32003, data: { state: "Failed" } });
    expect((await second.rpc.callError("compute.vm.create", vmSpec(second, "torn"))).code).toBe(-32002);
    expect(await second.rpc.call("compute.vm.remove", { id: "torn" })).toEqual({ id: "torn", removed: true });
    expect(fs.existsSync(path.join(second.stateDir, "torn"))).toBe(false);
    await second.stop();
  });

  it("a recorded pid now used by another process is neither adopted nor signalled", async () => {
    const first = await daemon();
    const pid = await startVm(first, "reused");
    await crash(first);
    const impostor = execa("sleep", ["30"]);
    const record = readRecord(first, "reused");
    writeRecord(first, "reused", { ...record, vmm: { ...record.vmm, pid: impostor.pid } });
    process.kill(pid, "SIGKILL");
    const second = await daemon(first.dir);
    const status = await second.rpc.call("compute.vm.status", { id: "reused" });
    expect(status).toMatchObject({ state: "Failed", pid: null });
    expect(isAlive(impostor.pid as number)).toBe(true);
    impostor.kill("SIGKILL");
    await impostor.catch(() => undefined);
    await second.stop();
  });

  it("writes are atomic: no temp file is left next to a record", async () => {
    const d = await daemon();
    await startVm(d, "atomic");
    await d.rpc.call("compute.vm.stop", { id: "atomic", force: true });
    expect(fs.readdirSync(path.join(d.stateDir, "atomic")).filter((f) => f.startsWith("state.json"))).toEqual(["state.json"]);
    await d.stop();
  });
});

describe("the periodic reconcile", () => {
  it("kills a VMM started behind the daemon's back", async () => {
    const d = await daemon();
    await d.rpc.call("compute.vm.create", vmSpec(d, "drift"));
    const socket = vmmFile(d, "drift", "api.sock");
    fs.mkdirSync(path.dirname(socket), { recursive: true });
    const rogue = execa(SIM_BIN, ["--api-socket", `path=${socket}`], { reject: false });
    pids.add(rogue.pid as number);
    // Whether or not it got as far as binding its socket: the sweep kills it, and removes the socket if there was one.
    expect((await rogue).signal).toBe("SIGKILL");
    await eventually(() => (fs.existsSync(socket) ? undefined : true));
    expect((await d.rpc.call("compute.vm.status", { id: "drift" })).state).toBe("Configured");
    await d.stop();
  });

  it("removes a stale API socket of a VM with no VMM", async () => {
    const d = await daemon();
    await d.rpc.call("compute.vm.create", vmSpec(d, "stale"));
    const socket = vmmFile(d, "stale", "api.sock");
    fs.mkdirSync(path.dirname(socket), { recursive: true });
    staleSocket(socket);
    await eventually(() => (fs.existsSync(socket) ? undefined : true));
    await d.stop();
  });

  it("kills only the VMM, never a wrapper whose argv names the socket (timeout, strace, systemd-run)", async () => {
    const d = await daemon();
    const socket = vmmFile(d, "wrapped", "api.sock");
    fs.mkdirSync(path.dirname(socket), { recursive: true });
    // A wrapper (here: node -e) with the VMM's arguments in its own argv, running the VMM as its child.
    const script = `const c = require("child_process").spawn(${JSON.stringify(SIM_BIN)}, process.argv.slice(1)); c.on("exit", (code, sig) => console.log(sig))`;
    const wrapper = execa(process.execPath, ["-e", script, "--", "--api-socket", `path=${socket}`], { reject: false });
    pids.add(wrapper.pid as number);
    const result = await wrapper;
    // The VMM inside was SIGKILLed; the wrapper itself was never signalled and reports it.
    expect(result).toMatchObject({ exitCode: 0, stdout: "SIGKILL" });
    await d.stop();
  });
});
