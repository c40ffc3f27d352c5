/**
 * The console socket a VM's viewers attach to (`<console-dir>/<id>.sock`,
 * mode 0600). Any number of clients: each first receives the recent backlog,
 * then the live output; what any client writes goes to the guest. A client
 * that does not keep up is dropped, so it never slows the guest or the others:
 * one that has more than STALL_BYTES queued and drained nothing for a whole
 * check interval, or that has more than MAX_CLIENT_QUEUE queued at all.
 * A burst alone does not drop a reader that keeps reading.
 */
import fs from "node:fs/promises";
import net from "node:net";
import type { Logger } from "pino";
import { onDisk } from "../domain/errors.js";
import { listenPrivate } from "../os/private-socket.js";

export const STALL_BYTES = 1024 * 1024;
export const MAX_CLIENT_QUEUE = 16 * 1024 * 1024;
const STALL_CHECK_MS = 1000;

export class ConsoleServer {
  private readonly clients = new Set<net.Socket>();
  /** bytesWritten of each client at the previous check. */
  private readonly progress = new Map<net.Socket, number>();
  private stallTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly server: net.Server,
    readonly path: string,
    private readonly log: Logger,
  ) {}

  static async listen(path: string, backlog: () => Buffer, onInput: (data: Buffer) => void, log: Logger): Promise<ConsoleServer> {
    // The console socket is ours alone to serve: a leftover from an earlier daemon is replaced.
    await onDisk("replace", path, () => fs.rm(path, { force: true }));
    const server = net.createServer();
    const console = new ConsoleServer(server, path, log);
    server.on("connection", (socket) => console.accept(socket, backlog(), onInput));
    await onDisk("listen on", path, () => listenPrivate(server, path));
    return console;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  broadcast(data: Buffer): void {
    for (const client of this.clients) this.send(client, data);
  }

  async close(): Promise<void> {
    clearInterval(this.stallTimer);
    for (const client of this.clients) client.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await fs.rm(this.path, { force: true });
  }

  private accept(socket: net.Socket, backlog: Buffer, onInput: (data: Buffer) => void): void {
    this.clients.add(socket);
    this.stallTimer ??= setInterval(() => this.dropStalled(), STALL_CHECK_MS).unref();
    socket.on("close", () => this.forget(socket));
    socket.on("error", () => socket.destroy());
    socket.on("data", onInput);
    if (backlog.length > 0) this.send(socket, backlog);
  }

  private send(client: net.Socket, data: Buffer): void {
    if (client.writableLength + data.length > MAX_CLIENT_QUEUE) this.drop(client, "over the queue limit");
    else client.write(data);
  }

  private dropStalled(): void {
    for (const client of this.clients) {
      const before = this.progress.get(client);
      this.progress.set(client, client.bytesWritten);
      if (client.writableLength > STALL_BYTES && before === client.bytesWritten) this.drop(client, "drained nothing for a second");
    }
  }

  private drop(client: net.Socket, why: string): void {
    this.log.warn({ console: this.path, queued: client.writableLength, why }, "console client too slow; dropped");
    client.destroy();
    this.forget(client);
  }

  private forget(client: net.Socket): void {
    this.clients.delete(client);
    this.progress.delete(client);
    if (this.clients.size === 0) {
      clearInterval(this.stallTimer);
      this.stallTimer = undefined;
    }
  }
}
