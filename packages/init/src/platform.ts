/**
 * What the init's logic needs from the system it runs on. The logic
 * (boot, workload, exec agent, power button, shutdown) is plain TypeScript
 * over this interface; quickjs/ implements it in the guest, on QuickJS and
 * the mh C module.
 */

/** A byte stream to a peer: a connection, or one end of a pipe. */
export interface ByteStream {
  /** Each chunk read, then `null` once at end of stream (or on a read error). */
  onData(cb: (chunk: Uint8Array | null) => void): void;
  /** Queues bytes; false once the queue is past its high-water mark (wait for `onDrain`). */
  write(data: Uint8Array): boolean;
  /** The write queue has emptied. */
  onDrain(cb: () => void): void;
  pause(): void;
  resume(): void;
  /** No more writes: once the queue is flushed the peer reads end of stream. */
  end(): void;
  /** Closes now, dropping anything queued. */
  destroy(): void;
}

export interface ChildExit {
  code: number | null;
  signal: string | null;
}

export interface SpawnSpec {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  /**
   * `pipes`: stdin, stdout and stderr are pipes to the init, in a process group of its own.
   * `console`: they are the console, in a session of its own with the console as its
   * controlling terminal (where the console is a terminal).
   * `output`: stdin is /dev/null, stdout and stderr pipes, in a process group of its own.
   */
  stdio: "pipes" | "console" | "output";
}

export interface Child {
  readonly pid: number;
  readonly stdin?: ByteStream;
  readonly stdout?: ByteStream;
  readonly stderr?: ByteStream;
  /** Called once, when the child has been reaped. */
  onExit(cb: (exit: ChildExit) => void): void;
}

export interface Platform {
  readonly pid: number;
  /** Writes a line to the console (PID 1's stdout). */
  consoleLine(line: string): void;
  getenv(name: string): string | undefined;
  /** A file's text, or undefined if it cannot be read. */
  readText(path: string): string | undefined;
  /** Throws an Error saying why if the command cannot start. */
  spawn(spec: SpawnSpec): Child;
  /** kill(2): a negative pid is a process group, -1 everything but PID 1. False if nothing was signalled. */
  kill(pid: number, signal: "SIGTERM" | "SIGKILL"): boolean;
  /** Runs `fn` once after `ms`; the returned function cancels it. */
  after(ms: number, fn: () => void): () => void;
  now(): number;
  /** Sets the realtime clock (ms since the epoch); throws saying why it cannot. */
  setClock(unixMs: number): void;
  /** Writes bytes to an existing file or device (no create, no truncate); throws saying why it cannot. */
  writeBytes(path: string, bytes: Uint8Array): void;
  /** Termination requests (SIGTERM, SIGINT, SIGPWR), by name. */
  onTerminate(cb: (signal: string) => void): void;
  /** Zombies reaped that were not the init's own children. */
  onOrphansReaped(cb: (pids: number[]) => void): void;
  /** Listens for stream connections; returns where, throws if it cannot. */
  listen(where: { vsockPort: number } | { unixPath: string }, onConnection: (conn: ByteStream) => void): string;
  /** Reads a device or inherited fd as a stream (the power button's input events). */
  openInput(source: string | number): ByteStream;
  /** The console as a stream of what is typed at it (the test VMM's guest watches it for its VMM's end). */
  consoleInput(): ByteStream;
  mount(source: string, target: string, fstype: string, flags: number, data: string | undefined): void;
  /** The mount points in /proc/self/mountinfo. */
  mountPoints(): Set<string>;
  /** The pid /proc/self names: this process's pid only if /proc is of its own PID namespace. */
  procSelf(): number | undefined;
  mkdirs(path: string): void;
  removeFile(path: string): void;
  sethostname(name: string): void;
  interfaceUp(name: string): void;
  /** sync(2) and reboot(POWER_OFF): returns only if that failed, with why. */
  powerOff(): string;
  exit(code: number): never;
}
