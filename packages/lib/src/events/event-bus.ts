/**
 * Every VM's events with one daemon-wide increasing `seq`: lifecycle
 * transitions, the VMM's own events from CH's event monitor, removals. A
 * bounded ring keeps the recent ones for `events.tail`; a journal
 * (`<state-dir>/events.jsonl`, one event per line) lets numbering and recent
 * history survive a daemon restart. A caller whose `since` fell out of the
 * ring is told so, never silently given a gap.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import { RpcError } from "../errors.js";
import type { VmState } from "../lifecycle/machine.js";
import { replaceFileDurably } from "../state/durable-file.js";

export const EVENTS_LOST = -32008;
export const DEFAULT_RING_SIZE = 4096;

export interface VmEvent {
  seq: number;
  at: string;
  id: string;
  type: "transition" | "vmm" | "removed";
  from?: VmState;
  to?: VmState;
  reason?: string;
  data?: Record<string, unknown>;
}

type Waiter = { id: string | undefined; wake: () => void };

export class EventBus {
  private journal: fs.WriteStream;
  private journalLines: number;
  /** Lines published in this tick, written together once it ends. */
  private unwritten: string[] = [];
  private readonly waiters = new Set<Waiter>();

  private constructor(
    private readonly file: string,
    private ring: VmEvent[],
    private lastSeq: number,
    private readonly ringSize: number,
  ) {
    this.journal = fs.createWriteStream(file, { flags: "a", mode: 0o600 });
    this.journalLines = ring.length;
  }

  /** Reads the journal, keeps the newest `ringSize` events, and rewrites it compacted. */
  static async open(file: string, ringSize = DEFAULT_RING_SIZE): Promise<EventBus> {
    const text = await fsp.readFile(file, "utf8").catch(() => "");
    const events: VmEvent[] = [];
    for (const line of text.split("\n")) {
      if (line.trim() === "") continue;
      try {
        events.push(JSON.parse(line) as VmEvent);
      } catch {
        // A line torn by a crash mid-append: skip it, keep the rest.
      }
    }
    const ring = events.slice(-ringSize);
    const lastSeq = events.reduce((max, e) => Math.max(max, e.seq), 0);
    await replaceFileDurably(file, ring.map((e) => `${JSON.stringify(e)}\n`).join(""));
    return new EventBus(file, ring, lastSeq, ringSize);
  }

  publish(event: Omit<VmEvent, "seq" | "at">): VmEvent {
    const full: VmEvent = { seq: ++this.lastSeq, at: new Date().toISOString(), ...event };
    this.ring.push(full);
    if (this.ring.length > this.ringSize) this.ring = this.ring.slice(-this.ringSize);
    this.append(full);
    for (const w of this.waiters) if (w.id === undefined || w.id === full.id) w.wake();
    return full;
  }

  /** Events after `since` (for one VM or all), waiting up to `waitMs` for the first one. */
  async tail(q: { id?: string; since?: number; limit: number; waitMs: number }): Promise<{ events: VmEvent[]; next: number }> {
    const oldest = this.ring[0]?.seq ?? this.lastSeq + 1;
    const since = q.since ?? oldest - 1;
    if (since < oldest - 1) {
      throw new RpcError(EVENTS_LOST, `events after seq ${since} are gone: the oldest kept is ${oldest}`, { since, oldest });
    }
    let events = this.select(q.id, since, q.limit);
    if (events.length === 0 && q.waitMs > 0) {
      await this.wait(q.id, q.waitMs);
      events = this.select(q.id, since, q.limit);
    }
    // Fewer than `limit` matched: nothing newer matches either, so the cursor may skip to the newest seq.
    const last = events.at(-1);
    return { events, next: last && events.length >= q.limit ? last.seq : Math.max(since, this.lastSeq) };
  }

  /** The newest kept event matching `pred`. */
  findLast(pred: (e: VmEvent) => boolean): VmEvent | undefined {
    return this.ring.findLast(pred);
  }

  async close(): Promise<void> {
    for (const w of this.waiters) w.wake();
    this.flush();
    await new Promise<void>((resolve) => this.journal.end(() => resolve()));
  }

  private select(id: string | undefined, since: number, limit: number): VmEvent[] {
    const out: VmEvent[] = [];
    for (const e of this.ring) {
      if (e.seq <= since || (id !== undefined && e.id !== id)) continue;
      out.push(e);
      if (out.length >= limit) break;
    }
    return out;
  }

  private wait(id: string | undefined, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const waiter: Waiter = {
        id,
        wake: () => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve();
        },
      };
      const timer = setTimeout(waiter.wake, ms);
      this.waiters.add(waiter);
    });
  }

  /** One write for every event of a tick: a lifecycle operation publishes several at once. */
  private flush(): void {
    if (this.unwritten.length === 0) return;
    this.journal.write(this.unwritten.join(""));
    this.unwritten = [];
  }

  /** Appends to the journal; compacts it to the ring once it holds twice as many lines. */
  private append(event: VmEvent): void {
    if (this.unwritten.length === 0) setImmediate(() => this.flush());
    this.unwritten.push(`${JSON.stringify(event)}\n`);
    this.journalLines += 1;
    if (this.journalLines < 2 * this.ringSize) return;
    this.unwritten = [];
    const old = this.journal;
    old.end();
    fs.writeFileSync(this.file, this.ring.map((e) => `${JSON.stringify(e)}\n`).join(""), { mode: 0o600 });
    this.journal = fs.createWriteStream(this.file, { flags: "a", mode: 0o600 });
    this.journalLines = this.ring.length;
  }
}
