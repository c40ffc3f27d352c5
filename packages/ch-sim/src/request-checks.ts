/**
 * What the test VMM checks of a request before acting on it, as CH's serde
 * and vm.create do: the body read into CH's types (serde-json.ts), the
 * devices it does not support; and the console files it recreates at each
 * create and boot.
 */
import fs from "node:fs";
import type { HttpResponse } from "./micro-http.js";
import { deserialize, type RustType, SerdeError } from "./serde-json.js";
import type { VmConfig } from "./vmm.js";

const err = (status: number, ...chain: string[]): HttpResponse => ({ status, body: chain });

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
