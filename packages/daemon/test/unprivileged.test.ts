/**
 * VMMs under uids of their own (--vmm-uid-range, needs root): each VM holds a
 * uid from create to remove, its VMM runs under it with no capabilities and
 * no_new_privs, and can write only in its own directory. The test VMM, like
 * CH, cannot boot a kernel its uid cannot read.
 */
import fs from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { asUid, inJailOf, processesOfUid } from "./attacker.js";
import { DAEMON_BIN, type Daemon, eventually, Fleet, ipInNetd, ipInNetns, pidOf, slot, tempDir, vmSpec } from "./harness.js";

const isRoot = process.getuid?.() === 0;
const fleet = new Fleet();
afterAll(() => fleet.cleanup());

const FIRST = 200100;
const RANGE = [0, 1, 2, 3].map((i) => FIRST + i);
// A daemon gives no uid that a process runs under: each test starts with every uid of the range free.
afterEach(async () => {
  await eventually(() => {
    const left = RANGE.flatMap(processesOfUid);
    for (const pid of left) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
    return left.length === 0 ? true : undefined;
  }, 10_000);
});
const kvmGid = fs
  .readFileSync("/etc/group", "utf8")
  .split("\n")
  .map((l) => l.split(":"))
  .find((f) => f[0] === "kvm")?.[2];

/** A daemon whose VMMs run under uids FIRST..FIRST+count-1. Its directory must be traversable by them (0711). */
async function unprivilegedDaemon(count: number, dir = tempDir(), extra: string[] = []): Promise<Daemon> {
  fs.chmodSync(dir, 0o711);
  return fleet.daemon({ dir, args: ["--vmm-uid-range", `${FIRST}-${FIRST + count - 1}`, "--vmm-dir", path.join(dir, "vmm"), ...extra] });
}

const status = (pid: number) => fs.readFileSync(`/proc/${pid}/status`, "utf8");
const field = (pid: number, name: string) => new RegExp(`^${name}:[ \\t]*(.*)$`, "m").exec(status(pid))?.[1]?.trim();

describe.skipIf(!isRoot)("VMMs under uids of their own (needs root)", () => {
  it("jails each VMM: it sees its own files, the system's programs and its devices, and nothing else of the host", async () => {
    const d = await unprivilegedDaemon(2);
    // World-readable, so only the jail keeps it out of sight.
    const planted = path.join(d.dir, "planted");
    fs.writeFileSync(planted, "a tenant must not read this\n", { mode: 0o644 });
    const pids: number[] = [];
    for (const id of ["one", "two"]) {
      await d.rpc.call("compute.vm.create", vmSpec(d, id));
      pids.push(pidOf(await d.rpc.call("compute.vm.start", { id })));
      fleet.pids.add(pids.at(-1) as number);
    }
    const [one, two] = pids as [number, number];
    expect(fs.readlinkSync(`/proc/${one}/ns/mnt`)).not.toBe(fs.readlinkSync("/proc/self/ns/mnt"));
    const seen = inJailOf(
      one,
      FIRST,
      `cat ${planted}; ls ${d.stateDir}; ls ${path.join(d.stateDir, "one")}; cat ${path.join(d.stateDir, "one", "state.json")}; ls ${path.join(d.dir, "vmm", "two")}; ls /proc; ls /etc; cat ${d.kernel}; ls /dev`,
    );
    expect(seen.stderr).toMatch(new RegExp(`${planted}: No such file or directory`));
    // Nothing of the daemon's state: CH writes a snapshot in its own directory, and the daemon moves it away.
    expect(seen.stderr).toMatch(new RegExp(`ls: cannot access '${d.stateDir}': No such file or directory`));
    expect(seen.stderr).toMatch(/state\.json: No such file or directory/);
    expect(seen.stderr).toMatch(/vmm\/two.*No such file or directory/);
    expect(seen.stderr).toMatch(/\/etc.*No such file or directory/);
    expect(seen.stdout).toMatch(/not a real kernel/);
    // Its own /proc shows only its own uid's processes: not the other VMM, not the daemon.
    const procs = seen.stdout
      .split("\n")
      .filter((l) => /^\d+$/.test(l))
      .map(Number);
    expect(procs).toContain(one);
    expect(procs).not.toContain(two);
    expect(procs).not.toContain(d.proc.pid);
    expect(seen.stdout).toMatch(/^kvm$/m);
    // Its kernel is read-only there, its own directory writable.
    expect(inJailOf(one, FIRST, `: > ${d.kernel}`).stderr).toMatch(/Read-only file system|Permission denied/);
    expect(inJailOf(one, FIRST, `touch ${path.join(d.dir, "vmm", "one", "scratch")}`).status).toBe(0);
    // The guest runs as before.
    expect((await d.rpc.exec({ id: "two", argv: ["true"] })).exit_code).toBe(0);
  });

  it("runs each VMM under its VM's uid, with no capabilities and no_new_privs, writing only in its own directory", async () => {
    const d = await unprivilegedDaemon(4);
    const pids: number[] = [];
    for (const id of ["one", "two"]) {
      await d.rpc.call("compute.vm.create", { ...vmSpec(d, id), hostname: id });
      const pid = pidOf(await d.rpc.call("compute.vm.start", { id }));
      fleet.pids.add(pid);
      pids.push(pid);
    }
    for (const [i, pid] of pids.entries()) {
      const uid = FIRST + i;
      expect(field(pid, "Uid")).toBe(`${uid}\t${uid}\t${uid}\t${uid}`);
      expect(field(pid, "Gid")).toBe(`${uid}\t${uid}\t${uid}\t${uid}`);
      expect(field(pid, "Groups")).toBe(kvmGid ?? "");
      expect(field(pid, "CapEff")).toBe("0000000000000000");
      expect(field(pid, "CapBnd")).toBe("0000000000000000");
      expect(field(pid, "NoNewPrivs")).toBe("1");
    }
    const vmmDir = (id: string) => path.join(d.dir, "vmm", id);
    expect(fs.statSync(path.join(d.dir, "vmm")).mode & 0o777).toBe(0o711);
    expect(fs.statSync(vmmDir("one"))).toMatchObject({ uid: FIRST, gid: FIRST });
    expect(fs.statSync(vmmDir("one")).mode & 0o777).toBe(0o700);
    expect(fs.readdirSync(vmmDir("one")).sort()).toEqual(expect.arrayContaining(["api.sock", "serial.sock", "vsock.sock"]));
    expect(JSON.parse(fs.readFileSync(path.join(d.stateDir, "two", "state.json"), "utf8")).vmm_uid).toBe(FIRST + 1);
    expect((await d.rpc.call("compute.vm.status", { id: "two" })).vmm_uid).toBe(FIRST + 1);

    // What one VM's uid can reach of another's, and of the daemon's own files: nothing.
    const other = asUid(FIRST, `ls ${vmmDir("two")}`);
    expect(other.status).not.toBe(0);
    expect(other.stderr).toMatch(/Permission denied/);
    expect(asUid(FIRST, `cat ${path.join(d.stateDir, "one", "state.json")}`).stderr).toMatch(/Permission denied/);
    expect(asUid(FIRST, `touch ${path.join(d.dir, "vmm", "planted")}`).stderr).toMatch(/Permission denied/);

    // The guest still works: the test VMM makes its namespaces in a user namespace of its own.
    expect((await d.rpc.exec({ id: "two", argv: ["hostname"] })).stdout).toBe("two\n");
    await d.rpc.call("compute.vm.stop", { id: "one", force: true });
    await d.rpc.call("compute.vm.remove", { id: "one" });
    expect(fs.existsSync(vmmDir("one"))).toBe(false);
  });

  it("re-adopts a VMM under its uid after a crash, says so if the uid is not its VM's, and kills one no record owns", async () => {
    const dir = tempDir();
    const first = await unprivilegedDaemon(4, dir);
    for (const id of ["kept", "orphaned"]) await first.rpc.call("compute.vm.create", vmSpec(first, id));
    const kept = (await first.rpc.call("compute.vm.start", { id: "kept" })).pid;
    const orphan = (await first.rpc.call("compute.vm.start", { id: "orphaned" })).pid;
    fleet.pids.add(kept);
    fleet.pids.add(orphan);
    first.proc.kill("SIGKILL");
    await first.proc;
    // As if the daemon died between spawning the VMM and recording its pid.
    const file = path.join(first.stateDir, "orphaned", "state.json");
    fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, "utf8")), state: "Starting", vmm: null }));
    // A record that names another uid than the one its VMM runs under (edited by hand, or a bug).
    const keptFile = path.join(first.stateDir, "kept", "state.json");
    fs.writeFileSync(keptFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(keptFile, "utf8")), vmm_uid: FIRST + 3 }));
    const second = await unprivilegedDaemon(4, dir);
    expect(await second.rpc.call("compute.vm.status", { id: "kept" })).toMatchObject({ state: "Running", pid: kept });
    const log = fs.readFileSync(path.join(dir, "daemon.log"), "utf8");
    expect(log).toMatch(new RegExp(`"vm":"kept","pid":${kept},"uid":${FIRST},"expected":${FIRST + 3}.*another uid than its VM's`));
    expect((await second.rpc.exec({ id: "kept", argv: ["true"] })).exit_code).toBe(0);
    expect((await second.rpc.call("compute.vm.status", { id: "orphaned" })).state).toBe("Failed");
    await eventually(() => (fs.existsSync(`/proc/${orphan}`) ? undefined : true));
    expect(fs.existsSync(path.join(dir, "vmm", "orphaned", "api.sock"))).toBe(false);
  });

  it("starts a VM whose VMM directory a crash left behind under another VM's uid", async () => {
    const d = await unprivilegedDaemon(2);
    // What a daemon killed mid-remove leaves: the directory of an earlier VM of this id, its files that uid's alone.
    const stale = path.join(d.dir, "vmm", "again");
    fs.mkdirSync(stale, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(stale, "vmm.log"), "an earlier VMM's log\n", { mode: 0o600 });
    for (const f of [stale, path.join(stale, "vmm.log")]) fs.chownSync(f, FIRST + 1, FIRST + 1);
    await d.rpc.call("compute.vm.create", vmSpec(d, "again"));
    const pid = pidOf(await d.rpc.call("compute.vm.start", { id: "again" }));
    fleet.pids.add(pid);
    expect(fs.statSync(stale)).toMatchObject({ uid: FIRST });
    expect(fs.statSync(path.join(stale, "vmm.log"))).toMatchObject({ uid: FIRST });
  });

  it("gives a uid again only after its VM is removed, keeps it across restarts, and says when none is left", async () => {
    const dir = tempDir();
    let d = await unprivilegedDaemon(3, dir);
    const uidOf = (id: string) => JSON.parse(fs.readFileSync(path.join(d.stateDir, id, "state.json"), "utf8")).vmm_uid;
    for (const id of ["a", "b", "c"]) await d.rpc.call("compute.vm.create", vmSpec(d, id));
    expect(["a", "b", "c"].map(uidOf)).toEqual([FIRST, FIRST + 1, FIRST + 2]);
    expect((await d.rpc.call("compute.host.info", {})).vmm_users).toEqual({ first: FIRST, last: FIRST + 2, dir: path.join(dir, "vmm"), held: 3 });
    const full = await d.rpc.callError("compute.vm.create", vmSpec(d, "d"));
    expect(full).toMatchObject({ code: -32014, data: { id: "d", uid_range: [FIRST, FIRST + 2] } });
    expect((await d.rpc.call("compute.vm.list", {})).vms.map((v: { id: string }) => v.id).sort()).toEqual(["a", "b", "c"]);
    await d.rpc.call("compute.vm.remove", { id: "a" });
    await d.stop();
    d = await unprivilegedDaemon(3, dir);
    await d.rpc.call("compute.vm.create", vmSpec(d, "d"));
    expect(["b", "c", "d"].map(uidOf)).toEqual([FIRST + 1, FIRST + 2, FIRST]);
    expect((await d.rpc.callError("compute.vm.create", vmSpec(d, "e"))).code).toBe(-32014);
  });

  it("has the siblings hand each VM's volume and tap to its VMM's uid alone, and take the volume back at remove", async () => {
    const dir = tempDir();
    const vol = await fleet.sibling("vold", dir, ["--dir", path.join(dir, "volumes")]);
    const netd = await fleet.sibling("netd", dir);
    const d = await unprivilegedDaemon(4, dir, ["--vol-socket", vol.socket, "--net-socket", netd.socket]);
    const created = await d.rpc.call("compute.vm.create", {
      ...vmSpec(d, "owned"),
      disks: [
        { volume: "data", size_mib: 1 },
        { volume: "shared", size_mib: 1, readonly: true },
      ],
      nets: [{ network: "lan" }],
    });
    const { path: file } = slot(created.resources.disks, "disk0");
    expect(fs.statSync(slot(created.resources.disks, "disk1").path).mode & 0o777).toBe(0o400);
    const { tap } = slot(created.resources.nets, "net0");
    expect(fs.statSync(file)).toMatchObject({ uid: FIRST, gid: FIRST });
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    // The tap is in a network namespace of the VM's own, joined to the network's bridge by a veth pair.
    const { netns } = slot(created.resources.nets, "net0");
    expect(netns).toMatch(/^\/run\/netns\/mhn[0-9a-f]{12}$/);
    expect((await ipInNetns(netns, "-d", "link", "show", "dev", tap)).stdout).toMatch(new RegExp(`user ${FIRST} group ${FIRST}`));
    expect((await ipInNetd(netd, "link", "show", "dev", tap)).exitCode).not.toBe(0);
    expect((await ipInNetd(netd, "-o", "link", "show", "type", "veth")).stdout).toMatch(/master mhb[0-9a-f]{10}/);
    // The test VMM opens the volume read-write as the VM's uid, as CH would; its VMM runs in the tap's namespace.
    const pid = pidOf(await d.rpc.call("compute.vm.start", { id: "owned" }));
    fleet.pids.add(pid);
    expect(fs.readlinkSync(`/proc/${pid}/ns/net`)).toBe(`net:[${fs.statSync(netns as string).ino}]`);

    // Read-write is anyone else's never; read-only, another VMM uid's neither: without ACLs one uid holds the file.
    const taken = await d.rpc.callError("compute.vm.create", { ...vmSpec(d, "writer"), disks: [{ volume: "data", readonly: true }] });
    expect(taken).toMatchObject({ code: -32006 });
    expect(taken.message).toMatch(/is in use by owned/);
    const shared = await d.rpc.callError("compute.vm.create", { ...vmSpec(d, "reader"), disks: [{ volume: "shared", readonly: true }] });
    expect(shared.message).toMatch(new RegExp(`handed to owned \\(uid ${FIRST}\\): this sibling cannot share it with another VMM uid`));
    await d.rpc.call("compute.vm.remove", { id: "owned", force: true });
    expect(fs.statSync(file)).toMatchObject({ uid: 0, gid: 0 });
    // The namespace went with the VM's last port.
    expect(fs.existsSync(netns as string)).toBe(false);
  });

  it("fails the start as CH does when the VM's uid cannot open its kernel or a disk", async () => {
    const d = await unprivilegedDaemon(3);
    const hidden = path.join(d.dir, "private");
    fs.mkdirSync(hidden, { mode: 0o700 });
    fs.copyFileSync(d.kernel, path.join(hidden, "vmlinux"));
    await d.rpc.call("compute.vm.create", { ...vmSpec(d, "unreadable"), boot: { kernel: path.join(hidden, "vmlinux") } });
    const err = await d.rpc.callError("compute.vm.start", { id: "unreadable" });
    expect(err).toMatchObject({ code: -32004, data: { call: "vm.boot", status: 500 } });
    expect(err.message).toContain("Cannot open kernel file: Permission denied (os error 13)");
    expect((await d.rpc.call("compute.vm.status", { id: "unreadable" })).state).toBe("Failed");

    // A disk the uid may read but not write is refused read-write, and allowed read-only.
    const disk = path.join(d.dir, "disk.raw");
    fs.writeFileSync(disk, Buffer.alloc(4096), { mode: 0o644 });
    await d.rpc.call("compute.vm.create", { ...vmSpec(d, "rw"), disks: [{ path: disk }] });
    const rw = await d.rpc.callError("compute.vm.start", { id: "rw" });
    expect(rw.message).toContain(`Cannot open disk path: I/O error (path=${disk} op=open): Permission denied (os error 13)`);
    await d.rpc.call("compute.vm.create", { ...vmSpec(d, "ro"), disks: [{ path: disk, readonly: true }] });
    fleet.pids.add((await d.rpc.call("compute.vm.start", { id: "ro" })).pid);
  });
});

it("refuses --vmm-dir when VMMs run as the daemon's user, and a malformed range", async () => {
  const dir = tempDir();
  const base = ["--rpc-socket", path.join(dir, "rpc.sock"), "--state-dir", path.join(dir, "state"), "--console-dir", path.join(dir, "console")];
  // A daemon that wrongly accepted the flags would run: the timeout ends it rather than leave it behind.
  const lone = await execa(DAEMON_BIN, [...base, "--vmm-uid-range", "off", "--vmm-dir", dir], { reject: false, timeout: 20_000 });
  expect(lone).toMatchObject({ exitCode: 2, stderr: expect.stringMatching(/--vmm-dir is only used when VMMs run under uids of their own/) });
  const bad = await execa(DAEMON_BIN, [...base, "--vmm-uid-range", "5-2"], { reject: false, timeout: 20_000 });
  expect(bad).toMatchObject({ exitCode: 2, stderr: expect.stringMatching(/--vmm-uid-range must be FIRST-LAST/) });
});
