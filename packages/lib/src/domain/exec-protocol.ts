/**
 * The exec wire protocol between the host and my_hypervisor-init's exec
 * agent, over one stream connection (docs/exec-protocol.md). Frames are a
 * 1-byte type, a 4-byte big-endian payload length, and the payload. This file
 * imports nothing: the guest's bundle and the host share it.
 */
export const FrameType = {
  /** host → guest, first frame: JSON ExecRequest */
  Request: 0x01,
  /** host → guest: bytes for the command's stdin */
  Stdin: 0x02,
  /** host → guest: stdin is finished (empty payload) */
  StdinEof: 0x03,
  /** guest → host: JSON {pid}, the command started */
  Started: 0x11,
  /** guest → host: bytes the command wrote to stdout */
  Stdout: 0x12,
  /** guest → host: bytes the command wrote to stderr */
  Stderr: 0x13,
  /** guest → host, last frame: JSON ExecExit */
  Exit: 0x14,
  /** guest → host, last frame: JSON {message}; the command did not run (or the request was bad) */
  Error: 0x15,
} as const;

export const MAX_FRAME_PAYLOAD = 1024 * 1024;
export const HEADER_BYTES = 5;
export const DEFAULT_EXEC_PORT = 1024;

export interface ExecRequest {
  argv: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** The guest kills the command's process group with SIGKILL after this long. */
  timeout_ms?: number;
}

export interface ExecExit {
  exit_code: number | null;
  signal: string | null;
  timed_out: boolean;
}

export interface Frame {
  type: number;
  payload: Buffer;
}

export function encodeFrame(type: number, payload: Buffer | string | object = Buffer.alloc(0)): Buffer {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(typeof payload === "string" ? payload : JSON.stringify(payload));
  if (body.length > MAX_FRAME_PAYLOAD) throw new Error(`exec frame payload of ${body.length} bytes exceeds ${MAX_FRAME_PAYLOAD}`);
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt8(type, 0);
  header.writeUInt32BE(body.length, 1);
  return Buffer.concat([header, body]);
}

/** Splits a byte stream into frames; throws on a frame over the limit. */
export class FrameReader {
  private buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const frames: Frame[] = [];
    while (this.buffer.length >= HEADER_BYTES) {
      const length = this.buffer.readUInt32BE(1);
      if (length > MAX_FRAME_PAYLOAD) throw new Error(`exec frame payload of ${length} bytes exceeds ${MAX_FRAME_PAYLOAD}`);
      if (this.buffer.length < HEADER_BYTES + length) break;
      frames.push({ type: this.buffer.readUInt8(0), payload: this.buffer.subarray(HEADER_BYTES, HEADER_BYTES + length) });
      this.buffer = this.buffer.subarray(HEADER_BYTES + length);
    }
    return frames;
  }
}

/** Splits data into frames of at most MAX_FRAME_PAYLOAD bytes. */
export function* dataFrames(type: number, data: Buffer): Generator<Buffer> {
  for (let i = 0; i < data.length; i += MAX_FRAME_PAYLOAD) yield encodeFrame(type, data.subarray(i, i + MAX_FRAME_PAYLOAD));
}
