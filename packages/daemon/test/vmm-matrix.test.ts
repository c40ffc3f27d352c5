/**
 * The daemon's lifecycle end to end, once on each VMM: the test VMM and the real cloud-hypervisor v53.0 (skipped,
 * saying why, where `../shared/cloud-hypervisor/` or /dev/kvm is missing). One suite, two binaries: the same requests
 * and the same expectations, except where this host makes the real binary answer otherwise (a snapshot), or where only
 * the real binary does something at all (seccomp, Landlock), each said where it is.
 *
 * Both run a guest that does nothing: the real binary a kernel that halts its vCPU (real-ch.ts), the test VMM the
 * same (`sim.guest=none`). So nothing here needs a guest: exec, the console's input and the restart policy are tested
 * on the test VMM alone (exec.test.ts, console.test.ts, supervision.test.ts), whose guest is the real init, and on a
 * KVM host by `make test-kvm` (guest-e2e.test.ts).
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REAL_CH_BINARY, realChMissing, realKernel } from "../../ch-sim/test/real-ch.js";
import { processesOfUid } from "./attacker.js";
import { chVmInfo, type Daemon, eventually, Fleet, isAlive, pidOf, SIM_BIN, tempDir, vmmFile } from "./harness.js";
import { vmmsUnder } from "./invariants.js";

interface VmmUnderTest {
  name: string;
  /** The binary as the daemon runs it; the real one is copied where a jailed VMM's uid can run it. */
  binary: (dir: string) => string;
  /** Why it cannot run here. */
  missing: string | undefined;
  real: boolean;
}

const VMMS: VmmUnderTest[] = [
  { name: "cloud-hypervisor-sim", binary: () => SIM_BIN, missing: undefined, real: false },
  {
    name: "cloud-hypervisor v53.0",
    binary: (dir) => {
      const copy = path.join(dir, "cloud-hypervisor");
      fs.copyFileSync(REAL_CH_BINARY, copy);
      fs.chmodSync(copy, 0o755);
      return copy;
    },
    missing: realChMissing,
    real: true,
  },
];

const CMDLINE = "console=ttyS0 sim.guest=none";
const asRoot = process.getuid?.() === 0;
/** A nested PVM host (this machine) cannot get a vCPU's state, so the real binary cannot snapshot here. */
const pvmHost = fs.existsSync("/sys/module/kvm_pvm");

const uidOf = (pid: number) => Number(procStatus(pid, "Uid")?.split(/\s+/)[0]);

/** A field of /proc/<pid>/status. */
function procStatus(pid: number, field: string): string | undefined {
  return new RegExp(`^${field}:\\s*(.*)$`, "m").exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
}

for (const vmm of VMMS) {
  describe.skipIf(vmm.missing !== undefined)(`the lifecycle on ${vmm.name}${vmm.missing ? ` (skipped: ${vmm.missing})` : ""}`, () => {
    const fleet = new Fleet();
    let d: Daemon;
    let binary: string;
    let disk: string;
    afterAll(() => fleet.cleanup());
    beforeAll(async () => {
      const dir = tempDir();
      binary = vmm.binary(dir);
      d = await fleet.daemon({ dir, vmm: binary, args: ["--reconcile-interval-ms", "200"] });
      disk = path.join(dir, "disk.raw");
      fs.writeFileSync(disk, Buffer.alloc(1 << 20));
      // The VM's VMM opens it read-write under its own uid.
      fs.chmodSync(disk, 0o666);
    });

    const spec = (id: string, extra: Record<string, unknown> = {}) => ({
      id,
      vcpus: 1,
      memory_mib: 64,
      boot: { kernel: realKernel(), cmdline: CMDLINE },
      ...extra,
    });
    const start = async (id: string, extra: Record<string, unknown> = {}) => {
      await d.rpc.call("compute.vm.create", spec(id, extra));
      const pid = pidOf(await d.rpc.call("compute.vm.start", { id }));
      fleet.pids.add(pid);
      return pid;
    };
    const status = (id: string) => d.rpc.call("compute.vm.status", { id });
    /** The uids the VMs' VMMs ran under. */
    const uids = new Set<number>();
    const waitForState = (id: string, state: string) => eventually(async () => ((await status(id)).state === state ? status(id) : undefined), 20_000);

    it("creates and starts a VM: its VMM under a uid of its own, confined", async () => {
      const pid = await start("one", { disks: [{ path: disk }] });
      expect(await status("one")).toMatchObject({ state: "Running", substate: "Active", pid });
      if (asRoot) {
        uids.add(uidOf(pid));
        expect(uidOf(pid)).not.toBe(0);
        // In a mount namespace of its own: the jail.
        expect(fs.readlinkSync(`/proc/${pid}/ns/mnt`)).not.toBe(fs.readlinkSync("/proc/self/ns/mnt"));
      }
      const info = await chVmInfo(d, "one");
      expect(info.state).toBe("Running");
      // The daemon asks CH to confine itself to the config's paths; only the real binary does (the test VMM takes
      // the field and, like every field, gives it back).
      expect(info.config.landlock_enable).toBe(true);
      // seccomp: the real binary filters each of its threads but the main one (mode 2), the API server's and the
      // vCPUs' among them; the test VMM is node and has no filters to install.
      if (vmm.real) {
        const threads = fs.readdirSync(`/proc/${pid}/task`).map((t) => ({ name: procStatus(Number(t), "Name"), seccomp: procStatus(Number(t), "Seccomp") }));
        expect(threads.filter((t) => t.name === "http-server" || t.name === "vcpu0")).toEqual([
          { name: "http-server", seccomp: "2" },
          { name: "vcpu0", seccomp: "2" },
        ]);
      }
    });

    it("pauses and resumes it, CH agreeing", async () => {
      await d.rpc.call("compute.vm.pause", { id: "one" });
      expect(await status("one")).toMatchObject({ state: "Running", substate: "Paused" });
      expect((await chVmInfo(d, "one")).state).toBe("Paused");
      await d.rpc.call("compute.vm.resume", { id: "one" });
      expect(await status("one")).toMatchObject({ state: "Running", substate: "Active" });
      expect((await chVmInfo(d, "one")).state).toBe("Running");
    });

    it("reports its stats with CH's counters, a latency no request has had being null", async () => {
      const stats = await d.rpc.call("compute.vm.stats", { id: "one" });
      expect(stats.memory_actual_size).toBe(64 * 1024 * 1024);
      expect(Object.keys(stats.devices ?? {})).toEqual(["_disk0"]);
      // No guest code runs on either, so nothing reads or writes the disk.
      const none = { bytes: 0, ops: 0, latency_min: null, latency_max: null, latency_avg: null };
      const expected = Object.fromEntries(["read", "write"].flatMap((kind) => Object.entries(none).map(([k, v]) => [`${kind}_${k}`, v])));
      expect(stats.devices?._disk0).toEqual(expected);
    });

    const refusesSnapshots = vmm.real && pvmHost;
    it(refusesSnapshots ? "refuses a snapshot on this PVM host cleanly: CH's reason, the whole chain in data" : "snapshots it", async () => {
      if (!refusesSnapshots) {
        expect(await d.rpc.call("compute.vm.snapshot", { id: "one", name: "s1" })).toMatchObject({ name: "s1" });
        return;
      }
      const err = await d.rpc.callError("compute.vm.snapshot", { id: "one", name: "s1" });
      expect(err.message).toMatch(/GetNestedState/);
      // The backtrace CH puts inside its chain stays out of the message, and is kept whole in data.
      expect(err.message).not.toMatch(/backtrace/i);
      expect(JSON.stringify(err.data)).toMatch(/Stack backtrace/);
      // The VM runs on, unpaused, and no partial snapshot is listed.
      expect(await status("one")).toMatchObject({ state: "Running", substate: "Active" });
      expect((await chVmInfo(d, "one")).state).toBe("Running");
      expect((await d.rpc.call("compute.vm.snapshots", { id: "one" })).snapshots).toEqual([]);
    });

    it("stops a guest that never answers the power button by escalating, and starts it again", async () => {
      const pid = pidOf(await status("one"));
      const stopped = await d.rpc.call("compute.vm.stop", { id: "one", timeout_ms: 500 });
      expect(stopped.state).toBe("Stopped");
      expect(stopped.transitions.at(-1)?.reason).toMatch(/vmm\.shutdown/);
      expect(isAlive(pid)).toBe(false);
      // CH leaves its serial socket file behind: the next start must not trip over it.
      const again = pidOf(await d.rpc.call("compute.vm.start", { id: "one" }));
      fleet.pids.add(again);
      expect(await status("one")).toMatchObject({ state: "Running", substate: "Active" });
    });

    it("re-adopts the running VM after a daemon SIGKILL, still driving it", async () => {
      const pid = pidOf(await status("one"));
      d.rpc.close();
      d.proc.kill("SIGKILL");
      await d.proc;
      d = await fleet.daemon({ dir: d.dir, vmm: binary, args: ["--reconcile-interval-ms", "200"] });
      expect(await status("one")).toMatchObject({ state: "Running", pid });
      await d.rpc.call("compute.vm.pause", { id: "one" });
      expect((await chVmInfo(d, "one")).state).toBe("Paused");
      await d.rpc.call("compute.vm.resume", { id: "one" });
    });

    it("sees a VMM SIGKILLed: the VM Failed, with the signal when the daemon started that VMM", async () => {
      const pid = await start("two");
      process.kill(pid, "SIGKILL");
      const failed = await waitForState("two", "Failed");
      expect(failed.transitions.at(-1)).toMatchObject({ from: "Running", to: "Failed", event: "VMM_EXITED" });
      expect(failed.transitions.at(-1)?.reason).toContain("SIGKILL");
      expect(fs.existsSync(vmmFile(d, "two", "api.sock"))).toBe(false);
      // One this daemon adopted is not its child: it sees it gone, not how it went.
      process.kill(pidOf(await status("one")), "SIGKILL");
      expect((await waitForState("one", "Failed")).transitions.at(-1)).toMatchObject({ from: "Running", to: "Failed", event: "VMM_EXITED" });
    });

    it("removes VMs, running or not, leaving no VMM, no process of theirs and no file", async () => {
      const pid = await start("three");
      if (asRoot) uids.add(uidOf(pid));
      for (const id of ["one", "two", "three"]) await d.rpc.call("compute.vm.remove", { id, force: true });
      expect((await d.rpc.call("compute.vm.list", {})).vms).toEqual([]);
      expect(isAlive(pid)).toBe(false);
      expect(vmmsUnder(d.dir)).toEqual([]);
      const left = (dir: string) => fs.readdirSync(dir).filter((f) => ["one", "two", "three"].includes(f));
      expect(left(d.stateDir)).toEqual([]);
      expect(left(d.vmmDir)).toEqual([]);
      for (const uid of uids) expect(processesOfUid(uid), `processes of VMM uid ${uid}`).toEqual([]);
    });
  });
}
