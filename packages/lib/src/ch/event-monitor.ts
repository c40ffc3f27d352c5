/**
 * Reads cloud-hypervisor's event monitor output: pretty-printed JSON objects
 * separated by blank lines (not NDJSON). A trailing object still being
 * written is left for later.
 */
import fs from "node:fs/promises";

export interface ChEvent {
  timestamp: { secs: number; nanos: number };
  source: string;
  event: string;
  properties: Record<string, string> | null;
}

export function parseEvents(text: string): { events: ChEvent[]; rest: string } {
  const chunks = text.split("\n\n");
  const rest = chunks.pop() ?? "";
  const events: ChEvent[] = [];
  for (const chunk of chunks) {
    if (chunk.trim() === "") continue;
    try {
      events.push(JSON.parse(chunk) as ChEvent);
    } catch {
      // A torn write (CH drops events on a full pipe); skip it rather than lose the rest.
    }
  }
  return { events, rest };
}

export async function readEvents(file: string): Promise<ChEvent[]> {
  try {
    return parseEvents(await fs.readFile(file, "utf8")).events;
  } catch {
    return [];
  }
}

/** CH wrote vmm/shutdown after the last boot: it shut down on purpose (guest power-off or vmm.shutdown). */
export function endedWithVmmShutdown(events: ChEvent[]): boolean {
  const lastBoot = events.findLastIndex((e) => e.source === "vm" && e.event === "booted");
  return events.slice(lastBoot + 1).some((e) => e.source === "vmm" && e.event === "shutdown");
}
