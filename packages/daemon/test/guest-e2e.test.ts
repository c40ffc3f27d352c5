/**
 * One guest, end to end, parameterised by the VMM binary and the kernel:
 * against cloud-hypervisor-sim in every test run, and against the real
 * cloud-hypervisor with a real kernel and initramfs on a KVM host
 * (`make test-kvm`: MH_TEST_VMM, MH_TEST_KERNEL, MH_TEST_INITRAMFS). The
 * kernel must have virtio-vsock built in for exec (e.g. cloud-hypervisor's
 * ch_defconfig); Debian's builds it as a module.
 */
import fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Daemon, eventually, SIM_BIN, startDaemon, VmmPids } from "./harness.js";

const vmm = process.env.MH_TEST_VMM ?? SIM_BIN;
const realVmm = process.env.MH_TEST_VMM !== undefined;
const kernel = process.env.MH_TEST_KERNEL;
const initramfs = process.env.MH_TEST_INITRAMFS;

function missing(): string | undefined {
  if (!realVmm) return undefined;
  if (!fs.existsSync("/dev/kvm")) return "/dev/kvm is missing";
  if (!fs.existsSync(vmm)) return `MH_TEST_VMM ${vmm} does not exist`;
  if (!kernel || !fs.existsSync(kernel)) return "MH_TEST_KERNEL is not set to an existing kernel";
  if (!initramfs || !fs.existsSync(initramfs)) return "MH_TEST_INITRAMFS is not set to an initramfs (make initramfs)";
  return undefined;
}
const skip = missing();

describe.skipIf(skip !== undefined)(
  `a guest running my_hypervisor-init on ${realVmm ? vmm : "cloud-hypervisor-sim"}${skip ? ` (skipped: ${skip})` : ""}`,
  () => {
    let d: Daemon;
    const pids = new VmmPids();
    beforeAll(async () => {
      d = await startDaemon({ vmm });
    });
    afterAll(async () => {
      pids.killAll();
      await d.stop();
    });

    it("boots, runs its workload, answers exec, shows its console, reboots, snapshots and restores, and powers off on stop", async () => {
      const boot = { kernel: kernel ?? d.kernel, cmdline: "console=ttyS0 panic=-1 quiet", ...(initramfs ? { initramfs } : {}) };
      await d.rpc.call("compute.vm.create", {
        id: "e2e",
        vcpus: 1,
        memory_mib: 512,
        boot,
        hostname: "e2e-guest",
        workload: { argv: ["sh", "-c", "echo workload up; sleep 3600"] },
      });
      pids.add((await d.rpc.call("compute.vm.start", { id: "e2e", timeout_ms: 60_000 })).pid);

      const hello = await d.rpc.call("compute.vm.exec", { id: "e2e", argv: ["sh", "-c", "echo hello from $(hostname)"], timeout_ms: 60_000 });
      expect(hello).toMatchObject({ exit_code: 0, stdout: "hello from e2e-guest\n" });
      expect((await d.rpc.call("compute.vm.status", { id: "e2e" })).agent.ready).toBe(true);
      await eventually(
        async () => ((await d.rpc.call("compute.vm.logs", { id: "e2e", tail: 65536 })).data.includes("[workload] workload up") ? true : undefined),
        30_000,
      );

      // A reboot: a new serial device and a fresh guest, which the agent probe finds again.
      await d.rpc.call("compute.vm.reboot", { id: "e2e" });
      const rebooted = await d.rpc.call("compute.vm.exec", { id: "e2e", argv: ["hostname"], timeout_ms: 60_000 });
      expect(rebooted).toMatchObject({ exit_code: 0, stdout: "e2e-guest\n" });

      // A snapshot, and a restore from it into a fresh VMM. With KVM the guest's memory comes back with it: a file in
      // its tmpfs is still there. The test VMM cannot checkpoint processes and starts the guest afresh (ADR 0003).
      await d.rpc.call("compute.vm.exec", { id: "e2e", argv: ["sh", "-c", "echo kept > /tmp/memory"], timeout_ms: 60_000 });
      await d.rpc.call("compute.vm.snapshot", { id: "e2e", name: "s1", timeout_ms: 120_000 });
      await d.rpc.call("compute.vm.stop", { id: "e2e", force: true });
      pids.add((await d.rpc.call("compute.vm.restore", { id: "e2e", name: "s1", resume: true, timeout_ms: 120_000 })).pid);
      const memory = await d.rpc.call("compute.vm.exec", { id: "e2e", argv: ["sh", "-c", "cat /tmp/memory 2>/dev/null || echo gone"], timeout_ms: 60_000 });
      expect(memory).toMatchObject({ exit_code: 0, stdout: realVmm ? "kept\n" : "gone\n" });

      const stopped = await d.rpc.call("compute.vm.stop", { id: "e2e", timeout_ms: 60_000 });
      expect(stopped.transitions.at(-1)?.reason).toMatch(/power button/);
      expect(await d.rpc.call("compute.vm.remove", { id: "e2e" })).toEqual({ id: "e2e", removed: true });
    }, 600_000);
  },
);
