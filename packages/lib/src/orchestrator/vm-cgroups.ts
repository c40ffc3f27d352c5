/**
 * A cgroup v2 per VM (ADR 0009), under a subtree the daemon owns: its own
 * cgroup (the service's, which systemd delegates with Delegate=yes), or
 * `/my_hypervisor` when the daemon runs in the root cgroup. The daemon moves
 * itself into `<base>/daemon` (a cgroup with children may hold no process),
 * enables the controllers for `<base>/vms/`, and gives each VM
 * `<base>/vms/<id>` with its limits written before its VMM is spawned into
 * it. Where cgroup v2 or one of the controllers every VM needs is missing,
 * nothing is created: the daemon says so, and starts are refused unless it
 * was told to accept unenforced limits.
 */
import path from "node:path";
import type { Logger } from "pino";
import { ErrorCode, RpcError } from "../domain/errors.js";
import { cgroupSettings, type IoRate, ioMaxLine, vmLimits } from "../domain/vm-limits.js";
import type { VmSpec } from "../domain/vm-spec.js";
import {
  cgroup2Mount,
  cgroupOf,
  controllersOf,
  enableControllers,
  makeCgroup,
  moveInto,
  readSetting,
  removeCgroup,
  wholeDiskOf,
  writeSetting,
} from "../os/cgroup2.js";

/** A disk of the VM as a file, and its rate limit if it has one. */
export interface LimitedDisk {
  path: string;
  rate_limit?: IoRate;
}

/** What every VM's limits need. */
export const REQUIRED_CONTROLLERS = ["cpu", "memory", "pids"];
/** Used where present: io.max on the whole disks under rate-limited disks (CH's own rate limiters hold them regardless). */
const OPTIONAL_CONTROLLERS = ["io"];
const ROOT_BASE = "/my_hypervisor";

export interface CgroupSupport {
  /** The subtree's directory, or null where the daemon has none. */
  base: string | null;
  /** Controllers each VM's cgroup has. */
  controllers: string[];
  /** Required controllers the host does not give this daemon. */
  missing: string[];
  /** Why limits cannot be enforced here, if they cannot. */
  problem: string | null;
  /** --allow-unenforced-limits: VMs start anyway, without a cgroup. */
  unenforced_allowed: boolean;
}

export class VmCgroups {
  private constructor(
    readonly support: CgroupSupport,
    /** Where cgroup2 is mounted: a cgroup's path in /proc/<pid>/cgroup is relative to it. */
    private readonly mount: string,
  ) {}

  static async open(allowUnenforced: boolean, log: Logger): Promise<VmCgroups> {
    const support = await prepareBase(allowUnenforced);
    if (support.problem === null) log.info({ cgroup: support.base, controllers: support.controllers }, "VMs get a cgroup v2 each");
    else if (allowUnenforced) log.warn({ problem: support.problem }, "VM limits are not enforced on this host; VMs start anyway (--allow-unenforced-limits)");
    else log.error({ problem: support.problem }, "VM limits cannot be enforced on this host: starts will be refused (--allow-unenforced-limits accepts that)");
    return new VmCgroups(support, cgroup2Mount() ?? "/sys/fs/cgroup");
  }

  get enforcing(): boolean {
    return this.support.base !== null && this.support.problem === null;
  }

  /** -32015 for a VM that cannot be held to its limits here, unless the operator accepted that. */
  refusal(id: string): RpcError | undefined {
    const { problem, unenforced_allowed, missing } = this.support;
    if (problem === null || unenforced_allowed) return undefined;
    return new RpcError(
      ErrorCode.LimitsNotEnforceable,
      `cannot start VM '${id}': its CPU, memory and pid limits cannot be enforced on this host (${problem})`,
      {
        id,
        missing,
      },
    );
  }

  /** The VM's cgroup directory, or undefined where VMs get none. */
  dirOf(id: string): string | undefined {
    return this.enforcing ? path.join(this.support.base as string, "vms", id) : undefined;
  }

  /** Before the VMM is spawned: the VM's cgroup, empty, with its limits written. Returns its directory. */
  async prepare(id: string, spec: VmSpec, disks: LimitedDisk[]): Promise<string | undefined> {
    const dir = this.dirOf(id);
    if (!dir) return undefined;
    await makeCgroup(dir);
    for (const [file, value] of this.settings(spec, disks)) await writeSetting(dir, file, value);
    return dir;
  }

  /**
   * For a VMM that was already running (re-adoption, the reconcile): puts it back in its cgroup if it left, and
   * writes again any limit that differs. Returns what had to be corrected.
   */
  async check(id: string, pid: number, spec: VmSpec, disks: LimitedDisk[]): Promise<string[]> {
    const dir = this.dirOf(id);
    if (!dir) return [];
    const fixed: string[] = [];
    await makeCgroup(dir);
    for (const [file, value] of this.settings(spec, disks)) {
      // io.max holds a line per device.
      const now = readSetting(dir, file);
      if (now === value || (file === "io.max" && now?.split("\n").includes(value))) continue;
      await writeSetting(dir, file, value);
      fixed.push(file);
    }
    const relative = `/${path.relative(this.mount, dir)}`;
    const now = cgroupOf(pid);
    if (now !== undefined && now !== relative) {
      await moveInto(dir, pid);
      fixed.push(`cgroup.procs (was in ${now})`);
    }
    return fixed;
  }

  /** After the VMM is gone. */
  async remove(id: string): Promise<void> {
    const dir = this.dirOf(id);
    if (dir) await removeCgroup(dir);
  }

  /** The VM's limits as interface files; with the io controller, an io.max line for each whole disk its rate-limited disks are on. */
  private settings(spec: VmSpec, disks: LimitedDisk[]): [file: string, value: string][] {
    const settings = cgroupSettings(vmLimits(spec));
    if (!this.support.controllers.includes("io")) return settings;
    const byDevice = new Map<string, IoRate[]>();
    for (const d of disks) {
      const device = d.rate_limit && wholeDiskOf(d.path);
      if (device) byDevice.set(device, [...(byDevice.get(device) ?? []), d.rate_limit as IoRate]);
    }
    return [...settings, ...[...byDevice].map(([device, rates]) => ["io.max", ioMaxLine(device, rates)] as [string, string])];
  }
}

/** Finds or makes the daemon's subtree, and says what it can enforce. */
async function prepareBase(allowUnenforced: boolean): Promise<CgroupSupport> {
  const unsupported = (problem: string, missing = REQUIRED_CONTROLLERS, base: string | null = null): CgroupSupport => ({
    base,
    controllers: [],
    missing,
    problem,
    unenforced_allowed: allowUnenforced,
  });
  const mount = cgroup2Mount();
  if (!mount) return unsupported("cgroup v2 is not mounted");
  const own = cgroupOf("self");
  if (own === undefined) return unsupported("this process is in no cgroup v2");
  // In the root cgroup (a plain init, a VM): a subtree of our own beside it. Otherwise our own cgroup is the subtree.
  const base = own === "/" ? path.join(mount, ROOT_BASE) : path.join(mount, own);
  const parent = own === "/" ? mount : base;
  const offered = controllersOf(parent);
  const missing = REQUIRED_CONTROLLERS.filter((c) => !offered.includes(c));
  if (missing.length > 0)
    return unsupported(`cgroup v2 at ${mount} does not offer the ${missing.join(", ")} controller${missing.length > 1 ? "s" : ""} here`, missing);
  const controllers = [...REQUIRED_CONTROLLERS, ...OPTIONAL_CONTROLLERS.filter((c) => offered.includes(c))];
  try {
    if (own === "/") {
      await enableControllers(mount, controllers);
      await makeCgroup(base);
    } else {
      // A cgroup whose children use controllers may hold no process itself: the daemon moves to a leaf of its own.
      await makeCgroup(path.join(base, "daemon"));
      await moveInto(path.join(base, "daemon"), process.pid);
    }
    await enableControllers(base, controllers);
    await makeCgroup(path.join(base, "vms"));
    await enableControllers(path.join(base, "vms"), controllers);
  } catch (e) {
    // Leave the host as found: the daemon back where it was started, nothing of ours left behind.
    if (own !== "/") await moveInto(path.join(mount, own), process.pid).catch(() => undefined);
    for (const dir of [path.join(base, "vms"), own === "/" ? base : path.join(base, "daemon")]) await removeCgroup(dir).catch(() => undefined);
    const err = e as NodeJS.ErrnoException;
    const why = err.code === "EBUSY" ? `other processes share the daemon's cgroup ${own}; run it in a cgroup of its own (systemd: Delegate=yes)` : err.message;
    return unsupported(`cannot set up the VMs' cgroups under ${base}: ${why}`, [], base);
  }
  return { base, controllers, missing: [], problem: null, unenforced_allowed: allowUnenforced };
}
