/**
 * One timer for a periodic task many objects run: the recording writers'
 * flushes (WAV, Ogg Opus; one clock per period, `sharedClock`) and the
 * sessions' timeout checks (rtc/peer-session.ts, one slot).
 *
 * With a timer each, started whenever its object began, every task woke the
 * event loop at its own moment: a recording's flush about three wakes of the
 * main thread and two of libuv's file threads a second, a session's checks
 * four. On the 2-core VM of docs/performance.md a wake of an otherwise quiet
 * thread cost 35–140 µs of CPU by itself, more than the write it was for
 * (~5 µs for a header, ~35 µs for a second of audio).
 *
 * Here the tasks share one timer, and each is placed in one of a few fixed
 * moments (slots) of the period, the least crowded one. The tasks of a slot
 * run in the same event-loop turn, so the writes of a slot's recordings reach
 * libuv together and their completions tend to come back together. Slots are
 * at least `minSlotMs` apart (10 in a second by default), which keeps each
 * turn's burst small: 60 writers at 600 recordings. With fewer tasks than
 * slots, each has a slot of its own, as spread out as random start times
 * would be; with `minSlotMs` equal to the period, every task runs in one turn.
 *
 * The timer fires only at slots that have tasks, runs only while a task is
 * registered, and never keeps the process alive by itself.
 */
import { performance } from 'node:perf_hooks';

/** Shortest time between two slots, ms. */
const MIN_SLOT_MS = 100;

export class PeriodicClock {
  readonly periodMs: number;
  readonly #slotMs: number;
  readonly #slots: Array<Set<() => void>>;
  #size = 0;
  #timer: NodeJS.Timeout | undefined;
  /** When slot moment 0 was: moment n is at `#origin + n · #slotMs` and belongs to slot n mod slots. */
  #origin = 0;
  /** The first moment not yet run. */
  #next = 0;

  /**
   * @param periodMs how often each registered task runs
   * @param minSlotMs shortest time between two slots (default 100 ms)
   */
  constructor(periodMs: number, minSlotMs = MIN_SLOT_MS) {
    if (!(periodMs > 0) || !Number.isFinite(periodMs)) throw new RangeError(`periodMs must be a positive number, got ${periodMs}`);
    const slots = Math.max(1, Math.floor(periodMs / minSlotMs));
    this.periodMs = periodMs;
    this.#slotMs = periodMs / slots;
    this.#slots = Array.from({ length: slots }, () => new Set<() => void>());
  }

  /** Runs `task` once a period, at its slot's moment, until the returned function is called (safe to call from within the task). */
  add(task: () => void): () => void {
    let slot = this.#slots[0];
    for (const s of this.#slots) if (s.size < slot.size) slot = s;
    slot.add(task);
    if (this.#size++ === 0) {
      // The first moment is one slot from now: a task never runs in the turn that added it.
      this.#origin = performance.now();
      this.#next = 1;
    }
    this.#arm();
    let removed = false;
    return () => {
      if (removed) return;
      removed = true;
      slot.delete(task);
      if (--this.#size === 0) {
        clearTimeout(this.#timer);
        this.#timer = undefined;
      }
    };
  }

  /** Tasks registered. */
  get size(): number {
    return this.#size;
  }

  /** Slots the period is divided into. */
  get slots(): number {
    return this.#slots.length;
  }

  /** Arms the timer for the next moment whose slot has tasks (re-arming it if it was set for a later one). */
  #arm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#size === 0) return;
    const count = this.#slots.length;
    const now = performance.now();
    // A loop that was blocked for longer than a period catches up by one period at most: every
    // slot runs once, not once per period missed.
    const current = Math.floor((now - this.#origin) / this.#slotMs);
    this.#next = Math.max(this.#next, current - count + 1);
    let moment = this.#next;
    while (this.#slots[moment % count].size === 0) moment++;
    const delay = Math.max(0, this.#origin + moment * this.#slotMs - now);
    this.#timer = setTimeout(() => this.#fire(moment), delay);
    this.#timer.unref();
  }

  #fire(moment: number): void {
    this.#timer = undefined;
    this.#next = moment + 1;
    try {
      for (const task of this.#slots[moment % this.#slots.length]) task();
    } finally {
      this.#arm();
    }
  }
}

const clocks = new Map<number, PeriodicClock>();

/** The process's clock for tasks that run every `periodMs` in slots of the default spacing (the recording writers' flushes). */
export function sharedClock(periodMs: number): PeriodicClock {
  let clock = clocks.get(periodMs);
  if (!clock) clocks.set(periodMs, (clock = new PeriodicClock(periodMs)));
  return clock;
}
