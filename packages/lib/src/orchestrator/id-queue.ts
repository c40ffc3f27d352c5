/**
 * Operations on one VM id run one at a time, in the order they were asked
 * for, `create` included: a `start` sent a moment after a `create` (on any
 * connection) waits for the create to finish instead of racing it. Keyed by
 * id rather than held by the VM, so an id with no VM yet can be queued on.
 * An id's queue is dropped once it drains.
 */
export class IdQueue {
  private readonly tails = new Map<string, Promise<void>>();

  run<T>(id: string, work: () => Promise<T>): Promise<T> {
    const result = (this.tails.get(id) ?? Promise.resolve()).then(work);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(id, tail);
    void tail.then(() => {
      if (this.tails.get(id) === tail) this.tails.delete(id);
    });
    return result;
  }

  /** True while an operation on `id` runs or waits. */
  busy(id: string): boolean {
    return this.tails.has(id);
  }
}
