/**
 * Every VM's events with one daemon-wide increasing `seq`: lifecycle
 * transitions, the VMM's own events from CH's event monitor, removals. A
 * bounded ring keeps the recent ones for `events.tail`; a journal
 * (`<state-dir>/events.jsonl`, one event per line) lets numbering and recent
 * history survive a daemon restart. A caller whose `since` fell out of the
 * ring is told so, never silently given a gap.
 */
import type { Logger } from "pino";
import { ERRORS, invalidParams, RpcError } from "../domain/errors.js";
import type { VmState } from "../domain/vm-states.js";
import { EventJournal } from "./event-journal.js";

/** -32008: the events after `since` are gone. */
export const EVENTS_LOST = ERRORS.EventsLost.code;
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
  /** Lines published in this tick, written together once it ends. */
  private unwritten: string[] = [];
  private readonly waiters = new Set<Waiter>();
  /** Set at shutdown: long polls answer at once. */
  private closing = false;

  private constructor(
    private readonly journal: EventJournal,
    private ring: VmEvent[],
    private lastSeq: number,
    private readonly ringSize: number,
  ) {}

  /** Reads the journal and keeps the newest `ringSize` events; it is rewritten only if a line was torn or it is due for compaction. */
  static open(file: string, log: Logger, ringSize = DEFAULT_RING_SIZE): EventBus {
    const { events, torn } = EventJournal.read<VmEvent>(file);
    const ring = events.slice(-ringSize);
    const lastSeq = events.reduce((max, e) => Math.max(max, e.seq), 0);
    const journal = new EventJournal(file, events.length, 2 * ringSize, log);
    const bus = new EventBus(journal, ring, lastSeq, ringSize);
    if (torn || events.length >= 2 * ringSize) journal.rewrite(() => bus.ringText());
    return bus;
  }

  private readonly observers: ((e: VmEvent) => void)[] = [];

  /** Called with every event as it is published (metrics count them). */
  observe(fn: (e: VmEvent) => void): void {
    this.observers.push(fn);
  }

  publish(event: Omit<VmEvent, "seq" | "at">): VmEvent {
    const full: VmEvent = { seq: ++this.lastSeq, at: new Date().toISOString(), ...event };
    for (const fn of this.observers) fn(full);
    this.ring.push(full);
    if (this.ring.length > this.ringSize) this.ring = this.ring.slice(-this.ringSize);
    if (this.unwritten.length === 0) setImmediate(() => this.flush());
    this.unwritten.push(`${JSON.stringify(full)}\n`);
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
    // A cursor from the future would skip every event up to it: refuse it rather than answer with a gap later.
    if (since > this.lastSeq) throw invalidParams("/since", `since ${since} is past the newest event (seq ${this.lastSeq})`, { since, newest: this.lastSeq });
    let events = this.select(q.id, since, q.limit);
    if (events.length === 0 && q.waitMs > 0 && !this.closing) {
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

  /** Shutdown begins: every long poll answers now with what there is, and no new one waits. */
  stopWaiting(): void {
    this.closing = true;
    for (const w of this.waiters) w.wake();
  }

  close(): void {
    this.stopWaiting();
    this.flush();
    this.journal.close();
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
    const lines = this.unwritten;
    this.unwritten = [];
    this.journal.append(lines.join(""), lines.length, () => this.ringText());
  }

  private ringText(): string {
    return this.ring.map((e) => `${JSON.stringify(e)}\n`).join("");
  }
}
