/**
 * The ACPI power button, as the kernel reports it: key events (EV_KEY,
 * KEY_POWER) on the input device named "Power Button". In a VM that device is
 * /dev/input/eventN; the test VMM hands the same 24-byte input_event records
 * over a pipe on the fd named by $MH_SIM_POWER_BUTTON_FD.
 */

import fs from "node:fs";
import { INPUT_EVENT_BYTES, isPowerButtonPress, SIM_POWER_BUTTON_FD_ENV } from "@my_hypervisor/lib/test-vmm-guest";

/** The event devices of every "Power Button", from /proc/bus/input/devices. */
function powerButtonDevices(): string[] {
  let text = "";
  try {
    text = fs.readFileSync("/proc/bus/input/devices", "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n\n")
    .filter((block) => /N: Name="Power Button"/.test(block))
    .flatMap((block) => [...block.matchAll(/\bevent(\d+)\b/g)].map((m) => `/dev/input/event${m[1]}`));
}

export function watchPowerButton(onPress: () => void): string[] {
  const fdEnv = process.env[SIM_POWER_BUTTON_FD_ENV];
  const sources: (string | number)[] = fdEnv ? [Number(fdEnv)] : powerButtonDevices();
  for (const source of sources) {
    const stream = typeof source === "number" ? fs.createReadStream("", { fd: source }) : fs.createReadStream(source);
    let pending = Buffer.alloc(0);
    stream.on("data", (chunk) => {
      pending = Buffer.concat([pending, chunk as Buffer]);
      for (; pending.length >= INPUT_EVENT_BYTES; pending = pending.subarray(INPUT_EVENT_BYTES)) if (isPowerButtonPress(pending)) onPress();
    });
    stream.on("error", () => undefined);
  }
  return sources.map(String);
}
