/**
 * Each VMM runs under its seccomp filter (`--seccomp true` unless the VM asks
 * for `log`), and a VMM the kernel kills with SIGSYS is reported as a seccomp
 * violation, not as a crash.
 */
import fs from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { Fleet, pidOf, vmmFile, vmSpec } from "./harness.js";

const fleet = new Fleet();
afterAll(() => fleet.cleanup());

const argvOf = (pid: number) => fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
const VIOLATION = "sim.seccomp_violation=boot";

describe("seccomp", () => {
  it("is enforced by default: a forbidden system call fails the start, reported as a seccomp violation", async () => {
    const d = await fleet.daemon();
    await d.rpc.call("compute.vm.create", vmSpec(d, "plain"));
    const pid = pidOf(await d.rpc.call("compute.vm.start", { id: "plain" }));
    fleet.pids.add(pid);
    expect(argvOf(pid).join(" ")).toContain("--seccomp true");

    await d.rpc.call("compute.vm.create", vmSpec(d, "strict", VIOLATION));
    const err = await d.rpc.callError("compute.vm.start", { id: "strict" });
    expect(err.code).toBe(-32004);
    expect(err.message).toMatch(/the VMM died during vm\.boot \(killed by SIGSYS: a seccomp violation .*Probable seccomp violation: si_syscall=321/);
    const status = await d.rpc.call("compute.vm.status", { id: "strict" });
    expect(status.state).toBe("Failed");
    expect(status.transitions.at(-1)?.reason).toMatch(/seccomp violation/);
  });

  it('with seccomp: "log" the call is let through and logged, and the VM runs', async () => {
    const d = await fleet.daemon();
    await d.rpc.call("compute.vm.create", { ...vmSpec(d, "lenient", VIOLATION), seccomp: "log" });
    const started = await d.rpc.call("compute.vm.start", { id: "lenient" });
    const [pid, state] = [pidOf(started), started.state];
    fleet.pids.add(pid);
    expect(state).toBe("Running");
    expect(argvOf(pid).join(" ")).toContain("--seccomp log");
    expect(fs.readFileSync(vmmFile(d, "lenient", "vmm.log"), "utf8")).toMatch(/seccomp \(log\): system call 321/);
    expect((await d.rpc.callError("compute.vm.create", { ...vmSpec(d, "bad"), seccomp: "off" })).code).toBe(-32602);
  });
});
