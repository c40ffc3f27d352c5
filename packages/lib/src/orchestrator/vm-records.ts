/**
 * Writing VM records (ADR 0004): a write that decides whether an operation
 * happened must land, or the operation fails; any other write may lag behind
 * on a full or read-only disk, and is caught up by the reconcile sweep.
 */
import type { Logger } from "pino";
import { StorageError } from "../domain/errors.js";
import type { LoadNotes, StateStore } from "../state/store.js";
import { toRecord, type VmEntry } from "./vm-entry.js";

/**
 * When a transition's record is written: "required" before the caller goes on
 * (a failed write is the caller's error); "lazy" now, but a failed write only
 * marks the VM unsaved and the reconcile sweep writes it later (what was done
 * to the VMM is done, and memory holds the truth); "later" with the next write.
 */
export type Write = "required" | "lazy" | "later";

export class VmRecords {
  constructor(
    private readonly store: StateStore,
    private readonly log: Logger,
  ) {}

  /** Writes the VM's record; "lazy": a disk failure marks the VM unsaved (status shows it) instead of failing. */
  async write(vm: VmEntry, write: "required" | "lazy"): Promise<void> {
    // An unreadable record stays as it was found: it is the evidence of what went wrong.
    if (vm.unreadable || !vm.spec) return;
    try {
      await this.store.save(toRecord({ ...vm, spec: vm.spec }));
      vm.unsaved = undefined;
    } catch (e) {
      if (write === "required" || !(e instanceof StorageError)) throw e;
      if (!vm.unsaved) this.log.error({ vm: vm.id, err: e.message }, "cannot write the VM's record; going on from memory, the reconcile sweep retries");
      vm.unsaved ??= { error: e.message, since: new Date().toISOString() };
    }
  }

  /**
   * Records that could not be written, or that vanished from the disk, are
   * written again. Not while an operation on the VM runs (`busy`): a remove
   * renames the directory away before it forgets the VM, and must not see it restored.
   */
  async catchUp(vms: Iterable<VmEntry>, busy: (id: string) => boolean): Promise<void> {
    for (const vm of vms) {
      if (vm.unreadable || busy(vm.id) || (!vm.unsaved && this.store.hasRecord(vm.id))) continue;
      const missing = !vm.unsaved;
      await this.write(vm, "lazy");
      if (vm.unsaved) continue;
      this.log.warn({ vm: vm.id }, missing ? "state.json had vanished; written again" : "state.json written again after an earlier failure");
      // The serial log's open segment may have gone with the directory.
      if (missing) vm.services.console.reopenLog();
    }
  }

  /** What loading the records found besides them, for the log. */
  logLoadNotes(notes: LoadNotes): void {
    if (notes.incomplete.length > 0) this.log.warn({ dirs: notes.incomplete }, "removed directories of creates cut short before their first record");
    if (notes.tempFiles.length > 0) this.log.info({ files: notes.tempFiles }, "removed temp files a crash left");
    if (notes.narrowed.length > 0) this.log.warn({ dirs: notes.narrowed }, "VM directories were open to other users; narrowed to 0700");
    if (notes.ignored.length > 0)
      this.log.warn({ entries: notes.ignored }, "entries in the state dir that are not VM directories (links are never followed); left as found");
  }
}
