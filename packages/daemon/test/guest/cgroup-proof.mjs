// Runs inside a QEMU guest whose kernel has full cgroup v2 (cgroups-qemu.test.ts builds the image): starts the
// real daemon with the real test VMM and guest init, then looks at what the kernel shows. Prints one line
// `CGROUP-PROOF <json>` with what it saw; the test on the host judges it. Waits for conditions, never for a time.
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";

const DIR = "/srv/mh";
const SOCKET = `${DIR}/rpc.sock`;
const seen = {};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, check, ms = 120_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`not met in ${ms} ms: ${what}`);
    await sleep(50);
  }
}

function call(method, params = {}) {
  return new Promise((resolve, reject) => {
    const s = net.connect(SOCKET);
    let buf = "";
    s.on("data", (d) => {
      buf += d;
      if (!buf.includes("\n")) return;
      s.end();
      const reply = JSON.parse(buf);
      if (reply.error) reject(Object.assign(new Error(`${method}: ${reply.error.message}`), { rpc: reply.error }));
      else resolve(reply.result);
    });
    s.on("error", reject);
    s.write(`${JSON.stringify({ jsonrpc: "2.0", id: 1, method, params })}\n`);
  });
}

const read = (f) => fs.readFileSync(f, "utf8").trim();
const alive = (pid) => fs.existsSync(`/proc/${pid}`);

fs.mkdirSync(DIR, { recursive: true, mode: 0o711 });
fs.chmodSync(DIR, 0o711);
const log = fs.openSync(`${DIR}/daemon.log`, "a");
const daemon = spawn(
  "node",
  [
    "/usr/lib/my_hypervisor/my_hypervisor-daemon.mjs",
    "--rpc-socket",
    SOCKET,
    "--state-dir",
    `${DIR}/state`,
    "--console-dir",
    `${DIR}/console`,
    "--cloud-hypervisor",
    "/opt/mh/ch-sim.mjs",
    "--vmm-dir",
    `${DIR}/vmm`,
    "--vmm-jail-bind",
    "/opt/mh",
    "--log-level",
    "debug",
  ],
  { stdio: ["ignore", log, log], env: { ...process.env, CH_SIM_GUEST_INIT: "/usr/lib/my_hypervisor/my_hypervisor-init" } },
);

try {
  await until("the daemon's socket", () => fs.existsSync(SOCKET));
  seen.limits = (await call("compute.host.info")).limits;

  // A VM whose workload reads its rate-limited disk, then tries to take 400 MiB at once: far past memory.max (64 MiB
  // of RAM plus CH's share).
  fs.chmodSync("/dev/vda", 0o666);
  seen.disk_device = read("/sys/block/vda/dev");
  const hog =
    "dd if=/dev/vda of=/dev/null bs=4096 count=64; echo hog starting; dd if=/dev/zero of=/dev/null bs=400M count=1; echo hog exit $?; exec sleep 3600";
  await call("compute.vm.create", {
    id: "hog",
    vcpus: 1,
    memory_mib: 64,
    boot: { kernel: "/opt/mh/vmlinux" },
    disks: [{ path: "/dev/vda", rate_limit: { bytes_per_s: 1048576, ops_per_s: 200 } }],
    workload: { argv: ["sh", "-c", hog] },
  });
  const started = await call("compute.vm.start", { id: "hog" });
  const pid = started.pid;
  const cgroup = started.limits.cgroup;
  seen.status_limits = started.limits;
  seen.vmm_cgroup = read(`/proc/${pid}/cgroup`);
  seen.cgroup_procs_has_vmm = read(`${cgroup}/cgroup.procs`).split("\n").map(Number).includes(pid);
  seen.io_max = read(`${cgroup}/io.max`);
  seen.files = Object.fromEntries(["cpu.max", "cpu.weight", "memory.max", "memory.high", "pids.max"].map((f) => [f, read(`${cgroup}/${f}`)]));

  // The kernel stops the hog at memory.max: an OOM kill inside the VM's cgroup, and the VMM lives on.
  const console = await until("the hog's end on the console", async () => {
    const { data } = await call("compute.vm.logs", { id: "hog", tail: 65536 });
    return /hog exit \d+/.test(data) ? data : undefined;
  });
  seen.hog_exit = /hog exit (\d+)/.exec(console)?.[1];
  seen.stats = await call("compute.vm.stats", { id: "hog" });
  seen.vmm_alive_after_oom = alive(pid);
  seen.state_after_oom = (await call("compute.vm.status", { id: "hog" })).state;

  // A VMM taken out of its cgroup is put back by the next reconcile (SIGHUP runs one now).
  fs.writeFileSync("/sys/fs/cgroup/cgroup.procs", String(pid));
  seen.moved_out_to = read(`/proc/${pid}/cgroup`);
  daemon.kill("SIGHUP");
  seen.put_back_to = await until("the VMM back in its cgroup", () => {
    const now = read(`/proc/${pid}/cgroup`);
    return now === seen.vmm_cgroup ? now : undefined;
  });

  // A daemon restart re-adopts the VMM in its cgroup, limits intact.
  daemon.kill("SIGTERM");
  await until("the daemon's exit", () => daemon.exitCode !== null);
  fs.writeFileSync(`${cgroup}/pids.max`, "max");
  const again = spawn(daemon.spawnargs[0], daemon.spawnargs.slice(1), { stdio: ["ignore", log, log], env: { ...process.env } });
  await until("the restarted daemon's socket", async () => {
    try {
      return (await call("compute.vm.status", { id: "hog" })).state === "Running";
    } catch {
      return false;
    }
  });
  seen.pids_max_after_readoption = read(`${cgroup}/pids.max`);

  await call("compute.vm.stop", { id: "hog", force: true });
  seen.cgroup_after_stop = fs.existsSync(cgroup);
  again.kill("SIGTERM");
  await until("the restarted daemon's exit", () => again.exitCode !== null);
} catch (e) {
  seen.error = String(e?.message ?? e);
  seen.daemon_log = fs.readFileSync(`${DIR}/daemon.log`, "utf8").split("\n").slice(-30).join("\n");
  seen.memory_events = fs.existsSync("/sys/fs/cgroup/my_hypervisor/vms/hog") ? read("/sys/fs/cgroup/my_hypervisor/vms/hog/memory.events") : null;
  seen.processes = fs
    .readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .map((p) => {
      try {
        return `${p} ${read(`/proc/${p}/comm`)}`;
      } catch {
        return p;
      }
    })
    .join(", ");
  seen.console = await call("compute.vm.logs", { id: "hog", tail: 3000 }).then(
    (r) => r.data,
    (e) => String(e),
  );
  seen.vmm_output = fs.existsSync(`${DIR}/state/hog/vmm.out`) ? fs.readFileSync(`${DIR}/state/hog/vmm.out`, "utf8").slice(0, 600) : null;
  daemon.kill("SIGKILL");
}
process.stdout.write(`CGROUP-PROOF ${JSON.stringify(seen)}\n`);
