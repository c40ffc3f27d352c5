/**
 * Limits the host enforces (a cgroup v2 per VM), as seen from a host that
 * cannot: this machine's cgroups are v1, and a daemon under vitest shares
 * vitest's cgroup. There the daemon says so at start-up and in host.info,
 * refuses every start before anything changes, and with
 * --allow-unenforced-limits starts VMs anyway, showing their limits as
 * unenforced and their usage from /proc. Enforcement itself is proven in a
 * real kernel with full cgroup v2, under QEMU (cgroups-qemu.test.ts).
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { eventually, Fleet, pidOf, vmSpec } from "./harness.js";

const fleet = new Fleet();
afterAll(() => fleet.cleanup());

const MiB = 1024 * 1024;

describe("where the host cannot enforce limits", () => {
  it("says so, refuses starts before anything changes, and starts VMs anyway when told to", async () => {
    const strict = await fleet.daemon({ enforceLimits: true });
    const { limits } = await strict.rpc.call("compute.host.info", {});
    // Not this machine's to decide: a host that can enforce them is tested under QEMU.
    expect(limits.problem).toEqual(expect.any(String));
    expect(limits.unenforced_allowed).toBe(false);
    expect(fs.readFileSync(path.join(strict.dir, "daemon.log"), "utf8")).toMatch(/VM limits cannot be enforced on this host: starts will be refused/);

    await strict.rpc.call("compute.vm.create", vmSpec(strict, "refused"));
    const err = await strict.rpc.callError("compute.vm.start", { id: "refused" });
    expect(err).toMatchObject({ code: -32015, data: { id: "refused", missing: limits.missing } });
    expect(err.message).toContain(limits.problem);
    const status = await strict.rpc.call("compute.vm.status", { id: "refused" });
    expect(status).toMatchObject({ state: "Configured", pid: null });
    expect(status.transitions.map((t: { to: string }) => t.to)).not.toContain("Starting");
    await strict.stop();

    const lenient = await fleet.daemon({ dir: strict.dir });
    expect((await lenient.rpc.call("compute.host.info", {})).limits).toMatchObject({ problem: limits.problem, unenforced_allowed: true });
    await lenient.rpc.call("compute.vm.remove", { id: "refused" });
    const disk = path.join(lenient.dir, "disk.raw");
    fs.writeFileSync(disk, Buffer.alloc(64 * 1024));
    // The VM's VMM opens it read-write under its own uid.
    fs.chmodSync(disk, 0o666);
    await lenient.rpc.call("compute.vm.create", { ...vmSpec(lenient, "sized"), vcpus: 2, memory_mib: 256, disks: [{ path: disk }] });
    const pid = pidOf(await lenient.rpc.call("compute.vm.start", { id: "sized" }));
    fleet.pids.add(pid);
    expect((await lenient.rpc.call("compute.vm.status", { id: "sized" })).limits).toEqual({
      cpu_quota_us: 300_000,
      cpu_period_us: 100_000,
      cpu_weight: 200,
      memory_max_bytes: 256 * MiB + 64 * MiB + 8 * MiB,
      memory_high_bytes: 256 * MiB + 64 * MiB + 8 * MiB - 16 * MiB,
      pids_max: 130,
      cgroup: null,
    });

    // Usage from /proc: the VMM process alone.
    const stats = await eventually(async () => {
      const s = await lenient.rpc.call("compute.vm.stats", { id: "sized" });
      return s.cpu.usage_us > 0 ? s : undefined;
    });
    expect(stats).toMatchObject({ id: "sized", pid, source: "process", cgroup: null, memory: { oom_kills: null } });
    expect(stats.memory.current_bytes).toBeGreaterThan(MiB);
    expect(stats.pids.current).toBeGreaterThanOrEqual(1);
    // CH's own view: each device's counters (the guest kernel read the disk's first block at boot), the memory it holds.
    expect(Object.keys(stats.devices ?? {})).toEqual(["_disk0"]);
    expect(stats.devices?._disk0).toMatchObject({ read_bytes: 4096, read_ops: 1, write_bytes: 0, write_ops: 0 });
    expect(stats.memory_actual_size).toBe(256 * MiB);
    await lenient.rpc.call("compute.vm.stop", { id: "sized", force: true });
    expect(await lenient.rpc.callError("compute.vm.stats", { id: "sized" })).toMatchObject({ code: -32003 });
    expect((await lenient.rpc.callError("compute.vm.stats", { id: "nosuch" })).code).toBe(-32001);
  });
});
