/** Listening on a Unix socket only its owner may use. */
import fs from "node:fs/promises";
import type net from "node:net";

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
