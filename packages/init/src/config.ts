/** Where PID 1 finds its configuration: $mh_config, else the kernel command line. */
import { DEFAULT_EXEC_PORT } from "@my_hypervisor/lib/exec-protocol";
import { CONFIG_PARAM, decodeConfig, type InitConfig } from "@my_hypervisor/lib/init-config";
import type { Platform } from "./platform.js";

export { CONFIG_PARAM, type InitConfig };

export function loadConfig(p: Platform): InitConfig {
  const value =
    p.getenv(CONFIG_PARAM) ??
    (p.readText("/proc/cmdline") ?? "")
      .split(/\s+/)
      .find((param) => param.startsWith(`${CONFIG_PARAM}=`))
      ?.slice(CONFIG_PARAM.length + 1);
  return value ? decodeConfig(value) : { exec_port: DEFAULT_EXEC_PORT };
}
