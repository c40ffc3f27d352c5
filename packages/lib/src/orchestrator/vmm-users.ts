/**
 * VMMs under uids of their own (`--vmm-uid-range`): each VM holds one uid
 * (and the gid of the same number) from the range for its whole life, from
 * create to remove, recorded in its state.json; a uid is given again only
 * after its VM is removed, every process of it ended and every file of it
 * gone (issue 22: a uid given twice lets one tenant signal another's
 * processes). The VMM writes only in its own directory,
 * `<vmm-dir>/<id>/`, owned by that uid with mode 0700; the base directory is
 * root's, 0711, so no VMM can list the others.
 */
import fsSync from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import type { VmmJailConfig } from "../ch/vmm-jail.js";
import { ErrorCode, onDisk, RpcError } from "../domain/errors.js";
import { processesByUid, readUid } from "../os/proc.js";
import type { UnprivilegedUser } from "../os/unprivileged-user.js";
import { type VmPaths, vmPaths } from "../state/vm-paths.js";
import type { VmEntry } from "./vm-entry.js";
import type { VmServices } from "./vm-services.js";

export interface VmmUsersConfig {
  first: number;
  last: number;
  /** The base of every VM's VMM directory. */
  dir: string;
  /** Supplementary groups every VMM gets (`kvm`). */
  groups: number[];
  /** --vmm-jail-bind: more paths every jailed VMM sees, read-only. */
  jailBinds: string[];
}

const RECLAIM_WAIT_MS = 5_000;
const RECLAIM_POLL_MS = 10;

/** Each VMM's jail mounts its root here, in its own mount namespace. Not a VM id: those never start with a dot. */
const JAIL_MOUNT_POINT = ".jail";

export class VmmUsers {
  private readonly held = new Set<number>();

  constructor(readonly config: VmmUsersConfig) {}

  /** Creates the base directory: root's, 0711 (each VMM can reach its own directory, and list none), and the jails' mount point. */
  async init(): Promise<void> {
    await onDisk("create", this.config.dir, () => fs.mkdir(this.config.dir, { recursive: true, mode: 0o711 }));
    await onDisk("chmod", this.config.dir, () => fs.chmod(this.config.dir, 0o711));
    const mountPoint = this.jail.mountPoint;
    await onDisk("create", mountPoint, () =>
      fs.mkdir(mountPoint, { mode: 0o700 }).catch((e: NodeJS.ErrnoException) => (e.code === "EEXIST" ? undefined : Promise.reject(e))),
    );
  }

  get jail(): VmmJailConfig {
    return { mountPoint: path.join(this.config.dir, JAIL_MOUNT_POINT), extra: this.config.jailBinds };
  }

  dirOf(id: string): string {
    return path.join(this.config.dir, id);
  }

  get inUse(): number {
    return this.held.size;
  }

  /** A uid a loaded record holds. */
  hold(uid: number): void {
    this.held.add(uid);
  }

  /**
   * The lowest uid no VM holds, no process runs under and no VMM directory belongs to (a record that could not be
   * read holds none, but its VMM may run); -32014 naming the range when every one is taken. Synchronous, so two
   * creates never take the same uid.
   */
  take(id: string): number {
    const running = processesByUid(this.config.first, this.config.last);
    const owning = this.directoryOwners();
    for (let uid = this.config.first; uid <= this.config.last; uid++) {
      if (this.held.has(uid) || running.has(uid) || owning.has(uid)) continue;
      this.held.add(uid);
      return uid;
    }
    const { first, last } = this.config;
    throw new RpcError(ErrorCode.NoVmmUid, `cannot give VM '${id}' a VMM uid: every uid of --vmm-uid-range ${first}-${last} is held by a VM`, {
      id,
      uid_range: [first, last],
    });
  }

  free(uid: number | undefined): void {
    if (uid !== undefined) this.held.delete(uid);
  }

  /**
   * A removed VM's uid, given up: every process still running under it (what its VMM left: a guest's processes, or
   * one an attacker started) is killed and waited for, then the uid is free. One that outlives the wait keeps the uid
   * held, and is said.
   */
  async reclaim(uid: number | undefined, log: Logger): Promise<void> {
    if (uid === undefined) return;
    const deadline = Date.now() + RECLAIM_WAIT_MS;
    for (;;) {
      const left = processesByUid(uid, uid).get(uid) ?? [];
      if (left.length === 0) return this.free(uid);
      if (Date.now() > deadline) return log.error({ uid, pids: left }, "processes of a removed VM's uid survived SIGKILL; the uid stays held");
      log.info({ uid, pids: left }, "killing what still runs under a removed VM's uid");
      for (const pid of left) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone meanwhile
        }
      }
      await new Promise((r) => setTimeout(r, RECLAIM_POLL_MS));
    }
  }

  /** The uid of the range that owns VM `id`'s VMM directory, if any (the base is root's: only the daemon makes them). */
  dirOwner(id: string): number | undefined {
    const uid = fsSync.lstatSync(this.dirOf(id), { throwIfNoEntry: false })?.uid;
    return uid !== undefined && uid >= this.config.first && uid <= this.config.last ? uid : undefined;
  }

  private directoryOwners(): Set<number> {
    const owners = new Set<number>();
    for (const name of fsSync.readdirSync(this.config.dir)) {
      const uid = this.dirOwner(name);
      if (uid !== undefined) owners.add(uid);
    }
    return owners;
  }

  user(uid: number): UnprivilegedUser {
    return { uid, gid: uid, groups: this.config.groups };
  }

  /** The VM's VMM directory, owned by its uid and 0700 (made again, or corrected, before each start). */
  async prepare(id: string, uid: number): Promise<void> {
    await ownedDir(this.dirOf(id), uid, "remove");
  }

  /**
   * Before a start: the VM's uid (given now to a VM made before), its VMM directory ready, and its paths there;
   * returns the uid and the jail its VMM runs in. A VM whose last VMM ran as the daemon's user has its sockets
   * move, and its services (`reopen`) with them.
   */
  async readyFor(vm: VmEntry, stateDir: string, reopen: (paths: VmPaths) => Promise<VmServices>): Promise<{ user: UnprivilegedUser; jail: VmmJailConfig }> {
    vm.vmmUid ??= this.take(vm.id);
    await this.prepare(vm.id, vm.vmmUid);
    if (vm.paths.vmmDir !== this.dirOf(vm.id)) {
      await vm.services.close();
      vm.paths = pathsFor(stateDir, this, vm.id);
      vm.services = await reopen(vm.paths);
    }
    return { user: this.user(vm.vmmUid), jail: this.jail };
  }

  async removeDir(id: string): Promise<void> {
    const dir = this.dirOf(id);
    await onDisk("remove", dir, () => fs.rm(dir, { recursive: true, force: true }));
  }
}

/**
 * A directory of `uid`'s alone (0700), made or corrected; the daemon's own when `uid` is undefined. One found under another
 * uid (an earlier VM of the same id, whose removal a crash cut short; a VM's first start under a uid of its own) is
 * not left so: with `others: "remove"` its contents go (a VMM's sockets and logs, nothing kept), with `"adopt"` they
 * become `uid`'s (snapshots, which the VM keeps).
 */
export async function ownedDir(dir: string, uid: number | undefined, others: "remove" | "adopt" = "adopt"): Promise<void> {
  await onDisk("create", dir, async () => {
    const found = await fs.lstat(dir).catch((e: NodeJS.ErrnoException) => (e.code === "ENOENT" ? undefined : Promise.reject(e)));
    // Never chown through a link someone planted.
    if (found && !found.isDirectory()) throw Object.assign(new Error(`${dir} is not a directory`), { code: "ENOTDIR", errno: -20 });
    const [owner, group] = uid !== undefined ? [uid, uid] : [process.getuid?.() ?? 0, process.getgid?.() ?? 0];
    const foreign = found !== undefined && found.uid !== owner;
    if (foreign && others === "remove") await fs.rm(dir, { recursive: true, force: true });
    await fs.mkdir(dir, { mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "EEXIST") throw e;
    });
    if (foreign && others === "adopt") await chownTree(dir, owner, group);
    else await fs.chown(dir, owner, group);
    await fs.chmod(dir, 0o700);
  });
}

/** lchown of a directory and everything under it: links are changed, never followed. */
async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  await fs.lchown(dir, uid, gid);
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) await chownTree(p, uid, gid);
    else await fs.lchown(p, uid, gid);
  }
}

/** Where a VM's files go: its VMM's in the VMM dir, or with the record when VMMs run as the daemon's user; a VMM already running keeps the directory recorded for it. */
export function pathsFor(stateDir: string, users: VmmUsers | undefined, id: string, recordedApiSocket?: string): VmPaths {
  const vmmDir = recordedApiSocket ? path.dirname(recordedApiSocket) : users?.dirOf(id);
  return vmPaths(stateDir, id, vmmDir);
}

/** Where VMMs' directories are: the state dir (VMMs as the daemon's user, and any from before), and the VMM dir. */
export function vmmRoots(stateDir: string, users: VmmUsers | undefined): string[] {
  return users ? [stateDir, users.config.dir] : [stateDir];
}

/** The uid a running VMM has and the one it should have, if they differ. */
export function wrongUid(vmmUid: number | undefined, pid: number, users: VmmUsers | undefined): { uid: number; expected: number } | undefined {
  const uid = readUid(pid);
  // A VM made before VMMs ran under their own uids may still have a VMM of the daemon's user: nothing to compare.
  const expected = vmmUid ?? (users ? undefined : process.getuid?.());
  return uid === undefined || expected === undefined || uid === expected ? undefined : { uid, expected };
}
