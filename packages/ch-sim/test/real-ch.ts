/**
 * The real cloud-hypervisor, for the tests that run on it: `MH_REAL_CH`, else the binary in `../shared/cloud-hypervisor/`
 * beside the checkout (built there by its `build.sh`, which `.ci/run` calls when only the source is there). Booting
 * needs `/dev/kvm` and a kernel with a PVH entry: the vmlinux inside the host's Debian bzImage. Where any of these is
 * missing the tests that need it skip, and `missing` says why.
 */
import fs from "node:fs";
import path from "node:path";
import { bootableKernel, kernel as bzImage, ROOT } from "../../init/test/guest-image.js";

export const REAL_CH_BINARY = process.env.MH_REAL_CH ?? path.resolve(ROOT, "../shared/cloud-hypervisor/cloud-hypervisor");

function whatIsMissing(): string | undefined {
  if (!fs.existsSync(REAL_CH_BINARY)) return `no real cloud-hypervisor at ${REAL_CH_BINARY} (../shared is not beside this checkout; MH_REAL_CH names another)`;
  try {
    fs.closeSync(fs.openSync("/dev/kvm", "r+"));
  } catch (e) {
    return `/dev/kvm cannot be opened (${(e as NodeJS.ErrnoException).code})`;
  }
  if (bzImage === undefined) return "no /boot/vmlinuz-* to boot (scripts/install-guest-test-deps.sh installs one)";
  return undefined;
}

/** Why the real binary cannot run here, or undefined when it can. */
export const realChMissing = whatIsMissing();

let vmlinux: string | undefined;
/** A kernel the real binary boots (as far as its vCPU running, on a PVM host): extracted once into `.run/`. */
export function realKernel(): string {
  vmlinux ??= bootableKernel(bzImage as string);
  return vmlinux;
}
