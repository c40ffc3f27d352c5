/**
 * The ACPI power button, as the kernel reports it: key events (EV_KEY,
 * KEY_POWER) on the input device named "Power Button". In a VM that device is
 * /dev/input/eventN; the test VMM hands the same 24-byte input_event records
 * over a pipe on the fd named by $MH_SIM_POWER_BUTTON_FD.
 */
import { concatBytes } from "@my_hypervisor/lib/bytes";
import { INPUT_EVENT_BYTES, isPowerButtonPress, SIM_POWER_BUTTON_FD_ENV } from "@my_hypervisor/lib/test-vmm-guest";
import type { Platform } from "./platform.js";

/** The event devices of every "Power Button", from /proc/bus/input/devices. */
function powerButtonDevices(p: Platform): string[] {
  return (p.readText("/proc/bus/input/devices") ?? "")
    .split("\n\n")
    .filter((block) => /N: Name="Power Button"/.test(block))
    .flatMap((block) => [...block.matchAll(/\bevent(\d+)\b/g)].map((m) => `/dev/input/event${m[1]}`));
}

/** Watches every power button; returns what it watches. */
export function watchPowerButton(p: Platform, onPress: () => void): string[] {
  const fd = p.getenv(SIM_POWER_BUTTON_FD_ENV);
  const sources: (string | number)[] = fd !== undefined ? [Number(fd)] : powerButtonDevices(p);
  for (const source of sources) {
    let pending = new Uint8Array(0);
    p.openInput(source).onData((chunk) => {
      if (chunk === null) return;
      const data = concatBytes(pending, chunk);
      let at = 0;
      for (; data.length - at >= INPUT_EVENT_BYTES; at += INPUT_EVENT_BYTES) if (isPowerButtonPress(data, at)) onPress();
      pending = data.slice(at);
    });
  }
  return sources.map(String);
}
