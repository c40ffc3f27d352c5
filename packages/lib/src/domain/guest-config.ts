/**
 * The guest init's configuration format, shared by the daemon (which writes
 * it) and my_hypervisor-init (which reads it): the kernel command line
 * parameter `mh_config=<base64url of gzipped JSON>`. It has no dot in its
 * name, so the kernel hands it to PID 1 as the environment variable
 * $mh_config. Imports only node:zlib: the guest bundle uses it too.
 */
import { gunzipSync, gzipSync } from "node:zlib";
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
}

export interface InitConfig {
  workload?: Workload;
  hostname?: string;
  exec_port: number;
}

export function encodeConfig(config: Partial<InitConfig>): string {
  return gzipSync(Buffer.from(JSON.stringify(config))).toString("base64url");
}

export function decodeConfig(value: string): InitConfig {
  const raw = JSON.parse(gunzipSync(Buffer.from(value, "base64url")).toString("utf8")) as Partial<InitConfig>;
  const config: InitConfig = { exec_port: raw.exec_port ?? DEFAULT_EXEC_PORT };
  if (!Number.isInteger(config.exec_port) || config.exec_port < 1 || config.exec_port > 0xffffffff) throw new Error(`bad exec_port ${raw.exec_port}`);
  if (raw.hostname !== undefined) config.hostname = String(raw.hostname);
  if (raw.workload !== undefined) {
    const w = raw.workload;
    if (!Array.isArray(w.argv) || w.argv.length === 0 || !w.argv.every((a) => typeof a === "string"))
      throw new Error("workload.argv must be a non-empty array of strings");
    if (w.restart !== undefined && !["never", "on-failure", "always"].includes(w.restart)) throw new Error(`bad workload.restart ${w.restart}`);
    if (w.on_exit !== undefined && !["poweroff", "stay"].includes(w.on_exit)) throw new Error(`bad workload.on_exit ${w.on_exit}`);
    config.workload = w;
  }
  return config;
}
