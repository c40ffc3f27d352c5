/**
 * my_hypervisor-init's entry point on QuickJS. As PID 1 the arguments are
 * whatever the kernel passes on from its command line, and are ignored.
 * Anywhere else the init is a root exec agent with no authentication: it
 * runs only when told it is the test VMM's guest.
 */
import { VERSION } from "@my_hypervisor/lib/version";
import * as os from "os";
import * as std from "std";
import { Init } from "./init.js";
import { QuickJsPlatform } from "./quickjs/platform.js";

const USAGE = `Usage: my_hypervisor-init                   the guest's PID 1, started by the kernel
       my_hypervisor-init --under-test-vmm  the guest of cloud-hypervisor-sim (not PID 1: no mounts, hostname or network)
       my_hypervisor-init --help | --version`;

function checkInvocation(isPid1: boolean): void {
  if (isPid1) return;
  const args = scriptArgs.slice(1);
  const exit = (code: number, text: string): never => {
    (code === 0 ? std.out : std.err).puts(`${text}\n`);
    return std.exit(code);
  };
  if (args.includes("--help") || args.includes("-h")) exit(0, USAGE);
  if (args.includes("--version")) exit(0, `my_hypervisor-init ${VERSION}`);
  const unknown = args.filter((a) => a !== "--under-test-vmm");
  if (unknown.length > 0) exit(2, `my_hypervisor-init: unknown argument '${unknown[0]}'\n${USAGE}`);
  if (args.length === 0)
    exit(2, `my_hypervisor-init: refusing to run: this is a guest's PID 1 (it serves exec as root, without authentication), not a host program\n${USAGE}`);
}

checkInvocation(os.getpid() === 1);
const init = new Init(new QuickJsPlatform());
try {
  init.run();
} catch (e) {
  init.fatal(e);
}
