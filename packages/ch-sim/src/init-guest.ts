/**
 * The real guest: my_hypervisor-init, started at vm.boot. As root it runs as
 * PID 1 in new PID, mount and UTS namespaces, so its mounts, reaping and
 * signals are real; otherwise as a plain child (and the log says so). It gets
 * the kernel command line's `key=value` parameters as its environment, as the
 * kernel hands them to init. Its stdout/stderr are the serial port's output
 * and its stdin the serial input; the power button arrives as input_event
 * records on fd 3; its vsock listeners are Unix sockets in a private
 * directory. The guest dies with the VMM, even when the VMM is SIGKILLed.
 */

import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { readProcStat } from "@my_hypervisor/lib/proc";
import { powerButtonPress, SIM_POWER_BUTTON_FD_ENV, SIM_VSOCK_DIR_ENV } from "@my_hypervisor/lib/test-vmm-guest";

/** The guest init binary (scripts/build-init.sh builds it); $CH_SIM_GUEST_INIT names another. */
export const INIT_BINARY = process.env.CH_SIM_GUEST_INIT ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../init/dist/my_hypervisor-init");

export interface GuestExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class InitGuest {
  readonly vsockDir: string;
  private readonly child: ChildProcess;
  private stopped = false;

  constructor(
    cmdline: string,
    serialOut: (data: Buffer) => void,
    private readonly onExit: (exit: GuestExit) => void,
    log: (msg: string) => void,
  ) {
    removeDeadVsockDirs();
    this.vsockDir = fs.mkdtempSync(path.join(os.tmpdir(), `${VSOCK_DIR_PREFIX}${process.pid}-`));
    const namespaces = guestNamespaces();
    const command = namespaces
      ? ["setpriv", "--pdeathsig", "KILL", "unshare", ...namespaces, "--fork", "--kill-child=SIGKILL", INIT_BINARY]
      : ["setpriv", "--pdeathsig", "KILL", INIT_BINARY, "--under-test-vmm"];
    log(
      namespaces
        ? `guest: my_hypervisor-init as PID 1 in namespaces of its own (${namespaces.join(" ")})`
        : "guest: no namespaces for an unprivileged user here, so my_hypervisor-init runs as a plain child (no PID 1 duties)",
    );
    const env = { ...kernelEnv(cmdline), [SIM_VSOCK_DIR_ENV]: this.vsockDir, [SIM_POWER_BUTTON_FD_ENV]: "3", PATH: process.env.PATH ?? "/usr/bin:/bin" };
    this.child = spawn(command[0] as string, command.slice(1), { env, stdio: ["pipe", "pipe", "pipe", "pipe"] });
    this.child.stdout?.on("data", serialOut);
    this.child.stderr?.on("data", serialOut);
    for (const s of [this.child.stdin, this.child.stdio[3]]) (s as Writable | null)?.on("error", () => undefined);
    this.child.once("exit", (code, signal) => {
      fs.rmSync(this.vsockDir, { recursive: true, force: true });
      if (!this.stopped) this.onExit({ code, signal });
    });
  }

  serialIn(data: Buffer): void {
    this.child.stdin?.write(data);
  }

  /** The ACPI power button: one press, as the kernel reports it. */
  pressPowerButton(): void {
    (this.child.stdio[3] as Writable | null)?.write(powerButtonPress());
  }

  /**
   * vm.pause: every process of the guest stops (SIGSTOP), as a paused VM's vCPUs do; serial input waits in its pipe
   * and vsock connections in their listeners' backlogs. Repeated until no process of the guest is left running, so
   * one forked meanwhile is stopped too.
   */
  freeze(): void {
    const stopped = new Set<number>();
    for (;;) {
      const running = guestProcesses(this.child.pid as number).filter((p) => !stopped.has(p));
      if (running.length === 0) return;
      for (const pid of running) {
        signal(pid, "SIGSTOP");
        stopped.add(pid);
      }
    }
  }

  /** vm.resume: the guest's processes go on where they stopped. */
  thaw(): void {
    for (const pid of guestProcesses(this.child.pid as number)) signal(pid, "SIGCONT");
  }

  /** The VM is torn down: the guest stops existing at once. */
  destroy(): void {
    this.stopped = true;
    this.child.kill("SIGKILL");
  }
}

/** The guest's processes: every descendant of `root` (the wrappers that start the init, the init, and all it started). */
function guestProcesses(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of fs.readdirSync("/proc")) {
    const pid = Number(name);
    if (!pid) continue;
    const ppid = readProcStat(pid)?.ppid;
    if (ppid === undefined) continue; // gone meanwhile
    children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  }
  const found: number[] = [];
  for (let queue = [root]; queue.length > 0; ) {
    const pid = queue.pop() as number;
    found.push(pid);
    queue = queue.concat(children.get(pid) ?? []);
  }
  return found;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Gone meanwhile: nothing left to stop or go on.
  }
}

/**
 * The guest's vsock directory goes when the guest exits, but not when the
 * VMM is SIGKILLed: each VMM's directory names its pid, and a new guest
 * removes those of VMMs that are gone.
 */
const VSOCK_DIR_PREFIX = "chsim-vsock-";

function removeDeadVsockDirs(): void {
  for (const name of fs.readdirSync(os.tmpdir())) {
    const pid = Number(/^chsim-vsock-(\d+)-/.exec(name)?.[1]);
    if (!pid || pid === process.pid || fs.existsSync(`/proc/${pid}`)) continue;
    try {
      fs.rmSync(path.join(os.tmpdir(), name), { recursive: true, force: true });
    } catch {
      // Another uid's (a VMM under its own uid): left for a VMM of that uid.
    }
  }
}

/**
 * As root: new PID, mount and UTS namespaces. As another user (a VMM under its own uid): the same inside a
 * user namespace of its own, where it is root, with a network namespace too (bringing up lo needs one it
 * owns); where unprivileged user namespaces are off, none.
 */
function guestNamespaces(): string[] | undefined {
  if (process.getuid?.() === 0) return ["--pid", "--mount", "--uts"];
  const read = (f: string) => {
    try {
      return fs.readFileSync(f, "utf8").trim();
    } catch {
      return undefined;
    }
  };
  const allowed = read("/proc/sys/kernel/unprivileged_userns_clone") !== "0" && Number(read("/proc/sys/user/max_user_namespaces") ?? 0) > 0;
  return allowed ? ["--user", "--map-root-user", "--pid", "--mount", "--uts", "--net"] : undefined;
}

/** The kernel passes `key=value` parameters without a dot to init as environment variables. */
function kernelEnv(cmdline: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const token of cmdline.split(/\s+/)) {
    const eq = token.indexOf("=");
    if (eq > 0 && !token.slice(0, eq).includes(".")) env[token.slice(0, eq)] = token.slice(eq + 1);
  }
  return env;
}
