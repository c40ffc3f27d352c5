/**
 * Command-line flags for every binary of the project, written once: each
 * flag's name, default and meaning make its parser (node:util parseArgs),
 * its `--help` text, and its environment variable. The convention: a flag
 * not given on the command line is read from `<PREFIX>_<FLAG>` (upper case,
 * dashes as underscores, e.g. MY_HYPERVISOR_STATE_DIR); a repeatable flag's
 * variable holds its values separated by ':'; a boolean's is 1/true or
 * 0/false. The command line wins. `--help` and `--version` are everyone's.
 */
import { parseArgs } from "node:util";

export interface FlagSpec {
  name: string;
  /** Placeholder for the value in the help (PATH, DIR, N); absent for a boolean flag. */
  value?: string;
  /** What the flag does, and what its default means. */
  help: string;
  default?: string;
  required?: boolean;
  /** May be given more than once. */
  multiple?: boolean;
}

export interface Program {
  name: string;
  version: string;
  /** One line: what the program is. */
  summary: string;
  /** Environment variable prefix, e.g. MY_HYPERVISOR. */
  envPrefix: string;
  flags: FlagSpec[];
}

export type FlagValues = Record<string, string | boolean | string[] | undefined>;

/** Thrown for a bad command line; the binary prints it with a pointer to --help and exits 2. */
export class UsageError extends Error {}

export const envName = (program: Program, flag: string) => `${program.envPrefix}_${flag.toUpperCase().replaceAll("-", "_")}`;

/** Every flag, its value, environment variable, default and meaning. */
export function helpText(program: Program): string {
  const lines = [`${program.name} ${program.version}: ${program.summary}`, "", `Usage: ${program.name} [flags]`, "", "Flags:"];
  for (const f of [
    ...program.flags,
    { name: "help", help: "Print this help and exit" },
    { name: "version", help: "Print the version and exit" },
  ] as FlagSpec[]) {
    const head = `  --${f.name}${f.value ? ` ${f.value}` : ""}${f.multiple ? " (repeatable)" : ""}`;
    const notes = [f.required ? "required" : undefined, f.default !== undefined ? `default: ${f.default}` : undefined];
    if (f.name !== "help" && f.name !== "version") notes.push(`env ${envName(program, f.name)}${f.multiple ? ", ':'-separated" : ""}`);
    lines.push(head, `      ${f.help}${notes.some(Boolean) ? ` (${notes.filter(Boolean).join("; ")})` : ""}`);
  }
  return `${lines.join("\n")}\n`;
}

/**
 * The flags' values: the command line, else the environment, else the default. Returns "help" or "version" when
 * those were asked for; throws UsageError for anything wrong, naming it.
 */
export function parseFlags(program: Program, argv: string[], env: NodeJS.ProcessEnv): FlagValues | "help" | "version" {
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = { help: { type: "boolean" }, version: { type: "boolean" } };
  for (const f of program.flags) options[f.name] = { type: f.value ? "string" : "boolean", ...(f.multiple ? { multiple: true } : {}) };
  let given: FlagValues;
  try {
    given = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as FlagValues;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (given.help) return "help";
  if (given.version) return "version";
  const values: FlagValues = {};
  for (const f of program.flags) {
    const fromEnv = env[envName(program, f.name)];
    values[f.name] = given[f.name] ?? (fromEnv !== undefined && fromEnv !== "" ? fromEnvValue(program, f, fromEnv) : undefined) ?? f.default;
    if (f.required && values[f.name] === undefined) throw new UsageError(`--${f.name} is required (or ${envName(program, f.name)})`);
  }
  return values;
}

function fromEnvValue(program: Program, f: FlagSpec, text: string): string | boolean | string[] {
  if (!f.value) {
    if (["1", "true"].includes(text)) return true;
    if (["0", "false"].includes(text)) return false;
    throw new UsageError(`${envName(program, f.name)} must be 1, true, 0 or false, not '${text}'`);
  }
  return f.multiple ? text.split(":").filter(Boolean) : text;
}

/** What a binary's main does with its command line: help and version printed, usage errors exit 2. */
export function flagsOrExit(program: Program, argv = process.argv.slice(2), env = process.env): FlagValues {
  try {
    const parsed = parseFlags(program, argv, env);
    if (parsed === "help") {
      process.stdout.write(helpText(program));
      process.exit(0);
    }
    if (parsed === "version") {
      process.stdout.write(`${program.name} ${program.version}\n`);
      process.exit(0);
    }
    return parsed;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    return usageExit(program, e.message);
  }
}

/** Prints the problem and where to look, exits 2. */
export function usageExit(program: Program, message: string): never {
  process.stderr.write(`${program.name}: ${message}\nRun '${program.name} --help' for every flag.\n`);
  process.exit(2);
}
