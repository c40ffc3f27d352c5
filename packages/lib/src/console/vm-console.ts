/**
 * One VM's console: the serial log, the link to CH's serial socket and the
 * console server, wired together. Output from the guest goes to the log and
 * to every viewer; input from any viewer goes to the guest.
 */
import type { Logger } from "pino";
import type { ProcessSocket } from "../os/process-socket.js";
import { ConsoleServer } from "./console-server.js";
import { SerialLink } from "./serial-link.js";
import { type LogSlice, SerialLog } from "./serial-log.js";

export class VmConsole {
  private link: SerialLink | undefined;
  private server: ConsoleServer | undefined;
  private opening: Promise<ConsoleServer> | undefined;

  private constructor(
    private readonly serialLog: SerialLog,
    private readonly endpointPath: string,
    private readonly log: Logger,
  ) {}

  static async open(vmDir: string, endpointPath: string, maxLogBytes: number, log: Logger): Promise<VmConsole> {
    return new VmConsole(await SerialLog.open(vmDir, maxLogBytes), endpointPath, log);
  }

  /** Connects to the VMM's serial socket; call once the socket exists (after vm.create). */
  attach(serialSocket: ProcessSocket): void {
    this.link?.stop();
    this.link = new SerialLink(serialSocket, (data) => this.output(data), this.log);
    this.link.start();
  }

  detach(): void {
    this.link?.stop();
    this.link = undefined;
  }

  /** The console socket's path, listening from the first request until the VM is removed. A failed listen is tried again next time. */
  async endpoint(): Promise<string> {
    this.opening ??= ConsoleServer.listen(
      this.endpointPath,
      () => this.serialLog.recent(),
      (data) => this.link?.write(data),
      this.log,
    );
    try {
      this.server = await this.opening;
    } catch (e) {
      this.opening = undefined;
      throw e;
    }
    return this.server.path;
  }

  /** Bytes of serial output that could not be written to the log. */
  get lostBytes(): number {
    return this.serialLog.lostBytes;
  }

  reopenLog(): void {
    this.serialLog.reopen();
  }

  read(offset: number, limit: number): Promise<LogSlice> {
    return this.serialLog.read(offset, limit);
  }

  tail(bytes: number): Promise<LogSlice> {
    return this.serialLog.tail(bytes);
  }

  /** Daemon shutdown or VM removal: stop serving; the log files stay until the VM's directory goes. */
  async close(): Promise<void> {
    this.detach();
    const server = await this.opening?.catch(() => undefined);
    await server?.close();
    this.serialLog.close();
  }

  private output(data: Buffer): void {
    const health = this.serialLog.append(data);
    if (health?.ok === false)
      this.log.error({ err: health.error, lost_bytes: health.lost }, "cannot write serial output to the log; counting it as lost until writes succeed");
    else if (health?.ok === true) this.log.warn({ lost_bytes: health.lost }, "serial log writable again");
    this.server?.broadcast(data);
  }
}
