/**
 * The exec agent: one command per connection. The host sends a Request
 * frame, then optional Stdin frames and StdinEof; the agent answers Started,
 * Stdout/Stderr frames as output comes, and finally Exit (or Error if the
 * command could not run). A timeout kills the command's whole process group,
 * and so does the host going away. Output waits while the host is slow to
 * read: the command's pipes are not read until the connection drains.
 */

import { fromBase64url } from "@my_hypervisor/lib/bytes";
import {
  CLOCK_TOLERANCE_MS,
  decodeJson,
  type ExecExit,
  type ExecRequest,
  encodeFrame,
  type Frame,
  FrameReader,
  FrameType,
  type GuestSync,
  type GuestSynced,
} from "@my_hypervisor/lib/exec-protocol";
import type { Say } from "./console-log.js";
import type { ByteStream, Child, ChildExit, Platform } from "./platform.js";
import { DEFAULT_PATH } from "./workload.js";

export function serveExec(p: Platform, say: Say, conn: ByteStream): void {
  const reader = new FrameReader();
  let child: Child | undefined;
  let finished = false;
  const send = (type: number, payload?: Uint8Array | object) => conn.write(encodeFrame(type, payload));
  const finish = (type: number, payload: object) => {
    if (finished) return;
    finished = true;
    send(type, payload);
    conn.end();
  };
  const fail = (message: string) => finish(FrameType.Error, { message });

  const onFrame = (frame: Frame) => {
    if (!child) {
      if (frame.type === FrameType.Sync) {
        try {
          return finish(FrameType.Synced, syncGuest(p, say, decodeJson<GuestSync>(frame.payload)));
        } catch (e) {
          return fail(`bad sync: ${(e as Error).message}`);
        }
      }
      if (frame.type !== FrameType.Request) return fail("the first frame must be a Request or a Sync");
      let req: ExecRequest;
      try {
        req = decodeJson<ExecRequest>(frame.payload);
      } catch (e) {
        return fail(`bad request JSON: ${(e as Error).message}`);
      }
      if (!Array.isArray(req.argv) || req.argv.length === 0 || !req.argv.every((a) => typeof a === "string")) {
        return fail("argv must be a non-empty array of strings");
      }
      try {
        child = p.spawn({ argv: req.argv, env: { PATH: DEFAULT_PATH, ...req.env }, cwd: req.cwd ?? "/", stdio: "pipes" });
      } catch (e) {
        return fail(`cannot run ${req.argv[0]}: ${(e as Error).message}`);
      }
      say("init", `exec pid ${child.pid}: ${req.argv.join(" ").slice(0, 200)}`);
      send(FrameType.Started, { pid: child.pid });
      // Backpressure the other way: stop reading frames while the command is slow to read its stdin.
      child.stdin?.onDrain(() => conn.resume());
      relay(p, conn, child, req.timeout_ms, (exit) => finish(FrameType.Exit, exit));
      return;
    }
    if (frame.type === FrameType.Stdin) {
      if (child.stdin?.write(frame.payload) === false) conn.pause();
    } else if (frame.type === FrameType.StdinEof) child.stdin?.end();
    else fail(`unexpected frame type ${frame.type}`);
  };

  conn.onData((chunk) => {
    if (chunk === null) {
      // The host went away: nobody will read the result, so do not leave the command running.
      if (!finished && child) {
        p.kill(-child.pid, "SIGKILL");
        for (const stream of [child.stdin, child.stdout, child.stderr]) stream?.destroy();
      }
      finished = true;
      return conn.destroy();
    }
    if (finished) return;
    try {
      for (const frame of reader.push(chunk)) onFrame(frame);
    } catch (e) {
      fail((e as Error).message);
    }
  });
}

/**
 * After a pause or a restore: the wall clock set from the host's if it is off by more than the tolerance (the
 * time it stood still), and the host's random bytes mixed into the RNG. Each says why if it could not.
 */
function syncGuest(p: Platform, say: Say, sync: GuestSync): GuestSynced {
  if (typeof sync.unix_ms !== "number" || typeof sync.seed !== "string") throw new Error("unix_ms must be a number and seed a string");
  const skew = sync.unix_ms - Date.now();
  const result: GuestSynced = { skew_ms: skew, clock_set: false, reseeded: false };
  if (Math.abs(skew) > CLOCK_TOLERANCE_MS) {
    try {
      p.setClock(sync.unix_ms);
      result.clock_set = true;
      say("init", `clock was ${skew} ms behind the host's; set`);
    } catch (e) {
      result.clock_error = (e as Error).message;
      say("init", `clock is ${skew} ms behind the host's and cannot be set: ${result.clock_error}`);
    }
  }
  try {
    p.writeBytes("/dev/urandom", fromBase64url(sync.seed));
    result.reseeded = true;
  } catch (e) {
    result.seed_error = (e as Error).message;
  }
  return result;
}

/** The command's output to the host, and its exit once it is reaped and its output has ended. */
function relay(p: Platform, conn: ByteStream, child: Child, timeoutMs: number | undefined, done: (exit: ExecExit) => void): void {
  let timedOut = false;
  let exit: ChildExit | undefined;
  let openOutputs = 2;
  const cancelTimeout =
    timeoutMs && timeoutMs > 0
      ? p.after(timeoutMs, () => {
          timedOut = true;
          p.kill(-child.pid, "SIGKILL");
        })
      : () => undefined;
  const maybeDone = () => {
    if (exit === undefined || openOutputs > 0) return;
    cancelTimeout();
    done({ exit_code: exit.code, signal: exit.signal, timed_out: timedOut });
  };
  const outputs: [ByteStream | undefined, number][] = [
    [child.stdout, FrameType.Stdout],
    [child.stderr, FrameType.Stderr],
  ];
  for (const [stream, type] of outputs) {
    stream?.onData((chunk) => {
      if (chunk === null) {
        openOutputs -= 1;
        return maybeDone();
      }
      // Backpressure: stop reading the command's output until the host has read what is queued.
      if (!conn.write(encodeFrame(type, chunk))) for (const [s] of outputs) s?.pause();
    });
  }
  conn.onDrain(() => {
    for (const [s] of outputs) s?.resume();
  });
  child.onExit((e) => {
    exit = e;
    maybeDone();
  });
}
