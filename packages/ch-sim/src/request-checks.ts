/**
 * What the test VMM checks of a request before acting on it, as CH does: the
 * body read into CH's types (serde-json.ts), and the config validated when
 * the VM is made at boot.
 */
import { err } from "./api-routes.js";
import type { HttpResponse } from "./micro-http.js";
import { deserialize, type RustType, SerdeError } from "./serde-json.js";
import type { VmConfig } from "./vm-config.js";

/**
 * A body read into CH's Rust type `t`: the value as CH holds it (defaults filled in, unknown fields dropped), or the
 * 400 it answers. A missing or empty body is a 400 with no body at all; serde's errors are CH's two-link chain.
 */
export function readBody(body: Buffer | undefined, t: RustType): { value: Record<string, unknown> } | { refused: HttpResponse } {
  if (body === undefined || body.length === 0) return { refused: { status: 400 } };
  try {
    return { value: deserialize(body.toString("utf8"), t) as Record<string, unknown> };
  } catch (e) {
    if (e instanceof SerdeError) return { refused: err(400, "Failed to deserialize JSON", e.message) };
    throw e;
  }
}

/**
 * CH's `VmConfig::validate`, as far as the test VMM's configs reach: run when the VM is made at boot, before any
 * device. The chain of CH's error (after the caller's own link), or undefined.
 */
export function invalidConfig(config: VmConfig): string[] | undefined {
  const invalid = (...why: string[]) => ["Failed to validate config", ...why];
  const payload = config.payload;
  if (!payload?.kernel && !payload?.firmware) return invalid("Payload configuration is not bootable", "No bootitem provided: neither firmware nor kernel");
  const cpus = config.cpus as { boot_vcpus: number; max_vcpus: number } | undefined;
  if (cpus && cpus.max_vcpus < cpus.boot_vcpus) return invalid(`Max CPUs (${cpus.max_vcpus}) lower than boot CPUs (${cpus.boot_vcpus})`);
  return undefined;
}
