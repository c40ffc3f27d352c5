/** Where each VM's files live: everything under `<state-dir>/<id>/`. */
import fs from "node:fs";
import path from "node:path";

/** sun_path is 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH = 107;

export interface VmPaths {
  dir: string;
  record: string;
  apiSocket: string;
  eventMonitor: string;
  vmmLog: string;
  vmmOutput: string;
  serialSocket: string;
  vsockSocket: string;
}

export function vmPaths(stateDir: string, id: string): VmPaths {
  const dir = path.join(stateDir, id);
  return {
    dir,
    record: path.join(dir, "state.json"),
    apiSocket: path.join(dir, "api.sock"),
    eventMonitor: path.join(dir, "events.log"),
    vmmLog: path.join(dir, "vmm.log"),
    vmmOutput: path.join(dir, "vmm.out"),
    serialSocket: path.join(dir, "serial.sock"),
    vsockSocket: path.join(dir, "vsock.sock"),
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
