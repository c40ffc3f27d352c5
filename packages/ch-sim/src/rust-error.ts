/** How cloud-hypervisor's error chains print an OS error: Rust's `io::Error` display, glibc's text and the errno. */
import fs from "node:fs";
import util from "node:util";

export function rustIoError(e: unknown): string {
  const errno = (e as NodeJS.ErrnoException).errno;
  const known = errno === undefined ? undefined : util.getSystemErrorMap().get(errno);
  if (errno === undefined || known === undefined) return String((e as Error).message ?? e);
  const text = known[1];
  return `${text.charAt(0).toUpperCase()}${text.slice(1)} (os error ${-errno})`;
}

/** Why the VMM cannot read `file`, as CH's chain says it, or undefined if it can. */
export function unreadable(file: string): string | undefined {
  try {
    fs.accessSync(file, fs.constants.R_OK);
    return undefined;
  } catch (e) {
    return rustIoError(e);
  }
}

/** A Node error for an errno by name, as a system call would have raised it. */
export function osError(code: string): NodeJS.ErrnoException {
  const errno = [...util.getSystemErrorMap()].find(([, [name]]) => name === code)?.[0];
  return Object.assign(new Error(code), { code, errno });
}

/**
 * A panic of CH's VMM thread: its API answers the request in flight with a broken channel, and the process exits 1
 * (main cannot join the thread). `location` is where v53.0 panics.
 */
export class VmmPanic extends Error {
  constructor(readonly location: string) {
    super(`thread 'vmm' panicked at ${location}:\ncalled \`Option::unwrap()\` on a \`None\` value`);
  }
}
