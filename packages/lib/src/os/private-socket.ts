/** Unix sockets: listening on one only its owner may use, telling a live one from a stale file, clearing leftovers. */
import fsSync from "node:fs";
import fs from "node:fs/promises";
import net from "node:net";
import path from "node:path";

/**
 * Binds `server` at `path` with mode 0600. The umask covers the window
 * between bind() and chmod(), so the socket is never wider than 0600.
 */
export async function listenPrivate(server: net.Server, path: string): Promise<void> {
  const previous = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      // Left attached: a later error (after resolve) is then absorbed rather than thrown.
      server.once("error", reject);
      server.listen(path, () => resolve());
    });
  } finally {
    process.umask(previous);
  }
  await fs.chmod(path, 0o600);
}

/**
 * At start-up, in a directory whose sockets only this daemon serves (the
 * console dir): removes every socket a previous daemon left (console
 * endpoints of VMs that may be gone since, unclaimed streamed execs). Each is
 * made again when asked for. Only sockets go; links are not followed.
 */
export function removeLeftoverSockets(dir: string): string[] {
  const removed: string[] = [];
  for (const entry of fsSync.readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isSocket()) continue;
    fsSync.rmSync(path.join(dir, entry.name), { force: true });
    removed.push(entry.name);
  }
  return removed;
}

/** True if something accepts connections on the socket at `path` (a stale file left by a dead process refuses them). */
export function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
}

/** A socket file left by a dead process is removed; a live one, or anything not a socket, is refused. */
export async function replaceStaleSocket(path: string): Promise<void> {
  const stat = await fs.lstat(path).catch(() => undefined);
  if (!stat) return;
  if (!stat.isSocket()) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
  if (await isListening(path)) throw new Error(`another daemon is already listening on ${path}`);
  await fs.rm(path, { force: true });
}
