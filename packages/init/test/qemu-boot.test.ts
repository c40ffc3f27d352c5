/**
 * The guest image in a real Linux kernel, under QEMU's software emulation:
 * my_hypervisor-init runs as PID 1, mounts what it should, starts the
 * workload from its kernel command line configuration, reaps, and powers the
 * machine off, so QEMU exits on its own.
 */
import { spawn } from "node:child_process";
import { encodeConfig } from "@my_hypervisor/lib/init-config";
import { describe, expect, it } from "vitest";
import { bootableKernel, buildImage, haveQemu, kernel, missingForImage } from "./guest-image.js";

const missing = missingForImage ?? (!haveQemu ? "qemu-system-x86_64 is not installed" : !kernel ? "no kernel in /boot (linux-image-amd64)" : undefined);

describe.skipIf(missing !== undefined)(
  `booting a real kernel${missing ? ` (skipped: ${missing}; scripts/install-guest-test-deps.sh installs it)` : ""}`,
  () => {
    it("runs the init as PID 1, which mounts, runs the workload, reaps and powers off", async () => {
      const image = await sharedImage;
      const workload = "echo workload on $(hostname); (sleep 0.3 &); sleep 2; echo mounts: $(cut -d' ' -f5 /proc/self/mountinfo | tr '\\n' ' ')";
      const config = encodeConfig({ hostname: "tcg-guest", workload: { argv: ["sh", "-c", workload], on_exit: "poweroff" } });
      const { code, out } = await boot(image, config);
      expect(out).toMatch(/\[init\] my_hypervisor-init starting as pid 1\r?\n/);
      expect(out).toMatch(/\[init\] mounted \/proc \/sys \/dev \/dev\/pts \/run \/tmp/);
      expect(out).toMatch(/\[workload\] workload on tcg-guest/);
      expect(out).toMatch(/\[workload\] mounts: \/ \/proc \/sys \/dev \/dev\/pts \/run \/tmp/);
      expect(out).toMatch(/\[init\] reaped orphan \d+/);
      expect(out).toMatch(/\[init\] shutting down: workload finished[\s\S]*reboot: Power down/);
      expect(code).toBe(0);
    }, 180_000);

    it("gives a console workload the serial port as its controlling terminal, and what is typed reaches it", async () => {
      const workload = "tty; (echo >/dev/tty) 2>/dev/null && echo has-ctty; echo reading; read line; echo got:$line";
      const config = encodeConfig({ workload: { argv: ["sh", "-c", workload], console: true, on_exit: "poweroff" } });
      const { code, out } = await boot(await sharedImage, config, (out, typeIn) => /^reading\r?$/m.test(out) && typeIn("typed at the console\n"));
      // Untagged: the console is the workload's own. The tty echoes what was typed, then the workload answers.
      expect(out).toMatch(/^\/dev\/console\r?$/m);
      expect(out).toMatch(/^has-ctty\r?$/m);
      expect(out).toMatch(/^got:typed at the console\r?$/m);
      expect(out).toMatch(/\[init\] workload exited \(code 0\)/);
      expect(code).toBe(0);
    }, 180_000);
  },
);

/** Built once for this file's boots. */
const sharedImage = missing === undefined ? Promise.resolve().then(() => buildImage()) : Promise.resolve("");

/**
 * Boots the image under TCG until the guest powers off. `onOutput` sees the console so far each time more
 * arrives, and may type at the serial port once; a test waits for the guest, never for a time.
 */
async function boot(image: string, config: string, onOutput?: (out: string, typeIn: (text: string) => void) => void) {
  // The vmlinux through its PVH entry, not the bzImage: decompressing that under TCG costs 4–6 s.
  const vmlinux = bootableKernel(kernel as string);
  const args = ["-accel", "tcg", "-M", "microvm", "-m", "512", "-nographic", "-no-reboot", "-kernel", vmlinux, "-initrd", image];
  // microvm has no HPET or PM timer, and on a busy machine the TSC calibration against the PIT can fail
  // and hang the boot under TCG: give the kernel the TSC rate and loops-per-jiffy instead of measuring them.
  const cmdline = `console=ttyS0 panic=-1 quiet tsc_early_khz=2000000 lpj=4000000 mh_config=${config}`;
  const qemu = spawn("qemu-system-x86_64", [...args, "-append", cmdline], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  let typed = false;
  const typeIn = (text: string) => {
    if (!typed) qemu.stdin.write(text);
    typed = true;
  };
  qemu.stdout.on("data", (d) => {
    out += d;
    onOutput?.(out, typeIn);
  });
  const guard = setTimeout(() => qemu.kill("SIGKILL"), 170_000);
  const code = await new Promise<number | null>((resolve) => qemu.once("exit", resolve));
  clearTimeout(guard);
  return { code, out };
}
