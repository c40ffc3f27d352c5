/** The VM lifecycle end to end: real daemon, real test VMM, real sockets. */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Daemon, eventually, isAlive, pidOf, SIM_BIN, startDaemon, VmmPids, vmmFile, vmSpec } from "./harness.js";

let d: Daemon;
const pids = new VmmPids();

beforeAll(async () => {
  d = await startDaemon();
});
afterAll(async () => {
  pids.killAll();
  await d.stop();
});

const states = (status: Record<string, any>) => status.transitions.map((t: { from: string; to: string }) => `${t.from}>${t.to}`);

describe("create, start, stop, start, stop, remove", () => {
  it("walks the whole lifecycle and records every transition", async () => {
    const created = await d.rpc.call("compute.vm.create", vmSpec(d, "walk"));
    expect(created).toMatchObject({ id: "walk", state: "Configured", pid: null });
    expect(states(created)).toEqual(["Pending>Provisioning", "Provisioning>Configured"]);

    const running = await d.rpc.call("compute.vm.start", { id: "walk" });
    expect(running.state).toBe("Running");
    expect(isAlive(pidOf(running))).toBe(true);
    pids.add(running.pid);
    const apiSocket = vmmFile(d, "walk", "api.sock");
    expect(fs.existsSync(apiSocket)).toBe(true);

    const stopped = await d.rpc.call("compute.vm.stop", { id: "walk" });
    expect(stopped).toMatchObject({ state: "Stopped", pid: null });
    expect(stopped.transitions.at(-1)?.reason).toMatch(/power button/);
    expect(isAlive(pidOf(running))).toBe(false);
    expect(fs.existsSync(apiSocket)).toBe(false);

    const again = await d.rpc.call("compute.vm.start", { id: "walk" });
    expect(again.state).toBe("Running");
    expect(again.pid).not.toBe(running.pid);
    pids.add(again.pid);
    await d.rpc.call("compute.vm.stop", { id: "walk" });

    const status = await d.rpc.call("compute.vm.status", { id: "walk" });
    expect(states(status)).toEqual([
      "Pending>Provisioning",
      "Provisioning>Configured",
      "Configured>Starting",
      "Starting>Running",
      "Running>Stopping",
      "Stopping>Stopped",
      "Stopped>Starting",
      "Starting>Running",
      "Running>Stopping",
      "Stopping>Stopped",
    ]);
    expect(status.transitions.map((t: { seq: number }) => t.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(status.spec).toEqual(vmSpec(d, "walk"));

    expect(await d.rpc.call("compute.vm.remove", { id: "walk" })).toEqual({ id: "walk", removed: true });
    expect(fs.existsSync(path.join(d.stateDir, "walk"))).toBe(false);
    expect((await d.rpc.callError("compute.vm.status", { id: "walk" })).code).toBe(-32001);
  });

  it("persists the record as state.json version 2", async () => {
    await d.rpc.call("compute.vm.create", vmSpec(d, "persisted"));
    const record = JSON.parse(fs.readFileSync(path.join(d.stateDir, "persisted", "state.json"), "utf8"));
    expect(record).toMatchObject({ version: 2, id: "persisted", state: "Configured", vmm: null, generation: 2 });
    expect(fs.statSync(path.join(d.stateDir, "persisted", "state.json")).mode & 0o777).toBe(0o600);
  });

  it("lists every VM with its state and pid", async () => {
    await d.rpc.call("compute.vm.create", vmSpec(d, "listed"));
    const { vms } = await d.rpc.call("compute.vm.list", {});
    expect(vms).toContainEqual({ id: "listed", state: "Configured", pid: null });
  });
});

describe("application errors", () => {
  it("-32001 for an unknown VM, on every method that takes an id", async () => {
    for (const method of ["start", "stop", "remove", "status"]) {
      const err = await d.rpc.callError(`compute.vm.${method}`, { id: "nosuchvm" });
      expect(err.code).toBe(-32001);
      expect(err.message).toContain("nosuchvm");
    }
  });

  it("-32002 for a duplicate id, and the first VM is untouched", async () => {
    await d.rpc.call("compute.vm.create", vmSpec(d, "dup"));
    const err = await d.rpc.callError("compute.vm.create", { ...vmSpec(d, "dup"), vcpus: 4 });
    expect(err.code).toBe(-32002);
    expect((await d.rpc.call("compute.vm.status", { id: "dup" })).spec?.vcpus).toBe(1);
  });

  it("-32002 for exactly one of many concurrent creates of one id", async () => {
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => d.rpc.call("compute.vm.create", vmSpec(d, "race"))));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results.filter((r) => r.status === "rejected")) expect((r as PromiseRejectedResult).reason.error.code).toBe(-32002);
  });

  it("-32003 for an illegal transition, with the state in data, and nothing changes", async () => {
    await d.rpc.call("compute.vm.create", vmSpec(d, "illegal"));
    const before = await d.rpc.call("compute.vm.status", { id: "illegal" });
    const err = await d.rpc.callError("compute.vm.stop", { id: "illegal" });
    expect(err).toMatchObject({ code: -32003, data: { state: "Configured" } });
    expect(await d.rpc.call("compute.vm.status", { id: "illegal" })).toEqual(before);

    const started = await d.rpc.call("compute.vm.start", { id: "illegal" });
    pids.add(started.pid);
    expect((await d.rpc.callError("compute.vm.start", { id: "illegal" })).data).toMatchObject({ state: "Running" });
    const removeErr = await d.rpc.callError("compute.vm.remove", { id: "illegal" });
    expect(removeErr).toMatchObject({ code: -32003, data: { state: "Running" } });
    expect(removeErr.message).toMatch(/force/);
    expect(isAlive(pidOf(started))).toBe(true);
  });

  it("-32602 for a missing kernel, a relative path, a bad id or an unknown field, naming it", async () => {
    const missing = await d.rpc.callError("compute.vm.create", { ...vmSpec(d, "nokernel"), boot: { kernel: "/nonexistent/vmlinux" } });
    expect(missing.code).toBe(-32602);
    expect(missing.message).toContain("/nonexistent/vmlinux");
    const relative = await d.rpc.callError("compute.vm.create", { ...vmSpec(d, "rel"), disks: [{ path: "disk.img" }] });
    expect(relative.message).toMatch(/\/disks\/0\/path.*absolute/);
    expect((await d.rpc.callError("compute.vm.create", vmSpec(d, "Upper_Case"))).message).toMatch(/\/id/);
    expect((await d.rpc.callError("compute.vm.create", { ...vmSpec(d, "typo"), memory: 5 })).message).toMatch(/memory/);
    const { vms } = await d.rpc.call("compute.vm.list", {});
    expect(vms.map((v: { id: string }) => v.id)).not.toContain("nokernel");
  });

  it("-32004 when the VMM rejects the boot; the VM is Failed with CH's error and can be retried", async () => {
    const kernel = path.join(d.dir, "vanishing-kernel");
    fs.writeFileSync(kernel, "k");
    await d.rpc.call("compute.vm.create", { ...vmSpec(d, "bootfail"), boot: { kernel } });
    fs.rmSync(kernel);
    const err = await d.rpc.callError("compute.vm.start", { id: "bootfail" });
    expect(err.code).toBe(-32004);
    expect(err.data).toMatchObject({ call: "vm.boot", status: 500 });
    expect((err.data as { body: string[] }).body[0]).toBe("Error from API");
    const status = await d.rpc.call("compute.vm.status", { id: "bootfail" });
    expect(status.state).toBe("Failed");
    expect(status.transitions.at(-1)).toMatchObject({ from: "Starting", to: "Failed", event: "START_FAILED" });
    expect(status.transitions.at(-1)?.reason).toContain("vm.boot");
    expect(fs.existsSync(vmmFile(d, "bootfail", "api.sock"))).toBe(false);

    fs.writeFileSync(kernel, "k");
    const retried = await d.rpc.call("compute.vm.start", { id: "bootfail" });
    expect(retried.state).toBe("Running");
    pids.add(retried.pid);
    await d.rpc.call("compute.vm.remove", { id: "bootfail", force: true });
    expect(isAlive(pidOf(retried))).toBe(false);
  });

  it("-32005 when the start times out; no VMM process is left", async () => {
    await d.rpc.call("compute.vm.create", vmSpec(d, "slowboot", "sim.guest=scripted sim.boot_ms=3000"));
    const err = await d.rpc.callError("compute.vm.start", { id: "slowboot", timeout_ms: 300 });
    expect(err.code).toBe(-32005);
    const status = await d.rpc.call("compute.vm.status", { id: "slowboot" });
    expect(status).toMatchObject({ state: "Failed", pid: null });
    const record = JSON.parse(fs.readFileSync(path.join(d.stateDir, "slowboot", "state.json"), "utf8"));
    expect(record.vmm).toBeNull();
  });
});

describe("the VMM on its own", () => {
  it("a guest that powers itself off leaves the VM Stopped", async () => {
    await d.rpc.call("compute.vm.create", vmSpec(d, "selfoff", "sim.guest=scripted sim.poweroff_after_ms=200"));
    const pid = pidOf(await d.rpc.call("compute.vm.start", { id: "selfoff" }));
    pids.add(pid);
    const status = await eventually(async () => {
      const s = await d.rpc.call("compute.vm.status", { id: "selfoff" });
      return s.state === "Running" ? undefined : s;
    });
    expect(status).toMatchObject({ state: "Stopped", pid: null });
    expect(status.transitions.at(-1)).toMatchObject({ from: "Running", to: "Stopped", event: "GUEST_POWERED_OFF" });
  });

  it("a VMM killed behind the daemon's back leaves the VM Failed with the reason", async () => {
    await d.rpc.call("compute.vm.create", vmSpec(d, "killed"));
    const pid = pidOf(await d.rpc.call("compute.vm.start", { id: "killed" }));
    process.kill(pid, "SIGKILL");
    const status = await eventually(async () => {
      const s = await d.rpc.call("compute.vm.status", { id: "killed" });
      return s.state === "Failed" ? s : undefined;
    });
    expect(status.transitions.at(-1)).toMatchObject({ from: "Running", to: "Failed", event: "VMM_EXITED" });
    expect(status.transitions.at(-1)?.reason).toContain("SIGKILL");
    expect(fs.existsSync(vmmFile(d, "killed", "api.sock"))).toBe(false);
  });

  it("a guest that ignores the power button is stopped by escalation after timeout_ms", async () => {
    await d.rpc.call("compute.vm.create", vmSpec(d, "stubborn", "sim.guest=scripted sim.power_button=ignore"));
    const pid = pidOf(await d.rpc.call("compute.vm.start", { id: "stubborn" }));
    pids.add(pid);
    const stopped = await d.rpc.call("compute.vm.stop", { id: "stubborn", timeout_ms: 200 });
    expect(stopped.state).toBe("Stopped");
    expect(stopped.transitions.at(-1)?.reason).toMatch(/vmm\.shutdown/);
    expect(isAlive(pid)).toBe(false);
  });

  it("force skips the power button", async () => {
    await d.rpc.call("compute.vm.create", vmSpec(d, "forced", "sim.guest=scripted sim.power_button=ignore"));
    const pid = pidOf(await d.rpc.call("compute.vm.start", { id: "forced" }));
    pids.add(pid);
    const stopped = await d.rpc.call("compute.vm.stop", { id: "forced", force: true });
    expect(stopped.transitions.at(-1)?.reason).toMatch(/vmm\.shutdown/);
  });
});

describe("concurrency", () => {
  it("operations on one VM run in order while status answers at once", async () => {
    await d.rpc.call("compute.vm.create", vmSpec(d, "queued", "sim.guest=scripted sim.boot_ms=800"));
    let startReturned = false;
    const start = d.rpc.call("compute.vm.start", { id: "queued" }).finally(() => {
      startReturned = true;
    });
    const stop = d.rpc.call("compute.vm.stop", { id: "queued" });
    await eventually(async () => ((await d.rpc.call("compute.vm.status", { id: "queued" })).state === "Starting" ? true : undefined));
    const { vms } = await d.rpc.call("compute.vm.list", {});
    expect(vms.find((v: { id: string }) => v.id === "queued")?.state).toBe("Starting");
    expect(startReturned).toBe(false);
    const started = await start;
    pids.add(started.pid);
    expect(started.state).toBe("Running");
    expect((await stop).state).toBe("Stopped");
  });

  it("a remove queued behind a start sees the running VM", async () => {
    await d.rpc.call("compute.vm.create", vmSpec(d, "queued2", "sim.guest=scripted sim.boot_ms=300"));
    const start = d.rpc.call("compute.vm.start", { id: "queued2" });
    const remove = d.rpc.callError("compute.vm.remove", { id: "queued2" });
    const started = await start;
    pids.add(started.pid);
    expect(await remove).toMatchObject({ code: -32003, data: { state: "Running" } });
  });
});

describe("the VMM binary", () => {
  it("a binary gone after start-up fails start with -32004 naming it; the daemon stays up", async () => {
    // One that is missing at start-up stops the daemon there (cli.test.ts); this one goes away later.
    const copy = path.join(d.dir, "vanishing-vmm.js");
    fs.copyFileSync(SIM_BIN, copy);
    fs.chmodSync(copy, 0o755);
    const other = await startDaemon({ vmm: copy, args: ["--vmm-uid-range", "off"] });
    try {
      await other.rpc.call("compute.vm.create", vmSpec(other, "nobin"));
      fs.rmSync(copy);
      const err = await other.rpc.callError("compute.vm.start", { id: "nobin" });
      expect(err.code).toBe(-32004);
      expect(err.message).toContain(copy);
      expect((await other.rpc.call("compute.vm.status", { id: "nobin" })).state).toBe("Failed");
    } finally {
      await other.stop();
    }
  });

  it("a VMM that exits before its API answers fails start with its output", async () => {
    const dir = d.dir;
    const fake = path.join(dir, "broken-vmm.sh");
    fs.writeFileSync(fake, "#!/bin/sh\necho 'Error creating hypervisor: /dev/kvm: No such file' >&2\nexit 1\n", { mode: 0o755 });
    const other = await startDaemon({ vmm: fake });
    try {
      await other.rpc.call("compute.vm.create", vmSpec(other, "early"));
      const err = await other.rpc.callError("compute.vm.start", { id: "early" });
      expect(err.code).toBe(-32004);
      expect(err.message).toMatch(/exit code 1.*Error creating hypervisor/);
    } finally {
      await other.stop();
    }
  });
});
