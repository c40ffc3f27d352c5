/**
 * What this host has, as the kernel reports it: CPUs, memory, hugepages,
 * whether /dev/kvm can be opened, and the cgroup v2 hierarchy's controllers.
 * Read on demand (each read is a few small files under /proc and /sys).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { cgroup2Mount, controllersOf } from "./cgroup2.js";

export interface HugepagePool {
  size_kib: number;
  total: number;
  free: number;
}

export interface HostResources {
  cpus: { online: number; model: string | null };
  memory_mib: { total: number; available: number };
  hugepages: HugepagePool[];
  kvm: { device: string; usable: boolean; reason: string | null };
  cgroup_v2: { mount: string | null; controllers: string[] };
}

const KVM_DEVICE = "/dev/kvm";
const HUGEPAGES_DIR = "/sys/kernel/mm/hugepages";

export function readHostResources(): HostResources {
  return { cpus: cpus(), memory_mib: memory(), hugepages: hugepages(), kvm: kvm(), cgroup_v2: cgroupV2() };
}

function cpus(): HostResources["cpus"] {
  const list = os.cpus();
  return { online: list.length, model: list[0]?.model ?? null };
}

function memory(): HostResources["memory_mib"] {
  const info = readText("/proc/meminfo") ?? "";
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(info)?.[1] ?? 0);
  return { total: Math.floor(kib("MemTotal") / 1024), available: Math.floor(kib("MemAvailable") / 1024) };
}

function hugepages(): HugepagePool[] {
  let dirs: string[];
  try {
    dirs = fs.readdirSync(HUGEPAGES_DIR);
  } catch {
    return [];
  }
  return dirs
    .map((name) => ({ name, size: Number(/^hugepages-(\d+)kB$/.exec(name)?.[1]) }))
    .filter(({ size }) => size > 0)
    .map(({ name, size }) => ({
      size_kib: size,
      total: Number(readText(path.join(HUGEPAGES_DIR, name, "nr_hugepages")) ?? 0),
      free: Number(readText(path.join(HUGEPAGES_DIR, name, "free_hugepages")) ?? 0),
    }))
    .sort((a, b) => a.size_kib - b.size_kib);
}

/** Usable means the daemon can open it read-write, as a VMM must; whether the CPU can run guests is the kernel's to say at vm.create. */
function kvm(): HostResources["kvm"] {
  try {
    fs.closeSync(fs.openSync(KVM_DEVICE, fs.constants.O_RDWR));
    return { device: KVM_DEVICE, usable: true, reason: null };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return { device: KVM_DEVICE, usable: false, reason: `${err.code ?? "error"}: ${err.message}` };
  }
}

/** The cgroup2 mount, and the controllers its root offers. */
function cgroupV2(): HostResources["cgroup_v2"] {
  const mount = cgroup2Mount();
  return mount === undefined ? { mount: null, controllers: [] } : { mount, controllers: controllersOf(mount) };
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}
