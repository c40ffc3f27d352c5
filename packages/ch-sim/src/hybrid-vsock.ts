/**
 * CH's hybrid vsock device (ADR 0003): a Unix socket bound at vm.boot
 * (no unlink first: a stale file fails the boot). A host client sends
 * `CONNECT <port>\n` (case-insensitive); if the guest accepts, CH answers
 * `OK <local port>\n`, local ports counting up from 2^30, and the stream is
 * raw from then on. Otherwise CH closes the stream without a word. Here the
 * guest's vsock listeners are Unix sockets `<guestDir>/<port>.sock`.
 */
import fs from "node:fs";
import net from "node:net";
import path from "node:path";

const MAX_COMMAND_BYTES = 64;

export class HybridVsock {
  private nextLocalPort = 1 << 30;

  private constructor(
    private readonly server: net.Server,
    private readonly socketPath: string,
    private readonly guestDir: string,
  ) {
    server.on("connection", (c) => this.accept(c));
  }

  static open(socketPath: string, guestDir: string): Promise<HybridVsock> {
    return new Promise((resolve, reject) => {
      if (fs.existsSync(socketPath)) {
        reject(new Error(`Address in use (os error 98): ${socketPath}`));
        return;
      }
      const server = net.createServer();
      server.once("error", reject);
      server.listen(socketPath, () => resolve(new HybridVsock(server, socketPath, guestDir)));
    });
  }

  /** The device's shutdown() removes the socket when the VM is torn down. */
  close(): void {
    this.server.close();
    fs.rmSync(this.socketPath, { force: true });
  }

  private accept(host: net.Socket): void {
    let buffered = Buffer.alloc(0);
    host.on("error", () => host.destroy());
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const nl = buffered.indexOf(10);
      if (nl < 0) {
        if (buffered.length > MAX_COMMAND_BYTES) host.destroy();
        return;
      }
      host.off("data", onData);
      host.pause();
      const m = /^connect\s+(\d+)\s*$/i.exec(buffered.subarray(0, nl).toString("latin1"));
      const port = m?.[1] !== undefined ? Number(m[1]) : Number.NaN;
      if (!Number.isInteger(port) || port > 0xffffffff) return host.destroy();
      this.bridge(host, port, buffered.subarray(nl + 1));
    };
    host.on("data", onData);
    host.once("end", () => host.destroy());
  }

  private bridge(host: net.Socket, port: number, early: Buffer): void {
    const guest = net.connect(path.join(this.guestDir, `${port}.sock`));
    // Nothing listening in the guest (an RST): the host's stream is closed without a word.
    const refused = () => host.destroy();
    guest.once("error", refused);
    guest.once("connect", () => {
      guest.off("error", refused);
      host.write(`OK ${this.nextLocalPort++}\n`);
      if (early.length > 0) guest.write(early);
      // pipe() ends each side once the other has ended and everything written is flushed;
      // only a broken side takes the other down at once.
      host.pipe(guest);
      guest.pipe(host);
      host.resume();
      host.once("error", () => guest.destroy());
      guest.once("error", () => host.destroy());
    });
  }
}
