/**
 * The tenant boundary, attacked (issue 22, ADR 0009's threat model): a guest that took over its VMM acts as the
 * VMM's uid inside its jail, and a client passes specs made to climb out. Neither may reach the host's files, another
 * tenant's VM, or the daemon's working.
 */
import { createHash } from "node:crypto";
import { once } from "node:events";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { asUid, asVmm, inJailOf, processesOfUid } from "./attacker.js";
import { chVmInfo, type Daemon, eventually, Fleet, pidOf, tempDir, vmmFile, vmSpec } from "./harness.js";

const isRoot = process.getuid?.() === 0;
const fleet = new Fleet();
afterAll(() => fleet.cleanup());

async function started(d: Daemon, id: string, extra: Record<string, unknown> = {}): Promise<{ pid: number; uid: number }> {
  await d.rpc.call("compute.vm.create", { ...vmSpec(d, id), hostname: id, ...extra });
  const s = await d.rpc.call("compute.vm.start", { id });
  fleet.pids.add(s.pid);
  return { pid: pidOf(s), uid: s.vmm_uid as number };
}

/** Listens on the abstract name it is given, until killed. */
const SQUAT = `require("net").createServer().listen("\\0" + process.argv[1])`;
/** Connects to the abstract name argv[1], then to 127.0.0.1:argv[2]; prints what each gave. */
const PROBE = `const net = require("net");
const probe = (what, target) => new Promise((done) => {
  const c = net.connect(target);
  c.once("data", (d) => { console.log(what, d.toString().trim()); c.destroy(); done(); });
  c.once("error", (e) => { console.log(what, e.code); done(); });
});
probe("abstract", "\\0" + process.argv[1]).then(() => probe("tcp", { host: "127.0.0.1", port: Number(process.argv[2]) }));`;
const log = (d: Daemon) => fs.readFileSync(path.join(d.dir, "daemon.log"), "utf8");

describe("spec paths that climb out", () => {
  it("refuses a path with '.', '..' or '//' segments, or one through a symbolic link, and leaves the file as it was", async () => {
    const d = await fleet.daemon();
    const target = path.join(d.dir, "precious.img");
    fs.writeFileSync(target, "the host's own file\n", { mode: 0o640 });
    const climbing = `/../../../..${target}`;
    for (const [p, why] of [
      [climbing, /canonical/],
      [`${d.dir}/./precious.img`, /canonical/],
      [`${d.dir}//precious.img`, /canonical/],
    ] as const) {
      const err = await d.rpc.callError("compute.vm.create", { ...vmSpec(d, "climb"), disks: [{ path: p }] });
      expect(err).toMatchObject({ code: -32602 });
      expect(err.message).toMatch(why);
    }
    const kernelErr = await d.rpc.callError("compute.vm.create", { ...vmSpec(d, "climb"), boot: { kernel: `/..${d.kernel}` } });
    expect(kernelErr).toMatchObject({ code: -32602 });
    const link = path.join(d.dir, "link.img");
    fs.symlinkSync(target, link);
    const linked = await d.rpc.callError("compute.vm.create", { ...vmSpec(d, "climb"), disks: [{ path: link }] });
    expect(linked).toMatchObject({ code: -32602, data: { file: link } });
    expect(linked.message).toMatch(new RegExp(`symbolic link at ${link}.*${target}`));
    expect(fs.readFileSync(target, "utf8")).toBe("the host's own file\n");
    expect(fs.statSync(target).mode & 0o777).toBe(0o640);
    expect((await d.rpc.call("compute.vm.list", {})).vms).toEqual([]);
  });

  it.skipIf(!isRoot)("fails the start, leaving the file alone, when a path became a symbolic link after create", async () => {
    const d = await fleet.daemon();
    const dir = path.join(d.dir, "images");
    fs.mkdirSync(dir, { mode: 0o755 });
    const disk = path.join(dir, "disk.img");
    fs.writeFileSync(disk, Buffer.alloc(4096), { mode: 0o644 });
    const secret = path.join(d.dir, "secret");
    fs.writeFileSync(secret, "the host's own file\n", { mode: 0o600 });
    await d.rpc.call("compute.vm.create", { ...vmSpec(d, "swapped"), disks: [{ path: disk, readonly: true }] });
    fs.rmSync(disk);
    fs.symlinkSync(secret, disk);
    const err = await d.rpc.callError("compute.vm.start", { id: "swapped" });
    expect(err.message).toMatch(new RegExp(`${disk}.*symbolic link`));
    expect((await d.rpc.call("compute.vm.status", { id: "swapped" })).state).toBe("Failed");
    expect(fs.readFileSync(secret, "utf8")).toBe("the host's own file\n");
    expect(fs.statSync(secret).mode & 0o777).toBe(0o600);
  });
});

describe.skipIf(!isRoot)("a VMM taken over by its guest (needs root)", () => {
  it("never shares a uid: a torn record's uid stays held, and a removed VM's is free only once nothing runs under it", async () => {
    const dir = tempDir();
    const args = ["--vmm-uid-range", "200300-200303"];
    const first = await fleet.daemon({ dir, args });
    const torn = await started(first, "torn");
    first.proc.kill("SIGKILL");
    await first.proc;
    const record = path.join(first.stateDir, "torn", "state.json");
    fs.writeFileSync(record, fs.readFileSync(record, "utf8").slice(0, 40));
    const d = await fleet.daemon({ dir, args });
    expect((await d.rpc.call("compute.vm.status", { id: "torn" })).state).toBe("Failed");
    expect(processesOfUid(torn.uid)).toContain(torn.pid);
    const next = await started(d, "next");
    expect(next.uid).not.toBe(torn.uid);

    // The uid is free again from remove's reply on: nothing of the VM, its guest included, runs under it then.
    expect(processesOfUid(next.uid).length).toBeGreaterThan(1);
    await d.rpc.call("compute.vm.remove", { id: "next", force: true });
    expect(processesOfUid(next.uid)).toEqual([]);
    await d.rpc.call("compute.vm.remove", { id: "torn", force: true });
    expect(processesOfUid(torn.uid)).toEqual([]);
    expect((await started(d, "again")).uid).toBe(200300);
  });

  it("reaches nothing of the daemon's state, and cannot slip a link or another name of its files into a snapshot", async () => {
    // The test VMM takes 5 s to write a snapshot: the attacker plants its entries meanwhile.
    const d = await fleet.daemon({ env: { CH_SIM_SNAPSHOT_DELAY_MS: "5000" } });
    const vm = await started(d, "snap");
    expect(inJailOf(vm.pid, vm.uid, `ls ${d.stateDir}`).stderr).toMatch(/No such file or directory/);
    const secret = path.join(d.dir, "secret");
    fs.writeFileSync(secret, "the host's own file\n", { mode: 0o600 });
    const partial = `${d.stateDir}.staging/snap`;
    const snapshot = d.rpc.callError("compute.vm.snapshot", { id: "snap", name: "s1" });
    // The staging directory is made before the VMM starts (its jail shows it): wait for the snapshot to be under way.
    await eventually(async () => ((await d.rpc.call("compute.vm.status", { id: "snap" })).substate === "Snapshotting" ? true : undefined));
    // A link to a host file, and a file with two names (a hard link across mounts is refused: only within staging).
    const planted = inJailOf(vm.pid, vm.uid, `echo mine > ${partial}/own && ln ${partial}/own ${partial}/hard && ln -s ${secret} ${partial}/link`);
    expect(planted.stderr).toBe("");
    const err = await snapshot;
    expect(err).toMatchObject({ code: -32004, data: { id: "snap" } });
    expect(err.message).toMatch(/is not a plain file of its own/);
    expect(fs.statSync(secret)).toMatchObject({ uid: 0, mode: expect.any(Number) });
    expect(fs.statSync(secret).mode & 0o777).toBe(0o600);
    expect((await d.rpc.call("compute.vm.snapshots", { id: "snap" })).snapshots).toEqual([]);
    expect(fs.readdirSync(partial)).toEqual([]);
    expect(await d.rpc.call("compute.vm.status", { id: "snap" })).toMatchObject({ state: "Running", substate: "Active" });
  });

  it("reaches no TCP port and no abstract socket name of the host, with NICs from the network sibling or none", async () => {
    const dir = tempDir();
    const netd = await fleet.sibling("netd", dir);
    const d = await fleet.daemon({ dir, args: ["--net-socket", netd.socket] });
    const vms = [await started(d, "netless"), await started(d, "wired", { nets: [{ network: "lan" }] })];
    for (const vm of vms) expect(fs.readlinkSync(`/proc/${vm.pid}/ns/net`)).not.toBe(fs.readlinkSync("/proc/self/ns/net"));
    const name = `my_hypervisor-test/${process.pid}`;
    const abstract = net.createServer((c) => c.end("reached\n")).listen(`\0${name}`);
    const tcp = net.createServer((c) => c.end("reached\n")).listen(0, "127.0.0.1");
    await Promise.all([once(abstract, "listening"), once(tcp, "listening")]);
    try {
      // The host's own view first: the probe reaches both from there, so its failures below are the namespace's doing.
      const port = String((tcp.address() as net.AddressInfo).port);
      // Run alongside this process's event loop, which serves both: a synchronous spawn would never let them answer.
      const host = await execa(process.execPath, ["-e", PROBE, name, port]);
      expect(host.stdout).toBe("abstract reached\ntcp reached");
      for (const vm of vms) expect(asVmm(vm.pid, vm.uid, [process.execPath, "-e", PROBE, name, port]).stdout).toBe("abstract ECONNREFUSED\ntcp ENETUNREACH\n");
    } finally {
      abstract.close();
      tcp.close();
    }
  });

  it("cannot keep the daemon from starting: the state dir's lock is taken on what no other uid can open", async () => {
    const dir = tempDir();
    const stateDir = path.join(dir, "state");
    fs.mkdirSync(stateDir, { mode: 0o700 });
    // What took the lock before: an abstract socket name any uid could bind first, read off the state dir's path.
    const name = `my_hypervisor/state-dir/${createHash("sha256").update(fs.realpathSync(stateDir)).digest("hex").slice(0, 32)}`;
    const squatter = execa("setpriv", ["--reuid=200150", "--regid=200150", "--clear-groups", process.execPath, "-e", SQUAT, name], { reject: false });
    try {
      await eventually(() => (fs.readFileSync("/proc/net/unix", "utf8").includes(`@${name}`) ? true : undefined));
      const d = await fleet.daemon({ dir });
      expect((await d.rpc.call("compute.vm.list", {})).vms).toEqual([]);
      // The lock is an flock on the state dir, which no other uid can even open.
      expect(fs.statSync(stateDir).mode & 0o777).toBe(0o700);
      expect(asUid(200150, `exec 3<${stateDir}`).stderr).toMatch(/Permission denied/);
    } finally {
      squatter.kill("SIGKILL");
      await squatter;
    }
  });

  it("is never shown a file its uid could not open, however the path's directories are swapped during its start", async () => {
    const d = await fleet.daemon();
    // A tenant's directory holds a public image and a directory closed to others, whose image is readable by mode.
    const parent = path.join(d.dir, "tenant");
    fs.mkdirSync(path.join(parent, "pub"), { recursive: true, mode: 0o755 });
    fs.mkdirSync(path.join(parent, "sec"), { mode: 0o700 });
    fs.writeFileSync(path.join(parent, "pub", "disk.img"), "public\n", { mode: 0o644 });
    fs.writeFileSync(path.join(parent, "sec", "disk.img"), "secret\n", { mode: 0o644 });
    const disk = path.join(parent, "pub", "disk.img");
    await d.rpc.call("compute.vm.create", { ...vmSpec(d, "flip"), disks: [{ path: disk, readonly: true }] });
    // Swaps the two directories' names without pause while the VM starts again and again.
    const swap = `cd ${parent}; while :; do mv pub x; mv sec pub; mv pub sec; mv x pub; mv pub x; mv sec pub; mv x sec; done`;
    const flipper = execa("sh", ["-c", swap], { reject: false });
    try {
      for (let i = 0; i < 16; i++) {
        const r = await d.rpc.call("compute.vm.start", { id: "flip" }).catch(() => undefined);
        if (!r) continue;
        fleet.pids.add(r.pid);
        const seen = inJailOf(pidOf(r), r.vmm_uid as number, `cat ${disk}`);
        expect(seen.stdout).not.toMatch(/secret/);
        // Shown is the public image, or the empty placeholder of one the uid may not open.
        expect(["public\n", ""]).toContain(seen.stdout);
        await d.rpc.call("compute.vm.stop", { id: "flip", force: true });
      }
    } finally {
      flipper.kill("SIGKILL");
      await flipper;
    }
  });

  it("cannot make the daemon drive another VM by linking its sockets to that VM's", async () => {
    const first = await fleet.daemon();
    const a = await started(first, "a");
    const b = await started(first, "b");
    const relink = ["api", "vsock", "serial"].map((s) => `rm -f ${s}.sock && ln -s ${vmmFile(first, "b", `${s}.sock`)} ${s}.sock`).join(" && ");
    const done = inJailOf(a.pid, a.uid, `cd ${path.join(first.vmmDir, "a")} && ${relink}`);
    expect(done.stderr).toBe("");
    expect(done.status).toBe(0);
    // The links wait for the daemon's next connection to each socket: every one, after a restart.
    await first.stop();
    const d = await fleet.daemon({ dir: first.dir });
    expect(await d.rpc.call("compute.vm.status", { id: "a" })).toMatchObject({ state: "Running", pid: a.pid });
    await eventually(() => (log(d).includes(`"err":"${vmmFile(d, "a", "serial.sock")} is not served by pid ${a.pid}`) ? true : undefined));

    const exec = await d.rpc.callError("compute.vm.exec", { id: "a", argv: ["hostname"], timeout_ms: 1_000 });
    expect(exec).toMatchObject({ code: -32007 });
    expect(exec.message).toMatch(new RegExp(`not served by pid ${a.pid} \\(pid ${b.pid} listens there\\)`));
    const pause = await d.rpc.callError("compute.vm.pause", { id: "a" });
    expect(pause.message).toMatch(new RegExp(`not served by pid ${a.pid}`));
    expect((await chVmInfo(d, "b")).state).toBe("Running");
    // A's stop goes past its API (which answers nothing) to its process; B is not touched.
    await d.rpc.call("compute.vm.stop", { id: "a", force: true });
    expect((await d.rpc.call("compute.vm.status", { id: "a" })).state).toBe("Stopped");
    expect((await chVmInfo(d, "b")).state).toBe("Running");
    expect(await d.rpc.call("compute.vm.status", { id: "b" })).toMatchObject({ state: "Running", pid: b.pid });
    expect((await d.rpc.exec({ id: "b", argv: ["hostname"] })).stdout).toBe("b\n");
  });
});
