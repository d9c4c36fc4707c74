/**
 * A bound on the data-channel bytes werift keeps for a peer (SCTP receive window).
 *
 * werift's `SCTP.receiveDataChunk` takes every DATA chunk a peer sends: it
 * lowers its advertised receive window by the chunk's size, but keeps the
 * chunk even when the window is already spent, and keeps the fragments of a
 * message until its last one arrives. A peer that ignores the window (every
 * browser honours it; a hostile sender need not) can send fragments of a
 * message that never ends and grow the server's memory without bound before
 * earshot's own message-size check sees anything. RFC 9260 §6.2: a receiver
 * whose window is spent MUST drop new DATA chunks with a TSN beyond the
 * largest received so far (the sender retransmits them once the window
 * opens). So this guard does, and also when the peer holds more than
 * `MAX_HELD_CHUNKS` chunks unassembled (a window of 1-byte chunks would be a
 * million objects). Chunks that fill a gap below the largest TSN are always
 * taken: they are what lets a stalled message complete.
 *
 * The SCTP class is not exported; its prototype is patched the first time
 * werift creates an association (`RTCSctpTransport.setDtlsTransport`), before
 * that association has received anything. A werift without these functions
 * is left as it is. The upstream change: drop beyond the window in
 * `receiveDataChunk`, and count chunk overhead in the window.
 */
import { RTCSctpTransport } from 'werift';
import { guardCounts } from './guard-counts.js';

/** Chunks a peer's association may hold unassembled (out of order, or fragments of an unfinished message). */
export const MAX_HELD_CHUNKS = 4096;

interface DataChunk {
  tsn: number;
  userData: Uint8Array;
}

interface SctpInternals {
  advertisedRwnd: number;
  lastReceivedTsn: number;
  sackMisOrdered: Set<number>;
  sackNeeded: boolean;
  sackImmediate: boolean;
  inboundStreams: Record<number, { reassembly: unknown[] }>;
  receiveDataChunk(chunk: DataChunk): void;
}

/** a after b in serial number arithmetic (RFC 1982, 32 bits). */
function tsnAfter(a: number, b: number): boolean {
  return a !== b && ((a - b) >>> 0) < 0x80000000;
}

/** The largest TSN the association has received. */
function largestReceived(sctp: SctpInternals): number {
  let largest = sctp.lastReceivedTsn;
  for (const tsn of sctp.sackMisOrdered) if (tsnAfter(tsn, largest)) largest = tsn;
  return largest;
}

/** Chunks the association holds for reassembly, all streams. */
function heldChunks(sctp: SctpInternals): number {
  let n = 0;
  for (const stream of Object.values(sctp.inboundStreams)) n += stream.reassembly.length;
  return n;
}

/** Whether `proto` is werift's SCTP as this guard knows it. */
function guardable(proto: Partial<SctpInternals>): boolean {
  return typeof proto.receiveDataChunk === 'function' && /advertisedRwnd\s*-=/.test(String(proto.receiveDataChunk));
}

/** werift's own `receiveDataChunk`, once the guard has wrapped it (for tests that compare). */
export let weriftReceiveDataChunk: ((this: unknown, chunk: DataChunk) => void) | undefined;

/** Wraps `proto.receiveDataChunk` (werift's SCTP prototype) once. */
function guardSctpWindow(proto: SctpInternals): void {
  const original = proto.receiveDataChunk;
  weriftReceiveDataChunk = original as (this: unknown, chunk: DataChunk) => void;
  proto.receiveDataChunk = function receiveDataChunk(this: SctpInternals, chunk: DataChunk): void {
    const full = this.advertisedRwnd - (chunk.userData?.length ?? 0) < 0 || heldChunks(this) >= MAX_HELD_CHUNKS;
    if (full && tsnAfter(chunk.tsn, largestReceived(this))) {
      // Dropped unacknowledged: the SACK that follows says where the peer stands; it sends it again later.
      this.sackNeeded = true;
      this.sackImmediate = true;
      guardCounts.sctpChunksDropped++;
      return;
    }
    original.call(this, chunk);
  };
}

const transportProto = RTCSctpTransport.prototype as unknown as { setDtlsTransport(this: { sctp?: object }, dtls: unknown): void };
const weriftSetDtlsTransport = transportProto.setDtlsTransport;
let guarded = false;

if (typeof weriftSetDtlsTransport === 'function') {
  transportProto.setDtlsTransport = function setDtlsTransport(this: { sctp?: object }, dtls: unknown): void {
    weriftSetDtlsTransport.call(this, dtls);
    if (guarded || !this.sctp) return;
    guarded = true;
    const proto = Object.getPrototypeOf(this.sctp) as SctpInternals;
    if (guardable(proto)) guardSctpWindow(proto);
  };
}
