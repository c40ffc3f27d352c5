/**
 * The parts of QuickJS's os and std modules (quickjs-libc, Bellard's
 * 2025-04-26) the init uses, and the init's own C module mh
 * (packages/init/native/mh.c). Calls that fail return -errno.
 */
declare module "os" {
  export function open(path: string, flags: number, mode?: number): number;
  export function close(fd: number): number;
  export function read(fd: number, buffer: ArrayBuffer, offset: number, length: number): number;
  export function write(fd: number, buffer: ArrayBuffer, offset: number, length: number): number;
  export function isatty(fd: number): boolean;
  export function setReadHandler(fd: number, fn: (() => void) | null): void;
  export function setWriteHandler(fd: number, fn: (() => void) | null): void;
  export function setTimeout(fn: () => void, ms: number): unknown;
  export function clearTimeout(handle: unknown): void;
  export function now(): number;
  export function getpid(): number;
  export function waitpid(pid: number, options: number): [number, number];
  export function pipe(): [number, number] | null;
  export function kill(pid: number, signal: number): number;
  export function mkdir(path: string, mode?: number): number;
  export function remove(path: string): number;
  export function readlink(path: string): [string, number];
  export const O_RDONLY: number;
  export const O_WRONLY: number;
  export const O_RDWR: number;
  export const WNOHANG: number;
}

declare module "std" {
  export function getenv(name: string): string | undefined;
  export interface FILE {
    readAsString(maxSize?: number): string;
    close(): number;
  }
  export function open(path: string, mode: string): FILE | null;
  export const out: { puts(s: string): void };
  export const err: { puts(s: string): void };
  export function strerror(errno: number): string;
  export function exit(code: number): never;
}

declare module "mh" {
  export function mount(source: string, target: string, fstype: string, flags: number, data: string | null): number;
  export function umount(target: string, flags: number): number;
  /** sync(2), then reboot(2) with `cmd`: returns only on failure. */
  export function power(cmd: number): number;
  export function sethostname(name: string): number;
  export function clockSettime(msSinceEpoch: number): number;
  /** Blocks the signals and returns a non-blocking signalfd for them. */
  export function signalfd(signals: number[]): number;
  export function setNonblock(fd: number): number;
  /** mode 0: own process group; 1: own session, stdin its controlling terminal if it is a terminal. */
  export function spawn(argv: string[], env: string[], cwd: string, stdio: [number, number, number], mode: 0 | 1): number;
  export function ifUp(name: string): number;
  export function listenVsock(port: number): number;
  export function listenUnix(path: string): number;
  export function accept(fd: number): number;
  export function shutdownWrite(fd: number): number;
}

declare const scriptArgs: string[];
