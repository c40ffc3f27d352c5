/** Shared by the guest image tests: what the machine has, and building the image once. */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const has = (cmd: string) => {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
};

export const isRoot = process.getuid?.() === 0;
/** The init as `make build` leaves it (scripts/build-init.sh). */
export const INIT_BINARY = path.join(ROOT, "packages/init/dist/my_hypervisor-init");
export const haveCpio = has("cpio");
export const haveQemu = has("qemu-system-x86_64");
export const kernel = fs.existsSync("/boot") ? fs.readdirSync("/boot").find((f) => f.startsWith("vmlinuz-")) : undefined;
export const missingForImage = haveCpio ? undefined : "cpio is not installed (scripts/install-guest-test-deps.sh)";

export function buildImage(out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "mh-img-")), "initramfs.cpio.gz")): string {
  execFileSync("bash", [path.join(ROOT, "scripts/build-initramfs.sh"), "-o", out], { stdio: "ignore" });
  return out;
}

/** The kernel to boot under TCG: the bzImage's uncompressed vmlinux, booted through its PVH entry (scripts/extract-vmlinux.sh). */
export function bootableKernel(bzImageName: string): string {
  return execFileSync(path.join(ROOT, "scripts/extract-vmlinux.sh"), [path.join("/boot", bzImageName)], { encoding: "utf8" }).trim();
}
