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

/**
 * The kernel to boot under TCG: the bzImage's uncompressed vmlinux. Debian's
 * kernel has a PVH entry, so QEMU boots the ELF directly and the 4–6 s TCG
 * spends decompressing a bzImage go (the first console line comes at ~1.2 s).
 * The vmlinux is the bzImage's payload: the boot protocol header (≥ 2.08)
 * gives its offset (0x248, from the start of the protected-mode code, which
 * follows the setup sectors) and length (0x24c); Debian compresses it with xz.
 * Extracted once per kernel, beside the tests' other build outputs.
 */
export function bootableKernel(bzImageName: string): string {
  const source = path.join("/boot", bzImageName);
  // Named by the bzImage's name and mtime: an upgraded kernel of the same name is extracted again.
  const out = path.join(ROOT, ".run", `vmlinux-${bzImageName.replace(/^vmlinuz-/, "")}-${Math.trunc(fs.statSync(source).mtimeMs)}`);
  if (fs.existsSync(out)) return out;
  const image = fs.readFileSync(source);
  if (image.readUInt16LE(0x206) < 0x208) throw new Error(`${bzImageName}: boot protocol older than 2.08 has no payload fields`);
  const protectedMode = ((image[0x1f1] || 4) + 1) * 512;
  const start = protectedMode + image.readUInt32LE(0x248);
  const payload = image.subarray(start, start + image.readUInt32LE(0x24c));
  // The kernel appends the uncompressed size after the xz stream: decode that one stream only.
  const vmlinux = execFileSync("xz", ["-dc", "--single-stream"], { input: payload, maxBuffer: 512 * 1024 * 1024 });
  if (!vmlinux.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) throw new Error(`${bzImageName}: the payload is not an xz-compressed ELF`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  // Written under a temp name first: test files run in parallel.
  const temp = `${out}.${process.pid}.tmp`;
  fs.writeFileSync(temp, vmlinux);
  fs.renameSync(temp, out);
  return out;
}
