/**
 * What a jailed VMM sees (ADR 0009): the system's programs and libraries
 * (os/mount-jail.ts adds those), the VMM binary and its interpreter, the
 * files its VM config names (kernel, initramfs or firmware, disks: writable
 * only if the disk is), its own directory (writable: its sockets and logs),
 * its staging directory (writable: CH writes a snapshot there, which the
 * daemon then moves away), the one snapshot it restores (read-only), the
 * devices a VM needs, and what the operator adds with --vmm-jail-bind.
 * Nothing else of the host: not the daemon's state, not other VMs' files.
 * The jail narrows what the VMM can reach, never widens it: a file of the
 * config its uid could not open outside (a directory above it closed to
 * others) it cannot open inside either, and CH reports that as it would.
 * Those files are looked up without following a link, judged by the objects
 * found, and pinned: the jail checks it bound those very objects, so a path
 * swapped after the check fails the start instead of showing something else.
 */
import type { Resources } from "../domain/resources.js";
import { slotOf } from "../domain/resources.js";
import type { VmSpec } from "../domain/vm-spec.js";
import type { JailNetwork, JailView } from "../os/mount-jail.js";
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
  network: JailNetwork,
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
    writable: [paths.vmmDir, paths.staging],
    devices: DEVICES,
    denied: [],
    pinned: new Map(),
    network,
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

/**
 * The network namespace a VMM runs in. CH opens each tap by name, in the namespace it runs in: a VM without NICs gets
 * one of its own; one whose taps all come from the network sibling joins the namespace they are in (the owner's, made
 * by the sibling); one with a tap the client named stays in the host's, where such a tap lives.
 */
export function vmmNetwork(spec: VmSpec, resources: Resources): JailNetwork {
  const nets = spec.nets ?? [];
  if (nets.length === 0) return { kind: "own" };
  const spaces = new Set(nets.map((n, i) => ("tap" in n ? undefined : resources.nets[slotOf("net", i)]?.netns)));
  const [only] = spaces;
  return spaces.size === 1 && only !== undefined ? { kind: "join", netns: only } : { kind: "host" };
}
