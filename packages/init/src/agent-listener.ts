/**
 * Where the exec agent listens. In a VM: AF_VSOCK on the configured port.
 * Node has no AF_VSOCK, and libuv cannot wrap a vsock fd as a socket, so koffi
 * makes the socket and the accept() calls (on the thread pool), and each
 * connection is read and written as a file descriptor with fs streams.
 * Under the test VMM (which has no vsock): a Unix socket `<dir>/<port>.sock`
 * that the VMM bridges `CONNECT <port>` to, named by $MH_SIM_VSOCK_DIR.
 */

import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { Duplex } from "node:stream";
import { SIM_VSOCK_DIR_ENV } from "@my_hypervisor/lib/test-vmm-guest";
import { say } from "./console-log.js";

export { SIM_VSOCK_DIR_ENV };

export async function listenAgent(port: number, serve: (conn: Duplex) => void): Promise<string> {
  const simDir = process.env[SIM_VSOCK_DIR_ENV];
  if (simDir) {
    const sockPath = path.join(simDir, `${port}.sock`);
    fs.rmSync(sockPath, { force: true });
    await new Promise<void>((resolve, reject) => net.createServer(serve).once("error", reject).listen(sockPath, resolve));
    return `unix:${sockPath}`;
  }
  await listenVsock(port, serve);
  return `vsock:${port}`;
}

async function listenVsock(port: number, serve: (conn: Duplex) => void): Promise<void> {
  const c = await import("./libc.js");
  const fd = c.socket(c.AF_VSOCK, c.SOCK_STREAM | c.SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error(`socket(AF_VSOCK): errno ${c.errno()} (is virtio-vsock in the kernel?)`);
  if (c.bindVsock(fd, port, c.VMADDR_CID_ANY) < 0) throw new Error(`bind(vsock port ${port}): errno ${c.errno()}`);
  if (c.listen(fd, 64) < 0) throw new Error(`listen(vsock): errno ${c.errno()}`);
  const acceptNext = () =>
    c.accept4.async(fd, null, null, c.SOCK_CLOEXEC, (err: unknown, conn: number) => {
      if (err || conn < 0) say("init", `vsock accept failed: ${err ?? `errno ${c.errno()}`}`);
      else serve(fdStream(conn, c));
      setImmediate(acceptNext);
    });
  acceptNext();
}

/** A connected socket fd as a Duplex: reads and writes go through the thread pool. */
function fdStream(fd: number, c: typeof import("./libc.js")): Duplex {
  const readable = fs.createReadStream("", { fd, autoClose: false });
  const writable = fs.createWriteStream("", { fd, autoClose: false });
  // Ending our side must reach the peer as EOF: shut down the write half.
  writable.once("finish", () => c.shutdown(fd, c.SHUT_WR));
  const duplex = Duplex.from({ readable, writable });
  let closed = false;
  duplex.once("close", () => {
    if (!closed) c.close(fd);
    closed = true;
  });
  return duplex;
}
