/**
 * What the test VMM checks of a request before acting on it, as CH's serde
 * and vm.create do: the body's JSON, the required fields of VmConfig's
 * structs, the devices it does not support; and the console files it
 * recreates at each create and boot.
 */
import fs from "node:fs";
import type { HttpResponse } from "./micro-http.js";
import type { VmConfig } from "./vmm.js";

const err = (status: number, ...chain: string[]): HttpResponse => ({ status, body: chain });

export /** A JSON body, or the 400 CH answers for a missing or malformed one. */
function parseBody(body: Buffer | undefined): { value: Record<string, unknown> } | { refused: HttpResponse } {
  if (body === undefined) return { refused: err(400, "Bad Request") };
  try {
    const value = JSON.parse(body.toString("utf8"));
    return typeof value === "object" && value !== null ? { value } : { refused: err(400, "Failed to deserialize JSON", "expected an object") };
  } catch (e) {
    return { refused: err(400, "Failed to deserialize JSON", (e as Error).message) };
  }
}

/** The serde checks that reject a body before CH looks at it. */
export function checkConfigShape(config: unknown): string | undefined {
  if (typeof config !== "object" || config === null || Array.isArray(config)) return "invalid type: expected struct VmConfig";
  const c = config as Record<string, Record<string, unknown> | undefined>;
  if (c.cpus !== undefined) {
    for (const f of ["boot_vcpus", "max_vcpus"]) if (c.cpus[f] === undefined) return `missing field \`${f}\``;
  }
  if (c.memory !== undefined && c.memory.size === undefined) return "missing field `size`";
  for (const dev of ["serial", "console"]) if (c[dev] !== undefined && c[dev]?.mode === undefined) return "missing field `mode`";
  // Nested structs: serde refuses one without a required field, as at the top level.
  const list = (v: unknown) => (Array.isArray(v) ? (v as Record<string, unknown>[]) : []);
  const buckets = [...list(c.disks), ...list(c.net)].flatMap((d) => {
    const limiter = d.rate_limiter_config as Record<string, unknown> | undefined;
    return [limiter?.bandwidth, limiter?.ops];
  });
  const nested: [unknown, string[]][] = [
    ...list(c.cpus?.affinity).map((a): [unknown, string[]] => [a, ["vcpu", "host_cpus"]]),
    ...buckets.map((b): [unknown, string[]] => [b, ["size", "refill_time"]]),
    ...list(c.landlock_rules).map((r): [unknown, string[]] => [r, ["path", "access"]]),
  ];
  for (const [value, fields] of nested) {
    const missing = value === undefined ? undefined : fields.find((f) => (value as Record<string, unknown>)[f] === undefined);
    if (missing) return `missing field \`${missing}\``;
  }
  return undefined;
}

export function unsupportedDevice(config: VmConfig): string | undefined {
  if (config.console?.mode === "Socket") return "console mode Socket";
  return undefined;
}

/** `File` serial/console outputs are recreated at each create and boot. */
export function truncateConsoleFiles(config: VmConfig): void {
  for (const dev of [config.serial, config.console]) {
    if (dev?.mode === "File" && dev.file) fs.closeSync(fs.openSync(dev.file, "w", 0o600));
  }
}
