/**
 * The exec wire protocol between the host and my_hypervisor-init's exec
 * agent, over one stream connection (docs/exec-protocol.md). Frames are a
 * 1-byte type, a 4-byte big-endian payload length, and the payload. Plain
 * Uint8Array and fflate's UTF-8 codec, no Node: the guest init (on QuickJS)
 * and the host share it.
 */
import { strFromU8, strToU8 } from "fflate";
import { concatBytes } from "./bytes.js";

export const FrameType = {
  /** host → guest, first frame: JSON ExecRequest */
  Request: 0x01,
  /** host → guest: bytes for the command's stdin */
  Stdin: 0x02,
  /** host → guest: stdin is finished (empty payload) */
  StdinEof: 0x03,
  /** host → guest, first and only frame: JSON GuestSync, after the guest was paused or restored */
  Sync: 0x04,
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
  /** guest → host, last frame: JSON GuestSynced, the answer to Sync */
  Synced: 0x16,
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

/**
 * After a pause or a restore the guest's wall clock is behind by the time it stood still, and a restored guest's
 * RNG state is a copy of the snapshot's: the host sends its time and fresh random bytes.
 */
export interface GuestSync {
  /** The host's wall clock, ms since the epoch, when sent. */
  unix_ms: number;
  /** base64url (unpadded) of random bytes the guest mixes into its RNG (written to /dev/urandom). */
  seed: string;
}

/** The guest clock is set only when it is further off than this: a clock that is right is left alone. */
export const CLOCK_TOLERANCE_MS = 1000;

export interface GuestSynced {
  /** The host's time minus the guest's, when the guest read its clock. */
  skew_ms: number;
  clock_set: boolean;
  /** Why the clock could not be set, when it needed to be. */
  clock_error?: string;
  reseeded: boolean;
  /** Why the seed could not be written. */
  seed_error?: string;
}

export interface ExecExit {
  exit_code: number | null;
  signal: string | null;
  timed_out: boolean;
}

export interface Frame {
  type: number;
  payload: Uint8Array;
}

/** A frame: `payload` is bytes as they are, or an object sent as JSON. */
export function encodeFrame(type: number, payload: Uint8Array | object = new Uint8Array(0)): Uint8Array {
  const body = payload instanceof Uint8Array ? payload : strToU8(JSON.stringify(payload));
  if (body.length > MAX_FRAME_PAYLOAD) throw new Error(`exec frame payload of ${body.length} bytes exceeds ${MAX_FRAME_PAYLOAD}`);
  const frame = new Uint8Array(HEADER_BYTES + body.length);
  frame[0] = type;
  new DataView(frame.buffer).setUint32(1, body.length);
  frame.set(body, HEADER_BYTES);
  return frame;
}

/** A JSON payload (Request, Started, Exit, Error). */
export function decodeJson<T>(payload: Uint8Array): T {
  return JSON.parse(strFromU8(payload)) as T;
}

/** Splits a byte stream into frames; throws on a frame over the limit. */
export class FrameReader {
  private buffer: Uint8Array = new Uint8Array(0);

  push(chunk: Uint8Array): Frame[] {
    this.buffer = this.buffer.length === 0 ? chunk : concatBytes(this.buffer, chunk);
    const frames: Frame[] = [];
    while (this.buffer.length >= HEADER_BYTES) {
      const length = new DataView(this.buffer.buffer, this.buffer.byteOffset, HEADER_BYTES).getUint32(1);
      if (length > MAX_FRAME_PAYLOAD) throw new Error(`exec frame payload of ${length} bytes exceeds ${MAX_FRAME_PAYLOAD}`);
      if (this.buffer.length < HEADER_BYTES + length) break;
      frames.push({ type: this.buffer[0] as number, payload: this.buffer.subarray(HEADER_BYTES, HEADER_BYTES + length) });
      this.buffer = this.buffer.subarray(HEADER_BYTES + length);
    }
    return frames;
  }
}

/** Splits data into frames of at most MAX_FRAME_PAYLOAD bytes. */
export function* dataFrames(type: number, data: Uint8Array): Generator<Uint8Array> {
  for (let i = 0; i < data.length; i += MAX_FRAME_PAYLOAD) yield encodeFrame(type, data.subarray(i, i + MAX_FRAME_PAYLOAD));
}
