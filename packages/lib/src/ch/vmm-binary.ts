/**
 * Which processes are this daemon's VMMs. A process is one only if the
 * kernel ran the configured VMM binary for it: `/proc/<pid>/exe` is that
 * binary. For a binary that is a `#!` script (the test VMM is one), the
 * kernel runs the interpreter with the script's path as its first argument,
 * so `exe` is the interpreter and `argv[1]` the script. Wrappers that merely
 * name the VMM's API socket in their argv (timeout, strace, gdb,
 * systemd-run) are never mistaken for a VMM.
 */
import fs from "node:fs";
import path from "node:path";

export interface VmmExecutable {
  /** The real path of what `/proc/<pid>/exe` shows for a VMM. */
  exe: string;
  /** For a `#!` script: its real path, which a VMM has as argv[1]. */
  script?: string;
}

/** Resolves the configured binary (a path, or a name on PATH); undefined if it cannot be found. */
export function resolveVmmExecutable(binary: string): VmmExecutable | undefined {
  const file = binary.includes("/") ? binary : findOnPath(binary);
  const real = file && realpath(file);
  if (!real) return undefined;
  const interpreter = shebangProgram(real);
  if (interpreter === undefined) return { exe: real };
  const exe = realpath(interpreter.includes("/") ? interpreter : (findOnPath(interpreter) ?? ""));
  return exe ? { exe, script: real } : undefined;
}

/** True if `pid` runs `vmm`: its exe is the binary (and for a script, argv[1] is the script). */
export function isVmmProcess(pid: number, vmm: VmmExecutable, argv: string[]): boolean {
  let exe: string;
  try {
    exe = fs.readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return false;
  }
  if (exe !== vmm.exe) return false;
  return vmm.script === undefined || (argv[1] !== undefined && realpath(argv[1]) === vmm.script);
}

/**
 * The program a `#!` line runs: the interpreter itself, or for
 * `#!/usr/bin/env [-S] [options] NAME ...` the NAME env looks up.
 */
function shebangProgram(file: string): string | undefined {
  const head = Buffer.alloc(256);
  let n = 0;
  try {
    const fd = fs.openSync(file, "r");
    try {
      n = fs.readSync(fd, head, 0, head.length, 0);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return undefined;
  }
  const text = head.subarray(0, n).toString("utf8");
  if (!text.startsWith("#!")) return undefined;
  const words = (text.slice(2).split("\n")[0] ?? "").trim().split(/\s+/);
  const [interpreter = "", ...rest] = words;
  if (path.basename(interpreter) !== "env") return interpreter;
  return rest.find((w) => !w.startsWith("-") && !w.includes("="));
}

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(":").filter(Boolean)) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

function realpath(file: string): string | undefined {
  try {
    return fs.realpathSync(file);
  } catch {
    return undefined;
  }
}
