/**
 * Hostile clients and neighbours (issue 11): slow readers, racing clients, a
 * second daemon, planted links, loose modes, leftovers, signals, bad input.
 * Real daemon, real sockets; every wait is for a condition.
 */
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { DAEMON_BIN, type Daemon, eventually, Fleet, pidOf, RpcConnection, SIM_BIN, startDaemon, tempDir, vmSpec } from "./harness.js";

const fleet = new Fleet();
afterAll(() => fleet.cleanup());

async function crash(d: Daemon): Promise<void> {
  d.rpc.close();
  d.proc.kill("SIGKILL");
  await d.proc;
}

/** The daemon's resident memory, from /proc. */
function rssBytes(pid: number): number {
  const line = fs
    .readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("VmRSS:"));
  return Number(line?.split(/\s+/)[1]) * 1024;
}

describe("a client that never reads its replies", () => {
  it("costs the daemon a bounded amount of memory and stalls only itself", async () => {
    const d = await fleet.daemon();
    const before = rssBytes(d.proc.pid as number);
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssBytes(d.proc.pid as number));
    }, 20);
    const hog = net.connect(d.socket);
    await new Promise((r) => hog.once("connect", r));
    hog.pause();
    // 5000 discoveries: unbounded, their replies alone would be hundreds of megabytes in the daemon.
    const n = 5000;
    hog.write(`${JSON.stringify({ jsonrpc: "2.0", id: 1, method: "rpc.discover" })}\n`.repeat(n));
    // Another client is answered meanwhile, and the daemon holds only what the stalled connection may.
    for (let i = 0; i < 20; i++) expect((await d.rpc.call("compute.vm.list", {})).vms).toEqual([]);
    clearInterval(sampler);
    expect(peak - before).toBeLessThan(64 * 1024 * 1024);
    // Once the hog reads, every one of its calls is answered: nothing was dropped.
    let lines = 0;
    hog.on("data", (chunk: Buffer) => {
      for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) lines += 1;
    });
    hog.resume();
    await eventually(() => (lines === n ? true : undefined), 60_000);
    hog.destroy();
    await d.stop();
  });

  it("a connection whose unsent replies pass the hard limit is closed, with a log line", async () => {
    const d = await fleet.daemon();
    await d.rpc.call("compute.vm.create", vmSpec(d, "chatty"));
    fleet.pids.add((await d.rpc.call("compute.vm.start", { id: "chatty" })).pid);
    const hog = net.connect(d.socket);
    await new Promise((r) => hog.once("connect", r));
    hog.pause();
    // Five calls in flight at once, each answered with 16 MB: 80 MB unsent passes the 64 MiB limit.
    const big = { jsonrpc: "2.0", method: "compute.vm.exec", params: { id: "chatty", argv: ["sh", "-c", "head -c 16000000 /dev/zero | tr '\\0' y"] } };
    hog.write(Array.from({ length: 5 }, (_, i) => `${JSON.stringify({ ...big, id: i })}\n`).join(""));
    const log = path.join(d.dir, "daemon.log");
    await eventually(() => (fs.readFileSync(log, "utf8").includes("does not read its replies; connection closed") ? true : undefined), 60_000);
    const closed = new Promise((r) => hog.once("close", r));
    hog.resume();
    await closed;
    expect((await d.rpc.call("compute.vm.list", {})).vms).toEqual([{ id: "chatty", state: "Running", pid: expect.any(Number) }]);
    await d.rpc.call("compute.vm.remove", { id: "chatty", force: true });
    await d.stop();
  });

  it("a flood of 1000 connections that send and never read leaves the daemon bounded and answering", async () => {
    const d = await fleet.daemon();
    const before = rssBytes(d.proc.pid as number);
    const request = `${JSON.stringify({ jsonrpc: "2.0", id: 1, method: "rpc.discover" })}\n`;
    // One at a time, as clients arrive: a listen backlog that is full for a moment says EAGAIN, and the client tries again.
    const flood: net.Socket[] = [];
    while (flood.length < 1000) {
      const c = await new Promise<net.Socket | undefined>((resolve, reject) => {
        const conn = net.connect(d.socket, () => resolve(conn));
        conn.once("error", (e: NodeJS.ErrnoException) => (e.code === "EAGAIN" ? resolve(undefined) : reject(e)));
        conn.pause();
        conn.write(request);
      });
      if (c) flood.push(c);
      else await new Promise((r) => setImmediate(r));
    }
    for (let i = 0; i < 10; i++) expect((await d.rpc.call("compute.vm.list", {})).vms).toEqual([]);
    expect(rssBytes(d.proc.pid as number) - before).toBeLessThan(300 * 1024 * 1024);
    for (const c of flood) c.destroy();
    expect((await d.rpc.call("compute.vm.list", {})).vms).toEqual([]);
    await d.stop();
  });

  it("a batch over 256 requests is refused whole", async () => {
    const d = await fleet.daemon();
    const batch = Array.from({ length: 257 }, (_, i) => ({ jsonrpc: "2.0", id: i, method: "compute.vm.list" }));
    const [reply] = await d.rpc.raw(`${JSON.stringify(batch)}\n`);
    expect(reply).toMatchObject({ id: null, error: { code: -32600, message: expect.stringMatching(/257 requests; at most 256/) } });
    await d.stop();
  });
});

describe("operations on one id are ordered, create included", () => {
  it("a start sent right behind a create waits for it, and the VM is never seen half-made", async () => {
    const d = await fleet.daemon();
    const conn = await RpcConnection.open(d.socket);
    const [created, started] = await Promise.all([conn.call("compute.vm.create", vmSpec(d, "quick")), conn.call("compute.vm.start", { id: "quick" })]);
    fleet.pids.add(started.pid);
    expect(created.state).toBe("Configured");
    expect(started).toMatchObject({ state: "Running", pid: expect.any(Number) });
    conn.close();
    await d.rpc.call("compute.vm.remove", { id: "quick", force: true });
    await d.stop();
  });
});

describe("one daemon per state dir", () => {
  it("a second daemon on the same state dir exits non-zero naming the holder's pid, before reading anything", async () => {
    const first = await fleet.daemon();
    await first.rpc.call("compute.vm.create", vmSpec(first, "mine"));
    const second = await execa(
      DAEMON_BIN,
      [
        "--rpc-socket",
        path.join(first.dir, "other.sock"),
        "--state-dir",
        first.stateDir,
        "--console-dir",
        path.join(first.dir, "console2"),
        "--cloud-hypervisor",
        SIM_BIN,
      ],
      { reject: false },
    );
    expect(second.exitCode).not.toBe(0);
    expect(second.stderr).toContain(`pid ${first.proc.pid}`);
    expect(second.stderr).toMatch(/state dir .* is in use/);
    expect(fs.existsSync(path.join(first.dir, "other.sock"))).toBe(false);
    expect((await first.rpc.call("compute.vm.list", {})).vms).toEqual([{ id: "mine", state: "Configured", pid: null }]);
    await first.stop();
  });

  it("a lock held by a daemon that was SIGKILLed is free at once", async () => {
    const first = await fleet.daemon();
    await crash(first);
    const second = await fleet.daemon({ dir: first.dir });
    expect(fs.readFileSync(path.join(second.stateDir, "daemon.pid"), "utf8")).toMatch(new RegExp(`^${second.proc.pid} \\d+\\n$`));
    await second.stop();
    expect(fs.existsSync(path.join(second.stateDir, "daemon.pid"))).toBe(false);
  });
});

describe("audit lines", () => {
  it("a stop the daemon's death cuts short is in the log as received, and is finished by the next daemon", async () => {
    const first = await fleet.daemon();
    await first.rpc.call("compute.vm.create", vmSpec(first, "cut"));
    fleet.pids.add((await first.rpc.call("compute.vm.start", { id: "cut" })).pid);
    const log = path.join(first.dir, "daemon.log");
    const stopping = first.rpc.call("compute.vm.stop", { id: "cut" }).catch(() => undefined);
    await eventually(() => (fs.readFileSync(log, "utf8").includes('"audit":"compute.vm.stop"') ? true : undefined));
    const received = fs
      .readFileSync(log, "utf8")
      .split("\n")
      .find((l) => l.includes('"audit":"compute.vm.stop"'));
    expect(JSON.parse(received ?? "{}")).toMatchObject({ msg: "audit", id: "cut", outcome: "received", caller_pid: process.pid });
    await crash(first);
    await stopping;
    const second = await fleet.daemon({ dir: first.dir });
    await eventually(async () => ((await second.rpc.call("compute.vm.status", { id: "cut" })).state === "Stopped" ? true : undefined), 20_000);
  });
});

describe("a start on a loaded host", () => {
  it("waits out a VMM API that answers late, within the start's own deadline", async () => {
    // Every vmm.ping is answered 1.5 s late: a short per-ping timeout would fail the start.
    const d = await fleet.daemon({ env: { CH_SIM_PING_DELAY_MS: "1500" } });
    await d.rpc.call("compute.vm.create", vmSpec(d, "slow"));
    const started = await d.rpc.call("compute.vm.start", { id: "slow" });
    fleet.pids.add(started.pid);
    expect(started.state).toBe("Running");
    await d.rpc.call("compute.vm.stop", { id: "slow", force: true });
    await d.stop();
  });

  it("a start that runs out of time says so, without blaming /dev/kvm", async () => {
    const d = await fleet.daemon({ env: { CH_SIM_PING_DELAY_MS: "3000" } });
    await d.rpc.call("compute.vm.create", vmSpec(d, "late"));
    const err = await d.rpc.callError("compute.vm.start", { id: "late", timeout_ms: 500 });
    expect(err).toMatchObject({ code: -32005, data: { call: "vmm.ping" } });
    expect(err.message).not.toMatch(/kvm/);
    await d.stop();
  });
});

describe("the daemon's directories are not trusted blindly", () => {
  it("a symlink planted at a VM's directory is refused, and nothing lands where it points", async () => {
    const d = await fleet.daemon();
    const outside = tempDir();
    fs.symlinkSync(outside, path.join(d.stateDir, "planted"));
    const err = await d.rpc.callError("compute.vm.create", vmSpec(d, "planted"));
    expect(err).toMatchObject({ code: -32013, data: { path: path.join(d.stateDir, "planted") } });
    expect(err.message).toMatch(/links under the state dir are never followed/);
    expect(fs.readdirSync(outside)).toEqual([]);
    expect(fs.readlinkSync(path.join(d.stateDir, "planted"))).toBe(outside);
    expect(await d.rpc.callError("compute.vm.status", { id: "planted" })).toMatchObject({ code: -32001 });
    await d.stop();
  });

  it("at start-up: loose modes are narrowed, crash leftovers removed, creates cut short forgotten", async () => {
    const first = await fleet.daemon();
    await first.rpc.call("compute.vm.create", vmSpec(first, "kept"));
    await first.rpc.call("compute.vm.console.endpoint", { id: "kept" });
    await crash(first);
    const vmDir = path.join(first.stateDir, "kept");
    fs.chmodSync(first.stateDir, 0o755);
    fs.chmodSync(vmDir, 0o755);
    fs.writeFileSync(path.join(vmDir, "state.json.4242-7.tmp"), "{");
    fs.writeFileSync(path.join(first.stateDir, "events.jsonl.4242-0.tmp"), "");
    // A create that died before its first record: only a temp file, never acknowledged.
    fs.mkdirSync(path.join(first.stateDir, "halfmade"));
    fs.writeFileSync(path.join(first.stateDir, "halfmade", "state.json.4242-8.tmp"), '{"id":"half');
    const second = await fleet.daemon({ dir: first.dir });
    expect(fs.statSync(second.stateDir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(vmDir).mode & 0o777).toBe(0o700);
    expect(fs.readdirSync(vmDir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    expect(fs.existsSync(path.join(second.stateDir, "events.jsonl.4242-0.tmp"))).toBe(false);
    expect(fs.existsSync(path.join(second.stateDir, "halfmade"))).toBe(false);
    expect((await second.rpc.call("compute.vm.list", {})).vms).toEqual([{ id: "kept", state: "Configured", pid: null }]);
    // The console socket the first daemon served is gone until asked for again.
    expect(fs.readdirSync(path.join(second.dir, "console"))).toEqual([]);
    await second.stop();
  });

  it("the test VMM's guest directories do not outlive VMMs that were SIGKILLed", async () => {
    // Unjailed: a jailed VMM's /tmp is its own, and goes with its mount namespace.
    const d = await fleet.daemon({ args: ["--vmm-uid-range", "off"] });
    await d.rpc.call("compute.vm.create", vmSpec(d, "k1"));
    const pid = pidOf(await d.rpc.call("compute.vm.start", { id: "k1" }));
    const dirOf = (p: number) => fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(`chsim-vsock-${p}-`));
    await eventually(() => (dirOf(pid).length === 1 ? true : undefined));
    process.kill(pid, "SIGKILL");
    await eventually(async () => ((await d.rpc.call("compute.vm.status", { id: "k1" })).state === "Failed" ? true : undefined));
    await d.rpc.call("compute.vm.remove", { id: "k1" });
    await d.rpc.call("compute.vm.create", vmSpec(d, "k2"));
    fleet.pids.add((await d.rpc.call("compute.vm.start", { id: "k2" })).pid);
    expect(dirOf(pid)).toEqual([]);
    await d.rpc.call("compute.vm.remove", { id: "k2", force: true });
    await d.stop();
  });
});

describe("signals", () => {
  it("SIGHUP runs a reconcile sweep and the daemon goes on serving", async () => {
    const d = await fleet.daemon();
    d.proc.kill("SIGHUP");
    await eventually(() => (fs.readFileSync(path.join(d.dir, "daemon.log"), "utf8").includes("SIGHUP: running a reconcile sweep now") ? true : undefined));
    expect((await d.rpc.call("compute.vm.list", {})).vms).toEqual([]);
    expect(d.proc.exitCode).toBeNull();
    await d.stop();
  });

  it("SIGTERM answers long polls at once instead of waiting them out", async () => {
    const d = await startDaemon();
    const { next } = await d.rpc.call("compute.vm.events.tail", {});
    const poll = d.rpc.call("compute.vm.events.tail", { since: next, wait_ms: 60_000 });
    // The poll is waiting once the daemon has answered a later call on the same connection.
    await d.rpc.call("compute.vm.list", {});
    d.proc.kill("SIGTERM");
    expect(await poll).toEqual({ events: [], next });
    expect((await d.proc).exitCode).toBe(0);
  });
});

describe("validation", () => {
  it("refuses a NUL in the kernel command line, a newline in a path, bad environment names, and params to rpc.discover", async () => {
    const d = await fleet.daemon();
    const nul = await d.rpc.callError("compute.vm.create", { ...vmSpec(d, "nul"), boot: { kernel: d.kernel, cmdline: "console=ttyS0\u0000evil" } });
    expect(nul).toMatchObject({ code: -32602, message: expect.stringMatching(/NUL/) });
    const env = await d.rpc.callError("compute.vm.create", { ...vmSpec(d, "env"), workload: { argv: ["true"], env: { "A=B": "x" } } });
    expect(env).toMatchObject({ code: -32602, message: expect.stringMatching(/environment variable name/) });
    expect(await d.rpc.callError("compute.vm.exec", { id: "env", argv: ["true"], env: { "1X": "y" } })).toMatchObject({ code: -32602 });
    expect(await d.rpc.callError("rpc.discover", { verbose: true })).toMatchObject({ code: -32602 });
    expect((await d.rpc.discover()).openrpc).toBe("1.3.2");
    // Every -32602 has one shape: where in the params, and what.
    const missing = await d.rpc.callError("compute.vm.create", { ...vmSpec(d, "nokernel"), boot: { kernel: "/nonexistent/vmlinux" } });
    expect(missing).toMatchObject({ code: -32602, data: { errors: [{ path: "/boot/kernel", message: expect.stringMatching(/does not exist/) }] } });
    // A newline in a file's path is refused with the rest of the params (the VMM's jail lists paths a line each).
    const newline = await d.rpc.callError("compute.vm.create", { ...vmSpec(d, "newline"), disks: [{ path: `${d.kernel}\nx` }] });
    expect(newline).toMatchObject({ code: -32602, data: { errors: [{ path: "/disks/0/path", message: expect.stringMatching(/newline/) }] } });
    await d.rpc.call("compute.vm.create", vmSpec(d, "shape"));
    const both = await d.rpc.callError("compute.vm.logs", { id: "shape", offset: 0, tail: 5 });
    expect(both).toMatchObject({ code: -32602, data: { errors: [{ path: "/tail" }] } });
    expect(await d.rpc.callError("rpc.discover", { verbose: true })).toMatchObject({ data: { errors: [{ path: "/" }] } });
    expect((await d.rpc.call("compute.vm.list", {})).vms).toEqual([{ id: "shape", state: "Configured", pid: null }]);
    await d.stop();
  });

  it("echoes an id exactly as it was sent, even past 2^53", async () => {
    const d = await fleet.daemon();
    const conn = net.connect(d.socket);
    let text = "";
    conn.setEncoding("utf8").on("data", (c: string) => {
      text += c;
    });
    const big = "9007199254740993";
    conn.write(`{"jsonrpc":"2.0","id":${big},"method":"compute.vm.list"}\n`);
    conn.write(
      `[{"jsonrpc":"2.0","id":1,"method":"compute.vm.list"},{"jsonrpc":"2.0","method":"compute.vm.list"},{"jsonrpc":"2.0","id":-${big}0,"method":"nope"}]\n`,
    );
    await eventually(() => (text.split("\n").length > 2 ? true : undefined));
    const [single, batch] = text.split("\n");
    expect(single).toMatch(new RegExp(`^\\{"jsonrpc":"2.0","id":${big},"result"`));
    expect(batch).toMatch(new RegExp(`^\\[\\{"jsonrpc":"2.0","id":1,"result".*\\{"jsonrpc":"2.0","id":-${big}0,"error"`));
    conn.destroy();
    await d.stop();
  });
});
