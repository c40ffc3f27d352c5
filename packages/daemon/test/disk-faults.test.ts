/**
 * Full, read-only and vanishing disks under the daemon's directories (issue
 * 11): the state dir and the console dir on small tmpfs mounts of their own.
 * The daemon never crashes and never wedges a VM; a stop always stops the
 * VMM; disk errors are -32013 naming the path; serial output that cannot be
 * kept is counted; everything recovers by itself once space returns. Needs
 * root (mount); skips saying so otherwise.
 */
import fs from "node:fs";
import path from "node:path";
import { execaSync } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { type Daemon, type DaemonOptions, eventually, Fleet, isAlive, pidOf, tempDir, vmSpec } from "./harness.js";

const isRoot = process.getuid?.() === 0;
const fleet = new Fleet();
const mounts: string[] = [];
afterAll(() => {
  fleet.cleanup();
  for (const m of mounts) execaSync("umount", ["-l", m], { reject: false });
});

/** A tmpfs of its own at `<dir>/fs`; `options` as for mount(8), e.g. size=16m. */
function smallDisk(options: string): string {
  const mnt = path.join(tempDir(), "fs");
  fs.mkdirSync(mnt);
  execaSync("mount", ["-t", "tmpfs", "-o", `${options},mode=0700`, "tmpfs", mnt]);
  mounts.push(mnt);
  return mnt;
}

/** Fills the filesystem with one file until not a byte more fits; returns the file. */
function fill(mnt: string): string {
  const file = path.join(mnt, "filler");
  const fd = fs.openSync(file, "a");
  try {
    for (const size of [1 << 20, 1 << 12, 1]) {
      const chunk = Buffer.alloc(size, 1);
      try {
        for (;;) fs.writeSync(fd, chunk);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

/** Creates files until the filesystem has no inode left; returns them. */
function exhaustInodes(mnt: string): string[] {
  const files: string[] = [];
  for (let i = 0; ; i++) {
    const file = path.join(mnt, `inode-${i}`);
    try {
      fs.writeFileSync(file, "");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e;
      return files;
    }
    files.push(file);
  }
}

const status = (d: Daemon, id: string) => d.rpc.call("compute.vm.status", { id });

async function running(d: Daemon, id: string, cmdline = ""): Promise<number> {
  await d.rpc.call("compute.vm.create", vmSpec(d, id, cmdline));
  const pid = pidOf(await d.rpc.call("compute.vm.start", { id }));
  fleet.pids.add(pid);
  return pid;
}

const readRecord = (d: Daemon, id: string) => JSON.parse(fs.readFileSync(path.join(d.stateDir, id, "state.json"), "utf8"));
const logText = (d: Daemon) => fs.readFileSync(path.join(d.dir, "daemon.log"), "utf8");

describe.skipIf(!isRoot)("a full state disk (needs root to mount a small tmpfs)", () => {
  it("counts lost serial output, still stops VMMs, refuses creates naming the file, and recovers by itself", async () => {
    const mnt = smallDisk("size=24m");
    const opts: DaemonOptions = { stateDir: path.join(mnt, "state"), args: ["--reconcile-interval-ms", "200", "--console-log-max-mib", "4"] };
    const d = await fleet.daemon(opts);
    await running(d, "talk", "sim.guest=scripted sim.serial_interval_ms=10");
    const gentle = await running(d, "gentle");
    const forced = await running(d, "forced");
    const removed = await running(d, "removed");
    const filler = fill(mnt);

    await eventually(async () => ((await status(d, "talk")).console.lost_bytes > 0 ? true : undefined));
    // Stops of every kind stop the VMM, answer, and say the record is behind.
    const stopped = await d.rpc.call("compute.vm.stop", { id: "gentle" });
    expect(stopped).toMatchObject({ state: "Stopped", pid: null, unsaved: { error: expect.stringMatching(/state\.json: .*\(ENOSPC\)/) } });
    expect(isAlive(gentle)).toBe(false);
    expect(await d.rpc.call("compute.vm.stop", { id: "forced", force: true })).toMatchObject({ state: "Stopped", unsaved: expect.any(Object) });
    expect(isAlive(forced)).toBe(false);
    // A create is refused, naming the file, and leaves nothing.
    const refused = await d.rpc.callError("compute.vm.create", vmSpec(d, "nospace"));
    expect(refused).toMatchObject({ code: -32013, data: { errno: "ENOSPC", path: path.join(d.stateDir, "nospace", "state.json") } });
    expect(fs.existsSync(path.join(d.stateDir, "nospace"))).toBe(false);
    expect(await d.rpc.call("compute.vm.remove", { id: "removed", force: true })).toEqual({ id: "removed", removed: true });
    expect(isAlive(removed)).toBe(false);
    expect((await d.rpc.call("compute.vm.list", {})).vms.map((v: { id: string }) => v.id).sort()).toEqual(["forced", "gentle", "talk"]);

    // Space returns: records catch up, the serial log resumes, the events journal is whole again.
    fs.rmSync(filler);
    await eventually(async () => ((await status(d, "gentle")).unsaved === undefined ? true : undefined));
    await eventually(async () => ((await status(d, "forced")).unsaved === undefined ? true : undefined));
    expect(readRecord(d, "gentle")).toMatchObject({ state: "Stopped", vmm: null });
    const lost = (await status(d, "talk")).console.lost_bytes;
    const end = (await d.rpc.call("compute.vm.logs", { id: "talk", tail: 1 })).next;
    await eventually(async () => ((await d.rpc.call("compute.vm.logs", { id: "talk", tail: 1 })).next > end + 100 ? true : undefined));
    expect((await status(d, "talk")).console.lost_bytes).toBe(lost);
    await eventually(() => (logText(d).includes("serial log writable again") ? true : undefined));
    const { next } = await d.rpc.call("compute.vm.events.tail", { limit: 1000 });
    await eventually(() => (fs.readFileSync(path.join(d.stateDir, "events.jsonl"), "utf8").includes(`"seq":${next},`) ? true : undefined));
    await d.rpc.call("compute.vm.remove", { id: "talk", force: true });
    await d.stop();
  });

  it("a snapshot on a full disk fails naming the file, keeps nothing, and the guest runs on; one taken with room works", async () => {
    const mnt = smallDisk("size=16m");
    const d = await fleet.daemon({ stateDir: path.join(mnt, "state") });
    await running(d, "snap");
    const filler = fill(mnt);
    const err = await d.rpc.callError("compute.vm.snapshot", { id: "snap", name: "full" });
    expect(err).toMatchObject({ code: -32013, data: { errno: "ENOSPC" } });
    const after = await status(d, "snap");
    expect(after).toMatchObject({ state: "Running", substate: "Active" });
    // The record that a snapshot is under way could not be written: refused before the guest was touched.
    expect(after.transitions.at(-1)?.event).toBe("STARTED");
    expect((await d.rpc.call("compute.vm.snapshots", { id: "snap" })).snapshots).toEqual([]);
    expect(fs.readdirSync(path.join(d.stateDir, "snap", "snapshots"))).toEqual([]);
    expect((await d.rpc.exec({ id: "snap", argv: ["true"] })).exit_code).toBe(0);
    fs.rmSync(filler);
    await d.rpc.call("compute.vm.snapshot", { id: "snap", name: "roomy" });
    expect((await d.rpc.call("compute.vm.snapshots", { id: "snap" })).snapshots.map((s: { name: string }) => s.name)).toEqual(["roomy"]);
  });

  it("the daemon starts on a full disk, and re-adopts its VMs", async () => {
    const mnt = smallDisk("size=16m");
    const opts: DaemonOptions = { stateDir: path.join(mnt, "state") };
    const first = await fleet.daemon(opts);
    const pid = await running(first, "survivor");
    for (let i = 0; i < 5; i++) await first.rpc.call("compute.vm.status", { id: "survivor" });
    await first.stop();
    const filler = fill(mnt);
    const second = await fleet.daemon({ ...opts, dir: first.dir });
    expect((await second.rpc.call("compute.vm.list", {})).vms).toEqual([{ id: "survivor", state: "Running", pid }]);
    fs.rmSync(filler);
    await second.rpc.call("compute.vm.remove", { id: "survivor", force: true });
    await second.stop();
  });

  it("a read-only state disk: the daemon starts, serves, refuses writes naming the file (EROFS), and writes once it can", async () => {
    const mnt = smallDisk("size=16m");
    const opts: DaemonOptions = { stateDir: path.join(mnt, "state") };
    const first = await fleet.daemon(opts);
    await first.rpc.call("compute.vm.create", vmSpec(first, "kept"));
    await first.stop();
    // A tmpfs goes read-only only with no file open for writing: the daemon is stopped and no VMM runs.
    execaSync("mount", ["-o", "remount,ro", mnt]);
    const d = await fleet.daemon({ ...opts, dir: first.dir });
    expect((await d.rpc.call("compute.vm.list", {})).vms).toEqual([{ id: "kept", state: "Configured", pid: null }]);
    expect(await d.rpc.callError("compute.vm.create", vmSpec(d, "new"))).toMatchObject({ code: -32013, data: { errno: "EROFS" } });
    expect(await d.rpc.callError("compute.vm.remove", { id: "kept" })).toMatchObject({
      code: -32013,
      data: { errno: "EROFS", path: path.join(d.stateDir, "kept") },
    });
    expect((await d.rpc.call("compute.vm.list", {})).vms).toEqual([{ id: "kept", state: "Configured", pid: null }]);
    execaSync("mount", ["-o", "remount,rw", mnt]);
    expect(await d.rpc.call("compute.vm.remove", { id: "kept" })).toEqual({ id: "kept", removed: true });
    expect((await d.rpc.call("compute.vm.create", vmSpec(d, "new"))).state).toBe("Configured");
    await d.stop();
  });

  it("a running VM's directory removed by hand: the record is written again and the VM survives a restart", async () => {
    const d = await fleet.daemon({ args: ["--reconcile-interval-ms", "200"] });
    const pid = await running(d, "doomed", "sim.guest=scripted sim.serial_interval_ms=10");
    // Gone from its path in one step: a recursive delete would race the VMM writing into it (ENOTEMPTY).
    fs.renameSync(path.join(d.stateDir, "doomed"), path.join(d.dir, "doomed-moved-away"));
    await eventually(() => (fs.existsSync(path.join(d.stateDir, "doomed", "state.json")) ? true : undefined));
    await eventually(() => (logText(d).includes("state.json had vanished; written again") ? true : undefined));
    // The serial log goes on in the new directory.
    await eventually(() => (fs.readdirSync(path.join(d.stateDir, "doomed")).some((f) => f.startsWith("serial-")) ? true : undefined));
    d.rpc.close();
    d.proc.kill("SIGKILL");
    await d.proc;
    const again = await fleet.daemon({ dir: d.dir, args: ["--reconcile-interval-ms", "200"] });
    expect(await status(again, "doomed")).toMatchObject({ state: "Running", pid });
    await again.rpc.call("compute.vm.remove", { id: "doomed", force: true });
    expect(isAlive(pid)).toBe(false);
    await again.stop();
  });
});

describe.skipIf(!isRoot)("a console dir out of inodes (needs root to mount a small tmpfs)", () => {
  it("console.endpoint fails naming the socket, and works once an inode is free (the failure is not kept)", async () => {
    const consoleDir = smallDisk("size=1m,nr_inodes=64");
    const d = await fleet.daemon({ consoleDir });
    await d.rpc.call("compute.vm.create", vmSpec(d, "viewer"));
    const files = exhaustInodes(consoleDir);
    const err = await d.rpc.callError("compute.vm.console.endpoint", { id: "viewer" });
    expect(err).toMatchObject({ code: -32013, data: { path: path.join(consoleDir, "viewer.sock"), errno: "ENOSPC" } });
    for (const f of files) fs.rmSync(f);
    expect(await d.rpc.call("compute.vm.console.endpoint", { id: "viewer" })).toEqual({ path: path.join(consoleDir, "viewer.sock") });
    await d.stop();
  });
});
