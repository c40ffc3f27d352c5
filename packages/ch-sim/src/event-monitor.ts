/**
 * cloud-hypervisor's event monitor: each event is pretty-printed JSON
 * followed by a blank line (not NDJSON), timestamped from monitor start.
 * Writes are non-blocking and their errors ignored, as in CH, so a full
 * pipe drops events.
 */
import fs from "node:fs";

export type EventSource = "vmm" | "vm" | "virtio-device" | "guest";

export class EventMonitor {
  private readonly started = process.hrtime.bigint();

  private constructor(private readonly fd: number | undefined) {}

  /** `spec` is the value of --event-monitor: `path=<p>` or `fd=<n>`. */
  static open(spec: string | undefined): EventMonitor {
    if (spec === undefined) return new EventMonitor(undefined);
    const [key, value] = splitOption(spec);
    if (key === "path")
      return new EventMonitor(fs.openSync(value, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NONBLOCK, 0o600));
    if (key === "fd") return new EventMonitor(Number(value));
    throw new Error(`unknown option: ${key === "" ? spec : key}`);
  }

  emit(source: EventSource, event: string, properties: Record<string, string> | null = null): void {
    if (this.fd === undefined) return;
    const elapsed = process.hrtime.bigint() - this.started;
    const record = {
      timestamp: { secs: Number(elapsed / 1_000_000_000n), nanos: Number(elapsed % 1_000_000_000n) },
      source,
      event,
      properties,
    };
    try {
      fs.writeSync(this.fd, `${JSON.stringify(record, null, 2)}\n\n`);
    } catch {
      // CH ignores event write errors (`.ok()`).
    }
  }
}

export function splitOption(spec: string): [string, string] {
  const eq = spec.indexOf("=");
  return eq < 0 ? ["", spec] : [spec.slice(0, eq), spec.slice(eq + 1)];
}
