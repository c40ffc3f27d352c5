/**
 * CH's serial port in socket mode (ADR 0003): CH binds and listens at
 * vm.create (and again at each boot after a shutdown), without unlinking a
 * stale file first. One client at a time: a new connection shuts the previous
 * one down. Output produced while no client is connected is kept in a 1 MiB
 * ring (v53.0+) and replayed to the next client. The socket file is
 * removed when the serial device is dropped (VM shutdown), and left behind
 * when a VM that never booted is deleted. Not reproduced:
 * CH v53 also keeps 1 MiB for a connected client that reads slowly and
 * drops the oldest bytes; here a full socket makes write() return a promise
 * (the scripted flood waits on it) and nothing is dropped.
 */
import fs from "node:fs";
import net from "node:net";
import { dirname } from "node:path";
import { osError } from "./rust-error.js";

export const SERIAL_RING_BYTES = 1 << 20;

export class SerialPort {
  private client: net.Socket | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  private constructor(
    private readonly server: net.Server,
    private readonly path: string,
    private readonly onInput: (data: Buffer) => void,
  ) {
    server.on("connection", (socket) => this.accept(socket));
  }

  /** Binds the socket; rejects with EADDRINUSE if the path exists, as CH does (and ENOENT without its directory). */
  static open(path: string, onInput: (data: Buffer) => void): Promise<SerialPort> {
    return new Promise((resolve, reject) => {
      // libuv reports a missing directory as EACCES; bind(2), and so CH, says ENOENT.
      if (!fs.existsSync(dirname(path))) return reject(osError("ENOENT"));
      if (fs.existsSync(path)) return reject(osError("EADDRINUSE"));
      const server = net.createServer();
      server.once("error", reject);
      server.listen(path, () => {
        server.off("error", reject);
        resolve(new SerialPort(server, path, onInput));
      });
    });
  }

  /**
   * Guest output: to the client, or into the ring while nobody listens.
   * Returns a promise while the client's socket is full: the guest's
   * transmitter waits for it to drain (or for the client to go).
   */
  write(data: Buffer): Promise<void> | undefined {
    const client = this.client;
    if (client && !client.destroyed) {
      if (client.write(data)) return undefined;
      return new Promise((resolve) => {
        const done = () => {
          client.off("drain", done);
          client.off("close", done);
          resolve();
        };
        client.on("drain", done);
        client.on("close", done);
      });
    }
    this.pending.push(data);
    this.pendingBytes += data.length;
    while (this.pendingBytes > SERIAL_RING_BYTES && this.pending.length > 0) {
      const over = this.pendingBytes - SERIAL_RING_BYTES;
      const first = this.pending[0] as Buffer;
      if (first.length <= over) {
        this.pending.shift();
        this.pendingBytes -= first.length;
      } else {
        this.pending[0] = first.subarray(over);
        this.pendingBytes -= over;
      }
    }
    return undefined;
  }

  /**
   * `removeFile`: the device is dropped with its VM (a shutdown); else only the listener goes, as when a VM that never
   * booted is deleted, and the file stays behind (Node's close would remove it, so a second link keeps it).
   */
  close(removeFile: boolean): void {
    this.client?.destroy();
    const keep = `${this.path}.kept`;
    if (!removeFile) fs.linkSync(this.path, keep);
    this.server.close();
    if (removeFile) fs.rmSync(this.path, { force: true });
    else fs.renameSync(keep, this.path);
  }

  private accept(socket: net.Socket): void {
    this.client?.destroy();
    this.client = socket;
    socket.on("error", () => socket.destroy());
    socket.on("close", () => {
      if (this.client === socket) this.client = undefined;
    });
    // A 1-byte "\n" read reaches the UART as "\r".
    socket.on("data", (chunk: Buffer) => this.onInput(chunk.length === 1 && chunk[0] === 0x0a ? Buffer.from("\r") : chunk));
    if (this.pendingBytes > 0) {
      socket.write(Buffer.concat(this.pending));
      this.pending = [];
      this.pendingBytes = 0;
    }
  }
}
