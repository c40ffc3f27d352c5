/**
 * The guest init's configuration format, shared by the daemon (which writes
 * it) and my_hypervisor-init (which reads it): the kernel command line
 * parameter `mh_config=<base64url of gzipped JSON>`. It has no dot in its
 * name, so the kernel hands it to PID 1 as the environment variable
 * $mh_config. No Node here: the guest init (on QuickJS) decodes it with this
 * same code, and fflate is the gzip on both sides.
 */
import { gunzipSync, gzipSync, strFromU8, strToU8 } from "fflate";
import { fromBase64url, toBase64url } from "./bytes.js";
import { DEFAULT_EXEC_PORT } from "./exec-protocol.js";

export const CONFIG_PARAM = "mh_config";

export type RestartPolicy = "never" | "on-failure" | "always";

export interface Workload {
  argv: string[];
  env?: Record<string, string>;
  cwd?: string;
  restart?: RestartPolicy;
  /** When the workload has ended for good (not restarted): power off, or stay up (default). */
  on_exit?: "poweroff" | "stay";
  /** The console is its stdin, stdout and stderr, and its controlling terminal; else its output is tagged on the console. */
  console?: boolean;
}

export interface InitConfig {
  workload?: Workload;
  hostname?: string;
  exec_port: number;
}

export function encodeConfig(config: Partial<InitConfig>): string {
  // mtime 0: the same config gives the same command line.
  return toBase64url(gzipSync(strToU8(JSON.stringify(config)), { mtime: 0 }));
}

export function decodeConfig(value: string): InitConfig {
  const raw = JSON.parse(strFromU8(gunzipSync(fromBase64url(value)))) as Partial<InitConfig>;
  const config: InitConfig = { exec_port: raw.exec_port ?? DEFAULT_EXEC_PORT };
  if (!Number.isInteger(config.exec_port) || config.exec_port < 1 || config.exec_port > 0xffffffff) throw new Error(`bad exec_port ${raw.exec_port}`);
  if (raw.hostname !== undefined) config.hostname = String(raw.hostname);
  if (raw.workload !== undefined) {
    const w = raw.workload;
    if (!Array.isArray(w.argv) || w.argv.length === 0 || !w.argv.every((a) => typeof a === "string"))
      throw new Error("workload.argv must be a non-empty array of strings");
    if (w.restart !== undefined && !["never", "on-failure", "always"].includes(w.restart)) throw new Error(`bad workload.restart ${w.restart}`);
    if (w.on_exit !== undefined && !["poweroff", "stay"].includes(w.on_exit)) throw new Error(`bad workload.on_exit ${w.on_exit}`);
    if (w.console !== undefined && typeof w.console !== "boolean") throw new Error(`bad workload.console ${w.console}`);
    config.workload = w;
  }
  return config;
}
