/**
 * The events journal, `<state-dir>/events.jsonl`: one event per line,
 * appended once per tick, so numbering and recent history survive a daemon
 * restart. Appends are synchronous writes of a few hundred bytes to the page
 * cache, cheaper than a stream and with an error that cannot go unheard.
 *
 * A write that fails (full or read-only disk) never stops the daemon: the
 * journal is then "behind", and the next append, at most once a second,
 * rewrites it whole from the in-memory ring instead (temp file and rename),
 * which also mends a line the failure tore. It heals by itself once space
 * returns. Compaction is the same rewrite, once the file holds twice the ring.
 */
import fs from "node:fs";
import type { Logger } from "pino";

const RETRY_MS = 1000;

export class EventJournal {
  private fd: number | undefined;
  private lines: number;
  /** Why writes fail, while they do; the ring is then rewritten whole at the next chance. */
  private behind: string | undefined;
  private lastTry = 0;

  constructor(
    private readonly file: string,
    lines: number,
    private readonly compactAt: number,
    private readonly log: Logger,
  ) {
    this.lines = lines;
  }

  /** Reads the journal's events; a line torn by a crash is skipped. `torn` says whether one was. */
  static read<T>(file: string): { events: T[]; torn: boolean } {
    let text = "";
    try {
      text = fs.readFileSync(file, "utf8");
    } catch {
      return { events: [], torn: false };
    }
    const events: T[] = [];
    let torn = false;
    for (const line of text.split("\n")) {
      if (line.trim() === "") continue;
      try {
        events.push(JSON.parse(line) as T);
      } catch {
        torn = true;
      }
    }
    return { events, torn };
  }

  /** Appends `text` (whole lines); `ring` is what a rewrite writes instead. */
  append(text: string, count: number, ring: () => string): void {
    this.lines += count;
    if (this.behind !== undefined || this.lines >= this.compactAt) {
      this.rewrite(ring);
      return;
    }
    try {
      this.fd ??= fs.openSync(this.file, "a", 0o600);
      const bytes = Buffer.from(text);
      // A short write (a disk filling up) leaves a torn line: fall behind, so the next write is a whole rewrite.
      if (fs.writeSync(this.fd, bytes) < bytes.length) this.fall("short write (the disk is full)");
    } catch (e) {
      this.fall((e as Error).message);
    }
  }

  /** Rewrites the journal as exactly `ring()`: at start-up after a torn line, when compacting, when behind. */
  rewrite(ring: () => string): void {
    if (this.behind !== undefined && Date.now() - this.lastTry < RETRY_MS) return;
    this.lastTry = Date.now();
    const text = ring();
    const temp = `${this.file}.${process.pid}-0.tmp`;
    try {
      fs.writeFileSync(temp, text, { mode: 0o600, flush: true });
      fs.renameSync(temp, this.file);
    } catch (e) {
      // Called from a timer: nothing here may throw, not even the clean-up of a temp file on a read-only disk.
      try {
        fs.rmSync(temp, { force: true });
      } catch {
        // left for the start-up clean-up of temp files
      }
      this.fall((e as Error).message);
      return;
    }
    this.close();
    this.lines = text.split("\n").length - 1;
    if (this.behind !== undefined) this.log.warn({ file: this.file }, "events journal writable again; rewritten from memory");
    this.behind = undefined;
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }

  private fall(error: string): void {
    if (this.behind === undefined)
      this.log.error({ file: this.file, err: error }, "cannot write the events journal; events are kept in memory and written once it can");
    this.behind = error;
    this.close();
  }
}
