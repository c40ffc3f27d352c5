/**
 * compute.host.info against what the kernel reports, and the refusal of a
 * VMM binary older than the daemon supports.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { eventually, Fleet, SIM_BIN, vmSpec } from "./harness.js";

const fleet = new Fleet();
const isRoot = process.getuid?.() === 0;
afterAll(() => fleet.cleanup());

const meminfoMib = (key: string) => Math.floor(Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(fs.readFileSync("/proc/meminfo", "utf8"))?.[1]) / 1024);
const canOpen = (file: string) => {
  try {
    fs.closeSync(fs.openSync(file, "r+"));
    return true;
  } catch {
    return false;
  }
};
/** findmnt's view of the cgroup v2 mount, not the daemon's reading of mountinfo. */
const cgroup2Mount = (): string | null => {
  try {
    return execFileSync("findmnt", ["-n", "-t", "cgroup2", "-o", "TARGET"], { encoding: "utf8" }).split("\n")[0] || null;
  } catch {
    return null;
  }
};

describe("compute.host.info", () => {
  it("reports the host as the kernel does, the VMM binary, and what VMs with a VMM commit", async () => {
    const d = await fleet.daemon({ defaultUidRange: true });
    const info = await d.rpc.call("compute.host.info", {});
    expect(info.cpus.online).toBe(os.cpus().length);
    expect(info.memory_mib.total).toBe(meminfoMib("MemTotal"));
    expect(info.memory_mib.available).toBeGreaterThan(0);
    const pools = fs.existsSync("/sys/kernel/mm/hugepages") ? fs.readdirSync("/sys/kernel/mm/hugepages") : [];
    expect(info.hugepages.map((p: { size_kib: number }) => `hugepages-${p.size_kib}kB`).sort()).toEqual(pools.sort());
    expect(info.kvm).toMatchObject({ device: "/dev/kvm", usable: canOpen("/dev/kvm") });
    const mount = cgroup2Mount();
    expect(info.cgroup_v2.mount).toBe(mount);
    if (mount) expect(info.cgroup_v2.controllers.join(" ")).toBe(fs.readFileSync(path.join(mount, "cgroup.controllers"), "utf8").trim());
    expect(info.vmm).toEqual({
      binary: SIM_BIN,
      reported: "cloud-hypervisor v53.0.0-sim",
      version: "53.0.0",
      minimum: "50.0",
      supported: true,
      error: null,
      ping: null,
    });
    expect(info.committed).toEqual({ vms: 0, vcpus: 0, memory_mib: 0 });
    // As root, VMMs run under uids of their own by default (ADR 0009).
    expect(info.vmm_users).toEqual(isRoot ? { first: 200000, last: 299999, dir: path.join(d.dir, "vmm"), held: 0 } : null);

    await d.rpc.call("compute.vm.create", { ...vmSpec(d, "one"), vcpus: 1, memory_mib: 64 });
    await d.rpc.call("compute.vm.create", { ...vmSpec(d, "two"), vcpus: 2, memory_mib: 128 });
    for (const id of ["one", "two"]) fleet.pids.add((await d.rpc.call("compute.vm.start", { id })).pid);
    const busy = await d.rpc.call("compute.host.info", {});
    expect(busy.committed).toEqual({ vms: 2, vcpus: 3, memory_mib: 192 });
    expect(busy.vmm.ping).toMatchObject({ version: "53.0.0", features: ["io_uring", "kvm"] });
    await d.rpc.call("compute.vm.stop", { id: "two", force: true });
    expect((await d.rpc.call("compute.host.info", {})).committed).toEqual({ vms: 1, vcpus: 1, memory_mib: 64 });
    expect((await d.rpc.callError("compute.host.info", { verbose: true })).code).toBe(-32602);
  });

  it("refuses every start with a VMM older than v50 before anything changes, and says so at start-up", async () => {
    const d = await fleet.daemon({ env: { CH_SIM_VERSION: "48.0.0" } });
    await d.rpc.call("compute.vm.create", vmSpec(d, "old"));
    const before = await d.rpc.call("compute.vm.status", { id: "old" });
    const err = await d.rpc.callError("compute.vm.start", { id: "old" });
    expect(err).toMatchObject({ code: -32004, data: { id: "old", vmm_version: "48.0.0", minimum: "50.0" } });
    expect(err.message).toBe(
      `start of VM 'old' refused: the VMM binary ${SIM_BIN} is cloud-hypervisor v48.0.0-sim; this daemon needs cloud-hypervisor v50.0 or newer`,
    );
    const after = await d.rpc.call("compute.vm.status", { id: "old" });
    expect(after).toMatchObject({ state: "Configured", pid: null, transitions: before.transitions });
    expect((await d.rpc.call("compute.host.info", {})).vmm).toMatchObject({ version: "48.0.0", supported: false });
    const log = () => fs.readFileSync(path.join(d.dir, "daemon.log"), "utf8");
    await eventually(() => (log().includes("VMM binary is older than this daemon supports") ? true : undefined));
  });
});
