/**
 * Waiting for a file to appear without polling it: inotify on its directory
 * (fs.watch), checked once after the watch is set so a file that appeared
 * first is not missed. A slow poll stays as a safety net for events the
 * kernel drops on overflow; where inotify is unavailable it polls quickly.
 */
import fs from "node:fs";
import path from "node:path";

const SAFETY_POLL_MS = 250;
const FALLBACK_POLL_MS = 10;

/** True once `file` exists; false after `ms`, or as soon as `cancel` settles. */
export function waitForPath(file: string, ms: number, cancel: Promise<unknown>): Promise<boolean> {
  return new Promise((resolve) => {
    let watcher: fs.FSWatcher | undefined;
    let settled = false;
    const done = (found: boolean) => {
      if (settled) return;
      settled = true;
      watcher?.close();
      clearInterval(poll);
      clearTimeout(timer);
      resolve(found);
    };
    const check = () => fs.access(file, (err) => err || done(true));
    const name = path.basename(file);
    try {
      watcher = fs.watch(path.dirname(file), (_event, changed) => changed === name && check());
      watcher.on("error", () => undefined);
    } catch {
      watcher = undefined;
    }
    const poll = setInterval(check, watcher ? SAFETY_POLL_MS : FALLBACK_POLL_MS);
    const timer = setTimeout(() => done(false), ms);
    void cancel.then(() => done(false));
    check();
  });
}
