/**
 * The daemon's connection to CH's serial socket. CH serves one client at a
 * time (a new one disconnects the old), so the daemon is that one client for
 * the VM's whole life and everyone else goes through the console server. CH
 * re-creates the socket on a reboot, so a lost connection is retried until
 * the link is stopped.
 */
import net from "node:net";
import type { Logger } from "pino";

const RETRY_MS = 100;

export class SerialLink {
  private socket: net.Socket | undefined;
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly path: string,
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
    const socket = net.connect(this.path);
    this.socket = socket;
    socket.on("connect", () => this.log.debug({ socket: this.path }, "serial console connected"));
    socket.on("data", (chunk: Buffer) => this.onOutput(chunk));
    socket.on("error", () => undefined);
    socket.on("close", () => {
      if (this.socket !== socket || this.stopped) return;
      this.socket = undefined;
      this.retry = setTimeout(() => this.connect(), RETRY_MS);
    });
  }
}
