/**
 * The Platform on QuickJS: its os and std modules and the mh C module. One
 * signalfd carries every signal the init handles, so QuickJS's event loop
 * never sees a signal interrupt it; on SIGCHLD a waitpid(-1) loop reaps every
 * zombie and routes each status to the child it belongs to, or reports it
 * as an orphan.
 */

import { strToU8 } from "fflate";
import * as mh from "mh";
import * as os from "os";
import * as std from "std";
import type { ByteStream, Child, ChildExit, Platform, SpawnSpec } from "../platform.js";
import { FdStream, MAX_WATCHED_FD } from "./fd-stream.js";

const SIG = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15, SIGCHLD: 17, SIGPWR: 30 } as const;
const SIGNAL_NAMES = [
  "",
  "SIGHUP",
  "SIGINT",
  "SIGQUIT",
  "SIGILL",
  "SIGTRAP",
  "SIGABRT",
  "SIGBUS",
  "SIGFPE",
  "SIGKILL",
  "SIGUSR1",
  "SIGSEGV",
  "SIGUSR2",
  "SIGPIPE",
  "SIGALRM",
  "SIGTERM",
  "SIGSTKFLT",
  "SIGCHLD",
  "SIGCONT",
  "SIGSTOP",
  "SIGTSTP",
  "SIGTTIN",
  "SIGTTOU",
  "SIGURG",
  "SIGXCPU",
  "SIGXFSZ",
  "SIGVTALRM",
  "SIGPROF",
  "SIGWINCH",
  "SIGIO",
  "SIGPWR",
  "SIGSYS",
];
/** struct signalfd_siginfo is 128 bytes; ssi_signo is its first u32. */
const SIGINFO_BYTES = 128;
const LINUX_REBOOT_CMD_POWER_OFF = 0x4321fedc;
const ENOENT = 2;
const EINTR = 4;
const EPIPE = 32;
const EEXIST = 17;

const check = (r: number, what: string): number => {
  if (r < 0) throw new Error(`${what}: ${std.strerror(-r)}`);
  return r;
};

function decodeStatus(status: number): ChildExit {
  const signal = status & 0x7f;
  return signal === 0 ? { code: (status >> 8) & 0xff, signal: null } : { code: null, signal: SIGNAL_NAMES[signal] ?? `signal ${signal}` };
}

class QuickJsChild implements Child {
  exitCb: ((exit: ChildExit) => void) | undefined;
  exit: ChildExit | undefined;
  constructor(
    readonly pid: number,
    readonly stdin?: ByteStream,
    readonly stdout?: ByteStream,
    readonly stderr?: ByteStream,
  ) {}
  onExit(cb: (exit: ChildExit) => void): void {
    this.exitCb = cb;
    if (this.exit) cb(this.exit);
  }
}

export class QuickJsPlatform implements Platform {
  readonly pid = os.getpid();
  private readonly children = new Map<number, QuickJsChild>();
  private terminate: ((signal: string) => void) | undefined;
  private orphans: ((pids: number[]) => void) | undefined;
  private devNull: number | undefined;

  constructor() {
    const sfd = check(mh.signalfd([SIG.SIGCHLD, SIG.SIGTERM, SIG.SIGINT, SIG.SIGPWR, SIG.SIGHUP]), "signalfd");
    const buf = new ArrayBuffer(SIGINFO_BYTES * 16);
    os.setReadHandler(sfd, () => {
      const n = os.read(sfd, buf, 0, buf.byteLength);
      const view = new DataView(buf);
      for (let at = 0; at + SIGINFO_BYTES <= n; at += SIGINFO_BYTES) this.onSignal(view.getUint32(at, true));
    });
  }

  private onSignal(signo: number): void {
    if (signo === SIG.SIGCHLD) {
      this.reap();
      return;
    }
    // SIGHUP: a console hangup is no reason for PID 1 to do anything.
    if (signo !== SIG.SIGHUP) this.terminate?.(SIGNAL_NAMES[signo] as string);
  }

  /** Every zombie, in one loop: the children's statuses go to them, the rest are orphans. */
  private reap(): void {
    const orphans: number[] = [];
    for (;;) {
      const [pid, status] = os.waitpid(-1, os.WNOHANG);
      if (pid <= 0) break;
      const child = this.children.get(pid);
      if (!child) {
        orphans.push(pid);
        continue;
      }
      this.children.delete(pid);
      child.exit = decodeStatus(status);
      child.exitCb?.(child.exit);
    }
    if (orphans.length > 0) this.orphans?.(orphans);
  }

  /**
   * Blocking, as the kernel's own console output is. EPIPE only happens where the console is a pipe:
   * under the test VMM, whose end going means the VMM is gone, and a guest never outlives its VMM.
   */
  consoleLine(line: string): void {
    const bytes = strToU8(`${line}\n`);
    for (let at = 0; at < bytes.length; ) {
      const n = os.write(1, bytes.buffer as ArrayBuffer, bytes.byteOffset + at, bytes.length - at);
      if (n === -EPIPE) this.exit(0);
      if (n < 0 && n !== -EINTR) return;
      at += Math.max(n, 0);
    }
  }

  getenv(name: string): string | undefined {
    return std.getenv(name) ?? undefined;
  }

  /** Read to the end: /proc's files report a size of 0, so std.loadFile would read nothing. */
  readText(path: string): string | undefined {
    const file = std.open(path, "r");
    if (!file) return undefined;
    try {
      return file.readAsString();
    } finally {
      file.close();
    }
  }

  spawn(spec: SpawnSpec): Child {
    const env = Object.entries(spec.env).map(([k, v]) => `${k}=${v}`);
    if (spec.stdio === "console") {
      // Where the console is a terminal, a fresh open of /dev/console: the kernel opened PID 1's before /dev was
      // mounted over, and a terminal's name must resolve (ttyname, job control). Elsewhere (the test VMM's pipes) PID 1's own.
      const fd = os.isatty(0) ? os.open("/dev/console", os.O_RDWR) : -1;
      const stdio: [number, number, number] = fd >= 0 ? [fd, fd, fd] : [0, 1, 2];
      try {
        return this.track(new QuickJsChild(check(mh.spawn(spec.argv, env, spec.cwd, stdio, 1), "spawn")));
      } finally {
        if (fd >= 0) os.close(fd);
      }
    }
    const pipes: [number, number][] = [];
    try {
      const stdin = spec.stdio === "pipes" ? this.pipe(pipes) : undefined;
      const stdout = this.pipe(pipes);
      const stderr = this.pipe(pipes);
      const childIn = stdin ? stdin[0] : this.nullFd();
      const pid = check(mh.spawn(spec.argv, env, spec.cwd, [childIn, stdout[1], stderr[1]], 0), "spawn");
      for (const fd of [stdin?.[0], stdout[1], stderr[1]]) if (fd !== undefined) os.close(fd);
      pipes.length = 0;
      return this.track(
        new QuickJsChild(
          pid,
          stdin && new FdStream(stdin[1], { read: false, write: true }),
          new FdStream(stdout[0], { read: true, write: false }),
          new FdStream(stderr[0], { read: true, write: false }),
        ),
      );
    } finally {
      for (const fds of pipes) for (const fd of fds) os.close(fd);
    }
  }

  private pipe(opened: [number, number][]): [number, number] {
    const fds = os.pipe();
    if (!fds) throw new Error("pipe: out of file descriptors");
    opened.push(fds);
    if (Math.max(...fds) > MAX_WATCHED_FD) throw new Error(`pipe: fd ${Math.max(...fds)} is past what the event loop can watch`);
    return fds;
  }

  private nullFd(): number {
    this.devNull ??= check(os.open("/dev/null", os.O_RDWR), "/dev/null");
    return this.devNull;
  }

  private track(child: QuickJsChild): Child {
    this.children.set(child.pid, child);
    return child;
  }

  kill(pid: number, signal: "SIGTERM" | "SIGKILL"): boolean {
    return os.kill(pid, SIG[signal]) === 0;
  }

  after(ms: number, fn: () => void): () => void {
    const handle = os.setTimeout(fn, ms);
    return () => os.clearTimeout(handle);
  }

  now(): number {
    return os.now();
  }

  setClock(unixMs: number): void {
    check(mh.clockSettime(unixMs), "clock_settime");
  }

  writeBytes(path: string, bytes: Uint8Array): void {
    const fd = check(os.open(path, os.O_WRONLY), `open ${path}`);
    try {
      const n = os.write(fd, bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.length);
      if (n !== bytes.length) check(n < 0 ? n : -5, `write ${path}`);
    } finally {
      os.close(fd);
    }
  }

  onTerminate(cb: (signal: string) => void): void {
    this.terminate = cb;
  }

  onOrphansReaped(cb: (pids: number[]) => void): void {
    this.orphans = cb;
  }

  listen(where: { vsockPort: number } | { unixPath: string }, onConnection: (conn: ByteStream) => void): string {
    const [fd, name] =
      "vsockPort" in where
        ? [check(mh.listenVsock(where.vsockPort), `vsock port ${where.vsockPort} (is virtio-vsock in the kernel?)`), `vsock:${where.vsockPort}`]
        : [check(mh.listenUnix(where.unixPath), where.unixPath), `unix:${where.unixPath}`];
    os.setReadHandler(fd, () => {
      const conn = mh.accept(fd);
      if (conn < 0) return;
      // Past what select() can watch, a connection could never be served: refuse it.
      if (conn > MAX_WATCHED_FD) {
        os.close(conn);
        return this.consoleLine(`[init] refused a connection: fd ${conn} is past what the event loop can watch`);
      }
      onConnection(new FdStream(conn, { read: true, write: true, socket: true }));
    });
    return name;
  }

  openInput(source: string | number): ByteStream {
    const fd = typeof source === "number" ? source : check(os.open(source, os.O_RDONLY), source);
    return new FdStream(fd, { read: true, write: false });
  }

  consoleInput(): ByteStream {
    return new FdStream(0, { read: true, write: false });
  }

  mount(source: string, target: string, fstype: string, flags: number, data: string | undefined): void {
    check(mh.mount(source, target, fstype, flags, data ?? null), "mount");
  }

  mountPoints(): Set<string> {
    const lines = (this.readText("/proc/self/mountinfo") ?? "").split("\n");
    return new Set(lines.map((l) => l.split(" ")[4]).filter((m): m is string => m !== undefined));
  }

  procSelf(): number | undefined {
    const [target, err] = os.readlink("/proc/self");
    return err === 0 ? Number(target) : undefined;
  }

  mkdirs(path: string): void {
    let at = "";
    for (const part of path.split("/").filter(Boolean)) {
      at += `/${part}`;
      const r = os.mkdir(at, 0o755);
      if (r < 0 && r !== -EEXIST) check(r, `mkdir ${at}`);
    }
  }

  removeFile(path: string): void {
    const r = os.remove(path);
    if (r < 0 && r !== -ENOENT) check(r, `remove ${path}`);
  }

  sethostname(name: string): void {
    check(mh.sethostname(name), "sethostname");
  }

  interfaceUp(name: string): void {
    check(mh.ifUp(name), name);
  }

  powerOff(): string {
    return std.strerror(-mh.power(LINUX_REBOOT_CMD_POWER_OFF));
  }

  exit(code: number): never {
    return std.exit(code);
  }
}
