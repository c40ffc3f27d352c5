/**
 * The host side of one exec: sends the request and stdin, collects stdout and
 * stderr up to a cap (then marks the result truncated and drains the rest),
 * and returns when the guest reports the exit.
 */
import type net from "node:net";
import { dataFrames, decodeJson, type ExecExit, type ExecRequest, encodeFrame, FrameReader, FrameType } from "../domain/exec-protocol.js";
import { CallEnd } from "./hybrid-vsock.js";

export const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;
/** How long past the command's own timeout the host waits for the guest to report. */
const REPORT_GRACE_MS = 5_000;

export interface ExecResult extends ExecExit {
  stdout: Buffer;
  stderr: Buffer;
  truncated: boolean;
}

/** The agent answered, but not with a result: it could not run the command, or broke the protocol. */
export class ExecAgentError extends Error {}
/** The agent's connection ended before it reported an exit: the agent (or the guest) went away. */
export class ExecConnectionLost extends ExecAgentError {}

class Capped {
  private parts: Uint8Array[] = [];
  size = 0;
  truncated = false;
  constructor(private readonly max: number) {}
  add(data: Uint8Array): void {
    const room = this.max - this.size;
    if (data.length > room) this.truncated = true;
    const kept = data.length > room ? data.subarray(0, room) : data;
    if (kept.length > 0) this.parts.push(kept);
    this.size += kept.length;
  }
  get data(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export function runExec(conn: net.Socket, req: ExecRequest, stdin: Buffer | undefined, maxOutput = MAX_OUTPUT_BYTES): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const reader = new FrameReader();
    const out = new Capped(maxOutput);
    const err = new Capped(maxOutput);
    const end = new CallEnd(conn);
    const finish = (fn: () => void) => end.with(fn);
    const result = (exit: ExecExit): ExecResult => ({ ...exit, stdout: out.data, stderr: err.data, truncated: out.truncated || err.truncated });
    end.timer = req.timeout_ms
      ? setTimeout(() => finish(() => resolve(result({ exit_code: null, signal: null, timed_out: true }))), req.timeout_ms + REPORT_GRACE_MS)
      : undefined;

    conn.on("data", (chunk: Buffer) => {
      let frames: ReturnType<FrameReader["push"]>;
      try {
        frames = reader.push(chunk);
      } catch (e) {
        return finish(() => reject(new ExecAgentError(`bad frame from the guest agent: ${(e as Error).message}`)));
      }
      for (const f of frames) {
        if (f.type === FrameType.Stdout) out.add(f.payload);
        else if (f.type === FrameType.Stderr) err.add(f.payload);
        else if (f.type === FrameType.Exit) return finish(() => resolve(result(decodeJson<ExecExit>(f.payload))));
        else if (f.type === FrameType.Error) {
          const { message } = decodeJson<{ message: string }>(f.payload);
          return finish(() => reject(new ExecAgentError(message)));
        }
      }
    });
    conn.once("close", () => finish(() => reject(new ExecConnectionLost("the guest agent closed the connection before reporting an exit"))));
    conn.once("error", () => undefined);
    conn.write(encodeFrame(FrameType.Request, req));
    for (const frame of dataFrames(FrameType.Stdin, stdin ?? Buffer.alloc(0))) conn.write(frame);
    conn.write(encodeFrame(FrameType.StdinEof));
    conn.resume();
  });
}
