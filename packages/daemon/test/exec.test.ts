/**
 * compute.vm.exec and my_hypervisor-init, end to end: the test VMM boots the
 * real init (as PID 1 in its own namespaces when the tests run as root) and
 * bridges hybrid vsock to its exec agent.
 */
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { decodeJson, encodeFrame, type Frame, FrameReader, FrameType } from "@my_hypervisor/lib/exec-protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Daemon, eventually, pidOf, type RpcConnection, staleSocket, startDaemon, VmmPids, vmSpec } from "./harness.js";

const isRoot = process.getuid?.() === 0;
const pids = new VmmPids();
let d: Daemon;

beforeAll(async () => {
  d = await startDaemon();
  await d.rpc.call("compute.vm.create", { ...vmSpec(d, "guest"), hostname: "guest-one" });
  const pid = pidOf(await d.rpc.call("compute.vm.start", { id: "guest" }));
  pids.add(pid);
});
afterAll(async () => {
  pids.killAll();
  await d.stop();
});

const exec = (params: Omit<Parameters<RpcConnection["exec"]>[0], "id">) => d.rpc.exec({ id: "guest", ...params });
const execStream = (params: Omit<Parameters<RpcConnection["execStream"]>[0], "id">) => d.rpc.execStream({ id: "guest", ...params });
const serial = async (id: string) => (await d.rpc.call("compute.vm.logs", { id, offset: 0, limit: 4_000_000 })).data as string;

async function startWith(id: string, extra: Record<string, unknown>, cmdline = ""): Promise<void> {
  await d.rpc.call("compute.vm.create", { ...vmSpec(d, id, cmdline), ...extra });
  pids.add((await d.rpc.call("compute.vm.start", { id })).pid);
}

describe("compute.vm.exec", () => {
  it("runs a command and returns its output and exit code, retrying until the agent listens", async () => {
    const r = await exec({ argv: ["echo", "hello", "guest"] });
    expect(r).toEqual({ exit_code: 0, signal: null, stdout: "hello guest\n", stderr: "", timed_out: false, truncated: false });
  });

  it("reports a non-zero exit, stderr, env and cwd", async () => {
    const r = await exec({ argv: ["sh", "-c", 'echo "$GREETING from $(pwd)"; echo oops >&2; exit 7'], env: { GREETING: "hi" }, cwd: "/tmp" });
    expect(r).toMatchObject({ exit_code: 7, signal: null, stdout: "hi from /tmp\n", stderr: "oops\n" });
  });

  it("reports death by a signal", async () => {
    expect(await exec({ argv: ["sh", "-c", "kill -TERM $$"] })).toMatchObject({ exit_code: null, signal: "SIGTERM", timed_out: false });
  });

  it("feeds stdin and is binary-safe with base64", async () => {
    expect((await exec({ argv: ["cat"], stdin: "round trip\n" })).stdout).toBe("round trip\n");
    const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff, 0x0a, 0x80]);
    const r = await exec({ argv: ["cat"], stdin: bytes.toString("base64"), encoding: "base64" });
    expect(Buffer.from(r.stdout, "base64").equals(bytes)).toBe(true);
  });

  it("caps each stream at 16 MiB and says it truncated", async () => {
    const r = await exec({ argv: ["sh", "-c", "head -c 17000000 /dev/zero | tr '\\0' y"] });
    expect(r).toMatchObject({ exit_code: 0, truncated: true });
    expect(r.stdout.length).toBe(16 * 1024 * 1024);
  });

  it("kills a command that runs past timeout_ms, with everything it started", async () => {
    const r = await exec({ argv: ["sh", "-c", "sleep 30 & sleep 30"], timeout_ms: 300 });
    expect(r).toMatchObject({ timed_out: true, signal: "SIGKILL" });
    const left = await exec({ argv: ["sh", "-c", "ps -eo args | grep -c '^sleep 30' || true"] });
    expect(left.stdout.trim()).toBe("0");
  });

  it("-32009 for a command that does not exist, naming it", async () => {
    const err = await d.rpc.callError("compute.vm.exec", { id: "guest", argv: ["/no/such/tool"] });
    expect(err.code).toBe(-32009);
    expect(err.message).toContain("/no/such/tool");
  });

  it("status shows the agent ready, and since when", async () => {
    const status = await eventually(async () => {
      const s = await d.rpc.call("compute.vm.status", { id: "guest" });
      return s.agent.ready ? s : undefined;
    });
    expect(status.agent.since).toMatch(/^\d{4}-/);
  });

  it("-32003 on a VM that is not running; -32007 when no agent answers", async () => {
    await d.rpc.call("compute.vm.create", vmSpec(d, "stopped"));
    expect(await d.rpc.callError("compute.vm.exec", { id: "stopped", argv: ["true"] })).toMatchObject({ code: -32003, data: { state: "Configured" } });
    await startWith("noagent", {}, "sim.guest=scripted sim.serial_interval_ms=0");
    const err = await d.rpc.callError("compute.vm.exec", { id: "noagent", argv: ["true"], timeout_ms: 600 });
    expect(err.code).toBe(-32007);
    expect(err.message).toMatch(/unreachable/);
    expect((await d.rpc.call("compute.vm.status", { id: "noagent" })).agent).toEqual({ ready: false, since: null });
  });
});

/**
 * Connects to a streamed exec's socket, sends `stdin` then StdinEof, and collects every frame until the agent ends.
 * `halfClose`: then shuts down our sending side, as `socat -` does once its input ends.
 */
function runStream(socket: string, stdin: Buffer[] = [], halfClose = false): Promise<Frame[]> {
  return new Promise((resolve, reject) => {
    const frames: Frame[] = [];
    const reader = new FrameReader();
    const conn = net.connect(socket);
    conn.on("data", (chunk: Buffer) => frames.push(...reader.push(chunk)));
    conn.on("end", () => resolve(frames));
    conn.on("error", reject);
    for (const data of stdin) conn.write(encodeFrame(FrameType.Stdin, data));
    conn.write(encodeFrame(FrameType.StdinEof));
    if (halfClose) conn.end();
  });
}
const payloads = (frames: Frame[], type: number) => Buffer.concat(frames.filter((f) => f.type === type).map((f) => f.payload));

describe("compute.vm.exec with stream", () => {
  it("hands back a one-shot socket on which the exec protocol runs, output of any size passing as bytes", async () => {
    const { path } = await execStream({ argv: ["sh", "-c", "cat; head -c 20000000 /dev/zero; echo done >&2; exit 3"] });
    expect(fs.statSync(path).mode & 0o777).toBe(0o600);
    const frames = await runStream(path, [Buffer.from("typed in\n")]);
    expect(fs.existsSync(path)).toBe(false);
    const stdout = payloads(frames, FrameType.Stdout);
    expect(stdout.length).toBe(9 + 20_000_000);
    expect(stdout.subarray(0, 9).toString()).toBe("typed in\n");
    expect(payloads(frames, FrameType.Stderr).toString()).toBe("done\n");
    expect(decodeJson((frames.at(-1) as Frame).payload)).toEqual({ exit_code: 3, signal: null, timed_out: false });
  });

  it("a client that shuts down its sending side after its input still gets the whole run", async () => {
    const { path } = await execStream({ argv: ["sh", "-c", "cat; echo after stdin; exit 4"] });
    const frames = await runStream(path, [Buffer.from("piped\n")], true);
    expect(payloads(frames, FrameType.Stdout).toString()).toBe("piped\nafter stdin\n");
    expect(decodeJson((frames.at(-1) as Frame).payload)).toEqual({ exit_code: 4, signal: null, timed_out: false });
  });

  it("a client that stops reading stalls only its own command; the agent serves others, and the client leaving kills it", async () => {
    const pidFile = `/tmp/stalled-${process.pid}`;
    const { path } = await execStream({ argv: ["sh", "-c", `echo $$ > ${pidFile}; exec head -c 10000000000 /dev/zero`] });
    const stalled = net.connect(path);
    stalled.on("error", () => undefined);
    stalled.write(encodeFrame(FrameType.StdinEof));
    stalled.pause();
    const pid = (await eventually(async () => (await exec({ argv: ["cat", pidFile] })).stdout.trim() || undefined)) as string;
    // Every buffer on the way is full once the command blocks writing to its pipe: the agent reads no more of it.
    // (The kernel names that wait pipe_write, or anon_pipe_write since 6.16.)
    await eventually(async () => (/pipe_write$/.test((await exec({ argv: ["cat", `/proc/${pid}/wchan`] })).stdout) ? true : undefined));
    expect(await exec({ argv: ["echo", "still serving"] })).toMatchObject({ exit_code: 0, stdout: "still serving\n" });
    stalled.destroy();
    await eventually(async () => ((await exec({ argv: ["sh", "-c", `kill -0 ${pid} 2>/dev/null || echo gone`] })).stdout === "gone\n" ? true : undefined));
    await exec({ argv: ["rm", "-f", pidFile] });
  });

  it("serves many sessions at once", async () => {
    const runs = await Promise.all(Array.from({ length: 40 }, (_, i) => exec({ argv: ["sh", "-c", "sleep 0.1; echo $0", `run${i}`] })));
    expect(runs.map((r) => r.stdout)).toEqual(Array.from({ length: 40 }, (_, i) => `run${i}\n`));
  });

  it("serves one client only, and refuses stdin or encoding in the call", async () => {
    const { path } = await execStream({ argv: ["true"] });
    await runStream(path);
    await expect(runStream(path)).rejects.toThrow(/ENOENT|ECONNREFUSED/);
    expect((await d.rpc.callError("compute.vm.exec", { id: "guest", argv: ["cat"], stream: true, stdin: "x" })).code).toBe(-32602);
  });

  it("a daemon starting removes the stream and console sockets a dead one left, and nothing else", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mh-"));
    fs.mkdirSync(path.join(dir, "console"));
    staleSocket(path.join(dir, "console", "exec-0123456789ab.sock"));
    staleSocket(path.join(dir, "console", "gone-vm.sock"));
    fs.writeFileSync(path.join(dir, "console", "notes.txt"), "");
    const fresh = await startDaemon({ dir });
    expect(fs.readdirSync(path.join(dir, "console")).sort()).toEqual(["notes.txt"]);
    await fresh.stop();
  });
});

describe("my_hypervisor-init as the guest", () => {
  it("tags its own and the workload's console lines", async () => {
    await startWith("tagged", { workload: { argv: ["sh", "-c", "echo from the workload"] } });
    await eventually(async () => ((await serial("tagged")).includes("[workload] from the workload") ? true : undefined));
    expect(await serial("tagged")).toMatch(/\[init\] my_hypervisor-init starting/);
  });

  it("gives a workload with console: true the console both ways: what a viewer types reaches it", async () => {
    await startWith("typed", { workload: { argv: ["sh", "-c", "echo prompt; read line; echo got:$line"], console: true } });
    await eventually(async () => ((await serial("typed")).includes("prompt") ? true : undefined));
    const { path: endpoint } = await d.rpc.call("compute.vm.console.endpoint", { id: "typed" });
    const viewer = net.connect(endpoint);
    viewer.on("error", () => undefined);
    viewer.write("typed at the console\n");
    await eventually(async () => ((await serial("typed")).includes("got:typed at the console") ? true : undefined));
    viewer.destroy();
    // Its output is its own, untagged; the init's lines are tagged as ever.
    expect(await serial("typed")).toMatch(/^prompt$/m);
    expect(await serial("typed")).toMatch(/\[init\] workload exited \(code 0\)/);
  });

  it.skipIf(!isRoot)("runs as PID 1 with its own /proc and hostname (needs root for namespaces)", async () => {
    // The kernel keeps 15 characters of a command's name.
    expect((await exec({ argv: ["cat", "/proc/1/comm"] })).stdout.trim()).toBe("my_hypervisor-i");
    expect((await exec({ argv: ["hostname"] })).stdout.trim()).toBe("guest-one");
    expect(await serial("guest")).toMatch(/\[init\] mounted .*\/proc/);
  });

  it.skipIf(!isRoot)("reaps the orphans of a double-forking workload (needs root to be PID 1)", async () => {
    await startWith("reaper", { workload: { argv: ["sh", "-c", "for i in 1 2 3; do (sleep 0.2 &); done; sleep 60"] } });
    await eventually(async () => ((await serial("reaper")).match(/reaped orphan/g)?.length ?? 0) >= 1 || undefined);
    // Every orphan is reaped once it exits: wait for none left rather than for a guess at how long that takes.
    const zombies = () => d.rpc.exec({ id: "reaper", argv: ["sh", "-c", "ps -eo stat | grep -c '^Z' || true"] });
    await eventually(async () => ((await zombies()).stdout.trim() === "0" ? true : undefined), 10_000);
  });

  it("restarts the workload per its policy", async () => {
    await startWith("onfail", { workload: { argv: ["sh", "-c", "echo attempt; exit 1"], restart: "on-failure" } });
    await startWith("never", { workload: { argv: ["sh", "-c", "echo attempt; exit 1"], restart: "never" } });
    await startWith("cleanexit", { workload: { argv: ["sh", "-c", "echo attempt; exit 0"], restart: "on-failure" } });
    await eventually(async () => (((await serial("onfail")).match(/\[workload\] attempt/g)?.length ?? 0) >= 2 ? true : undefined), 8000);
    // The init says when it decides not to restart: wait for that decision, then count the runs.
    for (const id of ["never", "cleanexit"]) {
      await eventually(async () => ((await serial(id)).includes("workload finished; not restarting") ? true : undefined), 8000);
      expect((await serial(id)).match(/\[workload\] attempt/g)).toHaveLength(1);
    }
  });

  it("says why a workload cannot start, and applies its policy to that as to a failed run", async () => {
    await startWith("missing", { workload: { argv: ["/no/such/workload"], restart: "on-failure" } });
    await eventually(async () => (((await serial("missing")).match(/workload failed to start: .*No such file/g)?.length ?? 0) >= 2 ? true : undefined), 8000);
    expect(await serial("missing")).toMatch(/restarting workload in 1000 ms \(policy on-failure\)/);
    expect((await exec({ argv: ["true"] })).exit_code).toBe(0);
  });

  it("powers off on SIGTERM, and when its workload ends with on_exit poweroff", async () => {
    await startWith("sigterm", {});
    await exec({ argv: ["true"] }).catch(() => undefined);
    await d.rpc.call("compute.vm.exec", { id: "sigterm", argv: ["sh", "-c", `kill -TERM ${isRoot ? 1 : "$PPID"}`] }).catch(() => undefined);
    const off = await eventually(async () => {
      const s = await d.rpc.call("compute.vm.status", { id: "sigterm" });
      return s.state === "Stopped" ? s : undefined;
    });
    expect(off.transitions.at(-1)).toMatchObject({ event: "GUEST_POWERED_OFF" });
    expect(await serial("sigterm")).toMatch(/shutting down: SIGTERM[\s\S]*powering off/);
    expect(await d.rpc.callError("compute.vm.exec", { id: "sigterm", argv: ["true"] })).toMatchObject({ code: -32003, data: { state: "Stopped" } });

    await startWith("batch", { workload: { argv: ["sh", "-c", "echo done"], on_exit: "poweroff" } });
    await eventually(async () => ((await d.rpc.call("compute.vm.status", { id: "batch" })).state === "Stopped" ? true : undefined));
  });

  it("powers off on the ACPI power button: compute.vm.stop ends at the first stage", async () => {
    await startWith("button", { workload: { argv: ["sleep", "600"] } });
    const stopped = await d.rpc.call("compute.vm.stop", { id: "button" });
    expect(stopped.transitions.at(-1)?.reason).toMatch(/power button/);
    expect(await serial("button")).toMatch(/shutting down: power button/);
  });
});
