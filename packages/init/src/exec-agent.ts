/**
 * The exec agent: one command per connection. The host sends a Request
 * frame, then optional Stdin frames and StdinEof; the agent answers Started,
 * Stdout/Stderr frames as output comes, and finally Exit (or Error if the
 * command could not run). A timeout kills the command's whole process group.
 */
import type { Duplex } from "node:stream";
import { type ExecExit, type ExecRequest, encodeFrame, type Frame, FrameReader, FrameType } from "@my_hypervisor/lib/exec-protocol";
import { spawnTracked } from "./children.js";
import { say } from "./console-log.js";

const DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

export function serveExec(conn: Duplex): void {
  const reader = new FrameReader();
  let child: ReturnType<typeof spawnTracked> | undefined;
  let finished = false;
  const send = (type: number, payload?: Buffer | object) => {
    if (!conn.destroyed) conn.write(encodeFrame(type, payload));
  };
  const fail = (message: string) => {
    if (finished) return;
    finished = true;
    send(FrameType.Error, { message });
    conn.end();
  };

  const onFrame = (frame: Frame) => {
    if (!child) {
      if (frame.type !== FrameType.Request) return fail("the first frame must be a Request");
      let req: ExecRequest;
      try {
        req = JSON.parse(frame.payload.toString("utf8")) as ExecRequest;
      } catch (e) {
        return fail(`bad request JSON: ${(e as Error).message}`);
      }
      if (!Array.isArray(req.argv) || req.argv.length === 0 || !req.argv.every((a) => typeof a === "string")) {
        return fail("argv must be a non-empty array of strings");
      }
      child = run(
        req,
        send,
        (exit) => {
          finished = true;
          send(FrameType.Exit, exit);
          conn.end();
        },
        fail,
      );
      return;
    }
    if (frame.type === FrameType.Stdin) child.stdin?.write(frame.payload);
    else if (frame.type === FrameType.StdinEof) child.stdin?.end();
    else fail(`unexpected frame type ${frame.type}`);
  };

  conn.on("data", (chunk: Buffer) => {
    try {
      for (const frame of reader.push(chunk)) onFrame(frame);
    } catch (e) {
      fail((e as Error).message);
    }
  });
  conn.on("error", () => undefined);
  // The host went away: nobody will read the result, so do not leave the command running.
  conn.on("close", () => {
    if (!finished && child?.pid) killGroup(child.pid, "SIGKILL");
  });
}

function run(req: ExecRequest, send: (type: number, payload?: Buffer | object) => void, done: (exit: ExecExit) => void, fail: (m: string) => void) {
  const [command, ...args] = req.argv as [string, ...string[]];
  const child = spawnTracked(command, args, {
    cwd: req.cwd ?? "/",
    env: { PATH: DEFAULT_PATH, ...req.env },
    stdio: ["pipe", "pipe", "pipe"],
    // Its own process group, so a timeout kills everything it started.
    detached: true,
  });
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  child.once("spawn", () => {
    send(FrameType.Started, { pid: child.pid });
    if (req.timeout_ms && req.timeout_ms > 0) {
      timer = setTimeout(() => {
        timedOut = true;
        if (child.pid) killGroup(child.pid, "SIGKILL");
      }, req.timeout_ms);
    }
  });
  child.once("error", (e) => fail(`cannot run ${command}: ${e.message}`));
  child.stdin?.on("error", () => undefined);
  child.stdout?.on("data", (d: Buffer) => send(FrameType.Stdout, d));
  child.stderr?.on("data", (d: Buffer) => send(FrameType.Stderr, d));
  child.once("close", (code, signal) => {
    clearTimeout(timer);
    if (child.pid === undefined) return;
    done({ exit_code: code, signal, timed_out: timedOut });
  });
  say("init", `exec pid ${child.pid ?? "?"}: ${req.argv.join(" ").slice(0, 200)}`);
  return child;
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}
