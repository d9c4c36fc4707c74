/**
 * The buffers a worker packs its batch outputs into (batch-output.ts). Each
 * goes to the main thread with its batch; a batch whose frames were all
 * copied out there comes back with a later task (`BatchTask.spares`) and is
 * packed into again, so that a worker does not allocate, and zero, a new
 * buffer for every batch.
 */
export class SpareOutputs {
  readonly #free: ArrayBuffer[] = [];

  /**
   * @param kept How many buffers are kept (a batch and its partial results need a few).
   * @param maxBytes Larger buffers are not kept: a rare burst (a backlog delivered at once) must not pin its memory for good.
   */
  constructor(
    readonly kept = 4,
    readonly maxBytes = 4 * 2 ** 20,
  ) {}

  /**
   * Keeps the largest of the buffers it is given and already holds. Keeping
   * the first ones instead filled the list with the small buffers of the
   * first batches, and every larger batch after them allocated a new buffer
   * (silent talkers' batches carry their DTX pauses: ~0.75 MB for a worker's
   * twenty). An empty buffer (detached by a transfer) is not kept.
   */
  keep(buffers: readonly ArrayBuffer[]): void {
    const free = this.#free;
    for (const b of buffers) {
      if (b.byteLength > this.maxBytes || b.byteLength === 0) continue;
      if (free.length < this.kept) {
        free.push(b);
        continue;
      }
      let smallest = 0;
      for (let i = 1; i < free.length; i++) if (free[i].byteLength < free[smallest].byteLength) smallest = i;
      if (b.byteLength > free[smallest].byteLength) free[smallest] = b;
    }
  }

  /** The smallest kept buffer of at least `bytes`, taken off the list; none if none is large enough. */
  readonly take = (bytes: number): ArrayBuffer | undefined => {
    const free = this.#free;
    let best = -1;
    for (let i = 0; i < free.length; i++) if (free[i].byteLength >= bytes && (best < 0 || free[i].byteLength < free[best].byteLength)) best = i;
    return best < 0 ? undefined : free.splice(best, 1)[0];
  };

  /** Sizes of the kept buffers, bytes. */
  sizes(): number[] {
    return this.#free.map((b) => b.byteLength);
  }
}
