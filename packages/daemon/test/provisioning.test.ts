/**
 * Provisioning through the reference siblings, as processes on real sockets:
 * my_hypervisor-netd in its own network namespace (real taps, none on the
 * host) and my_hypervisor-vold on a temporary directory.
 */
import fs from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { chVmInfo, type Daemon, eventually, Fleet, ipInNetd, ipInNetns, type Sibling, slot, tempDir, vmSpec } from "./harness.js";

const isRoot = process.getuid?.() === 0;
const fleet = new Fleet();
const pids = fleet.pids;
afterAll(() => fleet.cleanup());

/** `ip` inside netd's network namespace. */

async function daemonWith(dir: string, sockets: { net?: Sibling; vol?: Sibling }): Promise<Daemon> {
  const args = ["--reconcile-interval-ms", "200"];
  if (sockets.net) args.push("--net-socket", sockets.net.socket);
  if (sockets.vol) args.push("--vol-socket", sockets.vol.socket);
  return fleet.daemon({ dir, args });
}

describe("volumes through my_hypervisor-vold", () => {
  it("a create that needs a sibling the daemon was not given fails with -32602 naming the flag", async () => {
    const d = await daemonWith(tempDir(), {});
    const err = await d.rpc.callError("compute.vm.create", { ...vmSpec(d, "noflag"), disks: [{ volume: "data", size_mib: 8 }] });
    expect(err.code).toBe(-32602);
    expect(err.message).toContain("--vol-socket");
    expect((await d.rpc.call("compute.vm.list", {})).vms).toEqual([]);
    await d.stop();
  });

  it("creates a sparse volume, resolves its path into the VM's config, and detaches it at remove", async () => {
    const dir = tempDir();
    const vol = await fleet.sibling("vold", dir, ["--dir", path.join(dir, "volumes")]);
    const d = await daemonWith(dir, { vol });
    const created = await d.rpc.call("compute.vm.create", { ...vmSpec(d, "withvol"), disks: [{ volume: "data", size_mib: 64 }] });
    expect(created.state).toBe("Configured");
    const file = slot(created.resources.disks, "disk0").path;
    expect(file).toBe(path.join(dir, "volumes", "data.raw"));
    const stat = fs.statSync(file);
    expect(stat.size).toBe(64 * 1024 * 1024);
    expect(stat.blocks * 512).toBeLessThan(1024 * 1024);

    pids.add((await d.rpc.call("compute.vm.start", { id: "withvol" })).pid);
    expect((await chVmInfo(d, "withvol")).config.disks).toEqual([expect.objectContaining({ path: file, readonly: false })]);
    await d.rpc.call("compute.vm.stop", { id: "withvol" });
    expect(await d.rpc.call("compute.vm.remove", { id: "withvol" })).toEqual({ id: "withvol", removed: true });
    expect(await vol.call("vol.list", { owner: "withvol" })).toEqual([]);
    expect(fs.existsSync(file)).toBe(true);
    await d.stop();
  });

  it("a volume sibling down at remove leaves a pending release that completes once it is back", async () => {
    const dir = tempDir();
    const volArgs = ["--dir", path.join(dir, "volumes")];
    const vol = await fleet.sibling("vold", dir, volArgs);
    const d = await daemonWith(dir, { vol });
    await d.rpc.call("compute.vm.create", { ...vmSpec(d, "outage"), disks: [{ volume: "outage", size_mib: 8 }] });
    vol.proc.kill("SIGKILL");
    await vol.proc;
    expect(await d.rpc.call("compute.vm.remove", { id: "outage" })).toEqual({ id: "outage", removed: true, pending_releases: 1 });
    const pending = JSON.parse(fs.readFileSync(path.join(d.stateDir, "pending-releases.json"), "utf8"));
    expect(pending).toEqual([expect.objectContaining({ owner: "outage", sibling: "vol" })]);

    const back = await fleet.sibling("vold", dir, volArgs);
    await eventually(async () => ((await back.call("vol.list", { owner: "outage" })).length === 0 ? true : undefined));
    await eventually(() => (JSON.parse(fs.readFileSync(path.join(d.stateDir, "pending-releases.json"), "utf8")).length === 0 ? true : undefined));
    await d.stop();
  });
});

describe.skipIf(!isRoot)("networks through my_hypervisor-netd (needs root for a network namespace and taps)", () => {
  it("creates real taps on a bridge with deterministic MACs, puts them in the VM's config, and deletes them at remove", async () => {
    const dir = tempDir();
    const netd = await fleet.sibling("netd", dir);
    const d = await daemonWith(dir, { net: netd });
    const created = await d.rpc.call("compute.vm.create", {
      ...vmSpec(d, "withnet"),
      nets: [{ network: "lan" }, { network: "lan", mac: "52:54:00:00:00:07" }],
    });
    const [a, b] = [slot(created.resources.nets, "net0"), slot(created.resources.nets, "net1")];
    expect(a.mac).toMatch(/^02:/);
    expect(b.mac).toBe("52:54:00:00:00:07");
    // Each tap is in the VM's own network namespace, on a bridge there with a veth whose other end is on the network's.
    expect(a.netns).toBe(b.netns);
    const link = await ipInNetns(a.netns, "-o", "link", "show", "dev", a.tap);
    expect(link.exitCode).toBe(0);
    expect(link.stdout).toMatch(/master mhi/);
    expect((await ipInNetd(netd, "-o", "link", "show", "type", "veth")).stdout.match(/master mhb/g)).toHaveLength(2);
    expect((await execa("ip", ["link", "show", "dev", a.tap], { reject: false })).exitCode).not.toBe(0);

    pids.add((await d.rpc.call("compute.vm.start", { id: "withnet" })).pid);
    expect((await chVmInfo(d, "withnet")).config.net).toEqual([
      expect.objectContaining({ tap: a.tap, mac: a.mac }),
      expect.objectContaining({ tap: b.tap, mac: b.mac }),
    ]);
    await d.rpc.call("compute.vm.remove", { id: "withnet", force: true });
    expect(fs.existsSync(a.netns as string)).toBe(false);
    expect((await ipInNetd(netd, "-o", "link", "show", "type", "veth")).stdout.trim()).toBe("");
    expect(await netd.call("net.port.list", { owner: "withnet" })).toEqual([]);
    await d.stop();
  });

  it("a sibling error in the middle of provisioning rolls back what was already prepared", async () => {
    const dir = tempDir();
    const netd = await fleet.sibling("netd", dir);
    const vol = await fleet.sibling("vold", dir, ["--dir", path.join(dir, "volumes")]);
    const d = await daemonWith(dir, { net: netd, vol });
    const err = await d.rpc.callError("compute.vm.create", { ...vmSpec(d, "rollback"), nets: [{ network: "lan" }], disks: [{ volume: "missing" }] });
    expect(err).toMatchObject({ code: -32006, data: { sibling: "vol", method: "vol.attach", error: { code: -32010 } } });
    expect(err.message).toMatch(/does not exist/);
    expect(await netd.call("net.port.list", { owner: "rollback" })).toEqual([]);
    const status = await d.rpc.call("compute.vm.status", { id: "rollback" });
    expect(status).toMatchObject({ state: "Failed", resources: { nets: {}, disks: {} }, pending_releases: [] });
    expect(status.transitions.at(-1)).toMatchObject({ from: "Provisioning", to: "Failed", event: "PROVISION_FAILED" });
    expect((await d.rpc.callError("compute.vm.start", { id: "rollback" })).code).toBe(-32003);
    expect(await d.rpc.call("compute.vm.remove", { id: "rollback" })).toEqual({ id: "rollback", removed: true });
    await d.stop();
  });

  it("concurrent creates never get the same tap", async () => {
    const dir = tempDir();
    const netd = await fleet.sibling("netd", dir);
    const d = await daemonWith(dir, { net: netd });
    const ids = ["c1", "c2", "c3", "c4", "c5", "c6"];
    const made = await Promise.all(ids.map((id) => d.rpc.call("compute.vm.create", { ...vmSpec(d, id), nets: [{ network: "lan" }] })));
    const ports = made.map((s) => slot(s.resources.nets, "net0"));
    expect(new Set(ports.map((p) => p.tap)).size).toBe(ids.length);
    expect(new Set(ports.map((p) => p.netns)).size).toBe(ids.length);
    for (const { tap, netns } of ports) expect((await ipInNetns(netns, "link", "show", "dev", tap)).exitCode).toBe(0);
    await d.stop();
  });

  it("a daemon SIGKILL during provisioning, then a restart, neither duplicates nor leaks", async () => {
    const dir = tempDir();
    const netd = await fleet.sibling("netd", dir, ["--latency-ms", "1500"]);
    const vol = await fleet.sibling("vold", dir, ["--dir", path.join(dir, "volumes")]);
    const first = await daemonWith(dir, { net: netd, vol });
    void first.rpc
      .call("compute.vm.create", { ...vmSpec(first, "cut"), nets: [{ network: "lan" }], disks: [{ volume: "cut", size_mib: 8 }] })
      .catch(() => undefined);
    // Kill the daemon once the network sibling has the request in hand (it logs that, then takes 1.5 s).
    let netdLog = "";
    netd.proc.stderr?.on("data", (d: Buffer) => {
      netdLog += d;
    });
    await eventually(() => (/"port":"cut\/net0".*creating port/.test(netdLog) ? true : undefined));
    first.rpc.close();
    first.proc.kill("SIGKILL");
    await first.proc;
    // The network sibling finishes creating a port that no daemon will ever record.
    await eventually(async () => ((await netd.call("net.port.list", { owner: "cut" })).length === 1 ? true : undefined));

    const second = await daemonWith(dir, { net: netd, vol });
    const { vms } = await second.rpc.call("compute.vm.list", {});
    expect(vms.filter((v: { id: string }) => v.id === "cut")).toEqual([{ id: "cut", state: "Failed", pid: null }]);
    expect(await netd.call("net.port.list", { owner: "cut" })).toEqual([]);
    expect(await vol.call("vol.list", { owner: "cut" })).toEqual([]);
    expect((await ipInNetd(netd, "-o", "link", "show", "type", "veth")).stdout.trim()).toBe("");
    await second.stop();
  });
});
