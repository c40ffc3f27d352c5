/**
 * A streamed exec: a one-shot Unix socket (mode 0600) joined to a connection
 * to the guest's exec agent. The first client to connect speaks the exec
 * protocol with the agent itself (docs/exec-protocol.md): the daemon has sent
 * the Request frame; the client sends Stdin frames and StdinEof, and reads
 * Started, Stdout, Stderr and Exit (or Error) frames. The daemon only relays
 * bytes, so output of any size passes without being held or re-encoded.
 * The socket is removed once claimed; unclaimed, it and the agent connection
 * go after STREAM_CLAIM_MS (the agent then kills the command).
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import type { Logger } from "pino";
import { onDisk } from "../domain/errors.js";
import { type ExecRequest, encodeFrame, FrameType } from "../domain/exec-protocol.js";
import { listenPrivate } from "../os/private-socket.js";

export const STREAM_CLAIM_MS = 10_000;

/** `<dir>/exec-<random>.sock`: short, whatever the VM's id, so it always fits in sun_path when the console socket does. */
export const execStreamSocket = (dir: string): string => path.join(dir, `exec-${randomBytes(6).toString("hex")}.sock`);

export async function serveExecStream(path: string, agent: net.Socket, req: ExecRequest, log: Logger): Promise<void> {
  // Half-open: a client that sends its stdin and shuts down its side (`socat -`) still reads the whole run.
  const server = net.createServer({ allowHalfOpen: true });
  const unclaimed = setTimeout(() => {
    log.warn({ socket: path }, "streamed exec not claimed in time; the command is not run");
    agent.destroy();
    closeListener(server, path);
  }, STREAM_CLAIM_MS).unref();
  server.once("connection", (client) => {
    clearTimeout(unclaimed);
    closeListener(server, path);
    join(client, agent);
    // The command starts only now, with someone there to read it.
    agent.write(encodeFrame(FrameType.Request, req));
  });
  try {
    await onDisk("listen on", path, () => listenPrivate(server, path));
  } catch (e) {
    clearTimeout(unclaimed);
    agent.destroy();
    throw e;
  }
}

/**
 * Bytes both ways. The agent's end is passed on after its last frame (pipe
 * ends the client once flushed). The client's end is not: stdin's end is the
 * StdinEof frame, and a client that shut down only its sending side still
 * reads. A client that goes away entirely takes the agent connection with
 * it, and the agent then kills the command.
 */
function join(client: net.Socket, agent: net.Socket): void {
  const fail = () => {
    client.destroy();
    agent.destroy();
  };
  client.once("error", fail);
  agent.once("error", fail);
  client.once("close", () => agent.destroy());
  client.pipe(agent, { end: false });
  agent.pipe(client);
}

function closeListener(server: net.Server, path: string): void {
  server.close();
  fs.rmSync(path, { force: true });
}
