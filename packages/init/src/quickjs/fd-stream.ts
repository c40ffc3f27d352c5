/**
 * A ByteStream over a non-blocking file descriptor in QuickJS's event loop:
 * reads while not paused, queues writes and flushes them as the fd takes
 * them. The fd is closed once both directions are done, or on destroy().
 * Handlers are always removed before the fd is closed: select() on a closed
 * fd would fail at once, again and again.
 */
import * as mh from "mh";
import * as os from "os";
import type { ByteStream } from "../platform.js";

const EAGAIN = 11;
const EINTR = 4;
const READ_BYTES = 64 * 1024;
/** write() reports false past this many queued bytes. */
const HIGH_WATER_BYTES = 1024 * 1024;
/** select() cannot watch fds at or above FD_SETSIZE. */
export const MAX_WATCHED_FD = 1023;

export class FdStream implements ByteStream {
  private onChunk: ((chunk: Uint8Array | null) => void) | undefined;
  private drained: (() => void) | undefined;
  private readonly queue: Uint8Array[] = [];
  private queued = 0;
  private paused = false;
  private readDone: boolean;
  private writeDone: boolean;
  private ending = false;
  private closed = false;

  /** `socket`: end() shuts down the write half; otherwise the fd is one end of a pipe. */
  constructor(
    readonly fd: number,
    private readonly mode: { read: boolean; write: boolean; socket?: boolean },
  ) {
    this.readDone = !mode.read;
    this.writeDone = !mode.write;
    mh.setNonblock(fd);
  }

  onData(cb: (chunk: Uint8Array | null) => void): void {
    this.onChunk = cb;
    this.watchReads();
  }

  onDrain(cb: () => void): void {
    this.drained = cb;
  }

  pause(): void {
    this.paused = true;
    this.watchReads();
  }

  resume(): void {
    this.paused = false;
    this.watchReads();
  }

  write(data: Uint8Array): boolean {
    if (this.closed || this.writeDone || this.ending) return false;
    if (data.length > 0) {
      this.queue.push(data);
      this.queued += data.length;
      if (this.queue.length === 1) this.flush();
    }
    return this.queued <= HIGH_WATER_BYTES;
  }

  end(): void {
    if (this.closed || this.writeDone || this.ending) return;
    this.ending = true;
    if (this.queue.length === 0) this.finishWrites();
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    os.setReadHandler(this.fd, null);
    os.setWriteHandler(this.fd, null);
    os.close(this.fd);
    this.queue.length = 0;
    this.queued = 0;
  }

  private watchReads(): void {
    if (this.closed || this.readDone) return;
    os.setReadHandler(this.fd, this.onChunk && !this.paused ? () => this.readOnce() : null);
  }

  private readOnce(): void {
    const buf = new ArrayBuffer(READ_BYTES);
    const n = os.read(this.fd, buf, 0, READ_BYTES);
    if (n === -EAGAIN || n === -EINTR) return;
    if (n > 0) {
      this.onChunk?.(new Uint8Array(buf, 0, n));
      return;
    }
    // End of stream, or an error (a reset connection): either way nothing more will come.
    this.readDone = true;
    os.setReadHandler(this.fd, null);
    this.onChunk?.(null);
    this.closeIfDone();
  }

  private flush(): void {
    while (this.queue.length > 0 && !this.closed) {
      const head = this.queue[0] as Uint8Array;
      const n = os.write(this.fd, head.buffer as ArrayBuffer, head.byteOffset, head.length);
      if (n === -EAGAIN || n === -EINTR) {
        os.setWriteHandler(this.fd, () => this.flush());
        return;
      }
      if (n < 0) {
        // The peer is gone: what is queued can never be delivered.
        this.queue.length = 0;
        this.queued = 0;
        this.ending = true;
        break;
      }
      this.queued -= n;
      if (n === head.length) this.queue.shift();
      else this.queue[0] = head.subarray(n);
    }
    if (this.closed) return;
    os.setWriteHandler(this.fd, null);
    if (this.ending) this.finishWrites();
    else this.drained?.();
  }

  private finishWrites(): void {
    this.writeDone = true;
    this.ending = false;
    if (this.mode.socket) mh.shutdownWrite(this.fd);
    this.closeIfDone();
  }

  private closeIfDone(): void {
    if (this.readDone && this.writeDone) this.destroy();
  }
}
