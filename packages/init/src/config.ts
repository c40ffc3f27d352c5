/** Where PID 1 finds its configuration: $mh_config, else /proc/cmdline. */
import fs from "node:fs";
import { DEFAULT_EXEC_PORT } from "@my_hypervisor/lib/exec-protocol";
import { CONFIG_PARAM, decodeConfig, type InitConfig } from "@my_hypervisor/lib/init-config";

export { CONFIG_PARAM, type InitConfig };

export function loadConfig(env: NodeJS.ProcessEnv = process.env): InitConfig {
  let value = env[CONFIG_PARAM];
  if (value === undefined) {
    const cmdline = fs.existsSync("/proc/cmdline") ? fs.readFileSync("/proc/cmdline", "utf8") : "";
    value = cmdline
      .split(/\s+/)
      .find((p) => p.startsWith(`${CONFIG_PARAM}=`))
      ?.slice(CONFIG_PARAM.length + 1);
  }
  return value ? decodeConfig(value) : { exec_port: DEFAULT_EXEC_PORT };
}
