/**
 * Enforcement of each VM's cgroup v2 limits, where cgroup v2 is real: this
 * machine's hierarchy is v1, so the proof runs in the Debian kernel under
 * QEMU (software emulation) that the guest image tests boot. The image holds
 * Node, util-linux's namespace tools, busybox, and this checkout's daemon,
 * test VMM and guest init; guest/cgroup-proof.mjs runs them as root there
 * and reports what the kernel showed. Slow (Node under TCG), so one boot.
 */
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { describe, expect, it } from "vitest";
import { bootableKernel, haveCpio, haveQemu, kernel } from "../../init/test/guest-image.js";
import { ROOT } from "./harness.js";

const MiB = 1024 * 1024;
const HERE = path.dirname(fileURLToPath(import.meta.url));
const modulesDir = kernel && path.join("/lib/modules", kernel.replace(/^vmlinuz-/, ""));
const missing = !haveCpio
  ? "cpio is not installed"
  : !haveQemu
    ? "qemu-system-x86_64 is not installed"
    : !kernel
      ? "no kernel in /boot (linux-image-amd64)"
      : !fs.existsSync(path.join(modulesDir as string, "kernel/drivers/block/virtio_blk.ko"))
        ? `no virtio_blk module in ${modulesDir}`
        : process.getuid?.() !== 0
          ? "building the image needs root's view of util-linux and node"
          : undefined;

/**
 * What the guest needs from this host: the programs, their shared libraries and the dynamic loader. dash is
 * /bin/sh, as on Debian: busybox's sh runs its own applets before PATH, and the jail needs util-linux's.
 */
const HOST_PROGRAMS = ["node", "unshare", "mount", "umount", "setpriv", "pivot_root", "dash"];

/**
 * The initramfs is the kernel's rootfs, which pivot_root cannot leave (and each VMM's jail pivots): like a
 * real system, the first stage moves everything to a tmpfs and switches root to it.
 */
const GUEST_INIT = `#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mkdir /newroot
mount -t tmpfs -o mode=0755 root /newroot
for entry in /*; do [ "$entry" = /newroot ] || cp -a "$entry" /newroot/; done
exec switch_root /newroot /stage2
`;

const GUEST_STAGE2 = `#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
mount -t tmpfs -o mode=1777 tmp /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
# virtio-blk is a module in Debian's kernel: the disk whose io.max the proof checks.
for m in virtio_ring virtio virtio_mmio virtio_blk; do insmod /opt/mh/$m.ko; done
node /opt/mh/cgroup-proof.mjs
poweroff -f
`;

async function buildProofImage(): Promise<string> {
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), "mh-cgproof-"));
  const put = (file: string, to = file) => {
    fs.mkdirSync(path.dirname(path.join(stage, to)), { recursive: true });
    fs.copyFileSync(file, path.join(stage, to));
    fs.chmodSync(path.join(stage, to), fs.statSync(file).mode & 0o777);
  };
  for (const d of ["bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "run", "etc", "srv", "opt/mh"])
    fs.mkdirSync(path.join(stage, d), { recursive: true });
  put("/bin/busybox", "bin/busybox");
  for (const applet of execFileSync("/bin/busybox", ["--list"], { encoding: "utf8" }).split("\n").filter(Boolean))
    if (!fs.existsSync(path.join(stage, "bin", applet))) fs.symlinkSync("busybox", path.join(stage, "bin", applet));
  fs.symlinkSync("/bin/busybox", path.join(stage, "usr/bin/env"));
  fs.rmSync(path.join(stage, "bin/sh"));
  fs.symlinkSync("/usr/bin/dash", path.join(stage, "bin/sh"));
  for (const name of HOST_PROGRAMS) {
    const file = fs.realpathSync(execFileSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).trim());
    put(file, `usr/bin/${name}`);
    for (const lib of execFileSync("ldd", [file], { encoding: "utf8" }).matchAll(/(\/\S+) \(0x/g)) put(fs.realpathSync(lib[1] as string), lib[1] as string);
  }
  // The daemon and the init as a host installs them (under /usr/lib/my_hypervisor, with what the daemon loads beside it).
  execFileSync(path.join(ROOT, "scripts/install.sh"), ["/usr"], { env: { ...process.env, DESTDIR: stage }, stdio: ["ignore", "ignore", "pipe"] });
  put(path.join(HERE, "guest/cgroup-proof.mjs"), "opt/mh/cgroup-proof.mjs");
  // The test VMM as one file: it runs from /opt/mh, which its jail shows.
  await build({
    entryPoints: [path.join(ROOT, "packages/ch-sim/dist/main.js")],
    bundle: true,
    platform: "node",
    format: "esm",
    outfile: path.join(stage, "opt/mh/ch-sim.mjs"),
    logLevel: "error",
  });
  fs.chmodSync(path.join(stage, "opt/mh/ch-sim.mjs"), 0o755);
  const modules = path.join("/lib/modules", (kernel as string).replace(/^vmlinuz-/, ""), "kernel/drivers");
  for (const m of ["virtio/virtio", "virtio/virtio_ring", "virtio/virtio_mmio", "block/virtio_blk"])
    put(path.join(modules, `${m}.ko`), `opt/mh/${path.basename(m)}.ko`);
  fs.writeFileSync(path.join(stage, "opt/mh/vmlinux"), "not a real kernel: the test VMM only checks it can be read\n");
  fs.writeFileSync(path.join(stage, "init"), GUEST_INIT, { mode: 0o755 });
  fs.writeFileSync(path.join(stage, "stage2"), GUEST_STAGE2, { mode: 0o755 });
  fs.writeFileSync(path.join(stage, "etc/group"), "root:x:0:\n");
  const image = path.join(stage, "..", `${path.basename(stage)}.cpio`);
  // Uncompressed: the kernel unpacks it in a moment, where gunzip under TCG would take seconds.
  execFileSync("sh", ["-c", `cd '${stage}' && find . -mindepth 1 | cpio --create --format=newc --owner=0:0 --quiet > '${image}'`]);
  fs.rmSync(stage, { recursive: true, force: true });
  return image;
}

/** Boots the image, with a small virtio disk, until the guest powers off; its console output. */
async function boot(image: string): Promise<string> {
  const disk = `${image}.disk`;
  fs.writeFileSync(disk, Buffer.alloc(16 * MiB));
  const machine = ["-accel", "tcg", "-M", "microvm", "-m", "2048", "-smp", "2", "-nographic", "-no-reboot"];
  const drive = ["-drive", `file=${disk},if=none,id=disk0,format=raw`, "-device", "virtio-blk-device,drive=disk0"];
  const args = [...machine, "-kernel", bootableKernel(kernel as string), "-initrd", image, ...drive];
  // As the guest image tests: the TSC rate and loops-per-jiffy given, not measured (a busy host can hang that).
  const cmdline = "console=ttyS0 panic=-1 quiet tsc_early_khz=2000000 lpj=4000000";
  const qemu = spawn("qemu-system-x86_64", [...args, "-append", cmdline], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  qemu.stdout.on("data", (d) => {
    out += d;
  });
  const guard = setTimeout(() => qemu.kill("SIGKILL"), 560_000);
  await new Promise((resolve) => qemu.once("exit", resolve));
  clearTimeout(guard);
  fs.rmSync(image, { force: true });
  fs.rmSync(disk, { force: true });
  return out;
}

describe.skipIf(missing !== undefined)(`cgroup v2 limits in a real kernel${missing ? ` (skipped: ${missing})` : ""}`, () => {
  it("puts each VMM in its cgroup with its limits written (io.max on its disk's device), stops a memory hog at memory.max, and puts a strayed VMM back", async () => {
    const out = await boot(await buildProofImage());
    const line = /^CGROUP-PROOF (.*)$/m.exec(out)?.[1];
    expect(line, `no proof line on the console:\n${out.slice(-3000)}`).toBeDefined();
    const seen = JSON.parse(line as string);
    expect(seen.error, JSON.stringify(seen, null, 1)).toBeUndefined();

    expect(seen.limits).toMatchObject({ base: "/sys/fs/cgroup/my_hypervisor", problem: null, missing: [] });
    expect(seen.limits.controllers).toEqual(expect.arrayContaining(["cpu", "memory", "pids", "io"]));
    const memoryMax = 64 * MiB + 64 * MiB + 2 * MiB;
    expect(seen.status_limits).toMatchObject({ cgroup: "/sys/fs/cgroup/my_hypervisor/vms/hog", memory_max_bytes: memoryMax });
    // In its cgroup from its first instruction, with the limits status shows.
    expect(seen.vmm_cgroup).toBe("0::/my_hypervisor/vms/hog");
    expect(seen.cgroup_procs_has_vmm).toBe(true);
    expect(seen.files).toEqual({
      "cpu.max": "200000 100000",
      "cpu.weight": "100",
      "memory.max": String(memoryMax),
      "memory.high": String(memoryMax - 16 * MiB),
      "pids.max": "129",
    });

    // The hog was OOM-killed inside the VM's cgroup (dd's exit status 137 = SIGKILL); the VMM and its VM live on.
    expect(seen.hog_exit).toBe("137");
    expect(seen.stats).toMatchObject({ source: "cgroup", cgroup: "/sys/fs/cgroup/my_hypervisor/vms/hog" });
    expect(seen.stats.memory.oom_kills).toBeGreaterThanOrEqual(1);
    expect(seen.stats.memory.max_events).toBeGreaterThanOrEqual(1);
    expect(seen.stats.memory.peak_bytes).toBeLessThanOrEqual(memoryMax);
    expect(seen.stats.cpu.usage_us).toBeGreaterThan(0);
    // The rate-limited disk's whole device gets io.max; what the workload read from it is counted.
    expect(seen.io_max).toBe(`${seen.disk_device} rbps=1048576 wbps=1048576 riops=200 wiops=200`);
    expect(seen.stats.io.read_bytes).toBeGreaterThanOrEqual(64 * 4096);
    expect(seen.stats.io.read_ops).toBeGreaterThan(0);
    expect(seen.vmm_alive_after_oom).toBe(true);
    expect(seen.state_after_oom).toBe("Running");

    // Taken out, put back by the reconcile; a limit changed behind the daemon's back, written again at re-adoption.
    expect(seen.moved_out_to).toBe("0::/");
    expect(seen.put_back_to).toBe("0::/my_hypervisor/vms/hog");
    expect(seen.pids_max_after_readoption).toBe("129");
    expect(seen.cgroup_after_stop).toBe(false);
  }, 600_000);
});
