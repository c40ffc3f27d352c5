/**
 * A guest must never outlive its test VMM. Should the VMM vanish without the
 * kernel's help (its death signal lost in a fork/prctl window), the init
 * finds its console and serial input gone and exits, rather than spinning on
 * write errors as it once did.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { encodeConfig } from "@my_hypervisor/lib/init-config";
import { expect, it } from "vitest";
import { INIT_BINARY, ROOT } from "./guest-image.js";

it("exits at once when the test VMM's ends of its console are gone, even while it is writing to it", async () => {
  // A chatty workload: the init is writing to the console when the VMM's end disappears.
  const chatty = encodeConfig({ workload: { argv: ["sh", "-c", "while :; do echo tick; sleep 0.005; done"] } });
  const init = spawn(INIT_BINARY, ["--under-test-vmm"], {
    env: { mh_config: chatty, MH_SIM_VSOCK_DIR: path.join(ROOT, ".run"), PATH: process.env.PATH ?? "/usr/bin:/bin" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let output = "";
  init.stdout.on("data", (d) => {
    output += d;
  });
  while (!output.includes("[workload] tick")) await new Promise((r) => setTimeout(r, 20));
  const exited = new Promise<[number | null, string | null]>((resolve) => init.once("exit", (code, signal) => resolve([code, signal])));
  for (const end of [init.stdin, init.stdout, init.stderr]) end.destroy();
  const guard = setTimeout(() => init.kill("SIGKILL"), 5000);
  const [code, signal] = await exited;
  clearTimeout(guard);
  expect({ code, signal }).toEqual({ code: 0, signal: null });
});
