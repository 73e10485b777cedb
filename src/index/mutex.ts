/**
 * A FIFO async mutex. Each collection has one to keep hnswlib mutations
 * (addPoint, markDelete, resizeIndex) away from a snapshot's writeIndex,
 * which runs on a libuv worker thread and is not safe against them.
 */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();

  run<T>(fn: () => Promise<T> | T): Promise<T> {
    const result = this.tail.then(fn);
    // The chain must survive a rejected task; the caller still sees the rejection.
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}
