/**
 * Who is on the other end of a Unix socket connection: the pid, uid and gid the kernel recorded when the peer
 * connected (SO_PEERCRED), which the peer cannot forge. Node exposes no getsockopt, so libc's is called through
 * koffi (ADR 0011): a maintained FFI with prebuilt binaries, so the project carries no C of its own for this.
 */
import { createRequire } from "node:module";
import type net from "node:net";

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const UCRED_BYTES = 12;

type GetPeerCred = (fd: number) => PeerCredentials | undefined;
let getPeerCred: GetPeerCred | undefined;

/** Loads libc's getsockopt once; a server calls it before it listens, so a broken install fails at start-up. */
export function loadPeerCredentials(): void {
  getPeerCred ??= load();
}

function load(): GetPeerCred {
  // koffi is CommonJS-first and stays outside the bundle (its native module is found next to its package).
  const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi");
  const libc = koffi.load("libc.so.6");
  koffi.struct("mh_ucred", { pid: "int32", uid: "uint32", gid: "uint32" });
  const getsockopt = libc.func("int getsockopt(int fd, int level, int name, _Out_ mh_ucred *value, _Inout_ uint32 *length)");
  return (fd) => {
    const value = { pid: 0, uid: 0, gid: 0 };
    const length = [UCRED_BYTES];
    return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, value, length) === 0 && length[0] === UCRED_BYTES ? value : undefined;
  };
}

/**
 * The peer's credentials, or undefined where the kernel gives none (not a Unix socket, already closed).
 * The descriptor is libuv's, read from the handle Node keeps for the socket: no public API names it.
 */
export function peerCredentials(socket: net.Socket): PeerCredentials | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) return undefined;
  loadPeerCredentials();
  return getPeerCred?.(fd);
}
