/**
 * Reads cloud-hypervisor's event monitor output: pretty-printed JSON objects
 * separated by blank lines (not NDJSON). A trailing object still being
 * written is left for later.
 */
import fsSync from "node:fs";
import fs from "node:fs/promises";
import { promisify } from "node:util";

// Callback fs, promisified: no FileHandle per call on this path, which runs on every event of every VM.
const openFd = promisify(fsSync.open);
const readFd = promisify(fsSync.read);
const closeFd = promisify(fsSync.close);
const READ_CHUNK = 8192;

/** With inotify, a poll only in case an event was dropped; without, the poll is the watch. */
const SAFETY_POLL_MS = 5_000;
const TAIL_POLL_MS = 200;

export interface ChEvent {
  timestamp: { secs: number; nanos: number };
  source: string;
  event: string;
  properties: Record<string, string> | null;
}

/**
 * The complete events at the start of `data` (CH writes each as pretty JSON
 * followed by a blank line), each with the byte offset just past it, and how
 * many bytes they took; an event not yet complete is left for the next read.
 * A torn event (CH drops writes on a full pipe) is skipped, not the stream.
 */
export function takeEvents(data: Buffer): { events: [ChEvent, number][]; consumed: number } {
  const events: [ChEvent, number][] = [];
  let consumed = 0;
  for (let sep = data.indexOf("\n\n", consumed); sep >= 0; sep = data.indexOf("\n\n", consumed)) {
    const chunk = data.subarray(consumed, sep).toString("utf8");
    consumed = sep + 2;
    if (chunk.trim() === "") continue;
    try {
      events.push([JSON.parse(chunk) as ChEvent, consumed]);
    } catch {
      // torn: skip it, keep the rest
    }
  }
  return { events, consumed };
}

export async function readEvents(file: string): Promise<ChEvent[]> {
  try {
    return takeEvents(await fs.readFile(file)).events.map(([e]) => e);
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
  private watcher: fsSync.FSWatcher | undefined;
  /** Open from the first read to stop(). */
  private fd: number | undefined;
  private reading: Promise<void> = Promise.resolve();
  /** A read is queued and has not begun: more change events need no other. */
  private queued = false;

  constructor(
    private readonly file: string,
    private offset: number,
    private readonly onEvent: (event: ChEvent, endOffset: number) => void,
  ) {}

  start(): void {
    try {
      this.watcher = fsSync.watch(this.file, () => this.poll()).unref();
      this.watcher.on("error", () => undefined);
    } catch {
      // Not there yet, or no inotify: polling alone.
    }
    this.timer = setInterval(() => this.poll(), this.watcher ? SAFETY_POLL_MS : TAIL_POLL_MS).unref();
    this.poll();
  }

  /** Reads what is left, then stops. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.watcher?.close();
    this.poll();
    await this.reading;
    if (this.fd !== undefined) await closeFd(this.fd).catch(() => undefined);
    this.fd = undefined;
  }

  private poll(): void {
    if (this.queued) return;
    this.queued = true;
    this.reading = this.reading
      .then(() => {
        this.queued = false;
        return this.readNew();
      })
      .catch(() => undefined);
  }

  private async readNew(): Promise<void> {
    if (this.fd === undefined) {
      const fd = await openFd(this.file, "r").catch(() => undefined);
      if (fd === undefined) return;
      this.fd = fd;
    }
    for (;;) {
      const piece = Buffer.allocUnsafe(READ_CHUNK);
      const { bytesRead } = await readFd(this.fd, piece, 0, READ_CHUNK, this.offset + this.pending.length);
      if (bytesRead > 0) this.pending = Buffer.concat([this.pending, piece.subarray(0, bytesRead)]);
      if (bytesRead < READ_CHUNK) break;
    }
    const { events, consumed } = takeEvents(this.pending);
    const base = this.offset;
    this.pending = this.pending.subarray(consumed);
    this.offset += consumed;
    for (const [event, end] of events) this.onEvent(event, base + end);
  }
}
