/**
 * The real cloud-hypervisor, for the tests that run on it: `MH_REAL_CH`, else the binary in `../shared/cloud-hypervisor/`
 * beside the checkout (`.ci/run` builds it there with its `build.sh` when only the source is there). Where it or
 * /dev/kvm is missing, the tests that need it skip and `realChMissing` says why.
 *
 * The kernel they boot is the smallest there is: an ELF whose PVH entry halts the vCPU for good. So the guest is the
 * same on every host, this one (whose PVM KVM runs no stock guest code at all) and a full KVM host alike: nothing
 * runs, nothing is printed, no disk is read, the power button goes unanswered. The test VMM's `sim.guest=none` is
 * that guest.
 */
import fs from "node:fs";
import path from "node:path";
import { ROOT } from "../../init/test/guest-image.js";

export const REAL_CH_BINARY = process.env.MH_REAL_CH || path.resolve(ROOT, "../shared/cloud-hypervisor/cloud-hypervisor");

function whatIsMissing(): string | undefined {
  if (!fs.existsSync(REAL_CH_BINARY)) return `no real cloud-hypervisor at ${REAL_CH_BINARY} (../shared is not beside this checkout; MH_REAL_CH names another)`;
  try {
    fs.closeSync(fs.openSync("/dev/kvm", "r+"));
  } catch (e) {
    return `/dev/kvm cannot be opened (${(e as NodeJS.ErrnoException).code})`;
  }
  return undefined;
}

/** Why the real binary cannot run here, or undefined when it can. */
export const realChMissing = whatIsMissing();

/** Where the guest starts: the lowest address CH loads a kernel at. */
const ENTRY = 0x100000;
const CODE_OFFSET = 0x1000;
/** `hlt; jmp <the hlt>`, run in 32-bit protected mode from the PVH entry. */
const HALT = Buffer.from([0xf4, 0xeb, 0xfd]);
const NOTE_OFFSET = 0xb0;
const XEN_ELFNOTE_PHYS32_ENTRY = 18;

/** An ELF64 with one loadable segment (the code) and the Xen note naming its PVH entry. */
function haltingElf(): Buffer {
  const elf = Buffer.alloc(CODE_OFFSET + HALT.length);
  elf.write("\x7fELF", 0, "latin1");
  elf.set([2, 1, 1], 4); // 64-bit, little endian, ELF version 1
  elf.writeUInt16LE(2, 16); // an executable
  elf.writeUInt16LE(0x3e, 18); // x86-64
  elf.writeUInt32LE(1, 20);
  elf.writeBigUInt64LE(BigInt(ENTRY), 24);
  elf.writeBigUInt64LE(64n, 32); // program headers right after this header
  elf.writeUInt16LE(64, 52);
  elf.writeUInt16LE(56, 54);
  elf.writeUInt16LE(2, 56);
  elf.writeUInt16LE(64, 58);
  const programHeader = (at: number, type: number, flags: number, offset: number, address: number, size: number, align: number) => {
    elf.writeUInt32LE(type, at);
    elf.writeUInt32LE(flags, at + 4);
    for (const [i, v] of [offset, address, address, size, size, align].entries()) elf.writeBigUInt64LE(BigInt(v), at + 8 + i * 8);
  };
  programHeader(64, 1, 5, CODE_OFFSET, ENTRY, HALT.length, 0x1000); // PT_LOAD, read and execute
  programHeader(120, 4, 4, NOTE_OFFSET, 0, 20, 4); // PT_NOTE
  elf.writeUInt32LE(4, NOTE_OFFSET); // name size
  elf.writeUInt32LE(4, NOTE_OFFSET + 4); // descriptor size
  elf.writeUInt32LE(XEN_ELFNOTE_PHYS32_ENTRY, NOTE_OFFSET + 8);
  elf.write("Xen\0", NOTE_OFFSET + 12, "latin1");
  elf.writeUInt32LE(ENTRY, NOTE_OFFSET + 16);
  HALT.copy(elf, CODE_OFFSET);
  return elf;
}

/**
 * The halting kernel, written once into the checkout's `.run/` (which a jailed VMM sees), readable by every uid; a
 * rename puts it there whole, as test files running at once may each write it.
 */
export function realKernel(): string {
  const file = path.join(ROOT, ".run", "halt-kernel.elf");
  if (!fs.existsSync(file)) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, haltingElf(), { mode: 0o644 });
    fs.chmodSync(tmp, 0o644);
    fs.renameSync(tmp, file);
  }
  return file;
}
