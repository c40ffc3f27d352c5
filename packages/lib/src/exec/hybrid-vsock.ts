/**
 * Connecting to a guest port through cloud-hypervisor's hybrid vsock: connect
 * to the VM's vsock Unix socket, send `CONNECT <port>\n`, and read one line.
 * `OK <n>` means the guest accepted; CH closes without a word when nothing
 * listens, the guest does not answer within 2 s, or the command is bad. Bytes
 * that arrive after the line belong to the stream and are put back. The
 * socket is in a directory the VMM owns: nothing is sent unless the VMM's
 * pid listens on it (os/process-socket.ts).
 */
import net from "node:net";
import { type ProcessSocket, wrongListener } from "../os/process-socket.js";

const RETRY_MS = 100;
/** CH waits 2000 ms for the guest; give the line a little longer. */
const HANDSHAKE_MS = 2500;

export class AgentUnreachableError extends Error {}

/** Connects, retrying while the guest is not listening yet, until `deadline` (epoch ms). */
export async function connectGuestPort(vsockSocket: ProcessSocket, port: number, deadline: number): Promise<net.Socket> {
  let lastReason = "no attempt made";
  for (;;) {
    try {
      return await attempt(vsockSocket, port, Math.min(HANDSHAKE_MS, Math.max(1, deadline - Date.now())));
    } catch (e) {
      lastReason = (e as Error).message;
    }
    if (Date.now() + RETRY_MS >= deadline) throw new AgentUnreachableError(`guest port ${port} unreachable through ${vsockSocket.path}: ${lastReason}`);
    await new Promise((r) => setTimeout(r, RETRY_MS));
  }
}

/** One CONNECT attempt, no retries: for probes that keep their own schedule. */
export function attempt(vsockSocket: ProcessSocket, port: number, timeoutMs = HANDSHAKE_MS): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(vsockSocket.path);
    let line = Buffer.alloc(0);
    const timer = setTimeout(() => fail(`no answer to CONNECT within ${timeoutMs} ms`), timeoutMs);
    const fail = (reason: string) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new Error(reason));
    };
    const onData = (chunk: Buffer) => {
      line = Buffer.concat([line, chunk]);
      const nl = line.indexOf(10);
      if (nl < 0) return line.length > 64 ? fail("answer to CONNECT is too long") : undefined;
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("close", onClose);
      const answer = line.subarray(0, nl).toString("latin1");
      if (!answer.startsWith("OK ")) return fail(`guest refused: ${JSON.stringify(answer)}`);
      const rest = line.subarray(nl + 1);
      if (rest.length > 0) socket.unshift(rest);
      socket.pause();
      resolve(socket);
    };
    const onClose = () => fail("the VMM closed the connection (nothing listening on that guest port yet?)");
    socket.on("data", onData);
    socket.once("close", onClose);
    socket.once("error", (e) => fail(e.message));
    socket.once("connect", () => {
      const wrong = wrongListener(socket, vsockSocket);
      if (wrong) fail(wrong.message);
      else socket.write(`CONNECT ${port}\n`);
    });
  });
}

/**
 * The end of one call on a guest connection: the first outcome wins; ending stops the call's timer and closes the
 * connection, then runs the outcome (a resolve or a reject). Later outcomes (a close after the answer) are dropped.
 */
export class CallEnd {
  private ended = false;
  /** The call's deadline, stopped when it ends. */
  timer: NodeJS.Timeout | undefined;

  constructor(private readonly conn: net.Socket) {}

  with(outcome: () => void): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    this.conn.destroy();
    outcome();
  }
}
