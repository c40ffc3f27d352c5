/**
 * Releases that could not be done when they were due (a sibling down or slow):
 * kept in `<state-dir>/pending-releases.json` and retried by the reconcile
 * loop until they succeed, so a sibling outage never blocks the daemon and
 * never leaks a resource.
 */
import fs from "node:fs/promises";
import type { Logger } from "pino";
import type { PendingRelease } from "../domain/resources.js";
import type { SiblingKind } from "../domain/sibling-contract.js";
import { replaceFileDurably } from "../os/durable-file.js";
import type { Provisioner } from "./provisioner.js";

export type { PendingRelease };

export class ReleaseQueue {
  private constructor(
    private readonly file: string,
    private entries: PendingRelease[],
    private readonly log: Logger,
  ) {}

  static async open(file: string, log: Logger): Promise<ReleaseQueue> {
    const text = await fs.readFile(file, "utf8").catch(() => "[]");
    let entries: PendingRelease[] = [];
    try {
      entries = JSON.parse(text) as PendingRelease[];
    } catch (e) {
      log.error({ file, err: (e as Error).message }, "pending releases file unreadable; starting empty (the reconcile of owners will catch leftovers)");
    }
    return new ReleaseQueue(file, entries, log);
  }

  forOwner(owner: string): PendingRelease[] {
    return this.entries.filter((e) => e.owner === owner);
  }

  async add(owner: string, sibling: SiblingKind, error: string): Promise<void> {
    const existing = this.entries.find((e) => e.owner === owner && e.sibling === sibling);
    if (existing) {
      existing.attempts += 1;
      existing.last_error = error;
    } else {
      this.entries.push({ owner, sibling, since: new Date().toISOString(), attempts: 1, last_error: error });
    }
    this.log.warn({ vm: owner, sibling, err: error }, "release pending; will retry");
    await this.save();
  }

  /** Tries every pending release once; keeps the ones that fail again. */
  async retry(provisioner: Provisioner): Promise<void> {
    if (this.entries.length === 0) return;
    const still: PendingRelease[] = [];
    for (const e of this.entries) {
      try {
        const n = await provisioner.releaseOwner(e.owner, e.sibling);
        this.log.info({ vm: e.owner, sibling: e.sibling, released: n, attempts: e.attempts + 1 }, "pending release done");
      } catch (err) {
        still.push({ ...e, attempts: e.attempts + 1, last_error: (err as Error).message });
      }
    }
    this.entries = still;
    await this.save();
  }

  /**
   * A file that cannot be written (full disk) loses nothing that matters: the
   * entries stay in memory and are written with the next change, and after a
   * restart releases go by owner, so leftovers are found anyway.
   */
  private async save(): Promise<void> {
    try {
      await replaceFileDurably(this.file, `${JSON.stringify(this.entries, null, 2)}\n`);
    } catch (e) {
      this.log.error({ file: this.file, err: (e as Error).message }, "cannot write the pending releases; they stay in memory and are retried");
    }
  }
}
