/**
 * What a jailed VMM sees (ADR 0009): the system's programs and libraries
 * (os/mount-jail.ts adds those), the VMM binary and its interpreter, the
 * files its VM config names (kernel, initramfs or firmware, disks: writable
 * only if the disk is), its own directory (writable: its sockets and logs,
 * and the snapshot CH writes, which the daemon then moves away), the one
 * snapshot it restores (read-only), the devices a VM needs, and what the
 * operator adds with --vmm-jail-bind.
 * Nothing else of the host: not the daemon's state, not other VMs' files.
 * The jail narrows what the VMM can reach, never widens it: a file of the
 * config its uid could not open outside (a directory above it closed to
 * others) it cannot open inside either, and CH reports that as it would.
 * Those files are looked up without following a link, judged by the objects
 * found, and pinned: the jail checks it bound those very objects, so a path
 * swapped after the check fails the start instead of showing something else.
 */
import type { JailView } from "../os/mount-jail.js";
import { identityOf, modeAllows, walkPath } from "../os/path-walk.js";
import { canOpenAs, type FileAccess, type UnprivilegedUser } from "../os/unprivileged-user.js";
import type { VmPaths } from "../state/vm-paths.js";
import type { ChVmConfig } from "./client.js";
import type { VmmExecutable } from "./vmm-binary.js";

/** /dev/kvm for the VM, /dev/net/tun for its taps, the rest for CH's entropy source and stdio. */
const DEVICES = ["/dev/kvm", "/dev/net/tun", "/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"];

export interface VmmJailConfig {
  /** Where each jail mounts its root (an empty directory of root's). */
  mountPoint: string;
  /** --vmm-jail-bind: more paths every VMM sees, read-only. */
  extra: string[];
}

export async function vmmJailView(
  jail: VmmJailConfig,
  vm: ChVmConfig,
  paths: VmPaths,
  user: UnprivilegedUser,
  vmm: { binary: string; executable: VmmExecutable | undefined },
  restoreFrom?: string,
): Promise<JailView> {
  const { payload, disks } = vm;
  const files: FileAccess[] = [
    ...[payload.kernel, payload.initramfs, payload.firmware].map((path) => ({ path, write: false })),
    ...(disks ?? []).map((d) => ({ path: d.path, write: !d.readonly })),
  ].filter((f): f is FileAccess => absolute(f.path));
  const view: JailView = {
    mountPoint: jail.mountPoint,
    readOnly: [vmm.binary, vmm.executable?.exe, vmm.executable?.script, restoreFrom, ...jail.extra].filter(absolute),
    writable: [paths.vmmDir],
    devices: DEVICES,
    denied: [],
    pinned: new Map(),
    // A VM with NICs opens its taps by name, in the namespace they live in (the network sibling's): such a VMM stays
    // in the host's network namespace until taps are handed over as descriptors.
    ownNetwork: (vm.net ?? []).length === 0,
  };
  // The mode bits of the objects found decide; the kernel's own check (ACLs, read-only mounts) can only narrow that.
  const [walks, kernelAllows] = await Promise.all([Promise.all(files.map((f) => walkPath(f.path))), canOpenAs(user, files)]);
  files.forEach(({ path, write }, i) => {
    const walk = walks[i];
    if (walk?.kind === "link") throw new Error(`${path} passes through a symbolic link at ${walk.at}: the VMM is shown no file through a link`);
    // Missing: the VMM reports it as it would outside.
    if (walk?.kind !== "found") return;
    const allowed = kernelAllows[i] && modeAllows(walk, user, write);
    (allowed ? (write ? view.writable : view.readOnly) : view.denied).push(path);
    if (allowed) view.pinned.set(path, identityOf(walk.file));
  });
  return { ...view, readOnly: [...new Set(view.readOnly)], writable: [...new Set(view.writable)], denied: [...new Set(view.denied)] };
}

const absolute = (p: string | undefined | null): p is string => typeof p === "string" && p.startsWith("/");
