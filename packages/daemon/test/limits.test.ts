/**
 * Per-VM limits that CH enforces itself: disk and NIC rate limiters, vCPU
 * affinity, and Landlock confining the VMM to its config's paths. What the
 * test VMM received in vm.create is read back through its own API.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { chVmInfo, Fleet, vmSpec } from "./harness.js";

const fleet = new Fleet();
afterAll(() => fleet.cleanup());

describe("limits CH enforces", () => {
  it("rate limits, vCPU affinity and Landlock reach vm.create", async () => {
    const d = await fleet.daemon();
    const disk = path.join(d.dir, "disk.raw");
    fs.writeFileSync(disk, Buffer.alloc(4096));
    // The VM's VMM opens it read-write under its own uid.
    fs.chmodSync(disk, 0o666);
    await d.rpc.call("compute.vm.create", {
      ...vmSpec(d, "limited"),
      vcpus: 2,
      cpu_affinity: [0],
      disks: [{ path: disk, rate_limit: { bytes_per_s: 10_000_000, ops_per_s: 500 } }],
    });
    fleet.pids.add((await d.rpc.call("compute.vm.start", { id: "limited" })).pid);
    const { config } = await chVmInfo(d, "limited");
    expect(config.cpus.affinity).toEqual([
      { vcpu: 0, host_cpus: [0] },
      { vcpu: 1, host_cpus: [0] },
    ]);
    // CH gives back the config it holds, every default filled in: a burst nobody asked for is null.
    expect(config.disks[0].rate_limiter_config).toEqual({
      bandwidth: { size: 10_000_000, one_time_burst: null, refill_time: 1000 },
      ops: { size: 500, one_time_burst: null, refill_time: 1000 },
    });
    expect(config.landlock_enable).toBe(true);
    expect(config.landlock_rules).toBeUndefined();
  });

  it("refuses a host CPU that is not online, and an empty rate limit, naming the field", async () => {
    const d = await fleet.daemon();
    const cpu = await d.rpc.callError("compute.vm.create", { ...vmSpec(d, "pinned"), cpu_affinity: [0, 8191] });
    expect(cpu).toMatchObject({ code: -32602, data: { errors: [{ path: "/cpu_affinity/1" }], cpu: 8191 } });
    expect(cpu.message).toMatch(/host CPU 8191 is not online on this host \(online: /);
    const empty = await d.rpc.callError("compute.vm.create", { ...vmSpec(d, "empty"), disks: [{ path: d.kernel, rate_limit: {} }] });
    expect(empty.code).toBe(-32602);
    expect(JSON.stringify(empty.data)).toMatch(/\/disks\/0/);
    expect((await d.rpc.call("compute.vm.list", {})).vms).toEqual([]);
  });
});
