/**
 * A VM's serial output on disk, addressed by absolute byte offset since the
 * VM was created. Stored as segments `serial-<start offset>.log`; the oldest
 * segments are deleted once the total passes the limit, so the newest
 * `maxBytes` (at least) are kept. The last 64 KiB are also kept in memory as
 * the backlog a new console client receives first.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";

export const BACKLOG_BYTES = 64 * 1024;
const SEGMENT = /^serial-(\d{16})\.log$/;

interface Segment {
  start: number;
  file: string;
  size: number;
}

export interface LogSlice {
  data: Buffer;
  /** Offset of the first byte returned (later than asked if that part was rotated away). */
  offset: number;
  /** Offset to ask for next. */
  next: number;
}

export class SerialLog {
  private backlog: Buffer = Buffer.alloc(0);
  private fd: number | undefined;

  private constructor(
    private readonly dir: string,
    private readonly maxBytes: number,
    private readonly segments: Segment[],
  ) {}

  static async open(dir: string, maxBytes: number): Promise<SerialLog> {
    const segments: Segment[] = [];
    for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
      const m = SEGMENT.exec(name);
      if (m?.[1]) segments.push({ start: Number(m[1]), file: path.join(dir, name), size: (await fsp.stat(path.join(dir, name))).size });
    }
    segments.sort((a, b) => a.start - b.start);
    const log = new SerialLog(dir, maxBytes, segments);
    log.backlog = (await log.tail(BACKLOG_BYTES)).data;
    return log;
  }

  /** The offset one past the last byte written. */
  get end(): number {
    const last = this.segments.at(-1);
    return last ? last.start + last.size : 0;
  }

  get recent(): Buffer {
    return this.backlog;
  }

  append(chunk: Buffer): void {
    if (chunk.length === 0) return;
    let last = this.segments.at(-1);
    if (!last || last.size >= this.segmentBytes) {
      this.closeFile();
      last = { start: this.end, file: path.join(this.dir, `serial-${String(this.end).padStart(16, "0")}.log`), size: 0 };
      this.segments.push(last);
      this.dropOldSegments();
    }
    this.fd ??= fs.openSync(last.file, "a", 0o600);
    fs.writeSync(this.fd, chunk);
    last.size += chunk.length;
    this.backlog = Buffer.concat([this.backlog, chunk]);
    if (this.backlog.length > BACKLOG_BYTES) this.backlog = this.backlog.subarray(this.backlog.length - BACKLOG_BYTES);
  }

  async read(offset: number, limit: number): Promise<LogSlice> {
    const first = this.segments[0];
    const from = Math.max(offset, first?.start ?? 0);
    const to = Math.min(from + limit, this.end);
    const parts: Buffer[] = [];
    for (const seg of this.segments) {
      const lo = Math.max(from, seg.start);
      const hi = Math.min(to, seg.start + seg.size);
      if (lo >= hi) continue;
      const handle = await fsp.open(seg.file, "r");
      try {
        const buf = Buffer.alloc(hi - lo);
        const { bytesRead } = await handle.read(buf, 0, buf.length, lo - seg.start);
        parts.push(buf.subarray(0, bytesRead));
      } finally {
        await handle.close();
      }
    }
    const data = Buffer.concat(parts);
    return { data, offset: Math.min(from, this.end), next: Math.min(from, this.end) + data.length };
  }

  tail(bytes: number): Promise<LogSlice> {
    return this.read(Math.max(0, this.end - bytes), bytes);
  }

  close(): void {
    this.closeFile();
  }

  private get segmentBytes(): number {
    return Math.max(64 * 1024, Math.floor(this.maxBytes / 4));
  }

  private dropOldSegments(): void {
    let total = this.segments.reduce((n, s) => n + s.size, 0);
    while (this.segments.length > 1 && total - (this.segments[0] as Segment).size >= this.maxBytes) {
      const old = this.segments.shift() as Segment;
      total -= old.size;
      fs.rmSync(old.file, { force: true });
    }
  }

  private closeFile(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}
