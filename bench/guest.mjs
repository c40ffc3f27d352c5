/**
 * The guest's cost (docs/benchmarks.md, section 6): the image's size, the time
 * from the kernel's first console line to the init's ready line, and the
 * init's RSS, each beside a busybox `/init` booted in the same kernel and QEMU
 * in the same run, the boots of both interleaved; and what one test-VMM VM
 * with the real init costs the host.
 */
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { encodeConfig } from "../packages/lib/dist/domain/guest-config.js";
import { readProcStat } from "../packages/lib/dist/os/proc.js";

const has = (cmd) => {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
};
/**
 * PID 1's RSS, from smaps_rollup: it walks the page tables. /proc/1/status's VmRSS comes from per-task counters the
 * kernel folds in lazily, and a process that has just started can show 4 kB there.
 */
const RSS_COMMAND = ["grep", "^Rss:", "/proc/1/smaps_rollup"];
/** A kernel console line: `[    0.487149] ...`. */
const KERNEL_LINE = /^\[\s*\d+\.\d+\]/;

/** The busybox baseline: `/init` mounts /proc, says it is ready, prints its RSS and powers off. */
function busyboxImage(dir) {
  const stage = path.join(dir, "bb");
  fs.mkdirSync(path.join(stage, "bin"), { recursive: true });
  fs.mkdirSync(path.join(stage, "proc"));
  fs.copyFileSync("/bin/busybox", path.join(stage, "bin/busybox"));
  fs.chmodSync(path.join(stage, "bin/busybox"), 0o755);
  const init = `#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\necho BB-READY\n/bin/busybox ${RSS_COMMAND.join(" ")}\n/bin/busybox poweroff -f\n`;
  fs.writeFileSync(path.join(stage, "init"), init, { mode: 0o755 });
  const out = path.join(dir, "busybox.cpio.gz");
  execFileSync("sh", ["-c", `cd '${stage}' && find . -mindepth 1 | LC_ALL=C sort | cpio --create --format=newc --owner=0:0 --quiet | gzip -n > '${out}'`]);
  return out;
}

const unpackedBytes = (image) => Number(execFileSync("sh", ["-c", `gzip -dc '${image}' | wc -c`], { encoding: "utf8" }).trim());

/** One boot to power-off; each console line is time-stamped on arrival. */
function boot(vmlinux, image, append, readyLine) {
  const args = ["-accel", "tcg", "-M", "microvm", "-m", "512", "-nographic", "-no-reboot", "-kernel", vmlinux, "-initrd", image];
  const cmdline = `console=ttyS0 panic=-1 quiet tsc_early_khz=2000000 lpj=4000000 ${append}`;
  const qemu = spawn("qemu-system-x86_64", [...args, "-append", cmdline], { stdio: ["ignore", "pipe", "ignore"] });
  const t0 = performance.now();
  let partial = "";
  let first;
  let ready;
  let rssKiB;
  qemu.stdout.on("data", (chunk) => {
    const now = performance.now() - t0;
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      if (first === undefined && KERNEL_LINE.test(line)) first = now;
      if (ready === undefined && readyLine.test(line)) ready = now;
      const rss = /Rss:\s+(\d+) kB/.exec(line);
      if (rss) rssKiB = Number(rss[1]);
    }
  });
  const guard = setTimeout(() => qemu.kill("SIGKILL"), 120_000);
  return new Promise((resolve, reject) =>
    qemu.once("exit", () => {
      clearTimeout(guard);
      if (first === undefined || ready === undefined || rssKiB === undefined) reject(new Error(`a boot of ${image} did not reach its ready line`));
      else resolve({ readyS: (ready - first) / 1000, rssKiB });
    }),
  );
}

export async function guestBoot({ record, median, quick, root }) {
  console.log("\n6. The guest: image, boot to ready, init RSS (QEMU TCG, against a busybox /init)");
  const bz = fs.existsSync("/boot") ? fs.readdirSync("/boot").find((f) => f.startsWith("vmlinuz-")) : undefined;
  const missing =
    ["qemu-system-x86_64", "cpio", "xz"].find((c) => !has(c)) ?? (!bz ? "a kernel in /boot" : !fs.existsSync("/bin/busybox") ? "/bin/busybox" : undefined);
  if (missing) {
    console.log(`   skipped: ${missing} is missing (scripts/install-guest-test-deps.sh installs it)`);
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mhb-guest-"));
  try {
    const vmlinux = execFileSync(path.join(root, "scripts/extract-vmlinux.sh"), [path.join("/boot", bz)], { encoding: "utf8" }).trim();
    const ours = path.join(dir, "initramfs.cpio.gz");
    execFileSync("bash", [path.join(root, "scripts/build-initramfs.sh"), "-o", ours], { stdio: "ignore" });
    const baseline = busyboxImage(dir);
    const config = encodeConfig({ workload: { argv: RSS_COMMAND, on_exit: "poweroff" } });
    const runs = { ours: [], busybox: [] };
    // Interleaved, so that the machine's noise falls on both alike.
    for (let i = 0; i < (quick ? 1 : 7); i++) {
      runs.ours.push(await boot(vmlinux, ours, `mh_config=${config}`, /^\[init\] ready/));
      runs.busybox.push(await boot(vmlinux, baseline, "", /^BB-READY/));
    }
    const mb = (bytes) => bytes / 1e6;
    const size = fs.statSync(ours).size;
    const bbSize = fs.statSync(baseline).size;
    record("guest image, gzipped (init + busybox)", "MB", [mb(size)], { baseline: mb(bbSize), ratio: size / bbSize, target: "≤ 2 MB" });
    record("guest image, unpacked (all of it stays in guest RAM)", "MB", [mb(unpackedBytes(ours))], { baseline: mb(unpackedBytes(baseline)) });
    const ready = runs.ours.map((r) => r.readyS);
    const bbReady = runs.busybox.map((r) => r.readyS);
    record("guest boot: kernel's first console line → init ready", "s", ready, {
      baseline: median(bbReady),
      baseline_min: Math.min(...bbReady),
      ratio: median(ready) / median(bbReady),
      target: "≤ 1.3× busybox",
    });
    const rss = runs.ours.map((r) => r.rssKiB / 1024);
    record("guest init RSS (PID 1, after starting its workload)", "MiB", rss, { baseline: median(runs.busybox.map((r) => r.rssKiB / 1024)), target: "≤ 2 MB" });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A VMM and every process under it (the guest init, its namespace helpers): summed RSS and threads. */
export function vmmFootprint(vmmPid) {
  const parents = new Map();
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const ppid = readProcStat(Number(entry))?.ppid;
    if (ppid !== undefined) parents.set(Number(entry), ppid);
  }
  const tree = [vmmPid];
  for (let i = 0; i < tree.length; i++) for (const [pid, ppid] of parents) if (ppid === tree[i]) tree.push(pid);
  let rssKiB = 0;
  let threads = 0;
  for (const pid of tree) {
    try {
      const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
      rssKiB += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      threads += Number(/Threads:\s+(\d+)/.exec(status)?.[1] ?? 0);
    } catch {}
  }
  return { rssKiB, threads, processes: tree.length };
}
