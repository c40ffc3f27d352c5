/**
 * Reads cloud-hypervisor's event monitor output: pretty-printed JSON objects
 * separated by blank lines (not NDJSON). A trailing object still being
 * written is left for later.
 */
import fs from "node:fs/promises";

const TAIL_POLL_MS = 200;

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

/**
 * Follows a VMM's event monitor file from a byte offset, delivering each
 * complete event with the offset just past it (so a restarted daemon can
 * resume where it stopped). An object split across reads waits for its end.
 */
export class EventMonitorTail {
  private pending = Buffer.alloc(0);
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> = Promise.resolve();

  constructor(
    private readonly file: string,
    private offset: number,
    private readonly onEvent: (event: ChEvent, endOffset: number) => void,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.poll(), TAIL_POLL_MS).unref();
    this.poll();
  }

  /** Reads what is left, then stops. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.poll();
    await this.reading;
  }

  private poll(): void {
    this.reading = this.reading.then(() => this.readNew()).catch(() => undefined);
  }

  private async readNew(): Promise<void> {
    const handle = await fs.open(this.file, "r").catch(() => undefined);
    if (!handle) return;
    try {
      const { size } = await handle.stat();
      const start = this.offset + this.pending.length;
      if (size <= start) return;
      const buf = Buffer.alloc(size - start);
      const { bytesRead } = await handle.read(buf, 0, buf.length, start);
      this.pending = Buffer.concat([this.pending, buf.subarray(0, bytesRead)]);
    } finally {
      await handle.close();
    }
    for (let sep = this.pending.indexOf("\n\n"); sep >= 0; sep = this.pending.indexOf("\n\n")) {
      const chunk = this.pending.subarray(0, sep).toString("utf8");
      this.pending = this.pending.subarray(sep + 2);
      this.offset += sep + 2;
      if (chunk.trim() === "") continue;
      try {
        this.onEvent(JSON.parse(chunk) as ChEvent, this.offset);
      } catch {
        // A torn event (CH drops writes on a full pipe): skip it, keep the stream.
      }
    }
  }
}
