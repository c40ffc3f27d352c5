/**
 * A VM's serial output on disk, addressed by absolute byte offset since the
 * VM was created. Stored as segments `serial-<start offset>.log`; the oldest
 * segments are deleted once the total passes the limit, so the newest
 * `maxBytes` (at least) are kept. The backlog a new console client receives
 * first (the last 64 KiB) is read back from the files, synchronously so no
 * output can slip between it and the live stream: keeping it in memory would
 * cost 64 KiB per VM and a copy of it for every chunk of output.
 *
 * Output that cannot be written (full or read-only disk, the directory
 * removed by hand) is counted as lost, never silently dropped and never
 * fatal: the next chunk tries again, so the log resumes by itself when space
 * returns. Offsets count kept bytes only.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { asStorageError, onDisk } from "../domain/errors.js";

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

interface Piece {
  file: string;
  position: number;
  length: number;
}

/** What append() reports when the log's ability to keep output changes. */
export type LogHealth = { ok: false; error: string; lost: number } | { ok: true; lost: number };

export class SerialLog {
  private fd: number | undefined;
  /** Bytes of output that could not be written, since the VM was created in this daemon. */
  lostBytes = 0;
  /** Why the last write failed, while writes fail. */
  private failing: string | undefined;
  /** After a failure, output goes to a fresh segment: the old one's file may be gone or torn. */
  private freshSegment = false;

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
    return new SerialLog(dir, maxBytes, segments);
  }

  /** The offset one past the last byte written. */
  get end(): number {
    const last = this.segments.at(-1);
    return last ? last.start + last.size : 0;
  }

  /**
   * The last BACKLOG_BYTES written, read now: page-cache reads of at most two
   * segments. A segment that cannot be read (deleted by hand) is left out.
   */
  recent(): Buffer {
    const from = Math.max(0, this.end - BACKLOG_BYTES);
    return Buffer.concat(this.pieces(from, this.end).map(readPieceSync));
  }

  /** Writes `chunk`; returns a LogHealth when writes start or stop failing, else undefined. */
  append(chunk: Buffer): LogHealth | undefined {
    if (chunk.length === 0) return undefined;
    let last = this.segments.at(-1);
    let written = 0;
    try {
      if (!last || last.size >= this.segmentBytes || (this.freshSegment && last.size > 0)) {
        this.closeFile();
        const next = { start: this.end, file: path.join(this.dir, `serial-${String(this.end).padStart(16, "0")}.log`), size: 0 };
        this.fd = fs.openSync(next.file, "a", 0o600);
        this.segments.push(next);
        last = next;
        this.freshSegment = false;
        this.dropOldSegments();
      }
      this.fd ??= fs.openSync(last.file, "a", 0o600);
      written = fs.writeSync(this.fd, chunk);
      last.size += written;
      if (written < chunk.length) throw Object.assign(new Error("short write"), { code: "ENOSPC" });
    } catch (e) {
      this.lostBytes += chunk.length - written;
      this.closeFile();
      this.freshSegment = true;
      const error = `${last?.file ?? this.dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
      const changed = this.failing === undefined;
      this.failing = error;
      return changed ? { ok: false, error, lost: this.lostBytes } : undefined;
    }
    if (this.failing === undefined) return undefined;
    this.failing = undefined;
    return { ok: true, lost: this.lostBytes };
  }

  /** Output goes on in a fresh segment (the directory was made again, and the open file went with the old one). */
  reopen(): void {
    this.closeFile();
    this.freshSegment = true;
  }

  async read(offset: number, limit: number): Promise<LogSlice> {
    const first = this.segments[0];
    const from = Math.max(offset, first?.start ?? 0);
    const to = Math.min(from + limit, this.end);
    // Every segment is opened before the first await: output written meanwhile may rotate a segment away, and an
    // open descriptor keeps its bytes readable (issue 22: opened one after another, a flood of output failed reads).
    const opened: { piece: Piece; fd: number }[] = [];
    try {
      for (const piece of this.pieces(from, to)) opened.push({ piece, fd: openForReading(piece.file) });
      const parts: Buffer[] = [];
      for (const { piece, fd } of opened) {
        const buf = Buffer.alloc(piece.length);
        const bytesRead = await onDisk("read", piece.file, () => readAt(fd, buf, piece.position));
        parts.push(buf.subarray(0, bytesRead));
      }
      const data = Buffer.concat(parts);
      return { data, offset: Math.min(from, this.end), next: Math.min(from, this.end) + data.length };
    } finally {
      for (const { fd } of opened) fs.close(fd, () => undefined);
    }
  }

  tail(bytes: number): Promise<LogSlice> {
    return this.read(Math.max(0, this.end - bytes), bytes);
  }

  close(): void {
    this.closeFile();
  }

  /** Where the bytes [from, to) are: a range of each segment they overlap. */
  private pieces(from: number, to: number): Piece[] {
    const out: Piece[] = [];
    for (const seg of this.segments) {
      const lo = Math.max(from, seg.start);
      const hi = Math.min(to, seg.start + seg.size);
      if (lo < hi) out.push({ file: seg.file, position: lo - seg.start, length: hi - lo });
    }
    return out;
  }

  private get segmentBytes(): number {
    return Math.max(64 * 1024, Math.floor(this.maxBytes / 4));
  }

  private dropOldSegments(): void {
    let total = this.segments.reduce((n, s) => n + s.size, 0);
    while (this.segments.length > 1 && total - (this.segments[0] as Segment).size >= this.maxBytes) {
      const old = this.segments.shift() as Segment;
      total -= old.size;
      try {
        fs.rmSync(old.file, { force: true });
      } catch {
        // Gone with its directory, or a read-only disk: the segment is forgotten either way.
      }
    }
  }

  private closeFile(): void {
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined) fs.close(fd, () => undefined);
  }
}

function openForReading(file: string): number {
  try {
    return fs.openSync(file, "r");
  } catch (e) {
    throw asStorageError("read", file, e);
  }
}

function readAt(fd: number, buf: Buffer, position: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, 0, buf.length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

function readPieceSync(p: Piece): Buffer {
  let fd: number | undefined;
  try {
    fd = fs.openSync(p.file, "r");
    const buf = Buffer.alloc(p.length);
    return buf.subarray(0, fs.readSync(fd, buf, 0, p.length, p.position));
  } catch {
    return Buffer.alloc(0);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
