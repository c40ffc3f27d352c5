/**
 * A Unix socket that one known process serves. The daemon connects as root to
 * sockets that live in a directory another uid owns (a VMM's), so the path
 * proves nothing: the owner can replace the socket with a link to any other
 * socket on the host (another VMM's, a sibling's). What the kernel records
 * for the listener (SO_PEERCRED: the pid that called listen) cannot be
 * forged, so a connection is used only once that pid is the one expected.
 */
import net from "node:net";
import { peerCredentials } from "./peer-credentials.js";

export interface ProcessSocket {
  path: string;
  /** The process that must be listening on it. */
  pid: number;
}

/** The socket at the path is served by another process than the one expected: nothing was sent. */
export class WrongListenerError extends Error {
  constructor(
    readonly target: ProcessSocket,
    readonly listenerPid: number | undefined,
  ) {
    super(
      `${target.path} is not served by pid ${target.pid} (${listenerPid === undefined ? "the kernel names no listener" : `pid ${listenerPid} listens there`}): not used`,
    );
    this.name = "WrongListenerError";
  }
}

/** Undefined when the connected `socket`'s listener is `target.pid`; else the error that says who it is. */
export function wrongListener(socket: net.Socket, target: ProcessSocket): WrongListenerError | undefined {
  const pid = peerCredentials(socket)?.pid;
  return pid === target.pid ? undefined : new WrongListenerError(target, pid);
}

/**
 * Connects, and calls back once: with the socket when `target.pid` listens on it, else with the error (the socket
 * destroyed). The shape undici's `connect` option takes.
 */
export function connectToProcess(target: ProcessSocket, callback: (...result: [Error, null] | [null, net.Socket]) => void): void {
  const socket = net.connect(target.path);
  const fail = (err: Error) => {
    socket.destroy();
    callback(err, null);
  };
  socket.once("error", fail);
  socket.once("connect", () => {
    socket.off("error", fail);
    const wrong = wrongListener(socket, target);
    if (wrong) fail(wrong);
    else callback(null, socket);
  });
}
