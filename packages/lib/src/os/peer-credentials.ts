/**
 * Who is on the other end of a Unix socket connection: the pid, uid and gid the kernel recorded when the peer
 * connected (or, for a socket connected to a server, when the server listened), which the peer cannot forge.
 */
import type net from "node:net";
import { libc, type Ucred } from "./libc.js";

export type PeerCredentials = Ucred;

/** Loads libc's getsockopt; a server calls it before it listens, so a broken install fails at start-up. */
export function loadPeerCredentials(): void {
  libc();
}

/**
 * The peer's credentials, or undefined where the kernel gives none (not a Unix socket, already closed).
 * The descriptor is libuv's, read from the handle Node keeps for the socket: no public API names it.
 */
export function peerCredentials(socket: net.Socket): PeerCredentials | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) return undefined;
  return libc().peerCred(fd);
}
