/**
 * Which worker slot a new stream goes to: the first slot with room up to
 * `PACK_LOAD`, else the one whose streams are estimated to cost least (see
 * `SlotPlacement.place`).
 *
 * Why pack rather than spread: every batch tick sends one task to each slot
 * that has frames, and a task costs a wake of its worker and of the main
 * thread whatever it carries (~0.3 ms of CPU on the reference VM). Spread by
 * count, 20 streams on 2 workers were two tasks per tick; on a 16-core machine,
 * 16. Packed, light load wakes one worker, and the others join as the load
 * grows; at full load the slots end up as evenly loaded as before, because
 * past the packing threshold each stream goes to the slot with the least
 * estimated cost (for one pipeline, the fewest streams).
 *
 * A stream's cost shows in the measured load only after a window has passed
 * with it, so streams opened since the measured window began count at an
 * estimate from their stages (`streamCost`): a burst of new sessions is
 * neither all packed onto one worker nor spread when it is light.
 */
import { BUILTIN_STAGE_TYPES } from '../dsp/registry.js';
import type { StreamSetup } from './protocol.js';

/** Worker busy time is turned into a load (share of the thread) over windows this long. */
const LOAD_WINDOW_MS = 1000;
/**
 * A slot takes new streams while its estimated load stays at or below this
 * share of its thread: ~50 streams without denoise, ~7 denoised. Higher
 * packed more denoised streams onto one worker at moderate load, where both
 * workers run anyway, and raised their p99 (0.25: 20 denoised streams 17–20
 * ms against 11.5–15 spread) for no CPU saved.
 */
export const PACK_LOAD = 0.15;
/**
 * Estimated worker load per channel (share of a thread), measured on the
 * reference VM at 40 streams with the batches' fixed costs shared out:
 * decoding Opus (or taking PCM) ~0.003, RNNoise ~0.017; the other built-in
 * stages are a few µs per frame. A custom stage is assumed as heavy as
 * RNNoise; its measured load can only raise that (see `place`).
 */
const COST = { decode: 0.003, denoise: 0.017, light: 0.001, custom: 0.017 } as const;
/** Sums of estimated costs differ by rounding only below this (0.003 × 50 is not exactly 0.15). */
const COST_EPSILON = 1e-9;
const LIGHT_TYPES: ReadonlySet<string> = new Set(BUILTIN_STAGE_TYPES.filter((t) => t !== 'denoise'));

/** A stream's estimated worker load from its setup (see `COST`): counted until its load is measured, a floor under the measured load, and what slots are balanced by. */
export function streamCost(setup: StreamSetup): number {
  // A malformed setup is the worker's to report (the stream's onError): estimate what is there.
  const channels = setup.input?.channels === 2 || setup.channels === 2 ? 2 : 1;
  let cost = COST.decode;
  for (const branch of Array.isArray(setup.branches) ? setup.branches : []) {
    for (const stage of Array.isArray(branch?.stages) ? branch.stages : []) {
      const type = stage?.type;
      cost += type === 'denoise' ? COST.denoise : typeof type === 'string' && LIGHT_TYPES.has(type) ? COST.light : COST.custom;
    }
  }
  return cost * channels;
}

/** What placement needs of a stream already on a slot. */
export interface PlacedStream {
  /** `performance.now()` when it was placed. */
  readonly openedAt: number;
  /** Its estimated load (`streamCost`): a floor under the measured load for packing, and what slots are balanced by past it. */
  readonly cost: number;
}

export class SlotPlacement {
  /** Per slot: worker busy ms in the current window. */
  readonly #busy: number[];
  /** Per slot: load (busy share of the thread) over the last complete window. */
  readonly #load: number[];
  /** Start of the current window. */
  #windowFrom: number;
  /** Start of the window `#load` was measured over; streams opened after it are not (fully) in it. */
  #measuredFrom: number;
  /** Per slot: streams on it now. */
  readonly #count: number[];
  /** Per slot: streams on it when `#load` was measured, and how many of those have closed since: their share of the load is gone. */
  readonly #counted: number[];
  readonly #gone: number[];

  constructor(slots: number, now = performance.now()) {
    this.#busy = Array.from({ length: slots }, () => 0);
    this.#load = Array.from({ length: slots }, () => 0);
    this.#windowFrom = now;
    this.#measuredFrom = now;
    this.#count = Array.from({ length: slots }, () => 0);
    this.#counted = Array.from({ length: slots }, () => 0);
    this.#gone = Array.from({ length: slots }, () => 0);
  }

  /** A stream was put on `slot` (the slot `place` chose). */
  opened(slot: number): void {
    this.#count[slot]++;
  }

  /** A stream opened at `openedAt` left `slot`. */
  closed(slot: number, openedAt: number): void {
    this.#count[slot]--;
    if (openedAt <= this.#windowFrom && this.#gone[slot] < this.#counted[slot]) this.#gone[slot]++;
  }

  /** A task of `slot` took `ms` of worker time. */
  busy(slot: number, ms: number, now = performance.now()): void {
    this.#roll(now);
    this.#busy[slot] += ms;
  }

  /**
   * The slot for a new stream of estimated load `cost`, given the streams on
   * each slot now: the first slot whose load stays within `PACK_LOAD` with it,
   * else the slot whose streams' estimated costs sum least.
   *
   * A slot's load for packing is the larger of its measured load (streams too
   * new to be measured at their estimate) and its streams' estimated costs:
   * stages heavier than estimated stop the packing early, and streams that
   * measure lighter than estimated (talkers who are silent just now) do not
   * let more in, because they will speak again.
   *
   * Past the packing load, slots are balanced by estimated cost, not by
   * measured load: measured over a second, talkers who speak half the time
   * make the load of a slot swing, and new streams went to whichever slot's
   * talkers happened to be quiet (at 100 such talkers p99 156–187 ms against
   * 64–105 ms spread evenly). For streams of one pipeline this is the even
   * spread by count.
   */
  place(slots: ReadonlyArray<Iterable<PlacedStream>>, cost: number, now = performance.now()): number {
    this.#roll(now);
    let best = 0;
    let bestCost = Infinity;
    for (let slot = 0; slot < slots.length; slot++) {
      const counted = this.#counted[slot];
      // Streams that closed since took their share of the measured load with them.
      let measured = counted > 0 ? (this.#load[slot] * (counted - this.#gone[slot])) / counted : 0;
      let estimated = 0;
      for (const s of slots[slot]) {
        estimated += s.cost;
        if (s.openedAt > this.#measuredFrom) measured += s.cost;
      }
      if (Math.max(measured, estimated) + cost <= PACK_LOAD + COST_EPSILON) return slot;
      if (estimated < bestCost - COST_EPSILON) {
        best = slot;
        bestCost = estimated;
      }
    }
    return best;
  }

  /** Per slot: the load the last complete window measured. */
  get loads(): readonly number[] {
    return this.#load;
  }

  #roll(now: number): void {
    const elapsed = now - this.#windowFrom;
    if (elapsed < LOAD_WINDOW_MS) return;
    for (let slot = 0; slot < this.#busy.length; slot++) {
      this.#load[slot] = this.#busy[slot] / elapsed;
      this.#busy[slot] = 0;
      this.#counted[slot] = this.#count[slot];
      this.#gone[slot] = 0;
    }
    this.#measuredFrom = this.#windowFrom;
    this.#windowFrom = now;
  }
}
