/**
 * The guest image: reproducible, and self-contained: unpacked and run with
 * chroot as PID 1 in fresh namespaces, with nothing from the host, it starts
 * and serves exec.
 */
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { runExec } from "@my_hypervisor/lib/exec-client";
import { encodeConfig } from "@my_hypervisor/lib/init-config";
import { describe, expect, it } from "vitest";
import { buildImage, isRoot, missingForImage } from "./guest-image.js";

const sha = (f: string) => createHash("sha256").update(fs.readFileSync(f)).digest("hex");

describe.skipIf(missingForImage !== undefined)(`the initramfs${missingForImage ? ` (skipped: ${missingForImage})` : ""}`, () => {
  it("is reproducible: built twice, the same bytes", () => {
    expect(sha(buildImage())).toBe(sha(buildImage()));
  }, 120_000);

  it.skipIf(!isRoot)(
    "is self-contained: /init runs as PID 1 in a chroot and serves exec (needs root)",
    async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mh-root-"));
      execFileSync("sh", ["-c", `gzip -dc '${buildImage()}' | cpio -idm --quiet`], { cwd: dir });
      fs.mkdirSync(path.join(dir, "agent"));
      const config = encodeConfig({ hostname: "chrooted", workload: { argv: ["sh", "-c", "(sleep 0.2 &); echo started"] } });
      const guest = spawn("unshare", ["--pid", "--mount", "--uts", "--fork", "--kill-child=SIGKILL", "chroot", dir, "/init"], {
        // Only what the kernel would pass to init, and PATH for finding unshare and chroot on the host.
        env: { mh_config: config, MH_SIM_VSOCK_DIR: "/agent", PATH: process.env.PATH ?? "/usr/bin:/bin" },
        // As under the test VMM, stdin is a pipe the "VMM" (this test) holds open: EOF would mean it is gone.
        stdio: ["pipe", "pipe", "pipe"],
      });
      let console = "";
      guest.stdout.on("data", (d) => {
        console += d;
      });
      try {
        const agent = path.join(dir, "agent", "1024.sock");
        for (let i = 0; i < 200 && !fs.existsSync(agent); i++) await new Promise((r) => setTimeout(r, 50));
        const conn = await new Promise<net.Socket>((resolve, reject) =>
          net
            .connect(agent)
            .once("connect", function (this: net.Socket) {
              resolve(this);
            })
            .once("error", reject),
        );
        const r = await runExec(conn, { argv: ["sh", "-c", "echo $$ $(hostname) $(cat /proc/1/comm); ls /proc/1/root/init"] }, undefined);
        expect(r.stdout.toString().trim().split(/\s+/).slice(1)).toEqual(["chrooted", "init", "/proc/1/root/init"]);
        for (let i = 0; i < 60 && !/reaped orphan/.test(console); i++) await new Promise((r) => setTimeout(r, 50));
        expect(console).toMatch(/\[init\] my_hypervisor-init starting as pid 1/);
        expect(console).toMatch(/\[workload\] started/);
        expect(console).toMatch(/reaped orphan/);
        const exited = new Promise<[number | null, string | null]>((resolve) => guest.once("exit", (c, s) => resolve([c, s])));
        // Inside the namespace, SIGTERM to PID 1 powers the "machine" off: reboot(2) ends the namespace with SIGINT.
        await runExec(
          await new Promise<net.Socket>((resolve, reject) =>
            net
              .connect(agent)
              .once("connect", function (this: net.Socket) {
                resolve(this);
              })
              .once("error", reject),
          ),
          { argv: ["kill", "-TERM", "1"] },
          undefined,
        ).catch(() => undefined);
        const [code, signal] = await exited;
        expect(signal === "SIGINT" || code === 130).toBe(true);
        expect(console).toMatch(/shutting down: SIGTERM[\s\S]*powering off/);
      } finally {
        guest.kill("SIGKILL");
      }
    },
    120_000,
  );
});
