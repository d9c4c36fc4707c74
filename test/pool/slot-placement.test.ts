/**
 * Slot placement: new streams are packed onto the first worker slot with room
 * (one task per tick instead of one per worker at light load), counted at an
 * estimate from their stages until their load is measured, and go to the
 * least loaded slot past the packing load.
 */
import { describe, expect, it } from 'vitest';
import { PACK_LOAD, SlotPlacement, streamCost, type PlacedStream } from '../../src/pool/slot-placement.js';
import type { StreamSetup } from '../../src/pool/protocol.js';

const DENOISED: StreamSetup = { channels: 1, branches: [{ stages: [{ type: 'denoise' }] }, { stages: [] }] };
const PLAIN: StreamSetup = { channels: 1, branches: [{ stages: [] }] };

/** Opens `n` streams of `setup` through `placement` at `now`, adding each to its slot; returns the slots chosen. */
function open(placement: SlotPlacement, slots: PlacedStream[][], setup: StreamSetup, n: number, now: number): number[] {
  const chosen: number[] = [];
  for (let i = 0; i < n; i++) {
    const cost = streamCost(setup);
    const slot = placement.place(slots, cost, now);
    placement.opened(slot);
    slots[slot].push({ openedAt: now, cost });
    chosen.push(slot);
  }
  return chosen;
}

/** Reports, for one second from `from`, each slot's worker time as `load(slot)` of its thread (a task per 5 ms tick). */
function run(placement: SlotPlacement, slots: number, load: (slot: number) => number, from: number): number {
  for (let t = 0; t < 1000; t += 5) for (let s = 0; s < slots; s++) placement.busy(s, load(s) * 5, from + t);
  return from + 1000;
}

/** Two full windows in which slot i's worker time is `loads[i]` of its thread, from t = 1; returns the time after them. */
function measure(placement: SlotPlacement, loads: number[]): number {
  const now = run(placement, loads.length, (s) => loads[s], 1);
  return run(placement, loads.length, (s) => loads[s], now);
}

describe('streamCost', () => {
  it('estimates from the stages: RNNoise dominates, per channel; a custom stage counts as heavy', () => {
    expect(streamCost(PLAIN)).toBeCloseTo(0.003, 6);
    expect(streamCost(DENOISED)).toBeCloseTo(0.02, 6);
    expect(streamCost({ ...DENOISED, channels: 2 })).toBeCloseTo(0.04, 6);
    expect(streamCost({ channels: 1, branches: [{ stages: [{ type: 'resample', sampleRate: 16000 }, { type: 'gain', db: 3 }] }] })).toBeCloseTo(0.005, 6);
    expect(streamCost({ channels: 1, branches: [{ stages: [{ type: 'my-model' }] }] })).toBeCloseTo(0.02, 6);
    expect(streamCost({ channels: 1, branches: [{ stages: [] }], input: { sampleRate: 16000, channels: 2 } })).toBeCloseTo(0.006, 6);
  });

  it('estimates a malformed setup instead of throwing (the worker reports what is wrong with it)', () => {
    const malformed = { channels: 1, branches: { stages: [] } } as unknown as StreamSetup;
    expect(streamCost(malformed)).toBeCloseTo(0.003, 6);
    expect(streamCost({ channels: 1, branches: [{ stages: [null, { type: 42 }] }] } as unknown as StreamSetup)).toBeCloseTo(0.037, 6);
  });
});

describe('SlotPlacement', () => {
  it('packs a burst of light streams onto the first slot', () => {
    const slots: PlacedStream[][] = [[], [], [], []];
    open(new SlotPlacement(4, 0), slots, PLAIN, 40, 10);
    expect(slots.map((s) => s.length)).toEqual([40, 0, 0, 0]);
  });

  it('fills a slot up to the packing load with a burst of denoised streams, then the next, then balances', () => {
    const slots: PlacedStream[][] = [[], []];
    const chosen = open(new SlotPlacement(2, 0), slots, DENOISED, 30, 10);
    const perSlot = Math.floor(PACK_LOAD / streamCost(DENOISED) + 1e-9); // 7
    expect(chosen.slice(0, perSlot)).toEqual(Array(perSlot).fill(0));
    expect(chosen.slice(perSlot, 2 * perSlot)).toEqual(Array(perSlot).fill(1));
    expect(slots.map((s) => s.length)).toEqual([15, 15]);
  });

  it('stops packing early when the streams measure heavier than estimated', () => {
    const placement = new SlotPlacement(2, 0);
    const slots: PlacedStream[][] = [[], []];
    // Four custom-stage streams, estimated 0.02 each, that really cost 0.035 each: slot 0 measures 0.14.
    const heavy: StreamSetup = { channels: 1, branches: [{ stages: [{ type: 'my-model' }] }] };
    expect(open(placement, slots, heavy, 4, 0)).toEqual([0, 0, 0, 0]);
    const now = measure(placement, [0.14, 0]);
    // By estimate slot 0 has room for three more; by measure it has none.
    expect(open(placement, slots, heavy, 1, now)).toEqual([1]);
  });

  it('does not pack more onto a slot whose streams measure lighter than estimated (quiet talkers speak again)', () => {
    const placement = new SlotPlacement(2, 0);
    const slots: PlacedStream[][] = [[], []];
    open(placement, slots, DENOISED, 7, 0);
    // Seven talkers, silent just now: slot 0 measures 0.02, far below their estimate of 0.14.
    const now = measure(placement, [0.02, 0]);
    expect(open(placement, slots, DENOISED, 2, now)).toEqual([1, 1]);
  });

  it('forgets the load of streams that closed since it was measured', () => {
    const placement = new SlotPlacement(2, 0);
    const slots: PlacedStream[][] = [[], []];
    open(placement, slots, DENOISED, 10, 0);
    const now = measure(placement, [0.24, 0]);
    placement.busy(0, 0, now);
    expect(placement.loads[0]).toBeCloseTo(0.24, 2);
    // All ten end; ten light streams start at once: the first slot is empty again, not 0.24 busy (which would leave room for three).
    for (const s of slots[0].splice(0)) placement.closed(0, s.openedAt);
    expect(open(placement, slots, PLAIN, 10, now)).toEqual(Array(10).fill(0));
  });

  it('past the packing load, balances by estimated cost, not by the swings of measured load', () => {
    const placement = new SlotPlacement(2, 0);
    // Slot 0: 10 denoised talkers speaking just now (0.3 together); slot 1: 12 who are quiet just now (0.05).
    const slots: PlacedStream[][] = [Array.from({ length: 10 }, () => ({ openedAt: 0, cost: 0.02 })), Array.from({ length: 12 }, () => ({ openedAt: 0, cost: 0.02 }))];
    slots.forEach((streams, slot) => streams.forEach(() => placement.opened(slot)));
    const now = measure(placement, [0.3, 0.05]);
    placement.busy(0, 0, now);
    expect(placement.loads[0]).toBeCloseTo(0.3, 2);
    expect(placement.loads[1]).toBeCloseTo(0.05, 2);
    // Slot 0 has fewer streams: new ones go there until it has as many (ties go to the first), then they alternate.
    expect(open(placement, slots, DENOISED, 4, now)).toEqual([0, 0, 0, 1]);
  });

  it('past the packing load, weighs streams of different pipelines by their estimates', () => {
    const placement = new SlotPlacement(2, 0);
    // Slot 0: 10 denoised streams (0.2 estimated); slot 1: 60 without denoise (0.18).
    const slots: PlacedStream[][] = [[], []];
    for (let i = 0; i < 10; i++) slots[0].push({ openedAt: 0, cost: streamCost(DENOISED) });
    for (let i = 0; i < 60; i++) slots[1].push({ openedAt: 0, cost: streamCost(PLAIN) });
    slots.forEach((streams, slot) => streams.forEach(() => placement.opened(slot)));
    expect(open(placement, slots, PLAIN, 1, 1)).toEqual([1]);
    expect(open(placement, slots, DENOISED, 2, 1)).toEqual([1, 0]);
  });
});
