/**
 * Where each VM's files live. The daemon's (record, console log, the VMM's
 * output) under `<state-dir>/<id>/`; the VMM's own (API socket, event
 * monitor, log, serial and vsock sockets) in its directory, which is the
 * same one unless VMMs run under their own uids (then `<vmm-dir>/<id>/`,
 * owned by the VM's uid: the VMM can write there and nowhere else).
 */
import fs from "node:fs";
import path from "node:path";

/** sun_path is 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH = 107;

export interface VmPaths {
  dir: string;
  /** Where the VMM creates its files. */
  vmmDir: string;
  record: string;
  apiSocket: string;
  eventMonitor: string;
  vmmLog: string;
  vmmOutput: string;
  /** The VM's snapshots, one directory each: the daemon's, moved here from `staging` once CH wrote them. */
  snapshots: string;
  /**
   * Where CH writes a snapshot, the VM uid's: beside the state dir (`<state-dir>.staging/<id>/`), so on its file
   * system (a snapshot is moved, not copied) but outside it (nothing a VMM can write is in the state dir).
   */
  staging: string;
  serialSocket: string;
  vsockSocket: string;
}

/** The parent of every VM's snapshot staging directory: root's, 0711 (a VMM reaches its own by name and lists none). */
const stagingBase = (stateDir: string) => `${path.resolve(stateDir)}.staging`;

export function vmPaths(stateDir: string, id: string, vmmDir = path.join(stateDir, id)): VmPaths {
  const dir = path.join(stateDir, id);
  return {
    dir,
    vmmDir,
    record: path.join(dir, "state.json"),
    vmmOutput: path.join(dir, "vmm.out"),
    snapshots: path.join(dir, "snapshots"),
    staging: path.join(stagingBase(stateDir), id),
    apiSocket: path.join(vmmDir, "api.sock"),
    eventMonitor: path.join(vmmDir, "events.log"),
    vmmLog: path.join(vmmDir, "vmm.log"),
    serialSocket: path.join(vmmDir, "serial.sock"),
    vsockSocket: path.join(vmmDir, "vsock.sock"),
  };
}

/**
 * Removes socket files left behind (CH does not unlink before binding, nor on
 * a crash). Synchronous: unlinking a socket frees no data blocks, and a round
 * trip through the thread pool would cost more than the unlink.
 */
export function unlinkSockets(files: string[]): void {
  for (const file of files) {
    try {
      fs.unlinkSync(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
  }
}
