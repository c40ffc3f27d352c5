/**
 * Checks on a VM spec that need the host: files that must exist (reached through no symbolic link: a link's target can
 * change under the VM, and the jail shows no file through one), socket paths that must fit.
 */
import fs from "node:fs/promises";
import { invalidParams } from "../domain/errors.js";
import type { VmSpec } from "../domain/vm-spec.js";
import { walkPath } from "../os/path-walk.js";
import { MAX_SOCKET_PATH } from "../state/vm-paths.js";

export async function checkFilesExist(spec: VmSpec): Promise<void> {
  const boot = Object.entries(spec.boot).filter(([k]) => k !== "cmdline");
  const files = [
    ...boot.map(([k, v]) => [`boot.${k}`, `/boot/${k}`, v] as const),
    ...(spec.disks ?? []).flatMap((d, i) => ("path" in d ? [[`disks[${i}].path`, `/disks/${i}/path`, d.path] as const] : [])),
  ];
  for (const [label, pointer, file] of files) {
    const walk = await walkPath(file);
    if (walk.kind === "link") {
      const leadsTo = await fs.realpath(file).catch(() => "nothing that exists");
      throw invalidParams(pointer, `${label}: ${file} passes through a symbolic link at ${walk.at}; it leads to ${leadsTo}: give that path`, { file });
    }
    if (walk.kind === "missing") throw invalidParams(pointer, `${label}: ${file} does not exist`, { file });
    if (!walk.file.isFile() && !walk.file.isBlockDevice()) throw invalidParams(pointer, `${label}: ${file} is not a file or block device`, { file });
  }
}

/** CPUs in the kernel's list syntax, as /sys/devices/system/cpu/online writes them: "0-3,6,8-9". */
function parseCpuList(text: string): Set<number> {
  const cpus = new Set<number>();
  for (const part of text.trim().split(",").filter(Boolean)) {
    const [from, to = from] = part.split("-").map(Number) as [number, number?];
    for (let cpu = from; cpu <= to; cpu++) cpus.add(cpu);
  }
  return cpus;
}

/** Each host CPU a VM is pinned to must be online here: CH would fail only at boot, with a less helpful message. */
export async function checkHostCpus(spec: VmSpec): Promise<void> {
  if (!spec.cpu_affinity) return;
  const text = await fs.readFile("/sys/devices/system/cpu/online", "utf8");
  const online = parseCpuList(text);
  spec.cpu_affinity.forEach((cpu, i) => {
    if (!online.has(cpu))
      throw invalidParams(`/cpu_affinity/${i}`, `cpu_affinity: host CPU ${cpu} is not online on this host (online: ${text.trim()})`, { cpu });
  });
}

/** Every Unix socket the VM will have must fit in sun_path. */
export function checkSocketPaths(id: string, sockets: string[]): void {
  for (const socket of sockets) {
    if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
      throw invalidParams("/id", `id '${id}' is too long for this daemon's directories: ${socket} exceeds the ${MAX_SOCKET_PATH}-byte socket path limit`);
    }
  }
}
