/**
 * The daemon's connection to CH's serial socket. CH serves one client at a
 * time (a new one disconnects the old), so the daemon is that one client for
 * the VM's whole life and everyone else goes through the console server. CH
 * re-creates the socket on a reboot, so a lost connection is retried until
 * the link is stopped. A socket another process than the VMM serves (the
 * VMM owns the directory, and can put a link there) is never read or written.
 */
import net from "node:net";
import type { Logger } from "pino";
import { type ProcessSocket, wrongListener } from "../os/process-socket.js";

const RETRY_MS = 100;

export class SerialLink {
  private socket: net.Socket | undefined;
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;
  private refusedOnce = false;

  constructor(
    private readonly target: ProcessSocket,
    private readonly onOutput: (data: Buffer) => void,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.stopped = false;
    this.connect();
  }

  /** Console input for the guest; dropped while the link is down (there is no guest to read it). */
  write(data: Buffer): void {
    if (this.socket && !this.socket.connecting && this.socket.writable) this.socket.write(data);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    this.socket?.destroy();
    this.socket = undefined;
  }

  private connect(): void {
    if (this.stopped) return;
    const socket = net.connect(this.target.path);
    this.socket = socket;
    socket.on("connect", () => {
      const wrong = wrongListener(socket, this.target);
      if (!wrong) return this.log.debug({ socket: this.target.path }, "serial console connected");
      socket.destroy();
      // Retried like a lost connection: said once at error, the retries quietly.
      this.log[this.refusedOnce ? "debug" : "error"](
        { socket: this.target.path, listener_pid: wrong.listenerPid, err: wrong.message },
        "serial socket refused",
      );
      this.refusedOnce = true;
    });
    socket.on("data", (chunk: Buffer) => this.onOutput(chunk));
    socket.on("error", () => undefined);
    socket.on("close", () => {
      if (this.socket !== socket || this.stopped) return;
      this.socket = undefined;
      this.retry = setTimeout(() => this.connect(), RETRY_MS);
    });
  }
}
