#!/usr/bin/env node
/**
 * my_hypervisor benchmarks: the daemon's cost next to a baseline measured in
 * the same run. `node bench/bench.mjs` (make bench) for the full table;
 * `--quick` (make bench-quick) for a smoke run of a few seconds. Prints a table
 * and writes bench/results.json. See docs/benchmarks.md.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
// The project's own JSON-RPC client (packages/lib/src/jsonrpc/client.ts), so the bench measures what clients get.
import { ComputeClient } from "../packages/client/dist/index.js";
// The project's own CH and exec clients, for the baselines that bypass the daemon.
import { ChClient } from "../packages/lib/dist/ch/client.js";
import { encodeFrame, FrameReader, FrameType } from "../packages/lib/dist/domain/exec-protocol.js";
import { runExec } from "../packages/lib/dist/exec/exec-client.js";
import { connectGuestPort } from "../packages/lib/dist/exec/hybrid-vsock.js";
/** @typedef {import("../packages/client/dist/index.js").MethodName} MethodName */
import { readProcStat } from "../packages/lib/dist/os/proc.js";
import { guestBoot, vmmFootprint } from "./guest.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const DAEMON = path.join(ROOT, "packages/daemon/dist/my_hypervisor-daemon.mjs");
const SIM = path.join(ROOT, "packages/ch-sim/dist/main.js");
const quick = process.argv.includes("--quick");
// --only=lifecycle,data (section names below) runs a subset; MHB_DAEMON_NODE_ARGS adds node flags (e.g. --cpu-prof).
const only = process.argv
  .find((a) => a.startsWith("--only="))
  ?.slice(7)
  .split(",");
const daemonNodeArgs = (process.env.MHB_DAEMON_NODE_ARGS ?? "").split(" ").filter(Boolean);
const P = quick
  ? { seconds: 0.2, repeats: 1, listVms: 5, lifecycle: 2, scale: [0, 3], settleMs: 0, flood: 1 << 20, execBytes: 1 << 20, execTrue: 3 }
  : { seconds: 3, repeats: 3, listVms: 100, lifecycle: 40, scale: [0, 100, 300], settleMs: 10_000, flood: 64 << 20, execBytes: 64 << 20, execTrue: 50 };
const CLK_TCK = 100;
const SCRIPTED = "sim.guest=scripted sim.serial_interval_ms=0";
const results = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))];

function record(name, unit, runs, extra = {}) {
  const r = { name, unit, median: median(runs), min: Math.min(...runs), max: Math.max(...runs), runs, ...extra };
  results.push(r);
  const spread = runs.length > 1 ? ` (${fmt(r.min)}–${fmt(r.max)})` : "";
  const ratio = extra.ratio !== undefined ? `  ratio ${extra.ratio.toFixed(2)}` : "";
  const target = extra.target ? `  target ${extra.target}` : "";
  console.log(`${name.padEnd(58)} ${fmt(r.median).padStart(12)} ${unit}${spread}${ratio}${target}`);
  return r;
}
const fmt = (x) => (x >= 100 ? x.toFixed(0) : x >= 1 ? x.toFixed(2) : x.toFixed(3));

function procStat(pid) {
  return { cpuMs: ((readProcStat(pid)?.cpuTicks ?? 0) * 1000) / CLK_TCK };
}
const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);

async function waitSocket(p) {
  for (let i = 0; i < 500; i++) {
    const ok = await new Promise((r) => {
      const s = net.connect(p);
      s.once("connect", () => {
        s.destroy();
        r(true);
      });
      s.once("error", () => r(false));
    });
    if (ok) return;
    await sleep(10);
  }
  throw new Error(`${p} never accepted`);
}

async function startDaemon(dir) {
  const sock = path.join(dir, "rpc.sock");
  // As installed (the file runs itself, with the node flags on its #! line); for profiling, node with both sets of flags.
  const [cmd, pre] = daemonNodeArgs.length > 0 ? [process.execPath, [...shebangFlags(DAEMON), ...daemonNodeArgs, DAEMON]] : [DAEMON, []];
  const proc = spawn(
    cmd,
    [
      ...pre,
      "--rpc-socket",
      sock,
      "--state-dir",
      path.join(dir, "state"),
      "--console-dir",
      path.join(dir, "console"),
      "--cloud-hypervisor",
      SIM,
      ...vmmDirArgs(dir),
      // What is measured is the daemon's cost; on a host without cgroup v2 (this one) limits cannot be enforced.
      "--allow-unenforced-limits",
    ],
    // The default log level (info), to a file as a service manager would take it: logging is part of the cost.
    { stdio: ["ignore", "ignore", fs.openSync(path.join(dir, "daemon.log"), "a")] },
  );
  await waitSocket(sock);
  return { proc, sock, dir, kernel: path.join(dir, "vmlinux"), vmmDir: isRoot ? path.join(dir, "vmm") : path.join(dir, "state") };
}
/** As root each VMM runs jailed under a uid of its own (ADR 0009), its files in `<dir>/vmm/<id>/`; its jail shows the checkout. */
const isRoot = process.getuid?.() === 0;
const vmmDirArgs = (dir) => (isRoot ? ["--vmm-dir", path.join(dir, "vmm"), "--vmm-jail-bind", ROOT] : []);
/** The node flags on a script's `#!/usr/bin/env -S node ...` line. */
function shebangFlags(file) {
  return fs.readFileSync(file, "utf8").split("\n", 1)[0].split(" ").slice(3);
}
function tmp() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mhb-"));
  // VMMs under their own uids reach their directories and the kernel through it.
  fs.chmodSync(dir, 0o711);
  fs.writeFileSync(path.join(dir, "vmlinux"), "k");
  return dir;
}
const spec = (d, id, cmdline = SCRIPTED) => ({ id, vcpus: 1, memory_mib: 64, boot: { kernel: d.kernel, cmdline } });

/** `conns` connections, each doing request after request for `seconds`: throughput and latencies. */
async function drive(sock, method, params, conns, seconds) {
  const clients = await Promise.all(Array.from({ length: conns }, () => ComputeClient.connect(sock)));
  const lat = [];
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    clients.map(async (c) => {
      while (performance.now() < end) {
        const t = performance.now();
        await c.call(method, params);
        lat.push(performance.now() - t);
      }
    }),
  );
  for (const c of clients) c.close();
  return { rate: lat.length / seconds, p50: pct(lat, 50), p99: pct(lat, 99) };
}

async function rpcOverhead() {
  console.log("\n1. RPC overhead (daemon vs a bare NDJSON echo server, same client)");
  const dir = tmp();
  const d = await startDaemon(dir);
  const c = await ComputeClient.connect(d.sock);
  for (let i = 0; i < P.listVms; i++) await c.call("compute.vm.create", spec(d, `vm${i}`));
  const echoSock = path.join(dir, "echo.sock");
  const echo = spawn(process.execPath, [path.join(ROOT, "bench/echo-server.mjs"), echoSock], { stdio: ["ignore", "pipe", "inherit"] });
  await waitSocket(echoSock);
  for (const [method, params] of /** @type {[MethodName, object][]} */ ([
    ["compute.vm.status", { id: "vm0" }],
    ["compute.vm.list", {}],
  ])) {
    for (const conns of [1, 32]) {
      const mine = [];
      const base = [];
      for (let r = 0; r < P.repeats; r++) {
        mine.push(await drive(d.sock, method, params, conns, P.seconds));
        base.push(await drive(echoSock, method, params, conns, P.seconds));
      }
      const rate = mine.map((m) => m.rate);
      const ratio = median(rate) / median(base.map((b) => b.rate));
      const label = `${method.replace("compute.vm.", "")}${method.endsWith("list") ? ` (${P.listVms} VMs)` : ""}, ${conns} conn`;
      record(`${label}: throughput`, "calls/s", rate, {
        baseline: median(base.map((b) => b.rate)),
        ratio,
        target: conns === 32 && method.endsWith("status") ? "≥ 0.6× echo" : undefined,
      });
      record(
        `${label}: p50 / p99 latency`,
        "ms",
        mine.map((m) => m.p50),
        { p99: median(mine.map((m) => m.p99)), baseline_p50: median(base.map((b) => b.p50)) },
      );
    }
  }
  echo.kill();
  c.close();
  d.proc.kill("SIGTERM");
}

async function lifecycle() {
  console.log("\n2. Lifecycle cost (create → start → stop → remove, scripted guests)");
  const d = await startDaemon(tmp());
  const c = await ComputeClient.connect(d.sock);
  // Warm-up, not measured: the first calls of each path load and compile code once per daemon.
  for (let i = 0; i < 3; i++) {
    await c.call("compute.vm.create", spec(d, `warm${i}`));
    await c.call("compute.vm.start", { id: `warm${i}` });
    await c.call("compute.vm.remove", { id: `warm${i}`, force: true });
  }
  for (const parallel of [1, 8]) {
    const times = { create: [], start: [], stop: [], remove: [] };
    const cpu0 = procStat(d.proc.pid).cpuMs;
    const wall0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: parallel }, async () => {
        while (next < P.lifecycle) {
          const id = `l${parallel}-${next++}`;
          const timed = async (op, call) => {
            const t = performance.now();
            await call();
            times[op].push(performance.now() - t);
          };
          await timed("create", () => c.call("compute.vm.create", spec(d, id)));
          await timed("start", () => c.call("compute.vm.start", { id }));
          await timed("stop", () => c.call("compute.vm.stop", { id, force: true }));
          await timed("remove", () => c.call("compute.vm.remove", { id }));
        }
      }),
    );
    const cpuPerVm = (procStat(d.proc.pid).cpuMs - cpu0) / P.lifecycle;
    for (const op of Object.keys(times)) record(`${op}, ${parallel} at a time: p50 / p99`, "ms", [pct(times[op], 50)], { p99: pct(times[op], 99) });
    record(`daemon CPU per VM lifecycle, ${parallel} at a time`, "ms", [cpuPerVm], { target: "≤ 5 ms", wall_s: (performance.now() - wall0) / 1000 });
  }
  // How much of start is the daemon's own work: its CPU over start's wall time.
  const cpu0 = procStat(d.proc.pid).cpuMs;
  let wall = 0;
  for (let i = 0; i < Math.max(3, P.lifecycle / 4); i++) {
    await c.call("compute.vm.create", spec(d, `s${i}`));
    const t = performance.now();
    await c.call("compute.vm.start", { id: `s${i}` });
    wall += performance.now() - t;
    await c.call("compute.vm.remove", { id: `s${i}`, force: true });
  }
  const cpu = procStat(d.proc.pid).cpuMs - cpu0;
  record("share of start spent in the daemon (its CPU / start wall time)", "%", [(100 * cpu) / (wall * 2)], {
    note: "CPU covers create+start+remove, halved as an upper bound for start",
  });
  c.close();
  d.proc.kill("SIGTERM");
}

async function scaleAndRecovery() {
  console.log("\n3. Scale (running VMs, each booting the real my_hypervisor-init) and 4. recovery");
  const dir = tmp();
  let d = await startDaemon(dir);
  let c = await ComputeClient.connect(d.sock);
  const rss = {};
  const rssBurst = {};
  let running = 0;
  const simPids = [];
  for (const target of P.scale) {
    while (running < target) {
      const batch = [];
      for (let i = 0; i < 8 && running < target; i++, running++) {
        const id = `r${running}`;
        batch.push(
          c
            .call("compute.vm.create", spec(d, id, ""))
            .then(() => c.call("compute.vm.start", { id }))
            .then((s) => simPids.push(s.pid)),
        );
      }
      await Promise.all(batch);
    }
    await sleep(500);
    const burst = rssKiB(d.proc.pid);
    // Settled: V8 returns the garbage of the start burst (its memory reducer acts ~8 s after allocation slows down).
    await sleep(P.settleMs);
    rss[target] = rssKiB(d.proc.pid);
    record(`daemon RSS with ${target} running VMs, settled`, "MiB", [rss[target] / 1024], {
      just_after: burst / 1024,
    });
    rssBurst[target] = burst;
  }
  const top = P.scale.at(-1);
  record(`daemon RSS per supervised VM (0 → ${top}), settled`, "KB", [((rss[top] - rss[0]) * 1.024) / top], {
    target: "≤ 100 KB",
    just_after: ((rssBurst[top] - rssBurst[0]) * 1.024) / top,
  });
  record(`test VMM RSS (mean of ${simPids.length})`, "MiB", [simPids.reduce((n, p) => n + rssKiB(p), 0) / simPids.length / 1024]);
  const guests = simPids.map(vmmFootprint);
  record(`test VMM and its guest's processes: RSS (mean of ${simPids.length})`, "MiB", [guests.reduce((n, f) => n + f.rssKiB, 0) / guests.length / 1024]);
  const l = await drive(d.sock, "compute.vm.list", {}, 1, P.seconds);
  record(`list at ${top} VMs: p50 / p99`, "ms", [l.p50], { p99: l.p99 });

  c.close();
  d.proc.kill("SIGKILL");
  await new Promise((r) => d.proc.once("exit", r));
  const t0 = performance.now();
  d = await startDaemon(dir);
  c = await ComputeClient.connect(d.sock);
  for (;;) {
    const { vms } = await c.call("compute.vm.list", {});
    if (vms.filter((v) => v.state === "Running").length === top) break;
    await sleep(5);
  }
  record(`recovery: restart after SIGKILL to all ${top} VMs Running`, "ms", [performance.now() - t0], { target: "≤ 1000 ms (300 VMs)" });
  for (const p of simPids) {
    try {
      process.kill(p, "SIGKILL");
    } catch {}
  }
  c.close();
  // Stopped, not killed: a daemon run with --cpu-prof writes its profile of the recovery as it exits.
  d.proc.kill("SIGTERM");
  await new Promise((r) => d.proc.once("exit", r));
}

/**
 * A data path's rate twice: against the raw socket copy (the target), and
 * against the same data taken with no daemon between (the daemon's own cost).
 */
function recordDataPath(name, directName, rates, raws, directs, extra = {}) {
  record(name, "MiB/s", rates, { baseline: median(raws), ratio: median(rates) / median(raws), target: "≥ 0.8× raw", ...extra });
  record(`${name.split(":")[0]}: the same, against ${directName}`, "MiB/s", rates, { baseline: median(directs), ratio: median(rates) / median(directs) });
}

/** Sends `bytes` through a plain Unix socket in 64 KiB writes: the floor for any byte path. */
async function rawCopy(bytes) {
  const p = path.join(tmp(), "raw.sock");
  const chunk = Buffer.alloc(64 * 1024, 120);
  const server = net.createServer((s) => {
    let left = bytes;
    const pump = () => {
      while (left > 0) {
        left -= chunk.length;
        if (!s.write(chunk)) return s.once("drain", pump);
      }
      s.end();
    };
    pump();
  });
  await new Promise((r) => server.listen(p, () => r(undefined)));
  const t = performance.now();
  await new Promise((resolve) => {
    const s = net.connect(p);
    s.on("data", () => undefined);
    s.on("end", resolve);
  });
  server.close();
  return bytes / ((performance.now() - t) / 1000) / (1 << 20);
}

/**
 * The same flood read straight from a test VMM's serial socket, no daemon: what
 * the VMM and guest deliver, so what the daemon's console path can reach at best.
 */
async function consoleDirect(bytes) {
  const dir = tmp();
  const api = path.join(dir, "api.sock");
  const serial = path.join(dir, "serial.sock");
  const sim = spawn(SIM, ["--api-socket", `path=${api}`], { stdio: "ignore" });
  await waitSocket(api);
  const ch = new ChClient({ path: api, pid: /** @type {number} */ (sim.pid) });
  // Only what the test VMM needs (CH fills in the rest): not the typed config the daemon builds.
  await ch.createVm(
    /** @type {any} */ ({
      payload: { kernel: path.join(dir, "vmlinux"), cmdline: `${SCRIPTED} sim.serial_flood_bytes=${bytes}` },
      cpus: { boot_vcpus: 1, max_vcpus: 1 },
      memory: { size: 64 << 20 },
      serial: { mode: "Socket", socket: serial },
      console: { mode: "Off" },
    }),
  );
  let got = 0;
  let first = 0;
  const done = new Promise((resolve) => {
    const s = net.connect(serial);
    s.on("data", (b) => {
      if (!first) first = performance.now();
      got += b.length;
      if (got >= bytes) {
        s.destroy();
        resolve();
      }
    });
  });
  await sleep(20);
  await ch.boot();
  await done;
  await ch.close();
  sim.kill("SIGKILL");
  return got / ((performance.now() - first) / 1000) / (1 << 20);
}

/** Runs a streamed exec's socket to the end: StdinEof, then count stdout bytes until the agent ends. */
function drainExecStream(socket) {
  return new Promise((resolve, reject) => {
    const reader = new FrameReader();
    let stdout = 0;
    const conn = net.connect(socket);
    conn.on("data", (chunk) => {
      for (const f of reader.push(chunk)) if (f.type === FrameType.Stdout) stdout += f.payload.length;
    });
    conn.on("end", () => resolve(stdout));
    conn.on("error", reject);
    conn.write(encodeFrame(FrameType.StdinEof));
  });
}

async function dataPaths() {
  console.log("\n5. Data paths (console and exec vs a raw Unix-socket copy of the same bytes)");
  const d = await startDaemon(tmp());
  const c = await ComputeClient.connect(d.sock);
  const rates = [];
  const raws = [];
  const directs = [];
  let drops = 0;
  for (let r = 0; r < P.repeats; r++) {
    const id = `flood${r}`;
    await c.call("compute.vm.create", spec(d, id, `${SCRIPTED} sim.serial_flood_bytes=${P.flood}`));
    const { path: endpoint } = await c.call("compute.vm.console.endpoint", { id });
    let got = 0;
    let first = 0;
    let dropped = false;
    // Ends when everything arrived, or when the daemon dropped this viewer for falling too far behind.
    const done = new Promise((resolve) => {
      const s = net.connect(endpoint);
      s.on("data", (b) => {
        if (!first) first = performance.now();
        got += b.length;
        if (got >= P.flood) {
          s.destroy();
          resolve();
        }
      });
      s.on("close", () => {
        dropped = got < P.flood;
        resolve();
      });
    });
    await c.call("compute.vm.start", { id });
    await done;
    if (dropped) drops += 1;
    rates.push(got / ((performance.now() - first) / 1000) / (1 << 20));
    raws.push(await rawCopy(P.flood));
    directs.push(await consoleDirect(P.flood));
    await c.call("compute.vm.remove", { id, force: true });
  }
  recordDataPath(`console: ${P.flood >> 20} MiB of guest serial output to a viewer`, "reading the VMM's serial socket directly", rates, raws, directs, {
    viewer_dropped: `${drops} of ${rates.length} runs`,
  });
  if (drops > 0) console.log(`   (the viewer was dropped in ${drops} of ${rates.length} runs: the guest outran it by more than its 16 MiB queue)`);

  await c.call("compute.vm.create", { ...spec(d, "exec", ""), hostname: "bench" });
  const { pid: vmm } = await c.call("compute.vm.start", { id: "exec" });
  await c.call("compute.vm.exec", { id: "exec", argv: ["true"] });
  // What one VM with the real init costs the host: the test VMM and everything under it.
  const footprint = vmmFootprint(vmm);
  record(`test-VMM VM with the real init: host RSS (${footprint.processes} processes)`, "MiB", [footprint.rssKiB / 1024]);
  record("test-VMM VM with the real init: threads", "threads", [footprint.threads]);
  const rtt = [];
  for (let i = 0; i < P.execTrue; i++) {
    const t = performance.now();
    await c.call("compute.vm.exec", { id: "exec", argv: ["true"] });
    rtt.push(performance.now() - t);
  }
  record("exec `true`: round trip p50 / p99", "ms", [pct(rtt, 50)], { p99: pct(rtt, 99) });
  const ex = [];
  const exRaw = [];
  const exDirect = [];
  /** @type {[string, ...string[]]} */
  const argv = ["head", "-c", String(P.execBytes), "/dev/zero"];
  for (let r = 0; r < P.repeats; r++) {
    let t = performance.now();
    await c.exec({ id: "exec", argv, encoding: "base64" });
    ex.push(P.execBytes / ((performance.now() - t) / 1000) / (1 << 20));
    exRaw.push(await rawCopy(P.execBytes));
    // The same exec through the exec protocol straight on the VMM's vsock socket: guest, agent and VMM, no daemon.
    t = performance.now();
    const conn = await connectGuestPort({ path: path.join(d.vmmDir, "exec", "vsock.sock"), pid: /** @type {number} */ (vmm) }, 1024, Date.now() + 5000);
    await runExec(conn, { argv, timeout_ms: 60_000 }, undefined);
    exDirect.push(P.execBytes / ((performance.now() - t) / 1000) / (1 << 20));
  }
  const streamed = [];
  for (let r = 0; r < P.repeats; r++) {
    const t = performance.now();
    const { path: socket } = await c.execStream({ id: "exec", argv });
    const got = await drainExecStream(socket);
    if (got !== P.execBytes) throw new Error(`streamed exec delivered ${got} of ${P.execBytes} bytes`);
    streamed.push(P.execBytes / ((performance.now() - t) / 1000) / (1 << 20));
  }
  const direct = "the exec protocol straight on the VMM's vsock";
  recordDataPath(`exec: ${P.execBytes >> 20} MiB of stdout (${Math.min(P.execBytes, 16 << 20) >> 20} MiB returned)`, direct, ex, exRaw, exDirect);
  recordDataPath(`exec, streamed: ${P.execBytes >> 20} MiB of stdout, all of it`, direct, streamed, exRaw, exDirect);
  await c.call("compute.vm.remove", { id: "exec", force: true });
  c.close();
  d.proc.kill("SIGTERM");
}

const machine = {
  cpus: os.cpus().length,
  cpu_model: os.cpus()[0]?.model,
  memory_gib: Math.round(os.totalmem() / 2 ** 30),
  node: process.version,
  kernel: os.release(),
  quick,
};
console.log(`my_hypervisor benchmarks${quick ? " (quick smoke run: tiny sizes, numbers not meaningful)" : ""}`);
console.log(`machine: ${machine.cpus} × ${machine.cpu_model}, ${machine.memory_gib} GiB, node ${machine.node}, linux ${machine.kernel}`);
const sections = { rpc: rpcOverhead, lifecycle, scale: scaleAndRecovery, data: dataPaths, guest: () => guestBoot({ record, median, quick, root: ROOT }) };
for (const [name, run] of Object.entries(sections)) if (!only || only.includes(name)) await run();
// A partial run does not overwrite the published figures.
if (!only) {
  fs.writeFileSync(path.join(ROOT, "bench/results.json"), `${JSON.stringify({ at: new Date().toISOString(), machine, results }, null, 2)}\n`);
  console.log(`\nwritten: bench/results.json (${results.length} figures)`);
}
process.exit(0);
