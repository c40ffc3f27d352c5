/**
 * The few libc calls Node does not offer: getsockopt (SO_PEERCRED) and flock. Called through koffi (ADR 0011): a
 * maintained FFI with prebuilt binaries, so the project carries no C of its own for them. Loaded once, by the first
 * caller; a daemon loads it before it touches anything, so a broken install fails at start-up.
 */
import { createRequire } from "node:module";

export interface Ucred {
  pid: number;
  uid: number;
  gid: number;
}

export interface Libc {
  /** getsockopt(fd, SOL_SOCKET, SO_PEERCRED): the peer's credentials, or undefined where the kernel gives none. */
  peerCred(fd: number): Ucred | undefined;
  /** flock(fd, LOCK_EX | LOCK_NB): true if taken, false if another open file holds it. */
  tryLockExclusive(fd: number): boolean;
}

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const UCRED_BYTES = 12;
const LOCK_EX = 2;
const LOCK_NB = 4;
const EWOULDBLOCK = 11;

let loaded: Libc | undefined;

export function libc(): Libc {
  loaded ??= load();
  return loaded;
}

function load(): Libc {
  // koffi is CommonJS-first and stays outside the bundle (its native module is found next to its package).
  const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi");
  const lib = koffi.load("libc.so.6");
  koffi.struct("mh_ucred", { pid: "int32", uid: "uint32", gid: "uint32" });
  const getsockopt = lib.func("int getsockopt(int fd, int level, int name, _Out_ mh_ucred *value, _Inout_ uint32 *length)");
  const flock = lib.func("int flock(int fd, int operation)");
  return {
    peerCred(fd) {
      const value = { pid: 0, uid: 0, gid: 0 };
      const length = [UCRED_BYTES];
      return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, value, length) === 0 && length[0] === UCRED_BYTES ? value : undefined;
    },
    tryLockExclusive(fd) {
      if (flock(fd, LOCK_EX | LOCK_NB) === 0) return true;
      const errno = koffi.errno();
      if (errno === EWOULDBLOCK) return false;
      throw new Error(`flock failed (errno ${errno})`);
    },
  };
}
